#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Auth-failure throttling: 401/403 answers counted per client; too many within the window
//! block the client for a cool-down, per route, exactly under contention.

use palisade::client_ip::ClientIpConfig;
use palisade::matcher::Request;
use palisade::ratelimit::auth_failure::Recorded;
use palisade::ratelimit::gcra::NANOS_PER_SEC;
use palisade::ratelimit::store::{CasStore, MemoryStore};
use palisade::ratelimit::{Plan, RateLimitConfig, RequestFacts};
use serde_json::json;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use wasm_bindgen_test::wasm_bindgen_test;

const NOW: u64 = 1_700_000_000 * NANOS_PER_SEC;
const SEC: u64 = NANOS_PER_SEC;
const ATTACKER: &str = "203.0.113.66:5000";
const USER: &str = "198.51.100.20:5000";

fn login_config() -> RateLimitConfig {
    RateLimitConfig::from_value(json!({
        "rules": [{
            "name": "login",
            "match": {"path": {"exact": "/login"}},
            "auth_failure": {"max_failures": 3, "window": 60, "block_for": 300}
        }]
    }))
    .unwrap()
}

fn plan(cfg: &RateLimitConfig, path: &str, ip: &str) -> Plan {
    let headers: Vec<(String, String)> = Vec::new();
    let req = Request {
        authority: "h",
        path,
        method: "POST",
        route_name: None,
        headers: &headers,
    };
    cfg.plan(&RequestFacts {
        request: &req,
        downstream: Some(ip),
        client_ip: &ClientIpConfig::default(),
    })
}

/// One login attempt: refused if blocked, else answered with `status` by the upstream.
fn attempt<S: CasStore + ?Sized>(
    cfg: &RateLimitConfig,
    store: &S,
    ip: &str,
    status: u32,
    now: u64,
) -> Option<Recorded> {
    let p = plan(cfg, "/login", ip);
    if cfg.auth_blocked_for(store, &p, now).unwrap().is_some() {
        return None;
    }
    cfg.record_response(store, &p, status, now).unwrap().pop()
}

