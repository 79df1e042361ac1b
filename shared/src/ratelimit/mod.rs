//! Rate limiting: exact limits shared by every Envoy worker, and auth-failure throttling.
//!
//! The filter (`filters/rate-limit`) parses [`RateLimitConfig`] once, creates its store keys
//! ([`RateLimitConfig::prepare_store`]), and for each request:
//! 1. builds a [`Plan`] from the request facts ([`RateLimitConfig::plan`]): every limit of the
//!    top level and of each matching rule, with the request's key for each;
//! 2. refuses clients blocked for auth failures ([`RateLimitConfig::auth_blocked_for`]);
//! 3. asks for a [`Verdict`] ([`RateLimitConfig::check`]) with the host clock's `now` in
//!    nanoseconds and a [`CasStore`] over proxy-wasm shared data;
//! 4. sends [`RateLimitConfig::rejection`] when the verdict is limited, or marks the request
//!    ([`headers::shadow_mark`]) when only shadow limits refused it, and adds
//!    [`RateLimitConfig::allowed_headers`] to the response;
//! 5. on the response, feeds its status to [`RateLimitConfig::record_response`].
//!
//! Modules: [`gcra`] (the algorithm), [`store`] (the CAS store and its retry loop), [`lease`]
//! (requests a worker reserves, to admit most requests without a store round trip),
//! [`state`] (bounded tables and the byte encoding), [`key`] (key descriptors), [`limiter`]
//! (several limits in one exact decision), [`config`], [`headers`], [`auth_failure`] and
//! [`rls`] (the Envoy RLS wire format for the distributed mode).
//!
//! Limits are per Envoy instance (all its workers); the distributed mode shares them across
//! instances through an RLS backend.

pub mod auth_failure;
pub mod config;
pub mod gcra;
pub mod headers;
pub mod key;
pub mod lease;
pub mod limiter;
pub mod rls;
pub mod state;
pub mod store;

pub use config::{Plan, RateLimitConfig};
pub use key::RequestFacts;
pub use lease::Leases;
pub use limiter::{Outcome, Verdict};
pub use store::{CasStore, StoreError, Versioned};

/// The filter name used in metric names: `palisade_rate_limit_<what>_total`.
pub const METRIC_FILTER: &str = "rate_limit";
