//! Deciding a request against every limit that applies to it, exactly, across workers.
//!
//! # Several limits, one decision
//!
//! A request may fall under several limits (`10/second` and `1000/hour` per client, a global
//! limit, a login-route limit...). It is admitted only if every *enforced* limit admits it, and
//! then it is counted against every limit that admitted it. A request that one limit refuses is
//! not counted against the others: a client hammering a route with a tight limit does not also
//! drain its budget on the wider limits with requests that never reached the upstream.
//!
//! The protocol, repeated at most [`MAX_ATTEMPTS`] times:
//! 1. **Read** every limit's entry (with its CAS version) and decide each one with GCRA.
//! 2. If an enforced limit refuses, answer "limited" **without writing anything**. (A flood of
//!    refused requests costs only reads.)
//! 3. Otherwise **write** each admitting limit's new state with compare-and-swap, one by one.
//!    If a write meets a CAS mismatch (another worker wrote that entry since step 1), the writes
//!    already made in this attempt are **refunded** (GCRA's `tat - T`, itself a CAS loop) and the
//!    attempt starts over from step 1 with fresh reads.
//!
//! Every admission is therefore backed by a successful compare-and-swap on each limit's entry
//! against the state it was decided on, so no limit ever admits more than its rate, whatever the
//! number of workers. Between a partial write and its refund another worker may see one request
//! less of quota; that can only make it refuse a request, never admit one too many.
//!
//! Shadow limits are decided and counted like enforced ones (so their figures show what
//! enforcement would do) but their refusals do not limit the request.

use super::gcra::{Decision, Period, Rate};
use super::key::{Key, KeyValue, MissingKey};
use super::state::{Table, MAX_WORDS};
use super::store::{CasStore, StoreError, MAX_ATTEMPTS};
use std::sync::Arc;

/// A compiled limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// The limit's name (`RateLimit-Policy` item, metrics, logs); shared with every status that
    /// reports it, so a verdict costs no copy of it.
    pub name: Arc<str>,
    pub rate: Rate,
    pub key: Key,
    pub missing: MissingKey,
    /// Counted and reported, never enforced.
    pub shadow: bool,
    /// Where its state lives.
    pub table: Table,
}

/// One limit to apply to one request.
#[derive(Debug, Clone, Copy)]
pub struct CheckItem<'a> {
    pub limit: &'a Limit,
    pub key: &'a KeyValue,
    /// Shadow for this request (the limit's own flag, or its route is in shadow mode).
    pub shadow: bool,
}

/// How one limit judged the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitStatus {
    pub name: Arc<str>,
    pub requests: u32,
    pub period: Period,
    pub burst: u32,
    /// Whether this limit would admit the request.
    pub allowed: bool,
    pub shadow: bool,
    /// Whether the request was counted against this limit.
    pub consumed: bool,
    /// Requests left now (after this one, if it was counted).
    pub remaining: u32,
    /// Nanoseconds until the bucket is full again.
    pub reset_ns: u64,
    /// Nanoseconds until this limit would admit a request (0 if it admits this one).
    pub wait_ns: u64,
    /// The key did not fit the limit's table and used the shared overflow bucket.
    pub overflow: bool,
    /// Another key's entry was evicted to make room for this one.
    pub evicted: bool,
    /// Requests counted beyond this one, reserved for this worker to admit without asking the
    /// store again ([`super::lease`]); already included in `remaining`.
    pub reserved: u32,
}

/// The answer for one request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    /// Whether the request may go on.
    pub admitted: bool,
    /// Every limit that applied, in config order.
    pub statuses: Vec<LimitStatus>,
}

/// The outcome to count in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No limit applied.
    Unlimited,
    Allowed,
    /// Admitted, but a shadow limit would have refused it.
    ShadowLimited,
    Limited,
}

