//! Palisade's policy core.
//!
//! Everything a Palisade filter decides lives here, behind plain Rust types: config parsing and its
//! errors, route rules, client identity, error responses, metric names and each filter's policy.
//! Nothing in this crate's API is a proxy-wasm type, so every decision is testable natively and on
//! `wasm32-unknown-unknown` without Envoy. The filter crates under `filters/` only read what the
//! host gives them, ask this crate, and act on the answer.

pub mod client_ip;
pub mod combined;
pub mod config;
pub mod decimal;
pub mod header_map;
pub mod json;
pub mod matcher;
pub mod metrics;
pub mod proto;
pub mod ratelimit;
pub mod response;
pub mod rules;
#[cfg(feature = "schema")]
pub mod schema;
pub mod security_headers;
pub mod token;
pub mod validation;

pub use config::ConfigError;
