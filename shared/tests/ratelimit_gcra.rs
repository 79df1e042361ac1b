#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The GCRA kernel with a fake clock: bursts, refill, wait times, figures, and the bound on how
//! many requests any window can see.

use palisade::ratelimit::gcra::{ceil_secs, Decision, Period, Rate, RateError, NANOS_PER_SEC};
use wasm_bindgen_test::wasm_bindgen_test;

const NOW: u64 = 1_700_000_000 * NANOS_PER_SEC;
const MS: u64 = 1_000_000;

/// A key's stored state plus the kernel, as the limiter drives it.
struct Bucket {
    rate: Rate,
    tat: Option<u64>,
}

impl Bucket {
    fn new(rate: Rate) -> Self {
        Bucket { rate, tat: None }
    }

    fn hit(&mut self, now: u64) -> Decision {
        let d = self.rate.decide(self.tat, now);
        if let Decision::Allow { new_tat, .. } = d {
            self.tat = Some(new_tat);
        }
        d
    }

    fn admitted(&mut self, now: u64, n: u32) -> u32 {
        (0..n).filter(|_| self.hit(now).is_allowed()).count() as u32
    }
}

/// A small deterministic generator for arrival times.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn a_quiet_key_gets_its_burst_then_one_request_per_interval() {
    let rate = Rate::new(10, Period::Second, None).unwrap();
    let interval = NANOS_PER_SEC / 10;
    let mut b = Bucket::new(rate);
    assert_eq!(b.admitted(NOW, 25), 10, "burst defaults to `requests`");

    let Decision::Deny { wait_ns, .. } = b.hit(NOW) else {
        panic!("the 11th request at the same instant must be refused");
    };
    assert_eq!(wait_ns, interval);
    assert!(
        !b.hit(NOW + interval - 1).is_allowed(),
        "one ns early is still too early"
    );
    assert!(b.hit(NOW + interval).is_allowed());
    assert!(
        !b.hit(NOW + interval).is_allowed(),
        "only one token came back"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn every_period_refills_at_period_over_requests() {
    for (period, requests) in [
        (Period::Second, 5u32),
        (Period::Minute, 30),
        (Period::Hour, 100),
        (Period::Day, 1000),
    ] {
        let rate = Rate::new(requests, period, None).unwrap();
        let interval = period.nanos().div_ceil(u64::from(requests));
        assert_eq!(rate.emission_ns(), interval);
        let mut b = Bucket::new(rate);
        assert_eq!(b.admitted(NOW, requests + 3), requests, "{period:?}");
        let Decision::Deny { wait_ns, reset_ns } = b.hit(NOW) else {
            panic!("{period:?}: over the burst must be refused");
        };
        assert_eq!(wait_ns, interval, "{period:?}");
        assert_eq!(
            reset_ns,
            interval * u64::from(requests),
            "{period:?}: the bucket is full again after a whole period"
        );
        assert!(b.hit(NOW + wait_ns).is_allowed(), "{period:?}");
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn a_smaller_burst_smooths_the_rate() {
    let rate = Rate::new(100, Period::Minute, Some(5)).unwrap();
    let mut b = Bucket::new(rate);
    assert_eq!(b.admitted(NOW, 20), 5);
    let interval = Period::Minute.nanos() / 100;
    assert_eq!(b.admitted(NOW + interval, 20), 1);
    assert_eq!(b.admitted(NOW + 3 * interval, 20), 2);
}

#[wasm_bindgen_test(unsupported = test)]
fn a_larger_burst_than_the_rate_is_allowed() {
    let rate = Rate::new(2, Period::Second, Some(6)).unwrap();
    let mut b = Bucket::new(rate);
    assert_eq!(b.admitted(NOW, 10), 6);
    assert_eq!(b.admitted(NOW + NANOS_PER_SEC, 10), 2);
}

#[wasm_bindgen_test(unsupported = test)]
fn remaining_and_reset_count_down_and_up() {
    let rate = Rate::new(4, Period::Second, None).unwrap();
    let t = rate.emission_ns();
    let mut b = Bucket::new(rate);
    for k in 1..=4u32 {
        let Decision::Allow {
            remaining,
            reset_ns,
            ..
        } = b.hit(NOW)
        else {
            panic!("request {k} is within the burst");
        };
        assert_eq!(remaining, 4 - k);
        assert_eq!(reset_ns, u64::from(k) * t);
    }
    // Half an interval later nothing came back; a whole interval later one did.
    assert_eq!(rate.peek(b.tat, NOW + t / 2).remaining, 0);
    assert_eq!(rate.peek(b.tat, NOW + t).remaining, 1);
    assert_eq!(rate.peek(b.tat, NOW + 4 * t).remaining, 4);
    assert_eq!(rate.peek(b.tat, NOW + 4 * t).reset_ns, 0);
    assert_eq!(rate.peek(None, NOW).remaining, 4, "an unknown key is full");
}

#[wasm_bindgen_test(unsupported = test)]
fn no_window_ever_sees_more_than_burst_plus_its_length_over_t() {
    let rate = Rate::new(7, Period::Second, Some(3)).unwrap();
    let t = rate.emission_ns();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut b = Bucket::new(rate);
    let mut now = NOW;
    let mut admitted = Vec::new();
    for _ in 0..5_000 {
        // Bursty arrivals: mostly close together, sometimes a pause.
        now += match rng.next() % 10 {
            0 => rng.next() % (3 * NANOS_PER_SEC),
            _ => rng.next() % (40 * MS),
        };
        if b.hit(now).is_allowed() {
            admitted.push(now);
        }
    }
    assert!(
        admitted.len() > 100,
        "the scenario must admit enough to mean something"
    );
    for (i, &start) in admitted.iter().enumerate() {
        for len in [t / 2, t, 5 * t, NANOS_PER_SEC, 10 * NANOS_PER_SEC] {
            let seen = admitted[i..]
                .iter()
                .take_while(|&&x| x < start + len)
                .count() as u64;
            assert!(
                seen <= rate.max_admitted_within(len),
                "{seen} admitted in {len} ns from {start}"
            );
        }
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn under_constant_pressure_the_long_run_rate_is_exact() {
    let rate = Rate::new(50, Period::Minute, Some(10)).unwrap();
    let mut b = Bucket::new(rate);
    let step = 10 * MS;
    let duration = 10 * Period::Minute.nanos();
    let mut admitted = 0u64;
    let mut now = NOW;
    while now < NOW + duration {
        if b.hit(now).is_allowed() {
            admitted += 1;
        }
        now += step;
    }
    // The burst, then one per interval; the last interval may not have elapsed.
    let expected = rate.max_admitted_within(duration - step);
    assert!(
        admitted == expected || admitted + 1 == expected,
        "{admitted} vs {expected}"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn a_refund_undoes_an_admission_exactly() {
    let rate = Rate::new(3, Period::Second, None).unwrap();
    let mut with_refund = Bucket::new(rate);
    let mut without = Bucket::new(rate);
    with_refund.hit(NOW);
    without.hit(NOW);
    // One admission given back...
    let Decision::Allow { new_tat, .. } = with_refund.hit(NOW + MS) else {
        panic!("within burst");
    };
    with_refund.tat = Some(rate.refund(new_tat, 1));
    // ...leaves the bucket as if it never happened, now and later.
    for at in [NOW + MS, NOW + 200 * MS, NOW + 2 * NANOS_PER_SEC] {
        assert_eq!(rate.peek(with_refund.tat, at), rate.peek(without.tat, at));
    }
    assert_eq!(
        with_refund.admitted(NOW + 2 * MS, 10),
        without.admitted(NOW + 2 * MS, 10)
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn a_clock_before_the_stored_state_does_not_panic_or_admit_more() {
    let rate = Rate::new(2, Period::Second, None).unwrap();
    let mut b = Bucket::new(rate);
    assert_eq!(b.admitted(NOW, 5), 2);
    // Another worker's clock reads a little earlier.
    assert!(!b.hit(NOW - 10 * MS).is_allowed());
    assert!(!b.hit(0).is_allowed());
}

#[wasm_bindgen_test(unsupported = test)]
fn impossible_rates_are_refused() {
    assert_eq!(Rate::new(0, Period::Second, None), Err(RateError::Zero));
    assert_eq!(Rate::new(5, Period::Second, Some(0)), Err(RateError::Zero));
    assert!(matches!(
        Rate::new(1, Period::Day, Some(u32::MAX)),
        Err(RateError::TooLong { .. })
    ));
    assert!(Rate::new(u32::MAX, Period::Second, Some(u32::MAX)).is_ok());
}

#[wasm_bindgen_test(unsupported = test)]
fn rounding_never_admits_more_than_configured() {
    // 3 per second does not divide a second into whole nanoseconds.
    let rate = Rate::new(3, Period::Second, Some(1)).unwrap();
    assert!(rate.emission_ns() * 3 >= NANOS_PER_SEC);
    let mut b = Bucket::new(rate);
    let admitted = (0..1_000u64)
        .filter(|i| b.hit(NOW + i * MS).is_allowed())
        .count();
    assert_eq!(
        admitted, 3,
        "one second of constant pressure at 3/s with burst 1"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn whole_seconds_round_up() {
    assert_eq!(ceil_secs(0), 0);
    assert_eq!(ceil_secs(1), 1);
    assert_eq!(ceil_secs(NANOS_PER_SEC), 1);
    assert_eq!(ceil_secs(NANOS_PER_SEC + 1), 2);
}
