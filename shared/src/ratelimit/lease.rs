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
//! (under 1/64 of its burst); limits with a smaller burst are always decided exactly.
//!
//! The same per-worker memory keeps the store's refusals ([`Leases::refuse`]): a request whose
//! limits and keys the store refused less than their wait ago is refused again without asking
//! (the store cannot admit it sooner, except for a reservation given back meanwhile, so this only
//! errs on the strict side), for at most [`REFUSAL_TICKS`] ticks ([`RESERVED_REFUSAL_TICKS`] for
//! a limit workers reserve from, so that what other workers give back is not refused), and for at
//! most [`MAX_REFUSALS`] limits and keys at once: a flood of distinct refused clients (one key
//! each) is answered from memory too, not only a few hot keys. `store.reserve: false` turns both
//! off.

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

/// Whether workers reserve from a limit with this burst (see [`reservation_size`]).
fn reserved_from(burst: u32) -> bool {
    burst >= MIN_BURST
}

/// How many requests a worker may reserve from a limit's bucket (0: never).
pub fn reservation_size(limit: &Limit) -> u32 {
    let burst = limit.rate.burst();
    if !reserved_from(burst) {
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

/// A refusal from the store, remembered until its wait is over.
#[derive(Debug, Clone)]
struct Refusal {
    /// When the store refused (nanoseconds), and until when it will refuse.
    at: u64,
    until: u64,
    /// The tick at which it is forgotten ([`REFUSAL_TICKS`] or [`RESERVED_REFUSAL_TICKS`] after
    /// it was remembered).
    forget_at: u64,
    verdict: Verdict,
}

/// How many ticks a refusal is remembered at most (then the store is asked again).
pub const REFUSAL_TICKS: u64 = 100;
/// How many ticks a refusal by a limit workers reserve from is remembered at most: until any
/// reservation another worker held when the store refused has ended and been given back (within
/// [`LIFETIME_TICKS`] of that worker's ticks, which run out of step with this worker's by up to
/// one), so that requests given back are admitted, not refused from memory.
pub const RESERVED_REFUSAL_TICKS: u64 = LIFETIME_TICKS + 2;
/// The most refusals a worker remembers at once (one per plan's limits and keys). About 200
/// bytes each with the table's own slots: under 3 MiB per worker, and only while that many
/// distinct clients are being refused.
pub const MAX_REFUSALS: usize = 12_288;

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
    /// Requests refused by the store, by their plan's keys: refused again without the store
    /// until the refusal's wait is over.
    refused: HashMap<Vec<u8>, Refusal>,
    /// No remembered refusal ends before this instant (a lower bound of their `until`; 0 when
    /// unknown): while memory is full and this is still ahead, nothing can make room.
    refused_soonest: u64,
    ticks: u64,
    /// Requests admitted from reservations since [`Leases::take_admitted`].
    admitted: u64,
    /// Requests refused from memory since [`Leases::take_refused_again`].
    refused_again: u64,
}

/// The key of `check`'s reservation: its limit and its key's bytes. [`Leases::admit`],
/// [`Leases::wanted`] and [`Leases::keep`] take these, computed once per request.
pub fn lease_key(check: &Check) -> Vec<u8> {
    let index = u32::try_from(check.limit).unwrap_or(u32::MAX);
    let mut key = Vec::with_capacity(32);
    key.extend_from_slice(&index.to_le_bytes());
    check.key.write_bytes(&mut key);
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

    /// Refuses a request without the store when the store refused the same limits and keys
    /// (`keys`, from [`lease_key`]) less than their wait ago: the store cannot admit it before
    /// then (only a reservation given back could, so this errs on the strict side). The verdict
    /// is the store's, with its waits and resets shortened by the time passed since.
    pub fn refuse(&mut self, keys: &[Vec<u8>], now: u64) -> Option<Verdict> {
        if self.refused.is_empty() {
            return None;
        }
        // Remembered under the keys joined; one key is its own join (no copy per request).
        let joined;
        let key: &[u8] = match keys {
            [one] => one,
            _ => {
                joined = keys.concat();
                &joined
            }
        };
        let refusal = self.refused.get(key)?;
        if now < refusal.at || now >= refusal.until {
            self.refused.remove(key);
            return None;
        }
        let passed = now - refusal.at;
        let mut verdict = refusal.verdict.clone();
        for s in &mut verdict.statuses {
            s.wait_ns = if s.wait_ns > 0 {
                s.wait_ns.saturating_sub(passed).max(1)
            } else {
                0
            };
            s.reset_ns = s.reset_ns.saturating_sub(passed);
        }
        self.refused_again += 1;
        Some(verdict)
    }

    /// Remembers a refusal from the store ([`Leases::refuse`]), while there is room (refusals
    /// whose wait is over make room: a flood of refused clients keeps being answered from
    /// memory, not only the first [`MAX_REFUSALS`] of them). When memory is full of refusals
    /// that have not ended, it is not searched again until the soonest of them ends.
    pub fn remember_refusal(&mut self, keys: &[Vec<u8>], verdict: &Verdict, now: u64) {
        let Some(wait) = verdict.retry_after_ns() else {
            return;
        };
        if self.refused.len() >= MAX_REFUSALS {
            if now < self.refused_soonest {
                return;
            }
            let mut soonest = u64::MAX;
            self.refused.retain(|_, r| {
                let live = now < r.until;
                if live {
                    soonest = soonest.min(r.until);
                }
                live
            });
            self.refused_soonest = soonest;
            if self.refused.len() >= MAX_REFUSALS {
                return;
            }
        }
        let until = now.saturating_add(wait);
        self.refused_soonest = self.refused_soonest.min(until);
        // Another worker's reservation of a refusing limit may come back to the store soon.
        let reserved = verdict
            .statuses
            .iter()
            .any(|s| !s.allowed && !s.shadow && reserved_from(s.burst));
        let ticks = if reserved {
            RESERVED_REFUSAL_TICKS
        } else {
            REFUSAL_TICKS
        };
        self.refused.insert(
            keys.concat(),
            Refusal {
                at: now,
                until,
                forget_at: self.ticks.saturating_add(ticks),
                verdict: verdict.clone(),
            },
        );
    }

    /// How many refusals are remembered.
    pub fn refusals(&self) -> usize {
        self.refused.len()
    }

    /// Requests refused from memory since the last call (for a metric added once per tick).
    pub fn take_refused_again(&mut self) -> u64 {
        std::mem::take(&mut self.refused_again)
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
        self.refused.retain(|_, r| now < r.forget_at);
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
