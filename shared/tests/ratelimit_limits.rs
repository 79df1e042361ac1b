#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! What a request sees when several limits apply: the tightest decides, refused requests cost
//! nothing, every matching rule's limits apply, shadow limits never refuse, exempt routes skip;
//! busy limits are mostly decided from worker reservations, and still never over-admit.

use palisade::client_ip::ClientIpConfig;
use palisade::matcher::Request;
use palisade::ratelimit::gcra::{Period, NANOS_PER_SEC};
use palisade::ratelimit::lease::{reservation_size, Leases, LIFETIME_TICKS, MAX_REFUSALS};
use palisade::ratelimit::store::MemoryStore;
use palisade::ratelimit::{Outcome, Plan, RateLimitConfig, RequestFacts, Verdict};
use serde_json::json;
use std::borrow::Cow;
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

    /// `decide` applied to the facts of a `POST` of `path` from `ip` with these headers.
    fn with_facts<R>(
        path: &str,
        ip: &str,
        headers: &[(&str, &str)],
        decide: impl FnOnce(&RequestFacts<'_>) -> R,
    ) -> R {
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
        decide(&RequestFacts {
            request: &req,
            downstream: Some(ip),
            client_ip: &ClientIpConfig::default(),
        })
    }

    fn plan(&self, path: &str, ip: &str, headers: &[(&str, &str)]) -> Plan {
        Self::with_facts(path, ip, headers, |facts| self.cfg.plan(facts))
    }

    /// The plan as the filter asks for it (borrowed from the config when no request changes it).
    fn plan_for(&self, path: &str, ip: &str, headers: &[(&str, &str)]) -> Cow<'_, Plan> {
        Self::with_facts(path, ip, headers, |facts| self.cfg.plan_for(facts))
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
    v.statuses.iter().find(|s| &*s.name == name).unwrap()
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
    assert_eq!(&*v.tightest().unwrap().name, "per-second");

    // A second later the per-minute limit has only 2 left.
    assert_eq!(env.admitted("/", IP, NOW + NANOS_PER_SEC, 10), 2);
    let v = env.ask("/", IP, NOW + 2 * NANOS_PER_SEC);
    assert!(v.is_limited());
    assert!(status(&v, "per-second").allowed);
    assert_eq!(&*v.tightest().unwrap().name, "per-minute");
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
            .map(|s| s.name.to_string())
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
        &*v.tightest().unwrap().name,
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

// --- worker reservations (palisade::ratelimit::lease) -------------------------------------------
// A worker admits most requests of a busy limit without asking the store, and the store still
// never admits more than the limit (plus one reservation per worker in a window).

/// One Envoy worker: its own reservations over the shared store.
#[derive(Default)]
struct Worker {
    leases: Leases,
    clock_reads: u32,
}

impl Env {
    /// Decides a `GET /` from `ip` as worker `w` would, reservations included.
    fn reserve(&self, w: &mut Worker, ip: &str, now: u64) -> Verdict {
        let plan = self.plan("/", ip, &[]);
        let reads = &mut w.clock_reads;
        self.cfg
            .check_reserving(
                &self.store,
                &plan,
                || {
                    *reads += 1;
                    now
                },
                &mut w.leases,
            )
            .unwrap()
    }

    /// Store operations (gets + sets) so far.
    fn store_ops(&self) -> u64 {
        let (gets, sets, _) = self.store.stats();
        gets + sets
    }

    /// Ends `w`'s reservations as its ticks would, and gives what they left back.
    fn expire(&self, w: &mut Worker, now: u64) -> u64 {
        let mut given = 0;
        for _ in 0..LIFETIME_TICKS {
            let unused = w.leases.tick();
            given += self.cfg.give_back(&self.store, &unused, now);
        }
        given
    }
}

fn busy() -> serde_json::Value {
    json!({"limits": [{"name": "busy", "requests": 1000, "per": "second"}]})
}

#[wasm_bindgen_test(unsupported = test)]
fn a_busy_limit_admits_most_requests_from_the_workers_reservation() {
    let env = Env::new(busy());
    let mut w = Worker::default();
    let size = 1000 / 64;

    let first = env.reserve(&mut w, IP, NOW);
    assert!(first.admitted);
    assert_eq!(
        first.statuses[0].reserved, 0,
        "a key seen once is only noted"
    );
    let second = env.reserve(&mut w, IP, NOW);
    assert_eq!(
        second.statuses[0].reserved, size,
        "a key back so soon is busy: reserve"
    );
    assert_eq!(second.statuses[0].remaining, 998);
    let after_first = env.store_ops();

    for i in 0..size {
        let v = env.reserve(&mut w, IP, NOW);
        assert!(v.admitted);
        assert_eq!(v.statuses[0].reserved, 0);
        assert_eq!(
            v.statuses[0].remaining,
            997 - i,
            "remaining still counts down"
        );
    }
    assert_eq!(
        env.store_ops(),
        after_first,
        "no store operation while reserved"
    );
    assert_eq!(w.leases.take_admitted(), u64::from(size));
    assert_eq!(w.leases.take_admitted(), 0);
    assert_eq!(w.clock_reads, 2, "nor a clock read");

    // The reservation is spent: the next request asks the store (and reserves again).
    let next = env.reserve(&mut w, IP, NOW);
    assert!(next.admitted);
    assert!(env.store_ops() > after_first);
    assert_eq!(next.statuses[0].reserved, size);
    assert_eq!(w.clock_reads, 3);
}

#[wasm_bindgen_test(unsupported = test)]
fn workers_with_reservations_never_admit_more_than_the_burst_at_one_instant() {
    let env = Env::new(busy());
    let mut workers: Vec<Worker> = (0..4).map(|_| Worker::default()).collect();
    let mut admitted = 0;
    // Round-robin until every worker is refused twice in a row.
    let mut refused_rounds = 0;
    while refused_rounds < 2 {
        let mut any = false;
        for w in &mut workers {
            if env.reserve(w, IP, NOW).admitted {
                admitted += 1;
                any = true;
            }
        }
        refused_rounds = if any { 0 } else { refused_rounds + 1 };
        assert!(admitted <= 1000, "admitted {admitted} of a burst of 1000");
    }
    assert_eq!(admitted, 1000, "every request of the burst is admitted");
}

#[wasm_bindgen_test(unsupported = test)]
fn a_window_sees_at_most_one_reservation_per_worker_above_the_exact_allowance() {
    let env = Env::new(busy());
    let (mut a, mut b) = (Worker::default(), Worker::default());
    let size = 1000 / 64;
    // A reserves, B takes everything else.
    assert!(env.reserve(&mut a, IP, NOW).admitted);
    assert_eq!(env.reserve(&mut a, IP, NOW).statuses[0].reserved, size);
    let mut b_admitted = 0;
    while env.reserve(&mut b, IP, NOW).admitted {
        b_admitted += 1;
    }
    assert_eq!(
        2 + size + b_admitted,
        1000,
        "A's reservation counted in the store"
    );

    // 10 ms later (10 requests of refill) A still holds its reservation.
    let later = NOW + 10_000_000;
    let mut window = 0;
    for _ in 0..100 {
        if env.reserve(&mut a, IP, later).admitted {
            window += 1;
        }
        if env.reserve(&mut b, IP, later).admitted {
            window += 1;
        }
    }
    let exact = 10;
    assert!(
        window <= exact + size,
        "{window} admitted in a window whose exact allowance is {exact}"
    );
    assert!(window >= exact, "the refill is admitted");
}

#[wasm_bindgen_test(unsupported = test)]
fn unused_reservations_go_back_to_the_store_when_they_end() {
    let env = Env::new(busy());
    let mut a = Worker::default();
    env.reserve(&mut a, IP, NOW);
    let v = env.reserve(&mut a, IP, NOW);
    let reserved = v.statuses[0].reserved;
    assert!(reserved > 0);
    assert_eq!(
        a.leases.reserved(&env.plan("/", IP, &[]).checks[0]),
        reserved
    );

    // Another worker sees the bucket without the reservation...
    let mut b = Worker::default();
    let seen = env.reserve(&mut b, IP, NOW).statuses[0].remaining;
    assert_eq!(
        seen,
        997 - reserved,
        "A's two requests and its reservation, then B's request"
    );

    // ...and with it once A's reservation ended.
    let given = env.expire(&mut a, NOW);
    assert_eq!(given, u64::from(reserved));
    assert!(a.leases.is_empty());
    let mut c = Worker::default();
    let after = env.reserve(&mut c, IP, NOW).statuses[0].remaining;
    // B was only noted; A's reservation is back.
    assert_eq!(after, 996, "A's unused requests are back");
}

#[wasm_bindgen_test(unsupported = test)]
fn small_limits_are_always_decided_by_the_store() {
    let env = Env::new(json!({"limits": [
        {"name": "login", "requests": 100, "per": "second"}
    ]}));
    let mut w = Worker::default();
    let limit = &env.cfg.limits()[0];
    assert_eq!(
        reservation_size(limit),
        0,
        "a burst under 128 is never reserved from"
    );
    let mut admitted = 0;
    for _ in 0..150 {
        let before = env.store_ops();
        let v = env.reserve(&mut w, IP, NOW);
        if v.admitted {
            assert!(env.store_ops() > before, "every admission asks the store");
        }
        assert_eq!(v.statuses[0].reserved, 0);
        admitted += u32::from(v.admitted);
    }
    assert_eq!(admitted, 100);
    assert!(w.leases.is_empty());
    // The 49 refusals after the store's first were repeated from memory.
    assert_eq!(w.leases.take_refused_again(), 49);
}

#[wasm_bindgen_test(unsupported = test)]
fn reservations_can_be_turned_off() {
    let env = Env::new(json!({
        "limits": [{"name": "busy", "requests": 1000, "per": "second"}],
        "store": {"reserve": false}
    }));
    let mut w = Worker::default();
    assert!(!env.cfg.reserves());
    for _ in 0..20 {
        let before = env.store_ops();
        let v = env.reserve(&mut w, IP, NOW);
        assert!(v.admitted);
        assert_eq!(v.statuses[0].reserved, 0);
        assert!(env.store_ops() > before);
    }
    assert!(w.leases.is_empty());
}

#[wasm_bindgen_test(unsupported = test)]
fn a_nearly_empty_bucket_is_not_reserved_from() {
    // Burst 128: reservations of 2, only while 8 or more would be left.
    let env = Env::new(json!({"limits": [{"name": "edge", "requests": 128, "per": "minute"}]}));
    let mut w = Worker::default();
    let mut admitted = 0;
    let mut last_reserved_at = None;
    loop {
        let v = env.reserve(&mut w, IP, NOW);
        if !v.admitted {
            break;
        }
        admitted += 1;
        if v.statuses[0].reserved > 0 {
            assert!(
                v.statuses[0].remaining >= 8,
                "reserved with {} left",
                v.statuses[0].remaining
            );
            last_reserved_at = Some(v.statuses[0].remaining);
        }
    }
    assert_eq!(admitted, 128);
    assert!(last_reserved_at.is_some_and(|r| r < 16));
}

#[wasm_bindgen_test(unsupported = test)]
fn each_client_key_has_its_own_reservation() {
    let env = Env::new(json!({"limits": [
        {"name": "per-client", "requests": 6400, "per": "minute"}
    ]}));
    let mut w = Worker::default();
    for _ in 0..2 {
        env.reserve(&mut w, "198.51.100.1:1", NOW);
        env.reserve(&mut w, "198.51.100.2:1", NOW);
    }
    assert_eq!(w.leases.len(), 2);
    let one = env.plan("/", "198.51.100.1:1", &[]);
    assert_eq!(
        w.leases.reserved(&one.checks[0]),
        32,
        "1/64 of 6400, at most 32"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn a_flood_of_distinct_keys_gets_no_reservation_and_bounded_memory() {
    let env = Env::new(json!({"limits": [
        {"name": "per-client", "requests": 6400, "per": "minute", "max_keys": 20000}
    ]}));
    let mut w = Worker::default();
    for i in 0..2000u32 {
        let ip = format!("10.{}.{}.1:1", i / 256, i % 256);
        let before = env.store_ops();
        let v = env.reserve(&mut w, &ip, NOW);
        assert!(v.admitted);
        assert_eq!(v.statuses[0].reserved, 0, "key {i} was seen once");
        assert!(env.store_ops() > before);
    }
    assert_eq!(w.leases.len(), palisade::ratelimit::lease::MAX_LEASES);
    // A tick later the noted keys are forgotten, with nothing to give back.
    let given = env.expire(&mut w, NOW);
    assert_eq!(given, 0);
    assert!(w.leases.is_empty());
}

#[wasm_bindgen_test(unsupported = test)]
fn a_refusal_is_repeated_from_memory_until_its_wait_is_over() {
    // 10 per second: one request every 100 ms once the burst is spent.
    let env = Env::new(json!({"limits": [{"name": "tight", "requests": 10, "per": "second"}]}));
    let mut w = Worker::default();
    for _ in 0..10 {
        assert!(env.reserve(&mut w, IP, NOW).admitted);
    }
    let first = env.reserve(&mut w, IP, NOW);
    assert!(!first.admitted, "the store refuses the 11th");
    let wait = first.retry_after_ns().unwrap();
    assert!(wait > 0 && wait <= 100_000_000);

    let before = env.store_ops();
    let later = NOW + wait / 2;
    let again = env.reserve(&mut w, IP, later);
    assert!(!again.admitted);
    assert_eq!(env.store_ops(), before, "refused again without the store");
    assert_eq!(
        again.retry_after_ns(),
        Some(wait - wait / 2),
        "the wait counts down"
    );
    assert_eq!(w.leases.take_refused_again(), 1);

    // Another client is not affected.
    assert!(env.reserve(&mut w, "198.51.100.7:1", later).admitted);

    // Once the wait is over the store decides again, and admits.
    let after = env.reserve(&mut w, IP, NOW + wait);
    assert!(after.admitted);
    assert!(env.store_ops() > before);
}

#[wasm_bindgen_test(unsupported = test)]
fn what_another_worker_gives_back_is_admitted_not_refused_from_memory() {
    // 400 a day on one key, two workers: B holds a reservation when the store refuses A.
    let env = Env::new(json!({"limits": [
        {"name": "busy", "requests": 400, "per": "day", "key": {"constant": "all"}}
    ]}));
    let (mut a, mut b) = (Worker::default(), Worker::default());
    assert!(env.reserve(&mut b, IP, NOW).admitted);
    let reserved = env.reserve(&mut b, IP, NOW).statuses[0].reserved;
    assert_eq!(reserved, 400 / 64);
    let mut admitted = 2;
    while env.reserve(&mut a, IP, NOW).admitted {
        admitted += 1;
    }
    assert_eq!(
        admitted + reserved,
        400,
        "B's reservation is counted in the store"
    );

    // B's reservation ends unused and goes back to the store.
    assert_eq!(env.expire(&mut b, NOW), u64::from(reserved));
    // A remembered the store's refusal: for a moment it still refuses without asking...
    let before = env.store_ops();
    assert!(!env.reserve(&mut a, IP, NOW).admitted);
    assert_eq!(env.store_ops(), before, "refused from memory");
    // ...but only until any reservation held then has surely come back (a reservation's
    // lifetime, plus a tick for workers ticking out of step, plus one to spare); then A asks the
    // store, and the day's allowance is admitted in full.
    for _ in 0..LIFETIME_TICKS + 2 {
        a.leases.tick();
    }
    while env.reserve(&mut a, IP, NOW).admitted {
        admitted += 1;
    }
    assert_eq!(admitted, 400, "exactly the limit, none lost to memory");
}

#[wasm_bindgen_test(unsupported = test)]
fn a_small_limit_refusal_outlives_the_reservations_lifetime() {
    // No worker reserves from a limit this small: its refusals are remembered until their wait
    // is over (within REFUSAL_TICKS).
    let env = Env::new(json!({"limits": [{"name": "tight", "requests": 10, "per": "minute"}]}));
    let mut w = Worker::default();
    for _ in 0..10 {
        assert!(env.reserve(&mut w, IP, NOW).admitted);
    }
    assert!(!env.reserve(&mut w, IP, NOW).admitted);
    for _ in 0..LIFETIME_TICKS + 2 {
        w.leases.tick();
    }
    let before = env.store_ops();
    assert!(!env.reserve(&mut w, IP, NOW + 1).admitted);
    assert_eq!(env.store_ops(), before, "still refused from memory");
}

#[wasm_bindgen_test(unsupported = test)]
fn refusals_from_memory_never_admit_more_than_the_store() {
    let env = Env::new(json!({"limits": [{"name": "tight", "requests": 10, "per": "second"}]}));
    let mut workers: Vec<Worker> = (0..3).map(|_| Worker::default()).collect();
    // Over 2 s in 1 ms steps, three workers take turns: 10 + 2 s × 10/s = 30 at most.
    let mut admitted = 0;
    for step in 0..2000u64 {
        let now = NOW + step * 1_000_000;
        let w = &mut workers[(step % 3) as usize];
        if env.reserve(w, IP, now).admitted {
            admitted += 1;
        }
    }
    assert!((29..=30).contains(&admitted), "admitted {admitted}");
}

#[wasm_bindgen_test(unsupported = test)]
fn a_flood_of_distinct_refused_clients_is_refused_again_from_memory() {
    // Thousands of clients, each over its own limit: every one of them is refused again without
    // the store (memory is not kept for a few hot keys only).
    let env = Env::new(json!({"limits": [
        {"name": "per-client", "requests": 1, "per": "minute", "max_keys": 100_000}
    ]}));
    let mut w = Worker::default();
    let clients = 3000;
    let client = |i: usize| format!("10.1.{}.{}:1000", i / 256, i % 256);
    for i in 0..clients {
        assert!(env.reserve(&mut w, &client(i), NOW).admitted);
        assert!(!env.reserve(&mut w, &client(i), NOW).admitted);
    }
    assert_eq!(w.leases.refusals(), clients);
    let before = env.store_ops();
    for i in 0..clients {
        let v = env.reserve(&mut w, &client(i), NOW + 1_000);
        assert!(!v.admitted);
        assert!(v.retry_after_ns().is_some_and(|ns| ns > 0));
    }
    assert_eq!(env.store_ops(), before, "all refused from memory");
    assert_eq!(w.leases.take_refused_again(), clients as u64);
}

#[wasm_bindgen_test(unsupported = test)]
fn refusals_whose_wait_is_over_make_room_for_new_ones() {
    // One request per second per client; as many refused clients as a worker remembers (each
    // with its own entry in the store's table).
    let env = Env::new(json!({"limits": [
        {"name": "per-client", "requests": 1, "per": "second", "max_keys": 200_000}
    ]}));
    let mut w = Worker::default();
    let client = |i: usize| format!("10.{}.{}.{}:1000", i / 65536, (i / 256) % 256, i % 256);
    for i in 0..MAX_REFUSALS {
        assert!(env.reserve(&mut w, &client(i), NOW).admitted);
        assert!(!env.reserve(&mut w, &client(i), NOW).admitted);
    }
    assert_eq!(w.leases.refusals(), MAX_REFUSALS);
    // Memory is full of refusals that have not ended: a new client refused by the store now is
    // not remembered (the store is asked again), and nothing is forgotten early.
    let full = client(MAX_REFUSALS);
    assert!(env.reserve(&mut w, &full, NOW).admitted);
    assert!(!env.reserve(&mut w, &full, NOW).admitted);
    let before = env.store_ops();
    assert!(!env.reserve(&mut w, &full, NOW + 1).admitted);
    assert!(env.store_ops() > before, "not remembered: asked the store");
    assert_eq!(w.leases.refusals(), MAX_REFUSALS);
    // Two seconds later all those waits are over (no tick has passed): a new client refused by
    // the store is still remembered, and refused again without the store.
    let later = NOW + 2 * NANOS_PER_SEC;
    let newcomer = client(MAX_REFUSALS + 1);
    assert!(env.reserve(&mut w, &newcomer, later).admitted);
    assert!(!env.reserve(&mut w, &newcomer, later).admitted);
    assert_eq!(w.leases.refusals(), 1);
    let before = env.store_ops();
    assert!(!env.reserve(&mut w, &newcomer, later + 1).admitted);
    assert_eq!(env.store_ops(), before, "refused from memory");
    assert_eq!(w.leases.take_refused_again(), 1);
}

#[wasm_bindgen_test(unsupported = test)]
fn without_reserve_every_refusal_asks_the_store() {
    let env = Env::new(json!({
        "limits": [{"name": "tight", "requests": 10, "per": "second"}],
        "store": {"reserve": false}
    }));
    let mut w = Worker::default();
    for _ in 0..10 {
        env.reserve(&mut w, IP, NOW);
    }
    for _ in 0..5 {
        let before = env.store_ops();
        assert!(!env.reserve(&mut w, IP, NOW).admitted);
        assert!(env.store_ops() > before);
    }
    assert_eq!(w.leases.take_refused_again(), 0);
}

impl Env {
    /// Decides `plan` as worker `w` would, reservations included.
    fn reserve_plan(&self, w: &mut Worker, plan: &Plan, now: u64) -> Verdict {
        self.cfg
            .check_reserving(&self.store, plan, || now, &mut w.leases)
            .unwrap()
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn a_global_limit_is_planned_once_and_decides_like_a_plan_made_per_request() {
    let global = json!({"limits": [
        {"name": "all", "requests": 2000, "per": "second", "key": {"constant": "all"}},
        {"name": "all-minute", "requests": 30000, "per": "minute", "key": {"constant": "all"}}
    ]});
    let env = Env::new(global.clone());
    for (path, ip, headers) in [
        ("/", IP, vec![]),
        ("/admin", "10.9.9.9", vec![("x-api-key", "k")]),
    ] {
        let plan = env.plan_for(path, ip, &headers);
        assert!(matches!(plan, Cow::Borrowed(_)), "no request can change it");
        assert_eq!(*plan, env.plan(path, ip, &headers));
    }

    // The borrowed plan (with the lease keys kept beside it) and a copy of it, each decided by
    // its own worker and store, give the same verdicts: reservations, their ends, refusals.
    let twin = Env::new(global);
    let (mut a, mut b) = (Worker::default(), Worker::default());
    let (mut reserved, mut refused) = (0, 0);
    for i in 0..6000u64 {
        let now = NOW + i * NANOS_PER_SEC / 3000;
        if i % 300 == 299 {
            env.expire(&mut a, now);
            twin.expire(&mut b, now);
        }
        let fixed = env.plan_for("/", IP, &[]);
        let copy = fixed.clone().into_owned();
        let v = env.reserve_plan(&mut a, &fixed, now);
        assert_eq!(v, twin.reserve_plan(&mut b, &copy, now), "request {i}");
        reserved += u32::from(v.statuses.iter().any(|s| s.reserved > 0));
        refused += u32::from(!v.admitted);
    }
    assert!(
        reserved > 0 && refused > 0,
        "{reserved} reservations, {refused} refusals"
    );
    assert_eq!(a.leases.take_admitted(), b.leases.take_admitted());
    assert_eq!(env.store_ops(), twin.store_ops());

    // Anything a request can change is planned for each request.
    for doc in [
        json!({"limits": [{"name": "per-key", "requests": 10, "per": "second", "key": {"header": "x-api-key"}}]}),
        json!({"limits": [{"name": "per-client", "requests": 10, "per": "second"}]}),
        json!({"limits": [{"name": "all", "requests": 10, "per": "second", "key": {"constant": "all"}}],
               "rules": [{"name": "admin", "match": {"path": {"prefix": "/admin"}}, "exempt": true}]}),
        json!({"limits": [{"name": "all", "requests": 10, "per": "second", "key": {"constant": "all"}}],
               "auth_failure": {"max_failures": 3, "window": 60, "block_for": 300}}),
    ] {
        let env = Env::new(doc.clone());
        assert!(matches!(env.plan_for("/", IP, &[]), Cow::Owned(_)), "{doc}");
    }
}