impl Outcome {
    /// The `<what>` of the metric `palisade_rate_limit_<what>_total`.
    pub fn metric(self) -> &'static str {
        match self {
            Outcome::Unlimited => "unlimited",
            Outcome::Allowed => "allowed",
            Outcome::ShadowLimited => "shadow_limited",
            Outcome::Limited => "limited",
        }
    }
}

impl Verdict {
    /// A verdict for a request no limit applies to.
    pub fn unlimited() -> Self {
        Verdict {
            admitted: true,
            statuses: Vec::new(),
        }
    }

    pub fn is_limited(&self) -> bool {
        !self.admitted
    }

    /// Admitted although a shadow limit refused it (mark it, count it).
    pub fn is_shadow_limited(&self) -> bool {
        self.admitted && self.statuses.iter().any(|s| s.shadow && !s.allowed)
    }

    pub fn outcome(&self) -> Outcome {
        if self.statuses.is_empty() {
            Outcome::Unlimited
        } else if self.is_limited() {
            Outcome::Limited
        } else if self.is_shadow_limited() {
            Outcome::ShadowLimited
        } else {
            Outcome::Allowed
        }
    }

    /// How long until the request could be admitted: the longest wait of the enforced limits
    /// that refused it. `None` when it was admitted.
    pub fn retry_after_ns(&self) -> Option<u64> {
        if self.admitted {
            return None;
        }
        self.statuses
            .iter()
            .filter(|s| !s.shadow && !s.allowed)
            .map(|s| s.wait_ns)
            .max()
    }

    /// The names of the shadow limits that refused the request.
    pub fn shadow_refusals(&self) -> impl Iterator<Item = &str> {
        self.statuses
            .iter()
            .filter(|s| s.shadow && !s.allowed)
            .map(|s| &*s.name)
    }

    /// The enforced limit closest to refusing: a refusing one with the longest wait, else the
    /// one with the fewest requests left (ties: the later reset).
    pub fn tightest(&self) -> Option<&LimitStatus> {
        let enforced = self.statuses.iter().filter(|s| !s.shadow);
        if !self.admitted {
            return enforced.filter(|s| !s.allowed).max_by_key(|s| s.wait_ns);
        }
        enforced.min_by(|a, b| {
            a.remaining
                .cmp(&b.remaining)
                .then(b.reset_ns.cmp(&a.reset_ns))
        })
    }
}

fn words(tat: u64) -> [u64; MAX_WORDS] {
    let mut w = [0; MAX_WORDS];
    w[0] = tat;
    w
}

