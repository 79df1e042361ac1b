//! Requests a worker reserves from a limit's shared bucket, to admit without asking the store.
//!
//! Deciding against shared data costs a read and a compare-and-swap write per request (host calls
//! of about a microsecond each in Envoy's V8, plus the clock). When a request is admitted and its
//! bucket is far from empty, the worker also counts a few more requests in the same write
//! ([`super::limiter::check_reserving`]) and keeps them here; the next requests of that key are
//! admitted from the reservation with no host call at all.
//!
//! What this costs in exactness, and how it is bounded:
//! - only limits with a burst of at least [`MIN_BURST`] are reserved from, at most
//!   [`reservation_size`] requests (1/64 of the burst, at most [`MAX_RESERVATION`]) per worker
//!   and key at a time, and only while the bucket keeps at least four times that after it;
//! - only for a key seen again within a reservation's lifetime (a busy key), and for at most
//!   [`MAX_LEASES`] keys per worker;
//! - reserved requests were counted when they were reserved, so the store never admits more than
//!   the limit: a reservation only moves some admissions up to [`LIFETIME_TICKS`] ticks later;
//!   unused ones are given back when the reservation ends ([`Leases::tick`]).
//!
//! So in any window a limit admits at most its exact allowance plus one reservation per worker
//! (under 1/64 of its burst); limits with a smaller burst are always decided exactly, and
//! `store.reserve: false` turns reservations off.

use super::config::Check;
use super::limiter::{Limit, LimitStatus, Verdict};
use std::collections::HashMap;

/// Limits with a smaller burst are always decided against the store.
pub const MIN_BURST: u32 = 128;
/// The most requests one worker reserves from one key's bucket at a time.
pub const MAX_RESERVATION: u32 = 32;
/// The most reservations a worker holds at once (one per limit and key).
pub const MAX_LEASES: usize = 256;
/// How often the filter calls [`Leases::tick`], in milliseconds.
pub const TICK_MS: u64 = 100;
/// A reservation ends after this many ticks (so it lives between one and two tick periods).
pub const LIFETIME_TICKS: u64 = 2;

/// How many requests a worker may reserve from a limit's bucket (0: never).
pub fn reservation_size(limit: &Limit) -> u32 {
    let burst = limit.rate.burst();
    if burst < MIN_BURST {
        return 0;
    }
    (burst / 64).min(MAX_RESERVATION)
}

#[derive(Debug, Clone)]
struct Lease {
    /// Requests still reserved.
    left: u32,
    /// The tick it was taken at.
    taken: u64,
    /// What the store had left after the reservation, and its reset time then (for the
    /// RateLimit headers of requests admitted from it).
    store_remaining: u32,
    reset_ns: u64,
}

/// Reservations that ended with requests unused: give them back to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unused {
    /// Index into the config's limits.
    pub limit: usize,
    /// The key's bytes ([`super::key::KeyValue::to_bytes`]).
    pub key: Vec<u8>,
    pub requests: u32,
}

/// One worker's reservations.
#[derive(Debug, Default)]
pub struct Leases {
    /// By limit index (4 bytes) followed by the key's bytes.
    held: HashMap<Vec<u8>, Lease>,
    ticks: u64,
    /// Requests admitted from reservations since [`Leases::take_admitted`].
    admitted: u64,
}

/// The key of `check`'s reservation: its limit and its key's bytes. [`Leases::admit`],
/// [`Leases::wanted`] and [`Leases::keep`] take these, computed once per request.
pub fn lease_key(check: &Check) -> Vec<u8> {
    let index = u32::try_from(check.limit).unwrap_or(u32::MAX);
    let mut key = index.to_le_bytes().to_vec();
    key.extend_from_slice(&check.key.to_bytes());
    key
}

impl Leases {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many keys are held (reserved from, or noted as seen).
    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Requests reserved for `check`'s limit and key.
    pub fn reserved(&self, check: &Check) -> u32 {
        self.held.get(&lease_key(check)).map_or(0, |l| l.left)
    }

