//! The generic cell rate algorithm (GCRA): one number per key decides every request.
//!
//! A limit of `requests` per `period` admits one request every `T = period / requests` on
//! average, and lets `burst` requests through at once when the key has been quiet. The only state
//! is the *theoretical arrival time* (`tat`): the instant at which the key's bucket would be full
//! again. A request at `now` is admitted when `max(tat, now) + T <= now + burst * T`, and then
//! moves `tat` on by `T`. This is a token bucket of `burst` tokens refilled one every `T`,
//! computed without a refill timer.
//!
//! What a user can rely on: over any interval of length `d` starting from a full bucket, at most
//! `burst + floor(d / T)` requests are admitted ([`Rate::max_admitted_within`]); over a long run
//! the rate is exactly `requests` per `period`. `T` is rounded *up* to whole nanoseconds, so
//! rounding never admits more than configured.
//!
//! All times are nanoseconds on the host clock, passed in by the caller.

use serde::Deserialize;

/// Nanoseconds in one second.
pub const NANOS_PER_SEC: u64 = 1_000_000_000;

/// The unit a limit's `requests` are counted per.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Second,
    Minute,
    Hour,
    Day,
}

impl Period {
    /// The period in seconds.
    pub fn secs(self) -> u64 {
        match self {
            Period::Second => 1,
            Period::Minute => 60,
            Period::Hour => 3_600,
            Period::Day => 86_400,
        }
    }

    /// The period in nanoseconds.
    pub fn nanos(self) -> u64 {
        self.secs() * NANOS_PER_SEC
    }

    /// The name used in config and in RLS units (`second`, `minute`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Second => "second",
            Period::Minute => "minute",
            Period::Hour => "hour",
            Period::Day => "day",
        }
    }
}

/// Why a rate cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    #[error("must be at least 1")]
    Zero,
    /// `burst * T` would not fit the clock's range (more than about 290 years of debt).
    #[error("burst {burst} at {requests} per {period} spans more time than the limiter can track")]
    TooLong {
        requests: u32,
        period: &'static str,
        burst: u32,
    },
}

/// A validated rate: `requests` per `period`, at most `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    requests: u32,
    period: Period,
    burst: u32,
    /// `T`: nanoseconds between two requests at the sustained rate (rounded up).
    emission_ns: u64,
    /// `burst * T`: how far `tat` may run ahead of `now`.
    capacity_ns: u64,
}

impl Rate {
    /// `requests` per `period`, with a bucket of `burst` requests (`None`: `burst = requests`).
    pub fn new(requests: u32, period: Period, burst: Option<u32>) -> Result<Self, RateError> {
        let burst = burst.unwrap_or(requests);
        if requests == 0 || burst == 0 {
            return Err(RateError::Zero);
        }
        let emission_ns = period.nanos().div_ceil(u64::from(requests));
        let capacity = u128::from(emission_ns) * u128::from(burst);
        // Keep `now + capacity` far inside u64 for any realistic clock reading.
        if capacity > u128::from(i64::MAX as u64 / 2) {
            return Err(RateError::TooLong {
                requests,
                period: period.as_str(),
                burst,
            });
        }
        Ok(Rate {
            requests,
            period,
            burst,
            emission_ns,
            capacity_ns: capacity as u64,
        })
    }

    pub fn requests(&self) -> u32 {
        self.requests
    }

    pub fn period(&self) -> Period {
        self.period
    }

    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// `T`, the time one request "costs", in nanoseconds.
    pub fn emission_ns(&self) -> u64 {
        self.emission_ns
    }

    /// The most requests this rate admits in an interval of `interval_ns` that starts with a
    /// full bucket: `burst + floor(interval / T)`.
    pub fn max_admitted_within(&self, interval_ns: u64) -> u64 {
        u64::from(self.burst) + interval_ns / self.emission_ns
    }

    /// Decides one request at `now` given the key's stored `tat` (`None`: never seen or expired).
    pub fn decide(&self, tat: Option<u64>, now: u64) -> Decision {
        let start = tat.map_or(now, |t| t.max(now));
        let debt = start - now;
        // Admitted iff debt + T <= burst * T.
        let limit = self.capacity_ns - self.emission_ns;
        if debt <= limit {
            let new_tat = start.saturating_add(self.emission_ns);
            let new_debt = debt + self.emission_ns;
            Decision::Allow {
                new_tat,
                remaining: self.remaining_for(new_debt),
                reset_ns: new_debt,
            }
        } else {
            Decision::Deny {
                wait_ns: debt - limit,
                reset_ns: debt,
            }
        }
    }

    /// What a key looks like at `now` without spending anything.
    pub fn peek(&self, tat: Option<u64>, now: u64) -> Quota {
        let debt = tat.map_or(0, |t| t.saturating_sub(now));
        Quota {
            remaining: self.remaining_for(debt),
            reset_ns: debt,
        }
    }

    /// Gives back `requests` requests counted into `tat`: the exact inverse of that many
    /// `Allow`s for GCRA, since a `tat` in the past and `now` mean the same thing.
    pub fn refund(&self, tat: u64, requests: u32) -> u64 {
        tat.saturating_sub(u64::from(requests).saturating_mul(self.emission_ns))
    }

    fn remaining_for(&self, debt_ns: u64) -> u32 {
        let free = self.capacity_ns.saturating_sub(debt_ns);
        u32::try_from(free / self.emission_ns).unwrap_or(u32::MAX)
    }
}

/// The quota left on a key: requests that would be admitted now, and when the bucket is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub remaining: u32,
    /// Nanoseconds until the bucket is full again (0 when it is full).
    pub reset_ns: u64,
}

/// The outcome of one request against one rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Admitted: store `new_tat`; `remaining` requests are left after this one.
    Allow {
        new_tat: u64,
        remaining: u32,
        reset_ns: u64,
    },
    /// Refused: the next request can pass in `wait_ns`; the bucket is full in `reset_ns`.
    Deny { wait_ns: u64, reset_ns: u64 },
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }
}

/// Whole seconds, rounded up (`Retry-After` and reset figures are integers and must not be early).
pub fn ceil_secs(nanos: u64) -> u64 {
    nanos.div_ceil(NANOS_PER_SEC)
}