/// Decides a request against `items` at `now` (nanoseconds) and counts it where it was admitted.
pub fn check<S: CasStore + ?Sized>(
    store: &S,
    items: &[CheckItem<'_>],
    now: u64,
) -> Result<Verdict, StoreError> {
    check_reserving(store, items, now, &[])
}

/// As [`check`], and where the request is admitted, also counts up to `reserve[i]` more requests
/// against item `i`'s limit in the same compare-and-swap, for the worker to admit later without
/// the store ([`super::lease`]). A reservation is only taken while the bucket keeps at least
/// [`RESERVE_HEADROOM`] times its size after it, and never from an overflow bucket or with an
/// eviction; [`LimitStatus::reserved`] says what was taken.
pub fn check_reserving<S: CasStore + ?Sized>(
    store: &S,
    items: &[CheckItem<'_>],
    now: u64,
    reserve: &[u32],
) -> Result<Verdict, StoreError> {
    if items.is_empty() {
        return Ok(Verdict::unlimited());
    }
    let mut key = Vec::with_capacity(64);
    'attempt: for _ in 0..MAX_ATTEMPTS {
        // Per item: where its entry is, the decision, and the requests reserved beyond this one
        // (one list, not one per field: this runs for every request the store sees).
        let mut steps: Vec<Step> = Vec::with_capacity(items.len());
        for item in items {
            key.clear();
            item.key.write_bytes(&mut key);
            let slot = item.limit.table.read(store, &key, now)?;
            let decision = item.limit.rate.decide(slot.current.map(|w| w[0]), now);
            steps.push(Step {
                slot,
                decision,
                extra: 0,
            });
        }
        let admitted = items
            .iter()
            .zip(&steps)
            .all(|(item, step)| item.shadow || step.decision.is_allowed());
        if admitted {
            for (i, step) in steps.iter_mut().enumerate() {
                if let Decision::Allow { remaining, .. } = step.decision {
                    let want = reserve.get(i).copied().unwrap_or(0);
                    if want > 0
                        && !step.slot.overflow
                        && !step.slot.evicts
                        && remaining >= want.saturating_mul(RESERVE_HEADROOM)
                    {
                        step.extra = want;
                    }
                }
            }
            // Items are written in order and the first failure stops: every item before `i`
            // that was allowed has been written.
            for (i, (item, step)) in items.iter().zip(&steps).enumerate() {
                let Decision::Allow { new_tat, .. } = step.decision else {
                    continue;
                };
                let tat = new_tat.saturating_add(
                    u64::from(step.extra).saturating_mul(item.limit.rate.emission_ns()),
                );
                let bytes = step.slot.encode_with(words(tat), now);
                if let Err(e) = store.set(&step.slot.store_key, &bytes, step.slot.cas) {
                    for (item, written) in items.iter().zip(&steps).take(i) {
                        if written.decision.is_allowed() {
                            refund(store, item.limit, &written.slot, now, 1 + written.extra);
                        }
                    }
                    if e == StoreError::CasMismatch {
                        continue 'attempt;
                    }
                    return Err(e);
                }
            }
        }

        let statuses = items
            .iter()
            .zip(&steps)
            .map(|(item, step)| {
                let rate = &item.limit.rate;
                let (remaining, reset_ns, wait_ns, consumed) = match step.decision {
                    Decision::Allow {
                        remaining,
                        reset_ns,
                        ..
                    } if admitted => (remaining, reset_ns, 0, true),
                    Decision::Allow { .. } => {
                        let q = rate.peek(step.slot.current.map(|w| w[0]), now);
                        (q.remaining, q.reset_ns, 0, false)
                    }
                    Decision::Deny { wait_ns, reset_ns } => (0, reset_ns, wait_ns, false),
                };
                LimitStatus {
                    name: item.limit.name.clone(),
                    requests: rate.requests(),
                    period: rate.period(),
                    burst: rate.burst(),
                    allowed: step.decision.is_allowed(),
                    shadow: item.shadow,
                    consumed,
                    remaining,
                    reset_ns,
                    wait_ns,
                    overflow: step.slot.overflow,
                    evicted: step.slot.evicts && consumed,
                    reserved: if consumed { step.extra } else { 0 },
                }
            })
            .collect();
        return Ok(Verdict { admitted, statuses });
    }
    Err(StoreError::Contention(MAX_ATTEMPTS))
}

/// One item of a check as read from the store.
struct Step {
    slot: super::state::Slot,
    decision: Decision,
    /// Requests reserved beyond this one (only when the request is admitted).
    extra: u32,
}

/// How many times its size a bucket must still hold after a reservation is taken from it.
pub const RESERVE_HEADROOM: u32 = 4;

/// Gives back `count` requests counted in `slot` (best effort: a refund that cannot be written
/// only leaves the limit stricter than it should be for a moment).
fn refund<S: CasStore + ?Sized>(
    store: &S,
    limit: &Limit,
    slot: &super::state::Slot,
    now: u64,
    count: u32,
) {
    let _ = give_back(store, limit, slot, now, count);
}

/// Gives back `count` requests counted in `slot` with a compare-and-swap loop; `Ok(false)` when
/// the entry is gone (it expired: nothing is owed).
pub fn give_back<S: CasStore + ?Sized>(
    store: &S,
    limit: &Limit,
    slot: &super::state::Slot,
    now: u64,
    count: u32,
) -> Result<bool, StoreError> {
    let rate = limit.rate;
    limit
        .table
        .modify(store, slot, now, |w| words(rate.refund(w[0], count)))
}
