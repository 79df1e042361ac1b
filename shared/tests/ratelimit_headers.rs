#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! What a client sees: the 429 response, `Retry-After`, the IETF RateLimit headers and the
//! optional `X-RateLimit-*`, and the shadow mark.

use palisade::client_ip::ClientIpConfig;
use palisade::matcher::Request;
use palisade::ratelimit::gcra::{ceil_secs, Period, NANOS_PER_SEC};
use palisade::ratelimit::headers::{self, SHADOW_HEADER};
use palisade::ratelimit::store::MemoryStore;
use palisade::ratelimit::{Plan, RateLimitConfig, RequestFacts, Verdict};
use serde_json::{json, Value};
use wasm_bindgen_test::wasm_bindgen_test;

const NOW: u64 = 1_700_000_000 * NANOS_PER_SEC;
const IP: &str = "198.51.100.4:3000";

struct Env {
    cfg: RateLimitConfig,
    store: MemoryStore,
}

impl Env {
    fn new(doc: Value) -> Self {
        let cfg = RateLimitConfig::from_value(doc).unwrap();
        let store = MemoryStore::new();
        cfg.prepare_store(&store).unwrap();
        Env { cfg, store }
    }
    fn ask(&self, path: &str, now: u64) -> (Plan, Verdict) {
        let headers: Vec<(String, String)> = Vec::new();
        let req = Request {
            authority: "h",
            path,
            method: "GET",
            route_name: None,
            headers: &headers,
        };
        let plan = self.cfg.plan(&RequestFacts {
            request: &req,
            downstream: Some(IP),
            client_ip: &ClientIpConfig::default(),
        });
        let v = self.cfg.check(&self.store, &plan, now).unwrap();
        (plan, v)
    }
    /// Spends requests until one is refused, and returns that one.
    fn refused(&self, path: &str, now: u64) -> (Plan, Verdict) {
        for _ in 0..1000 {
            let (plan, v) = self.ask(path, now);
            if v.is_limited() {
                return (plan, v);
            }
        }
        panic!("never refused");
    }
}

