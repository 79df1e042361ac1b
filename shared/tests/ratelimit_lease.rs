#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Reservations: a worker admits most requests of a busy limit without asking the store, and
//! the store still never admits more than the limit (plus one reservation per worker in a window).

use palisade::client_ip::ClientIpConfig;
use palisade::matcher::Request;
use palisade::ratelimit::gcra::NANOS_PER_SEC;
use palisade::ratelimit::lease::{reservation_size, Leases, LIFETIME_TICKS};
use palisade::ratelimit::store::MemoryStore;
use palisade::ratelimit::{Plan, RateLimitConfig, RequestFacts, Verdict};
use serde_json::json;
use wasm_bindgen_test::wasm_bindgen_test;

const NOW: u64 = 1_700_000_000 * NANOS_PER_SEC;
const IP: &str = "203.0.113.10:1000";

struct Env {
    cfg: RateLimitConfig,
    store: MemoryStore,
}

/// One Envoy worker: its own reservations over the shared store.
#[derive(Default)]
struct Worker {
    leases: Leases,
    clock_reads: u32,
}

impl Env {
    fn new(doc: serde_json::Value) -> Self {
        let cfg = RateLimitConfig::from_value(doc).unwrap();
        let store = MemoryStore::new();
        cfg.prepare_store(&store).unwrap();
        Env { cfg, store }
    }

    fn plan(&self, ip: &str) -> Plan {
        let headers = Vec::new();
        let req = Request {
            authority: "api.example.com",
            path: "/",
            method: "GET",
            route_name: None,
            headers: &headers,
        };
        self.cfg.plan(&RequestFacts {
            request: &req,
            downstream: Some(ip),
            client_ip: &ClientIpConfig::default(),
        })
    }

    fn ask(&self, w: &mut Worker, ip: &str, now: u64) -> Verdict {
        let plan = self.plan(ip);
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

    let first = env.ask(&mut w, IP, NOW);
    assert!(first.admitted);
    assert_eq!(
        first.statuses[0].reserved, 0,
        "a key seen once is only noted"
    );
    let second = env.ask(&mut w, IP, NOW);
    assert_eq!(
        second.statuses[0].reserved, size,
        "a key back so soon is busy: reserve"
    );
    assert_eq!(second.statuses[0].remaining, 998);
    let after_first = env.store_ops();

    for i in 0..size {
        let v = env.ask(&mut w, IP, NOW);
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
    let next = env.ask(&mut w, IP, NOW);
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
            if env.ask(w, IP, NOW).admitted {
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
    assert!(env.ask(&mut a, IP, NOW).admitted);
    assert_eq!(env.ask(&mut a, IP, NOW).statuses[0].reserved, size);
    let mut b_admitted = 0;
    while env.ask(&mut b, IP, NOW).admitted {
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
        if env.ask(&mut a, IP, later).admitted {
            window += 1;
        }
        if env.ask(&mut b, IP, later).admitted {
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
    env.ask(&mut a, IP, NOW);
    let v = env.ask(&mut a, IP, NOW);
    let reserved = v.statuses[0].reserved;
    assert!(reserved > 0);
    assert_eq!(a.leases.reserved(&env.plan(IP).checks[0]), reserved);

    // Another worker sees the bucket without the reservation...
    let mut b = Worker::default();
    let seen = env.ask(&mut b, IP, NOW).statuses[0].remaining;
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
    let after = env.ask(&mut c, IP, NOW).statuses[0].remaining;
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
        let v = env.ask(&mut w, IP, NOW);
        assert!(env.store_ops() > before, "every request asks the store");
        assert_eq!(v.statuses[0].reserved, 0);
        admitted += u32::from(v.admitted);
    }
    assert_eq!(admitted, 100);
    assert!(w.leases.is_empty());
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
        let v = env.ask(&mut w, IP, NOW);
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
        let v = env.ask(&mut w, IP, NOW);
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
        env.ask(&mut w, "198.51.100.1:1", NOW);
        env.ask(&mut w, "198.51.100.2:1", NOW);
    }
    assert_eq!(w.leases.len(), 2);
    let one = env.plan("198.51.100.1:1");
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
        let v = env.ask(&mut w, &ip, NOW);
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