#[wasm_bindgen_test(unsupported = test)]
fn the_third_failure_within_the_window_blocks_the_client() {
    let cfg = login_config();
    let store = MemoryStore::new();
    cfg.prepare_store(&store).unwrap();
    assert_eq!(
        attempt(&cfg, &store, ATTACKER, 401, NOW),
        Some(Recorded::Counted { failures: 1 })
    );
    assert_eq!(
        attempt(&cfg, &store, ATTACKER, 403, NOW + SEC),
        Some(Recorded::Counted { failures: 2 })
    );
    assert_eq!(
        attempt(&cfg, &store, ATTACKER, 401, NOW + 2 * SEC),
        Some(Recorded::Blocked {
            block_ns: 300 * SEC
        })
    );
    // Blocked: requests are refused before reaching the upstream, with the time left.
    let p = plan(&cfg, "/login", ATTACKER);
    let left = cfg
        .auth_blocked_for(&store, &p, NOW + 10 * SEC)
        .unwrap()
        .unwrap();
    assert_eq!(left, 292 * SEC);
    let resp = cfg.blocked_response(&p, left);
    assert_eq!(resp.status, 429);
    assert!(resp.headers.contains(&("retry-after", "292".to_owned())));

    // Another client is not affected.
    assert_eq!(
        attempt(&cfg, &store, USER, 401, NOW + 10 * SEC),
        Some(Recorded::Counted { failures: 1 })
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn the_block_ends_after_the_cool_down_and_counting_starts_afresh() {
    let cfg = login_config();
    let store = MemoryStore::new();
    cfg.prepare_store(&store).unwrap();
    for i in 0..3 {
        attempt(&cfg, &store, ATTACKER, 401, NOW + i);
    }
    assert_eq!(attempt(&cfg, &store, ATTACKER, 401, NOW + 299 * SEC), None);
    assert_eq!(
        attempt(&cfg, &store, ATTACKER, 401, NOW + 301 * SEC),
        Some(Recorded::Counted { failures: 1 })
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn failures_spread_wider_than_the_window_do_not_block() {
    let cfg = login_config();
    let store = MemoryStore::new();
    cfg.prepare_store(&store).unwrap();
    for i in 0..20u64 {
        let r = attempt(&cfg, &store, ATTACKER, 401, NOW + i * 31 * SEC);
        assert!(
            matches!(r, Some(Recorded::Counted { failures: 1 | 2 })),
            "attempt {i}: {r:?}"
        );
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn successes_and_other_errors_are_not_failures() {
    let cfg = login_config();
    let store = MemoryStore::new();
    cfg.prepare_store(&store).unwrap();
    for status in [200, 204, 302, 404, 429, 500] {
        assert_eq!(
            attempt(&cfg, &store, ATTACKER, status, NOW),
            Some(Recorded::NotCounted)
        );
    }
    assert_eq!(
        attempt(&cfg, &store, ATTACKER, 401, NOW),
        Some(Recorded::Counted { failures: 1 })
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn throttling_applies_only_where_configured_but_a_block_covers_those_routes() {
    let cfg = login_config();
    let store = MemoryStore::new();
    cfg.prepare_store(&store).unwrap();
    let elsewhere = plan(&cfg, "/api/items", ATTACKER);
    assert!(elsewhere.throttles.is_empty());
    assert!(cfg
        .record_response(&store, &elsewhere, 401, NOW)
        .unwrap()
        .is_empty());
    for i in 0..3 {
        attempt(&cfg, &store, ATTACKER, 401, NOW + i);
    }
    assert_eq!(
        cfg.auth_blocked_for(&store, &elsewhere, NOW + 5).unwrap(),
        None
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn custom_statuses_and_keys() {
    let cfg = RateLimitConfig::from_value(json!({
        "auth_failure": {"name": "per-user", "max_failures": 2, "window": 10, "block_for": 10,
                          "statuses": [401], "key": {"header": "x-user"}}
    }))
    .unwrap();
    let store = MemoryStore::new();
    let headers = vec![("x-user".to_owned(), "alice".to_owned())];
    let req = Request {
        authority: "h",
        path: "/",
        method: "GET",
        route_name: None,
        headers: &headers,
    };
    let p = cfg.plan(&RequestFacts {
        request: &req,
        downstream: Some(ATTACKER),
        client_ip: &ClientIpConfig::default(),
    });
    assert_eq!(
        cfg.record_response(&store, &p, 403, NOW).unwrap(),
        [Recorded::NotCounted]
    );
    cfg.record_response(&store, &p, 401, NOW).unwrap();
    assert!(matches!(
        cfg.record_response(&store, &p, 401, NOW).unwrap()[..],
        [Recorded::Blocked { .. }]
    ));
    assert!(cfg.auth_blocked_for(&store, &p, NOW + 1).unwrap().is_some());
}

#[wasm_bindgen_test(unsupported = test)]
fn concurrent_failures_from_two_workers_are_all_counted() {
    let cfg = Arc::new(login_config());
    let store = MemoryStore::new();
    cfg.prepare_store(&store).unwrap();
    let other = cfg.clone();
    let ticks = Arc::new(AtomicU32::new(0));
    let t = ticks.clone();
    // Before each of our writes, another worker records a failure of the same client.
    store.interfere(Box::new(move |s: &MemoryStore, _k: &str| {
        if t.fetch_add(1, Ordering::SeqCst) < 1 {
            attempt(&other, s, ATTACKER, 401, NOW);
        }
    }));
    assert_eq!(
        attempt(&cfg, &store, ATTACKER, 401, NOW),
        Some(Recorded::Counted { failures: 2 }),
        "our failure was counted on top of theirs, not over it"
    );
    assert!(store.stats().2 > 0);
    store.stop_interfering();
    assert!(matches!(
        attempt(&cfg, &store, ATTACKER, 401, NOW),
        Some(Recorded::Blocked { .. })
    ));
}

#[wasm_bindgen_test(unsupported = test)]
fn a_flood_of_failing_clients_keeps_memory_bounded_and_blocks_no_bystander() {
    let cfg = RateLimitConfig::from_value(json!({
        "auth_failure": {"max_failures": 2, "window": 60, "block_for": 60, "max_keys": 32}
    }))
    .unwrap();
    let store = MemoryStore::new();
    cfg.prepare_store(&store).unwrap();
    let keys = store.len();
    for i in 0..3_000u32 {
        let ip = format!("10.7.{}.{}:1", i >> 8, i & 255);
        let p = plan(&cfg, "/", &ip);
        cfg.record_response(&store, &p, 401, NOW).unwrap();
    }
    assert_eq!(store.len(), keys);
    let bystander = plan(&cfg, "/", USER);
    assert_eq!(cfg.auth_blocked_for(&store, &bystander, NOW).unwrap(), None);
}