fn header<'a>(headers: &'a [(&str, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[wasm_bindgen_test(unsupported = test)]
fn a_refusal_is_a_429_with_the_shared_json_body_and_retry_after() {
    let env = Env::new(json!({"limits": [{"name": "per-client", "requests": 2, "per": "minute"}]}));
    let (plan, v) = env.refused("/", NOW);
    let resp = env.cfg.rejection(&plan, &v);
    assert_eq!(resp.status, 429);
    let body: Value = serde_json::from_slice(&resp.body(Some("req-1"))).unwrap();
    assert_eq!(body["error"], "rate_limited");
    assert_eq!(body["status"], 429);
    assert_eq!(body["request_id"], "req-1");
    // 2 per minute: one request comes back every 30 s.
    let interval_secs = Period::Minute.secs() / 2;
    assert_eq!(
        header(&resp.headers, "retry-after"),
        Some(interval_secs.to_string().as_str())
    );
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains(&interval_secs.to_string()));
    let all = resp.all_headers();
    assert_eq!(all[0], ("content-type", "application/json"));
}

#[wasm_bindgen_test(unsupported = test)]
fn retry_after_is_whole_seconds_rounded_up_and_at_least_one() {
    // 3 per second: a refused request waits 333 ms, which must read as 1 s, never 0.
    let env = Env::new(json!({"limits": [{"name": "fast", "requests": 3, "per": "second"}]}));
    let (_, v) = env.refused("/", NOW);
    assert!(v.retry_after_ns().unwrap() < NANOS_PER_SEC);
    assert_eq!(headers::retry_after_secs(&v), Some(1));
    // After waiting that long, the request passes.
    let wait = v.retry_after_ns().unwrap();
    assert!(env.ask("/", NOW + wait).1.admitted);
}

#[wasm_bindgen_test(unsupported = test)]
fn ietf_headers_list_every_enforced_limit() {
    let env = Env::new(json!({"limits": [
        {"name": "burst", "requests": 2, "per": "second"},
        {"name": "daily", "requests": 1000, "per": "day"},
        {"name": "trial", "requests": 1, "per": "day", "shadow": true}
    ]}));
    let (plan, v) = env.refused("/", NOW);
    let resp = env.cfg.rejection(&plan, &v);
    assert_eq!(
        header(&resp.headers, "ratelimit-policy"),
        Some("\"burst\";q=2;w=1, \"daily\";q=1000;w=86400")
    );
    let daily_reset = ceil_secs(2 * Period::Day.nanos() / 1000);
    assert_eq!(
        header(&resp.headers, "ratelimit"),
        Some(format!("\"burst\";r=0;t=1, \"daily\";r=998;t={daily_reset}").as_str()),
        "two requests were admitted; the refused third counts nowhere"
    );
    assert!(
        !resp.headers.iter().any(|(_, v)| v.contains("trial")),
        "shadow limits are not shown to clients"
    );
    assert_eq!(
        header(&resp.headers, "x-ratelimit-limit"),
        None,
        "off by default"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn x_ratelimit_headers_describe_the_tightest_limit() {
    let env = Env::new(json!({
        "headers": {"x_ratelimit": true, "ietf": false},
        "limits": [
            {"name": "wide", "requests": 100, "per": "minute"},
            {"name": "narrow", "requests": 3, "per": "minute"}
        ]
    }));
    let (plan, v) = env.refused("/", NOW);
    let resp = env.cfg.rejection(&plan, &v);
    assert_eq!(header(&resp.headers, "x-ratelimit-limit"), Some("3"));
    assert_eq!(header(&resp.headers, "x-ratelimit-remaining"), Some("0"));
    assert_eq!(header(&resp.headers, "x-ratelimit-reset"), Some("60"));
    assert_eq!(header(&resp.headers, "ratelimit"), None);
}

#[wasm_bindgen_test(unsupported = test)]
fn admitted_responses_carry_headers_only_when_asked() {
    let off = Env::new(json!({"limits": [{"name": "l", "requests": 5, "per": "minute"}]}));
    let (plan, v) = off.ask("/", NOW);
    assert!(v.admitted);
    assert!(off.cfg.allowed_headers(&plan, &v).is_empty());

    let on = Env::new(json!({
        "headers": {"on_allowed": true, "x_ratelimit": true},
        "limits": [{"name": "l", "requests": 5, "per": "minute"}]
    }));
    let (plan, v) = on.ask("/", NOW);
    let h = on.cfg.allowed_headers(&plan, &v);
    assert_eq!(header(&h, "ratelimit"), Some("\"l\";r=4;t=12"));
    assert_eq!(header(&h, "x-ratelimit-remaining"), Some("4"));
    assert_eq!(header(&h, "retry-after"), None);
}

#[wasm_bindgen_test(unsupported = test)]
fn per_route_status_and_retry_after_switch() {
    let env = Env::new(json!({
        "limits": [{"name": "l", "requests": 1, "per": "minute"}],
        "rules": [{"name": "legacy", "match": {"path": {"prefix": "/legacy"}},
                   "status": 503, "headers": {"retry_after": false, "ietf": false}}]
    }));
    let (plan, v) = env.refused("/legacy/a", NOW);
    let resp = env.cfg.rejection(&plan, &v);
    assert_eq!(resp.status, 503);
    assert!(resp.headers.is_empty());
}

#[wasm_bindgen_test(unsupported = test)]
fn shadow_refusals_mark_the_request_with_the_limit_names() {
    let env = Env::new(json!({"limits": [
        {"name": "trial-a", "requests": 1, "per": "minute", "shadow": true},
        {"name": "trial-b", "requests": 1, "per": "minute", "shadow": true}
    ]}));
    let (_, first) = env.ask("/", NOW);
    assert_eq!(headers::shadow_mark(&first), None);
    let (_, second) = env.ask("/", NOW);
    assert!(second.admitted);
    assert_eq!(
        headers::shadow_mark(&second),
        Some((SHADOW_HEADER, "trial-a,trial-b".to_owned()))
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn a_blocked_client_gets_retry_after_for_the_rest_of_its_block() {
    let resp = headers::blocked(90 * NANOS_PER_SEC + 1, 429);
    assert_eq!(resp.status, 429);
    assert_eq!(header(&resp.headers, "retry-after"), Some("91"));
    let body: Value = serde_json::from_slice(&resp.body(None)).unwrap();
    assert_eq!(body["error"], "rate_limited");
}

#[wasm_bindgen_test(unsupported = test)]
fn quota_figures_are_written_in_full_decimal() {
    let env = Env::new(json!({
        "headers": {"on_allowed": true, "x_ratelimit": true},
        "limits": [{"name": "big.one", "requests": 4_000_000_000u64, "per": "day"}]
    }));
    let (plan, v) = env.ask("/", NOW);
    let h = env.cfg.allowed_headers(&plan, &v);
    assert_eq!(
        header(&h, "ratelimit-policy"),
        Some("\"big.one\";q=4000000000;w=86400")
    );
    assert_eq!(
        header(&h, "ratelimit"),
        Some("\"big.one\";r=3999999999;t=1")
    );
    assert_eq!(header(&h, "x-ratelimit-limit"), Some("4000000000"));
}

#[wasm_bindgen_test(unsupported = test)]
fn a_reused_rejection_is_always_the_one_the_refusal_would_get() {
    use palisade::ratelimit::config::HeaderOptions;
    use palisade::ratelimit::headers::LastRejection;
    use palisade::ratelimit::limiter::LimitStatus;
    use std::sync::Arc;

    // A small deterministic generator: refusals with figures around second boundaries, often
    // repeated as they are (a flood) or with only their waits changed.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let names: [Arc<str>; 2] = [Arc::from("per-client"), Arc::from("daily")];
    let nanos = [
        1,
        999_999_999,
        NANOS_PER_SEC,
        NANOS_PER_SEC + 1,
        2_500_000_000,
    ];
    let mut last = LastRejection::new();
    let mut verdict = Verdict::default();
    let (mut options, mut status) = (HeaderOptions::default(), 429);
    let mut reused = 0;
    for _ in 0..20_000 {
        let change = next(4);
        if change == 1 {
            // Only the waits: which limit is the tightest may change, nothing else shown does.
            for s in verdict.statuses.iter_mut().filter(|s| !s.allowed) {
                s.wait_ns = nanos[next(5) as usize];
            }
        } else if change > 1 {
            let count = 1 + next(3) as usize;
            verdict = Verdict {
                admitted: false,
                statuses: (0..count)
                    .map(|i| {
                        let allowed = i > 0 && next(2) == 0;
                        LimitStatus {
                            name: names[next(2) as usize].clone(),
                            requests: [3, 10][next(2) as usize],
                            period: [Period::Second, Period::Hour][next(2) as usize],
                            burst: 10,
                            allowed,
                            shadow: i > 0 && next(3) == 0,
                            consumed: false,
                            remaining: if allowed { next(2) as u32 } else { 0 },
                            reset_ns: nanos[next(5) as usize],
                            wait_ns: if allowed { 0 } else { nanos[next(5) as usize] },
                            overflow: false,
                            evicted: false,
                            reserved: 0,
                        }
                    })
                    .collect(),
            };
        }
        if next(50) == 0 {
            options = HeaderOptions {
                ietf: next(2) == 0,
                x_ratelimit: next(2) == 0,
                on_allowed: false,
                retry_after: next(2) == 0,
            };
            status = [429, 503][next(2) as usize];
        }
        let expected = headers::rejection(&verdict, &options, status);
        let first = last.rejection(&verdict, &options, status) as *const _;
        let again = last.rejection(&verdict, &options, status);
        assert_eq!(*again, expected, "{verdict:?} {options:?}");
        if std::ptr::eq(first, again) {
            reused += 1;
        }
    }
    assert_eq!(reused, 20_000, "the same refusal twice is written once");
}
