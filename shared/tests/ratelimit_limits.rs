#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! What a request sees when several limits apply: the tightest decides, refused requests cost
//! nothing, every matching rule's limits apply, shadow limits never refuse, exempt routes skip.

use palisade::client_ip::ClientIpConfig;
use palisade::matcher::Request;
use palisade::ratelimit::gcra::{Period, NANOS_PER_SEC};
use palisade::ratelimit::store::MemoryStore;
use palisade::ratelimit::{Outcome, Plan, RateLimitConfig, RequestFacts, Verdict};
use serde_json::json;
use wasm_bindgen_test::wasm_bindgen_test;

const NOW: u64 = 1_700_000_000 * NANOS_PER_SEC;

struct Env {
    cfg: RateLimitConfig,
    store: MemoryStore,
}

impl Env {
    fn new(doc: serde_json::Value) -> Self {
        let cfg = RateLimitConfig::from_value(doc).unwrap();
        let store = MemoryStore::new();
        cfg.prepare_store(&store).unwrap();
        Env { cfg, store }
    }

    fn plan(&self, path: &str, ip: &str, headers: &[(&str, &str)]) -> Plan {
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let req = Request {
            authority: "api.example.com",
            path,
            method: "POST",
            route_name: None,
            headers: &headers,
        };
        self.cfg.plan(&RequestFacts {
            request: &req,
            downstream: Some(ip),
            client_ip: &ClientIpConfig::default(),
        })
    }

    fn ask(&self, path: &str, ip: &str, now: u64) -> Verdict {
        self.ask_with(path, ip, &[], now)
    }

    fn ask_with(&self, path: &str, ip: &str, headers: &[(&str, &str)], now: u64) -> Verdict {
        let plan = self.plan(path, ip, headers);
        self.cfg.check(&self.store, &plan, now).unwrap()
    }

    fn admitted(&self, path: &str, ip: &str, now: u64, n: u32) -> u32 {
        (0..n).filter(|_| self.ask(path, ip, now).admitted).count() as u32
    }
}

fn status<'v>(v: &'v Verdict, name: &str) -> &'v palisade::ratelimit::limiter::LimitStatus {
    v.statuses.iter().find(|s| s.name == name).unwrap()
}

const IP: &str = "203.0.113.10:1000";

