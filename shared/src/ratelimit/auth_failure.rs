//! Slowing down password guessers: count 401/403 answers per client, block after too many.
//!
//! For each client key (by default the client address) the throttle counts responses whose
//! status is in `statuses` (401 and 403 by default, whether the upstream or the token filter sent
//! them). The window opens at the first failure and lasts `window`; when the `max_failures`-th
//! failure lands inside it, the client is blocked for `block_for`: its requests are refused with
//! 429 and `Retry-After` before they reach the upstream. When the block ends, counting starts
//! afresh. Failures are not counted while a client is blocked (its requests never get an answer
//! from upstream), so a block does not extend itself.
//!
//! The state lives in the same bounded tables as the rate limits (see [`super::state`]), one
//! entry per client with four words: `[expiry, window_start, failures, blocked_until]`. Its table
//! defaults to `when_full: evict`: an entry close to expiring makes room for a new client, so a
//! flood of failing clients cannot get clients that never failed blocked through a shared bucket.

use super::key::{Key, KeyValue};
use super::state::{Table, MAX_WORDS};
use super::store::{CasStore, StoreError, MAX_ATTEMPTS};

/// Words per entry in an auth-failure table.
pub const WIDTH: u8 = 4;

/// A compiled auth-failure throttle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthThrottle {
    pub name: String,
    /// Response statuses that count as failures.
    pub statuses: Vec<u32>,
    /// Failures within the window that trigger a block.
    pub max_failures: u32,
    pub window_ns: u64,
    pub block_ns: u64,
    pub key: Key,
    pub skip_missing: bool,
    pub table: Table,
}

/// What recording a response did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The status is not a failure.
    NotCounted,
    /// A failure was counted: `failures` so far in the window.
    Counted { failures: u32 },
    /// This failure blocked the client for `block_ns`.
    Blocked { block_ns: u64 },
    /// The client was already blocked (nothing counted).
    AlreadyBlocked { remaining_ns: u64 },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct FailState {
    window_start: u64,
    failures: u32,
    blocked_until: u64,
}

impl FailState {
    fn from_words(w: [u64; MAX_WORDS]) -> Self {
        FailState {
            window_start: w[1],
            failures: u32::try_from(w[2]).unwrap_or(u32::MAX),
            blocked_until: w[3],
        }
    }

    fn to_words(self, window_ns: u64) -> [u64; MAX_WORDS] {
        let window_end = if self.failures == 0 {
            0
        } else {
            self.window_start.saturating_add(window_ns)
        };
        [
            window_end.max(self.blocked_until),
            self.window_start,
            u64::from(self.failures),
            self.blocked_until,
        ]
    }
}

impl AuthThrottle {
    /// Whether a response status counts as a failure.
    pub fn counts(&self, status: u32) -> bool {
        self.statuses.contains(&status)
    }

    /// How much longer the client with `key` is blocked, if it is.
    pub fn blocked_for<S: CasStore + ?Sized>(
        &self,
        store: &S,
        key: &KeyValue,
        now: u64,
    ) -> Result<Option<u64>, StoreError> {
        let slot = self.table.read(store, &key.to_bytes(), now)?;
        Ok(slot
            .current
            .map(FailState::from_words)
            .filter(|s| s.blocked_until > now)
            .map(|s| s.blocked_until - now))
    }

    /// Records the response status of a request from the client with `key`.
    pub fn record<S: CasStore + ?Sized>(
        &self,
        store: &S,
        key: &KeyValue,
        status: u32,
        now: u64,
    ) -> Result<Recorded, StoreError> {
        if !self.counts(status) {
            return Ok(Recorded::NotCounted);
        }
        let bytes = key.to_bytes();
        for _ in 0..MAX_ATTEMPTS {
            let slot = self.table.read(store, &bytes, now)?;
            let mut state = slot.current.map(FailState::from_words).unwrap_or_default();
            if state.blocked_until > now {
                return Ok(Recorded::AlreadyBlocked {
                    remaining_ns: state.blocked_until - now,
                });
            }
            if state.failures == 0 || now >= state.window_start.saturating_add(self.window_ns) {
                state.window_start = now;
                state.failures = 0;
            }
            state.failures = state.failures.saturating_add(1);
            let outcome = if state.failures >= self.max_failures {
                state = FailState {
                    window_start: now,
                    failures: 0,
                    blocked_until: now.saturating_add(self.block_ns),
                };
                Recorded::Blocked {
                    block_ns: self.block_ns,
                }
            } else {
                Recorded::Counted {
                    failures: state.failures,
                }
            };
            let value = slot.encode_with(state.to_words(self.window_ns), now);
            match store.set(&slot.store_key, &value, slot.cas) {
                Ok(()) => return Ok(outcome),
                Err(StoreError::CasMismatch) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Contention(MAX_ATTEMPTS))
    }
}
