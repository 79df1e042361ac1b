//! Token verification for the token filter (issue 3): JWT (JWS compact) and PASETO v4.public,
//! keys from inline JWKS, remote JWKS or OpenID discovery and HMAC secrets, claim rules and
//! per-route requirements.
//!
//! How a filter uses it:
//! 1. once per config: [`TokenConfig::parse`], then [`KeyStore::new`] (inline keys),
//!    [`KeyStore::load_hmac_secrets`] (VM environment), a [`TokenCache`] and, for each provider
//!    with [`Provider::remote`], a [`remote::FetchSchedule`]; fetched documents go through
//!    [`remote::parse_discovery`] / [`Provider::parse_fetched_jwks`] into
//!    [`KeyStore::set_fetched`];
//! 2. per request: [`TokenConfig::select`] picks the route's [`Requirement`],
//!    [`Verifier::check`] returns an [`Outcome`] ([`Verifier::check_with_peer`] with the
//!    connection's client certificate, read only when [`Requirement::peers`] is set); the filter then removes
//!    [`TokenConfig::claim_header_names`] from the request and either sends
//!    [`Outcome::response`] or strips [`Outcome::locations_to_strip`] and sets
//!    [`Outcome::upstream_headers`]; [`Outcome::metric`] names the counter and
//!    [`Outcome::unknown_kid_provider`] asks for a refetch.
//!
//! Safe by construction: a key is bound to one algorithm when it is loaded and the token's `alg`
//! only has to agree; `none` never verifies; `jwk`/`jku`/`x5u`/`x5c` are never read; `crit`
//! rejects; tokens over `max_token_size` (8 KiB) are refused before parsing; JSON with duplicate
//! names, bad base64url and wrongly typed claims reject with a typed reason; nothing from a token
//! can panic.

pub mod alg;
pub mod backend;
pub mod cache;
pub mod claims;
pub mod config;
pub mod error;
pub mod extract;
pub mod headers;
pub mod jwks;
pub mod jwt;
pub mod keys;
pub mod outcome;
pub mod paseto;
pub mod peers;
pub mod remote;
pub mod requirement;
pub mod strict_json;
pub mod verify;

pub use alg::JwsAlgorithm;
pub use backend::{ecdsa_raw_to_der, HostCheck, HostVerdict, PureRust, SignatureBackend};
pub use cache::TokenCache;
pub use claims::Claims;
pub use config::{Provider, TokenConfig};
pub use extract::{strip_cookie, strip_query_param, TokenLocation, TokenRequest};
pub use headers::claims_to_headers;
pub use jwks::{parse_jwks, JwksPolicy, KeySet};
pub use keys::KeyStore;
pub use outcome::{AllowBasis, DenyReason, Failure, Outcome, VerifiedToken};
pub use peers::{Peer, PeerMode, PeerRule, SpiffeId};
pub use requirement::{RequireMode, Requirement};
pub use verify::Verifier;

/// The filter name used in metric names (`palisade_token_<what>_total`).
pub const FILTER_NAME: &str = "token";