#[wasm_bindgen_test(unsupported = test)]
fn the_tightest_of_several_limits_on_one_key_decides() {
    let env = Env::new(json!({"limits": [
        {"name": "per-second", "requests": 3, "per": "second"},
        {"name": "per-minute", "requests": 5, "per": "minute"}
    ]}));
    assert_eq!(
        env.admitted("/", IP, NOW, 10),
        3,
        "the per-second limit stops the burst"
    );
    let v = env.ask("/", IP, NOW);
    assert!(v.is_limited());
    assert!(!status(&v, "per-second").allowed);
    assert!(status(&v, "per-minute").allowed);
    assert_eq!(v.tightest().unwrap().name, "per-second");

    // A second later the per-minute limit has only 2 left.
    assert_eq!(env.admitted("/", IP, NOW + NANOS_PER_SEC, 10), 2);
    let v = env.ask("/", IP, NOW + 2 * NANOS_PER_SEC);
    assert!(v.is_limited());
    assert!(status(&v, "per-second").allowed);
    assert_eq!(v.tightest().unwrap().name, "per-minute");
    let wait = v.retry_after_ns().unwrap();
    assert!(
        wait > NANOS_PER_SEC,
        "the minute limit's wait, not the second's"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn a_refused_request_is_not_counted_against_the_other_limits() {
    let env = Env::new(json!({
        "limits": [{"name": "global", "requests": 5, "per": "minute"}],
        "rules": [{"name": "login", "match": {"path": {"exact": "/login"}},
                   "limits": [{"name": "login", "requests": 1, "per": "minute"}]}]
    }));
    assert_eq!(env.admitted("/login", IP, NOW, 20), 1);
    // 19 refusals on /login cost nothing on the global limit: 4 of 5 are left elsewhere.
    assert_eq!(env.admitted("/other", IP, NOW, 20), 4);
}

#[wasm_bindgen_test(unsupported = test)]
fn every_matching_rule_adds_its_limits_and_inherited_ones_count_once() {
    let env = Env::new(json!({
        "limits": [{"name": "global", "requests": 100, "per": "minute"}],
        "rules": [
            {"name": "api", "match": {"path": {"prefix": "/api/"}},
             "limits": [{"name": "api", "requests": 10, "per": "minute"}]},
            {"name": "writes", "match": {"methods": ["POST"]},
             "limits": [{"name": "writes", "requests": 4, "per": "minute"}]},
            {"name": "docs", "match": {"path": {"prefix": "/docs"}}, "status": 503}
        ]
    }));
    let names = |path: &str| -> Vec<String> {
        env.ask(path, "192.0.2.1:1", NOW)
            .statuses
            .iter()
            .map(|s| s.name.clone())
            .collect()
    };
    assert_eq!(names("/api/x"), ["global", "api", "writes"]);
    assert_eq!(names("/else"), ["global", "writes"]);
    assert_eq!(
        names("/docs"),
        ["global", "writes"],
        "a rule without its own limits inherits the top-level ones, counted once"
    );
    // The writes limit (4) is the tightest for POSTs to the API.
    assert_eq!(env.admitted("/api/y", IP, NOW, 20), 4);
}

#[wasm_bindgen_test(unsupported = test)]
fn each_client_has_its_own_bucket_and_a_constant_key_is_global() {
    let env = Env::new(json!({"limits": [
        {"name": "per-client", "requests": 2, "per": "minute"},
        {"name": "all", "requests": 5, "per": "minute", "key": {"constant": "all"}}
    ]}));
    assert_eq!(env.admitted("/", "10.0.0.1:1", NOW, 10), 2);
    assert_eq!(env.admitted("/", "10.0.0.2:1", NOW, 10), 2);
    assert_eq!(
        env.admitted("/", "10.0.0.3:1", NOW, 10),
        1,
        "the global bucket has 1 left"
    );
    assert_eq!(env.admitted("/", "10.0.0.4:1", NOW, 10), 0);
}

#[wasm_bindgen_test(unsupported = test)]
fn shadow_limits_count_and_mark_but_never_refuse() {
    let env = Env::new(json!({"limits": [
        {"name": "enforced", "requests": 5, "per": "minute"},
        {"name": "trial", "requests": 2, "per": "minute", "shadow": true}
    ]}));
    let outcomes: Vec<Outcome> = (0..6).map(|_| env.ask("/", IP, NOW).outcome()).collect();
    assert_eq!(
        outcomes,
        [
            Outcome::Allowed,
            Outcome::Allowed,
            Outcome::ShadowLimited,
            Outcome::ShadowLimited,
            Outcome::ShadowLimited,
            Outcome::Limited
        ]
    );
    let v = env.ask("/", IP, NOW);
    assert!(v.retry_after_ns().is_some());
    assert_eq!(
        v.tightest().unwrap().name,
        "enforced",
        "shadow limits are never 'tightest'"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn a_route_in_shadow_mode_enforces_nothing() {
    let env = Env::new(json!({
        "limits": [{"name": "per-client", "requests": 2, "per": "minute"}],
        "rules": [{"name": "beta", "match": {"path": {"prefix": "/beta"}}, "shadow": true}]
    }));
    assert_eq!(env.admitted("/beta/x", IP, NOW, 5), 5);
    let v = env.ask("/beta/x", IP, NOW);
    assert!(v.is_shadow_limited());
    // The shadow route counted the two that were within the limit: nothing is left elsewhere.
    assert_eq!(env.admitted("/stable", IP, NOW, 5), 0);
}

#[wasm_bindgen_test(unsupported = test)]
fn the_top_level_shadow_switch_puts_the_whole_filter_in_shadow_mode() {
    let env = Env::new(json!({
        "shadow": true,
        "limits": [{"name": "per-client", "requests": 1, "per": "minute"}]
    }));
    assert_eq!(env.admitted("/", IP, NOW, 4), 4);
    assert_eq!(env.ask("/", IP, NOW).outcome(), Outcome::ShadowLimited);
}

#[wasm_bindgen_test(unsupported = test)]
fn an_exempt_route_skips_every_limit() {
    let env = Env::new(json!({
        "limits": [{"name": "per-client", "requests": 1, "per": "minute"}],
        "rules": [{"name": "health", "match": {"path": {"exact": "/healthz"}}, "exempt": true}]
    }));
    assert_eq!(env.admitted("/healthz", IP, NOW, 50), 50);
    assert_eq!(env.ask("/healthz", IP, NOW).outcome(), Outcome::Unlimited);
    assert_eq!(
        env.admitted("/", IP, NOW, 3),
        1,
        "other routes still limited"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn a_missing_key_shares_a_bucket_or_skips_the_limit() {
    let env = Env::new(json!({"limits": [
        {"name": "by-key", "requests": 2, "per": "minute", "key": {"header": "x-api-key"}},
        {"name": "by-tenant", "requests": 3, "per": "minute",
         "key": {"header": "x-tenant"}, "missing": "skip"}
    ]}));
    // Without x-api-key every request shares the "missing" bucket: leaving it out is no escape.
    assert_eq!(env.admitted("/", "10.0.0.1:1", NOW, 5), 2);
    assert_eq!(env.admitted("/", "10.0.0.2:1", NOW, 5), 0);
    // A request with a key has its own bucket; without x-tenant that limit does not apply.
    let v = env.ask_with("/", IP, &[("x-api-key", "k1")], NOW);
    assert!(v.admitted);
    assert_eq!(v.statuses.len(), 1);
    let tenants = (0..6)
        .filter(|i| {
            let key = format!("k{i}");
            env.ask_with(
                "/",
                IP,
                &[("x-api-key", &key), ("x-tenant", "acme")],
                NOW + 1,
            )
            .admitted
        })
        .count();
    assert_eq!(tenants, 3, "six API keys, one tenant limited to 3");
}

#[wasm_bindgen_test(unsupported = test)]
fn statuses_carry_the_figures_the_headers_need() {
    let env = Env::new(json!({"limits": [
        {"name": "l", "requests": 4, "per": "minute", "burst": 2}
    ]}));
    let first = env.ask("/", IP, NOW);
    let s = status(&first, "l");
    assert_eq!((s.requests, s.period, s.burst), (4, Period::Minute, 2));
    assert_eq!(s.remaining, 1);
    assert!(s.consumed);
    env.ask("/", IP, NOW);
    let refused = env.ask("/", IP, NOW);
    let s = status(&refused, "l");
    assert!(!s.allowed && !s.consumed);
    assert_eq!(s.remaining, 0);
    assert_eq!(s.wait_ns, Period::Minute.nanos() / 4);
    assert_eq!(s.reset_ns, 2 * Period::Minute.nanos() / 4);
}

#[wasm_bindgen_test(unsupported = test)]
fn a_store_failure_refuses_by_default_and_admits_when_configured() {
    let deny = Env::new(json!({"limits": [{"name": "l", "requests": 1, "per": "second"}]}));
    let plan = deny.plan("/", IP, &[]);
    assert!(deny.cfg.verdict_on_store_error(&plan).is_limited());
    let allow = Env::new(json!({
        "store": {"on_error": "allow"},
        "limits": [{"name": "l", "requests": 1, "per": "second"}]
    }));
    let plan = allow.plan("/", IP, &[]);
    assert!(allow.cfg.verdict_on_store_error(&plan).admitted);
    let shadow_only = Env::new(
        json!({"shadow": true, "limits": [{"name": "l", "requests": 1, "per": "second"}]}),
    );
    let plan = shadow_only.plan("/", IP, &[]);
    assert!(
        shadow_only.cfg.verdict_on_store_error(&plan).admitted,
        "shadow mode never refuses"
    );
}