    /// Admits a request from reservations when every limit of `checks` has one (taking one
    /// request from each); `None` otherwise, and nothing is taken.
    pub fn admit(
        &mut self,
        limits: &[Limit],
        checks: &[Check],
        keys: &[Vec<u8>],
    ) -> Option<Verdict> {
        if checks.is_empty() || self.held.is_empty() || keys.len() != checks.len() {
            return None;
        }
        let live = |lease: &Lease| lease.left > 0 && self.ticks < lease.taken + LIFETIME_TICKS;
        if !keys.iter().all(|k| self.held.get(k).is_some_and(live)) {
            return None;
        }
        let mut statuses = Vec::with_capacity(checks.len());
        for (check, key) in checks.iter().zip(keys) {
            let (Some(limit), Some(lease)) = (limits.get(check.limit), self.held.get_mut(key))
            else {
                return None;
            };
            lease.left -= 1;
            let rate = &limit.rate;
            statuses.push(LimitStatus {
                name: limit.name.clone(),
                requests: rate.requests(),
                period: rate.period(),
                burst: rate.burst(),
                allowed: true,
                shadow: check.shadow,
                consumed: true,
                remaining: lease.store_remaining.saturating_add(lease.left),
                reset_ns: lease.reset_ns,
                wait_ns: 0,
                overflow: false,
                evicted: false,
                reserved: 0,
            });
        }
        self.admitted += 1;
        Some(Verdict {
            admitted: true,
            statuses,
        })
    }

    /// Requests admitted from reservations since the last call (for a metric the filter adds
    /// once per tick rather than once per request).
    pub fn take_admitted(&mut self) -> u64 {
        std::mem::take(&mut self.admitted)
    }

    /// How many requests to try to reserve for each of `checks`: 0 where the limit is too small
    /// to reserve from, a reservation is still live, or this worker holds too many; and 0 the
    /// first time a key is seen in a reservation's lifetime (it is only noted): a key that comes
    /// back so soon is busy, while reserving for every key of a flood of distinct ones would only
    /// hand requests back unused.
    pub fn wanted(&mut self, limits: &[Limit], checks: &[Check], keys: &[Vec<u8>]) -> Vec<u32> {
        checks
            .iter()
            .zip(keys)
            .map(|(check, key)| {
                let size = limits.get(check.limit).map_or(0, reservation_size);
                if size == 0 {
                    return 0;
                }
                match self.held.get(key) {
                    Some(l) if l.left > 0 => 0,
                    Some(_) => size,
                    None => {
                        if self.held.len() < MAX_LEASES {
                            self.held.insert(
                                key.clone(),
                                Lease {
                                    left: 0,
                                    taken: self.ticks,
                                    store_remaining: 0,
                                    reset_ns: 0,
                                },
                            );
                        }
                        0
                    }
                }
            })
            .collect()
    }

    /// Keeps what a verdict from the store reserved ([`LimitStatus::reserved`]); returns what an
    /// older, replaced reservation of the same key left unused.
    pub fn keep(&mut self, checks: &[Check], keys: &[Vec<u8>], verdict: &Verdict) -> Vec<Unused> {
        let mut unused = Vec::new();
        for ((check, key), status) in checks.iter().zip(keys).zip(&verdict.statuses) {
            if status.reserved == 0 {
                continue;
            }
            let lease = Lease {
                left: status.reserved,
                taken: self.ticks,
                store_remaining: status.remaining.saturating_sub(status.reserved),
                reset_ns: status.reset_ns,
            };
            if let Some(old) = self.held.insert(key.clone(), lease) {
                if old.left > 0 {
                    unused.push(Unused {
                        limit: check.limit,
                        key: key.get(4..).unwrap_or_default().to_vec(),
                        requests: old.left,
                    });
                }
            }
        }
        unused
    }

    /// One tick ([`TICK_MS`]) passed: ends the reservations taken [`LIFETIME_TICKS`] ago and
    /// returns what they left unused.
    pub fn tick(&mut self) -> Vec<Unused> {
        self.ticks += 1;
        let now = self.ticks;
        let mut unused = Vec::new();
        self.held.retain(|key, lease| {
            if now < lease.taken + LIFETIME_TICKS {
                return true;
            }
            if lease.left > 0 {
                let index = key
                    .get(..4)
                    .and_then(|b| <[u8; 4]>::try_from(b).ok())
                    .map_or(u32::MAX, u32::from_le_bytes);
                unused.push(Unused {
                    limit: usize::try_from(index).unwrap_or(usize::MAX),
                    key: key.get(4..).unwrap_or_default().to_vec(),
                    requests: lease.left,
                });
            }
            false
        });
        unused
    }
}
