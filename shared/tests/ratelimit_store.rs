#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The CAS store: host semantics, the retry loop, exact limits under contention between
//! workers, bounded memory under a flood of distinct keys, idle expiry, and the state encoding.

use palisade::client_ip::ClientIpConfig;
use palisade::matcher::Request;
use palisade::ratelimit::gcra::NANOS_PER_SEC;
use palisade::ratelimit::state::{
    Entry, Fingerprint, SlotSet, StateError, Table, WhenFull, FORMAT_VERSION, WAYS,
};
use palisade::ratelimit::store::{
    ensure_keys, update, CasStore, MemoryStore, StoreError, Update, Versioned, MAX_ATTEMPTS,
};
use palisade::ratelimit::{RateLimitConfig, RequestFacts, Verdict};
use serde_json::json;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use wasm_bindgen_test::wasm_bindgen_test;

const NOW: u64 = 1_700_000_000 * NANOS_PER_SEC;

fn config(doc: serde_json::Value) -> RateLimitConfig {
    RateLimitConfig::from_value(doc).unwrap()
}

/// One request from `ip` to `path`, decided at `now`.
fn ask<S: CasStore + ?Sized>(
    cfg: &RateLimitConfig,
    store: &S,
    ip: &str,
    now: u64,
) -> Result<Verdict, StoreError> {
    let headers: Vec<(String, String)> = Vec::new();
    let req = Request {
        authority: "api.example.com",
        path: "/",
        method: "GET",
        route_name: None,
        headers: &headers,
    };
    let facts = RequestFacts {
        request: &req,
        downstream: Some(ip),
        client_ip: &ClientIpConfig::default(),
    };
    let plan = cfg.plan(&facts);
    cfg.check(store, &plan, now)
}

fn admitted(v: &Result<Verdict, StoreError>) -> bool {
    matches!(v, Ok(v) if v.admitted)
}

#[wasm_bindgen_test(unsupported = test)]
fn the_memory_store_behaves_like_shared_data() {
    let store = MemoryStore::new();
    assert_eq!(store.get("k").unwrap(), Versioned::default());
    store.set("k", b"one", None).unwrap();
    let first = store.get("k").unwrap();
    assert_eq!(first.value.as_deref(), Some(&b"one"[..]));
    let cas = first.cas.unwrap();
    store.set("k", b"two", Some(cas)).unwrap();
    assert_eq!(
        store.set("k", b"three", Some(cas)),
        Err(StoreError::CasMismatch),
        "a stale version must be refused"
    );
    assert_eq!(store.get("k").unwrap().value.as_deref(), Some(&b"two"[..]));
    store.set("k", b"four", Some(0)).unwrap();
    assert_eq!(store.get("k").unwrap().value.as_deref(), Some(&b"four"[..]));
}

#[wasm_bindgen_test(unsupported = test)]
fn update_retries_after_another_writer_and_keeps_both_changes() {
    let store = MemoryStore::new();
    store.set("n", &0u32.to_le_bytes(), None).unwrap();
    let sneaks = Arc::new(AtomicU32::new(0));
    let counter = sneaks.clone();
    store.interfere(Box::new(move |s: &MemoryStore, key: &str| {
        // Another worker increments the counter once, between our get and our set.
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            let v = s.get(key).unwrap();
            let n = u32::from_le_bytes(v.value.unwrap().try_into().unwrap());
            s.set(key, &(n + 1).to_le_bytes(), v.cas).unwrap();
        }
    }));
    let calls = AtomicU32::new(0);
    let result = update(&store, "n", |bytes| {
        calls.fetch_add(1, Ordering::SeqCst);
        let n = u32::from_le_bytes(bytes.unwrap().try_into().unwrap());
        Update::Write((n + 1).to_le_bytes().to_vec(), n + 1)
    })
    .unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the first attempt lost the race"
    );
    assert_eq!(result, 2, "our increment applied on top of theirs");
    let stored = store.get("n").unwrap().value.unwrap();
    assert_eq!(u32::from_le_bytes(stored.try_into().unwrap()), 2);
}

