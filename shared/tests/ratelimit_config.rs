#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The rate-limit config: defaults, and every mistake named by its field path.

use palisade::ratelimit::config::{
    FailureMode, OnStoreError, DEFAULT_KEY_PREFIX, DEFAULT_MAX_KEYS,
};
use palisade::ratelimit::gcra::Period;
use palisade::ratelimit::state::WhenFull;
use palisade::ratelimit::RateLimitConfig;
use palisade::ConfigError;
use serde_json::json;
use wasm_bindgen_test::wasm_bindgen_test;

fn error(doc: serde_json::Value) -> ConfigError {
    RateLimitConfig::from_value(doc).unwrap_err()
}

fn path_of(doc: serde_json::Value) -> String {
    error(doc)
        .path()
        .unwrap_or("(not a field error)")
        .to_owned()
}

#[wasm_bindgen_test(unsupported = test)]
fn an_empty_config_limits_nothing() {
    let cfg = RateLimitConfig::from_slice(b"").unwrap();
    assert!(cfg.limits().is_empty());
    assert!(cfg.throttles().is_empty());
    assert!(cfg.distributed.is_none());
    assert_eq!(cfg.store.key_prefix, DEFAULT_KEY_PREFIX);
    assert_eq!(cfg.store.on_error, OnStoreError::Deny);
}

#[wasm_bindgen_test(unsupported = test)]
fn a_limit_gets_sensible_defaults() {
    let cfg = RateLimitConfig::from_value(json!({
        "limits": [{"name": "l", "requests": 100, "per": "hour"}]
    }))
    .unwrap();
    let l = &cfg.limits()[0];
    assert_eq!(l.rate.requests(), 100);
    assert_eq!(l.rate.period(), Period::Hour);
    assert_eq!(l.rate.burst(), 100, "burst defaults to requests");
    assert!(!l.shadow);
    assert_eq!(l.table.when_full(), WhenFull::Shared);
    assert!(l.table.capacity() >= DEFAULT_MAX_KEYS as usize);
    assert_eq!(l.table.prefix(), "palisade.ratelimit/limit/l");
}

#[wasm_bindgen_test(unsupported = test)]
fn filter_wide_settings_parse() {
    let cfg = RateLimitConfig::from_value(json!({
        "client_ip": {"trusted_hops": 2},
        "store": {"key_prefix": "tenant-a.rl", "on_error": "allow"},
        "distributed": {"cluster": "outbound|8081||ratelimit", "domain": "edge"},
        "limits": [{"name": "l", "requests": 1, "per": "second", "key": {"route": true}}]
    }))
    .unwrap();
    assert_eq!(cfg.client_ip.trusted_hops, 2);
    assert_eq!(cfg.store.on_error, OnStoreError::Allow);
    assert_eq!(cfg.limits()[0].table.prefix(), "tenant-a.rl/limit/l");
    let d = cfg.distributed.as_ref().unwrap();
    assert_eq!(d.timeout_ms, 20);
    assert_eq!(d.failure_mode, FailureMode::Local);
    assert!(cfg.needs_route_name());
}