#[wasm_bindgen_test(unsupported = test)]
fn endless_contention_gives_up_with_an_error_instead_of_spinning() {
    let store = MemoryStore::new();
    store.set("k", b"x", None).unwrap();
    store.interfere(Box::new(|s: &MemoryStore, key: &str| {
        s.set(key, b"theirs", None).unwrap();
    }));
    let result = update(&store, "k", |_| Update::Write(b"ours".to_vec(), ()));
    assert_eq!(result, Err(StoreError::Contention(MAX_ATTEMPTS)));

    // The limiter reports it too, and the config's default answer is to refuse.
    let cfg = config(json!({"limits": [{"name": "l", "requests": 5, "per": "second"}]}));
    store.stop_interfering();
    cfg.prepare_store(&store).unwrap();
    store.interfere(Box::new(|s: &MemoryStore, key: &str| {
        s.set(key, b"theirs", None).unwrap();
    }));
    let verdict = ask(&cfg, &store, "10.0.0.1:1", NOW);
    assert_eq!(verdict, Err(StoreError::Contention(MAX_ATTEMPTS)));
}

/// Plays `requests` requests from one client while, before some of our writes, another worker
/// completes a whole request of its own on the same store. Returns how many were admitted in
/// total (ours and theirs) and how many CAS mismatches happened.
fn contended_run(cfg: &Arc<RateLimitConfig>, requests: u32, every: u32) -> (u32, u64) {
    let store = MemoryStore::new();
    cfg.prepare_store(&store).unwrap();
    let theirs = Arc::new(AtomicU32::new(0));
    let tick = Arc::new(AtomicU32::new(0));
    {
        let cfg = cfg.clone();
        let theirs = theirs.clone();
        let tick = tick.clone();
        store.interfere(Box::new(move |s: &MemoryStore, _key: &str| {
            if tick.fetch_add(1, Ordering::SeqCst) % every == 0
                && admitted(&ask(&cfg, s, "10.0.0.1:2", NOW))
            {
                theirs.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    let ours = (0..requests)
        .filter(|_| admitted(&ask(cfg, &store, "10.0.0.1:1", NOW)))
        .count() as u32;
    (ours + theirs.load(Ordering::SeqCst), store.stats().2)
}

#[wasm_bindgen_test(unsupported = test)]
fn with_a_worker_writing_between_every_get_and_set_exactly_the_limit_is_admitted() {
    let cfg = Arc::new(config(json!({
        "limits": [{"name": "per-client", "requests": 20, "per": "minute"}]
    })));
    for every in [1, 2, 3] {
        let (total, mismatches) = contended_run(&cfg, 60, every);
        assert!(
            mismatches > 0,
            "the scenario must actually contend (every {every})"
        );
        assert_eq!(total, 20, "admitted across both workers (every {every})");
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn several_limits_under_contention_stay_exact_and_count_only_admitted_requests() {
    let cfg = Arc::new(config(json!({
        "limits": [
            {"name": "tight", "requests": 7, "per": "minute"},
            {"name": "loose", "requests": 100, "per": "minute"},
            {"name": "global", "requests": 1000, "per": "minute", "key": {"constant": "all"}}
        ]
    })));
    let store = MemoryStore::new();
    cfg.prepare_store(&store).unwrap();
    let tick = Arc::new(AtomicU32::new(0));
    {
        let cfg = cfg.clone();
        let tick = tick.clone();
        // Another worker sneaks in before every third write: our second or third write then
        // fails after the first succeeded, and the first must be refunded.
        store.interfere(Box::new(move |s: &MemoryStore, _key: &str| {
            if tick.fetch_add(1, Ordering::SeqCst) % 3 == 1 {
                let _ = ask(&cfg, s, "10.0.0.1:2", NOW);
            }
        }));
    }
    let mut last = None;
    for _ in 0..30 {
        last = Some(ask(&cfg, &store, "10.0.0.1:1", NOW).unwrap());
    }
    store.stop_interfering();
    assert!(store.stats().2 > 0, "the scenario must actually contend");
    // Whoever got them, the tight limit admitted exactly 7, and the looser limits were charged
    // for exactly those 7 admissions: refused requests and refunded partial writes cost nothing.
    let v = ask(&cfg, &store, "10.0.0.1:1", NOW).unwrap();
    assert!(!v.admitted);
    let status = |name: &str| {
        v.statuses
            .iter()
            .find(|s| &*s.name == name)
            .unwrap()
            .clone()
    };
    assert_eq!(status("tight").remaining, 0);
    assert_eq!(status("loose").remaining, 100 - 7);
    assert_eq!(status("global").remaining, 1000 - 7);
    assert!(last.is_some());
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn real_threads_hammering_one_key_get_exactly_the_limit() {
    use std::thread;
    let cfg = Arc::new(config(json!({
        "limits": [
            {"name": "per-client", "requests": 37, "per": "hour"},
            {"name": "global", "requests": 5000, "per": "hour", "key": {"constant": "all"}}
        ]
    })));
    let store = Arc::new(MemoryStore::new());
    cfg.prepare_store(store.as_ref()).unwrap();
    let admitted_total = Arc::new(AtomicU32::new(0));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (cfg, store, total) = (cfg.clone(), store.clone(), admitted_total.clone());
            thread::spawn(move || {
                for _ in 0..100 {
                    match ask(&cfg, store.as_ref(), "192.0.2.9:5", NOW) {
                        Ok(v) if v.admitted => {
                            total.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(_) => {}
                        Err(e) => panic!("store error under contention: {e}"),
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(admitted_total.load(Ordering::SeqCst), 37);
    let v = ask(&cfg, store.as_ref(), "192.0.2.200:5", NOW).unwrap();
    let global = v.statuses.iter().find(|s| &*s.name == "global").unwrap();
    assert_eq!(
        global.remaining,
        5000 - 37 - 1,
        "global counted the 37 and this one"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn a_flood_of_distinct_keys_keeps_memory_bounded_and_tracked_clients_limited() {
    let cfg = config(json!({
        "limits": [{"name": "per-client", "requests": 3, "per": "minute", "max_keys": 64}]
    }));
    let store = MemoryStore::new();
    cfg.prepare_store(&store).unwrap();
    let keys_before = store.len();
    let table = &cfg.limits()[0].table;
    assert_eq!(
        keys_before,
        table.sets() as usize + 1,
        "sets plus the overflow bucket"
    );

    // A client uses up its budget before the flood.
    for _ in 0..3 {
        assert!(ask(&cfg, &store, "198.51.100.1:1", NOW).unwrap().admitted);
    }
    // 20,000 distinct addresses, one request each.
    let mut overflowed = 0;
    let mut overflow_admitted = 0;
    for i in 0..20_000u32 {
        let ip = format!("10.{}.{}.{}:1", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        let v = ask(&cfg, &store, &ip, NOW + u64::from(i)).unwrap();
        if v.statuses[0].overflow {
            overflowed += 1;
            overflow_admitted += u32::from(v.admitted);
        }
    }
    assert_eq!(store.len(), keys_before, "no key is ever added");
    let max_value = 2 + WAYS * (16 + 8);
    assert!(store.total_bytes() <= store.len() * (64 + max_value));
    assert!(
        overflowed > 15_000,
        "almost all of the flood found no place"
    );
    assert_eq!(
        overflow_admitted, 3,
        "the keys that found no place share one bucket with the limit's own burst"
    );
    // The tracked client is still limited during the flood.
    assert!(
        !ask(&cfg, &store, "198.51.100.1:1", NOW + 30_000)
            .unwrap()
            .admitted
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn with_evict_a_flood_takes_over_places_but_memory_stays_bounded() {
    let cfg = config(json!({
        "limits": [{"name": "per-client", "requests": 3, "per": "minute",
                    "max_keys": 64, "when_full": "evict"}]
    }));
    let store = MemoryStore::new();
    cfg.prepare_store(&store).unwrap();
    let keys_before = store.len();
    let mut evictions = 0;
    for i in 0..5_000u32 {
        let ip = format!("10.0.{}.{}:1", (i >> 8) & 255, i & 255);
        let v = ask(&cfg, &store, &ip, NOW).unwrap();
        assert!(v.admitted, "every new key gets a place and a fresh bucket");
        assert!(!v.statuses[0].overflow);
        evictions += u32::from(v.statuses[0].evicted);
    }
    assert_eq!(store.len(), keys_before);
    assert!(evictions > 4_000);
    assert!(cfg.limits()[0].table.capacity() >= 64);
}

#[wasm_bindgen_test(unsupported = test)]
fn idle_keys_expire_and_free_their_place() {
    let cfg = config(json!({
        "limits": [{"name": "per-client", "requests": 2, "per": "second", "max_keys": 8}]
    }));
    let store = MemoryStore::new();
    cfg.prepare_store(&store).unwrap();
    // One set of 8: fill it.
    for i in 0..WAYS {
        let v = ask(&cfg, &store, &format!("10.0.0.{i}:1"), NOW).unwrap();
        assert!(!v.statuses[0].overflow);
    }
    let full = store.total_bytes();
    let newcomer = ask(&cfg, &store, "10.0.1.1:1", NOW).unwrap();
    assert!(
        newcomer.statuses[0].overflow,
        "the set is full of active keys"
    );
    // Two seconds later every bucket is full again: the entries have expired.
    let later = NOW + 2 * NANOS_PER_SEC;
    let v = ask(&cfg, &store, "10.0.1.1:1", later).unwrap();
    assert!(v.admitted);
    assert!(
        !v.statuses[0].overflow,
        "an expired entry's place is reused"
    );
    assert!(
        store.total_bytes() < full,
        "expired entries are dropped when the set is written"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn prepared_keys_make_the_first_write_a_real_compare_and_swap() {
    let cfg = config(json!({
        "limits": [{"name": "a", "requests": 1, "per": "second", "max_keys": 100}],
        "auth_failure": {"max_failures": 3, "window": 60, "block_for": 60, "max_keys": 16}
    }));
    let store = MemoryStore::new();
    let created = cfg.prepare_store(&store).unwrap();
    let expected: usize =
        cfg.limits()[0].table.store_keys().count() + cfg.throttles()[0].table.store_keys().count();
    assert_eq!(created, expected);
    assert_eq!(
        cfg.prepare_store(&store).unwrap(),
        0,
        "existing keys are left alone"
    );
    assert!(store
        .keys()
        .iter()
        .all(|k| k.starts_with("palisade.ratelimit/")));

    // Two workers racing for the very first request on a prepared key: exactly one wins.
    let cfg = Arc::new(cfg);
    let c = cfg.clone();
    let once = Arc::new(AtomicU32::new(0));
    let o = once.clone();
    store.interfere(Box::new(move |s: &MemoryStore, _k: &str| {
        if o.fetch_add(1, Ordering::SeqCst) == 0 {
            assert!(ask(&c, s, "10.9.9.9:1", NOW).unwrap().admitted);
        }
    }));
    assert!(!ask(&cfg, &store, "10.9.9.9:1", NOW).unwrap().admitted);
}

#[wasm_bindgen_test(unsupported = test)]
fn ensure_keys_creates_only_missing_keys() {
    let store = MemoryStore::new();
    store.set("a", b"keep", None).unwrap();
    let created = ensure_keys(&store, ["a".to_owned(), "b".to_owned()], b"new").unwrap();
    assert_eq!(created, 1);
    assert_eq!(store.raw("a").unwrap(), b"keep");
    assert_eq!(store.raw("b").unwrap(), b"new");
}

#[wasm_bindgen_test(unsupported = test)]
fn state_round_trips_and_bad_bytes_are_named() {
    let table = Table::new("t".into(), 8, 1, WhenFull::Shared);
    let store = MemoryStore::new();
    let slot = table.read(&store, b"client", NOW).unwrap();
    let bytes = slot.encode_with([NOW + 5, 0, 0, 0], NOW);
    assert_eq!(bytes[0], FORMAT_VERSION);
    let set = SlotSet::decode(Some(&bytes), 1).unwrap();
    assert_eq!(set.entries.len(), 1);
    assert_eq!(set.entries[0].expires_at(), NOW + 5);
    assert_eq!(SlotSet::decode(Some(&set.encode()), 1).unwrap(), set);
    assert_eq!(
        bytes.len(),
        2 + 16 + 8,
        "one entry: version, width, fingerprint, tat"
    );

    assert_eq!(SlotSet::decode(None, 1).unwrap().entries.len(), 0);
    assert_eq!(
        SlotSet::decode(Some(&[9, 1]), 1),
        Err(StateError::Version(9))
    );
    assert_eq!(
        SlotSet::decode(Some(&[FORMAT_VERSION, 4]), 1),
        Err(StateError::Width {
            found: 4,
            expected: 1
        })
    );
    assert_eq!(
        SlotSet::decode(Some(&[FORMAT_VERSION, 1, 0, 0, 0]), 1),
        Err(StateError::Length(5))
    );
    let too_many = [vec![FORMAT_VERSION, 1], vec![0u8; (WAYS + 1) * 24]].concat();
    assert_eq!(
        SlotSet::decode(Some(&too_many), 1),
        Err(StateError::TooMany(WAYS + 1))
    );
}

/// Stores the set `entries` where the key `client` lives in `table`.
fn store_set(table: &Table, store: &MemoryStore, entries: &[Entry]) {
    let (set, _) = table.locate(b"client");
    let mut value = SlotSet::empty(1);
    value.entries = entries.to_vec();
    store
        .set(&format!("{}/{set}", table.prefix()), &value.encode(), None)
        .unwrap();
}

/// What `client`'s write of `expires` leaves in its set at `NOW`.
fn written(table: &Table, store: &MemoryStore, expires: u64) -> Vec<Entry> {
    let slot = table.read(store, b"client", NOW).unwrap();
    let bytes = slot.encode_with([expires, 0, 0, 0], NOW);
    SlotSet::decode(Some(&bytes), 1).unwrap().entries
}

fn entry(fingerprint: Fingerprint, expires: u64) -> Entry {
    Entry {
        fingerprint,
        words: [expires, 0, 0, 0],
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn a_write_keeps_the_set_in_order_updates_the_key_and_drops_what_expired() {
    let (a, b) = ([1u8; 16], [2u8; 16]);
    let later = |s: u64| NOW + s * NANOS_PER_SEC;
    let table = Table::new("t".into(), 8, 1, WhenFull::Shared);
    let k = table.locate(b"client").1;

    // Tracked: updated in its place; other keys' expired entries go, live ones stay in order.
    let store = MemoryStore::new();
    store_set(
        &table,
        &store,
        &[entry(a, NOW - 1), entry(k, later(3)), entry(b, later(9))],
    );
    assert_eq!(
        written(&table, &store, later(5)),
        vec![entry(k, later(5)), entry(b, later(9))]
    );
    // Its own words expiring now: it goes too.
    assert_eq!(written(&table, &store, NOW), vec![entry(b, later(9))]);

    // Not tracked: appended after the live entries.
    let store = MemoryStore::new();
    store_set(&table, &store, &[entry(a, later(2)), entry(b, NOW)]);
    assert_eq!(
        written(&table, &store, later(5)),
        vec![entry(a, later(2)), entry(k, later(5))]
    );

    // A full set with `evict`: the entry closest to expiry makes room, the rest keep their order.
    let evicting = Table::new("t".into(), 8, 1, WhenFull::Evict);
    let store = MemoryStore::new();
    let full: Vec<Entry> = (0..WAYS as u8)
        .map(|i| {
            entry(
                [10 + i; 16],
                later(if i == 3 { 1 } else { 20 + u64::from(i) }),
            )
        })
        .collect();
    store_set(&evicting, &store, &full);
    let mut expected: Vec<Entry> = full
        .iter()
        .copied()
        .filter(|e| e.fingerprint != [13; 16])
        .collect();
    expected.push(entry(k, later(5)));
    assert_eq!(written(&evicting, &store, later(5)), expected);
}

#[wasm_bindgen_test(unsupported = test)]
fn corrupt_state_in_the_store_is_replaced_not_trusted_and_never_panics() {
    let cfg = config(json!({
        "limits": [{"name": "l", "requests": 2, "per": "minute", "max_keys": 8}]
    }));
    let store = MemoryStore::new();
    cfg.prepare_store(&store).unwrap();
    let set_key = cfg.limits()[0].table.store_keys().next().unwrap();
    for garbage in [
        &b"\x01"[..],
        b"\x01\x01\x00",
        b"\xff\xff\xff\xff",
        b"\x01\x02abc",
    ] {
        store.put_raw(&set_key, garbage);
        let v = ask(&cfg, &store, "10.1.1.1:1", NOW).unwrap();
        assert!(v.admitted);
        let after = store.raw(&set_key).unwrap();
        assert!(
            SlotSet::decode(Some(&after), 1).is_ok(),
            "rewritten in the current format"
        );
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn state_of_the_previous_format_reads_as_empty_and_is_rewritten() {
    // Version 1 held SHA-256 fingerprints: after an upgrade its sets are not trusted (a client
    // starts with a full bucket once), and the next write replaces them.
    let table = Table::new("t".into(), 8, 1, WhenFull::Shared);
    let store = MemoryStore::new();
    let slot = table.read(&store, b"client", NOW).unwrap();
    let mut old = slot.encode_with([NOW + 60_000_000_000, 0, 0, 0], NOW);
    old[0] = 1;
    store.put_raw(&slot.store_key, &old);
    let again = table.read(&store, b"client", NOW).unwrap();
    assert_eq!(again.current, None, "a version-1 entry is not used");
    let rewritten = again.encode_with([NOW + 5, 0, 0, 0], NOW);
    assert_eq!(rewritten[0], FORMAT_VERSION);
    assert_eq!(FORMAT_VERSION, 2);
}

#[wasm_bindgen_test(unsupported = test)]
fn a_store_failure_midway_refunds_the_limits_already_charged() {
    /// Fails every write to keys containing `poison`.
    struct Failing<'a> {
        inner: &'a MemoryStore,
        poison: &'a str,
    }
    impl CasStore for Failing<'_> {
        fn get(&self, key: &str) -> Result<Versioned, StoreError> {
            self.inner.get(key)
        }
        fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
            if key.contains(self.poison) {
                Err(StoreError::Host("quota exceeded".into()))
            } else {
                self.inner.set(key, value, cas)
            }
        }
    }
    let cfg = config(json!({
        "limits": [
            {"name": "first", "requests": 5, "per": "minute"},
            {"name": "second", "requests": 5, "per": "minute"}
        ]
    }));
    let store = MemoryStore::new();
    cfg.prepare_store(&store).unwrap();
    let failing = Failing {
        inner: &store,
        poison: "/second/",
    };
    let err = ask(&cfg, &failing, "10.2.2.2:1", NOW).unwrap_err();
    assert_eq!(err, StoreError::Host("quota exceeded".into()));
    let v = ask(&cfg, &store, "10.2.2.2:1", NOW).unwrap();
    let first = v.statuses.iter().find(|s| &*s.name == "first").unwrap();
    assert_eq!(
        first.remaining, 4,
        "only this request is counted; the failed one was refunded"
    );
}