#[wasm_bindgen_test(unsupported = test)]
fn mistakes_are_named_by_their_path() {
    let cases = [
        (
            json!({"limits": [{"name": "l", "requests": 1, "per": "week"}]}),
            "limits[0].per",
        ),
        (
            json!({"limits": [{"name": "l", "requests": 0, "per": "second"}]}),
            "limits[0].requests",
        ),
        (
            json!({"limits": [{"name": "l", "requests": 1, "per": "second", "burst": 0}]}),
            "limits[0].burst",
        ),
        (
            json!({"limits": [{"name": "l", "requests": 1, "per": "day", "burst": 4_000_000_000u32}]}),
            "limits[0].burst",
        ),
        (
            json!({"limits": [{"name": "l", "requests": 1, "per": "second", "brust": 3}]}),
            "limits[0].brust",
        ),
        (
            json!({"limits": [{"requests": 1, "per": "second"}]}),
            "limits[0]",
        ),
        (
            json!({"limits": [{"name": "has space", "requests": 1, "per": "second"}]}),
            "limits[0].name",
        ),
        (
            json!({"limits": [{"name": "l", "requests": 1, "per": "second", "max_keys": 0}]}),
            "limits[0].max_keys",
        ),
        (
            json!({"limits": [{"name": "l", "requests": 1, "per": "second", "when_full": "drop"}]}),
            "limits[0].when_full",
        ),
        (
            json!({"limits": [{"name": "l", "requests": 1, "per": "second", "missing": "allow"}]}),
            "limits[0].missing",
        ),
        (
            json!({"limits": [{"name": "l", "requests": 1, "per": "second", "key": {"header": ""}}]}),
            "limits[0].key.header",
        ),
        (json!({"status": 200}), "status"),
        (
            json!({"headers": {"ietf": true, "draft": 3}}),
            "headers.draft",
        ),
        (json!({"store": {"key_prefix": "a/b"}}), "store.key_prefix"),
        (json!({"store": {"on_error": "maybe"}}), "store.on_error"),
        (json!({"distributed": {"cluster": "rls"}}), "distributed"),
        (
            json!({"distributed": {"cluster": "", "domain": "d"}}),
            "distributed.cluster",
        ),
        (
            json!({"distributed": {"cluster": "c", "domain": "d", "timeout_ms": 0}}),
            "distributed.timeout_ms",
        ),
        (
            json!({"distributed": {"cluster": "c", "domain": "d", "failure_mode": "maybe"}}),
            "distributed.failure_mode",
        ),
        (
            json!({"auth_failure": {"max_failures": 0, "window": 60, "block_for": 60}}),
            "auth_failure.max_failures",
        ),
        (
            json!({"auth_failure": {"max_failures": 3, "window": 0, "block_for": 60}}),
            "auth_failure.window",
        ),
        (
            json!({"auth_failure": {"max_failures": 3, "window": 60, "block_for": 99_999_999}}),
            "auth_failure.block_for",
        ),
        (
            json!({"auth_failure": {"max_failures": 3, "window": 60, "block_for": 60, "statuses": [99]}}),
            "auth_failure.statuses[0]",
        ),
        (
            json!({"auth_failure": {"max_failures": 3, "window": 60, "block_for": 60, "statuses": []}}),
            "auth_failure.statuses",
        ),
        (
            json!({"rules": [{"match": {"path": {"exact": "/x"}},
                           "limits": [{"name": "l", "requests": 0, "per": "second"}]}]}),
            "rules[0].limits[0].requests",
        ),
        (
            json!({"rules": [{"match": {}, "client_ip": {"trusted_hops": 1}}]}),
            "rules[0].client_ip",
        ),
        (
            json!({"rules": [{"match": {}, "store": {}}]}),
            "rules[0].store",
        ),
        (json!({"unknown_setting": true}), "unknown_setting"),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|(doc, want)| {
            let got = path_of(doc.clone());
            (got != *want).then(|| format!("{doc}: got {got}, want {want}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[wasm_bindgen_test(unsupported = test)]
fn one_name_with_two_definitions_is_refused() {
    let err = error(json!({
        "limits": [{"name": "l", "requests": 10, "per": "second"}],
        "rules": [{"match": {"path": {"prefix": "/a"}},
                   "limits": [{"name": "l", "requests": 5, "per": "second"}]}]
    }));
    assert_eq!(err.path(), Some("rules[0].limits[0].name"));
    assert!(err.to_string().contains("already defined"));

    let err = error(json!({"limits": [
        {"name": "l", "requests": 10, "per": "second"},
        {"name": "l", "requests": 10, "per": "second"}
    ]}));
    assert_eq!(err.path(), Some("limits[1].name"));

    // The same definition reached twice (a rule repeating a top-level limit) is one limit.
    let cfg = RateLimitConfig::from_value(json!({
        "limits": [{"name": "l", "requests": 10, "per": "second"}],
        "rules": [{"match": {"path": {"prefix": "/a"}},
                   "limits": [{"name": "l", "requests": 10, "per": "second"},
                              {"name": "m", "requests": 1, "per": "second"}]}]
    }))
    .unwrap();
    assert_eq!(cfg.limits().len(), 2);
}

#[wasm_bindgen_test(unsupported = test)]
fn the_config_must_be_a_json_object() {
    assert!(matches!(
        RateLimitConfig::from_slice(b"{nope"),
        Err(ConfigError::NotJson(_))
    ));
    assert_eq!(
        RateLimitConfig::from_slice(b"[1]").unwrap_err().path(),
        Some("(root)")
    );
}
