//! Per-route token requirements: a policy type compiled inside the shared route rules.
//!
//! The config document's own fields are the default requirement; `rules[]` override them per
//! route (merged field by field):
//!
//! ```json
//! { "requires": { "mode": "any", "providers": ["corp", "partners"] },
//!   "scopes": ["orders:read"],
//!   "rules": [
//!     { "match": { "path": { "prefix": "/public" } }, "requires": { "mode": "none" } },
//!     { "match": { "path": { "prefix": "/admin" } },
//!       "claims": [ { "claim": "roles", "contains": "admin" } ] } ] }
//! ```
//!
//! `mode`: `any` (default; a token from one of `providers` — all providers when not listed),
//! `all` (a valid token for each listed provider), or `none` (no token needed).
//! `allow_missing`: no token is fine, a bad token is not. `allow_missing_or_failed`: every request
//! passes, verified claims are forwarded when there are some.
//! `peers`: an allow-list of mTLS peer identities and how it combines with the token requirement
//! (see `peers.rs`); `"peers": null` in a rule turns an inherited one off.

use super::claims::{ClaimRule, ClaimRuleSpec, ScopeRule};
use super::config::Provider;
use super::peers::{PeerMode, PeerRule, PeersSpec};
use crate::config::{from_value, ConfigError};
use serde::Deserialize;
use serde_json::Value;

/// How many providers must accept the request's tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum RequireMode {
    /// One token from one of the providers.
    #[default]
    Any,
    /// A token for every listed provider.
    All,
    /// No token is needed (and none is checked).
    None,
}

/// Which providers' tokens a request needs.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
struct RequiresSpec {
    /// `any` (default): a token from one of `providers`; `all`: a valid token for each of them;
    /// `none`: no token is needed.
    #[serde(default)]
    mode: RequireMode,
    /// Provider names (default: every provider).
    #[serde(default)]
    providers: Option<Vec<String>>,
}

/// Scopes the token must have: a list (all of them), or `all_of` / `any_of` sets.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(untagged)]
enum ScopesSpec {
    /// A list: all are required.
    All(Vec<String>),
    /// Every scope of `all_of`, and at least one of `any_of`.
    Sets(ScopeSetsSpec),
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
struct ScopeSetsSpec {
    /// Scopes the token must all have.
    #[serde(default)]
    all_of: Vec<String>,
    /// Scopes of which the token must have at least one (empty: not checked).
    #[serde(default)]
    any_of: Vec<String>,
}

/// A token requirement: the top level's, or a rule's merged over it.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RequirementSpec {
    /// Which providers' tokens are needed: `mode` (`any`, `all`, `none`) and `providers`.
    #[serde(default)]
    requires: RequiresSpec,
    /// A request without a token passes; a bad token is still refused.
    #[serde(default)]
    allow_missing: bool,
    /// Every request passes; verified claims are forwarded when there are some.
    #[serde(default)]
    allow_missing_or_failed: bool,
    /// Scopes the token must have (`scope` or `scp` claim).
    #[serde(default)]
    scopes: Option<ScopesSpec>,
    /// Conditions on the token's claims; all must hold.
    #[serde(default)]
    claims: Vec<ClaimRuleSpec>,
    /// Let CORS preflight requests through without a token.
    #[serde(default)]
    bypass_cors_preflight: bool,
    /// mTLS peer identities allowed, and how that combines with the token requirement; `null` in a
    /// rule turns an inherited one off.
    #[serde(default)]
    peers: Option<PeersSpec>,
}

/// A compiled requirement.
#[derive(Debug, Clone, PartialEq)]
pub struct Requirement {
    pub mode: RequireMode,
    /// Indices into the config's providers.
    pub providers: Vec<usize>,
    pub allow_missing: bool,
    pub allow_missing_or_failed: bool,
    pub scopes: ScopeRule,
    pub claims: Vec<ClaimRule>,
    pub bypass_cors_preflight: bool,
    /// mTLS peers allowed on the route, and how that combines with the token requirement.
    pub peers: Option<PeerRule>,
}

/// RFC 6750 scope-token characters (so a scope can be quoted in `WWW-Authenticate`).
fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

fn check_scopes(path: &str, scopes: &[String]) -> Result<(), ConfigError> {
    for (i, s) in scopes.iter().enumerate() {
        if !is_scope_token(s) {
            return Err(ConfigError::field(
                format!("{path}[{i}]"),
                format!(
                    "'{s}' is not a scope (printable ASCII without spaces, quotes or backslashes)"
                ),
            ));
        }
    }
    Ok(())
}

impl Requirement {
    /// Compiles a requirement document (the defaults merged with a rule's fields).
    pub fn compile(doc: Value, providers: &[Provider]) -> Result<Self, ConfigError> {
        let mut spec: RequirementSpec = from_value(doc)?;
        let peers = spec
            .peers
            .take()
            .map(|p| PeerRule::compile("peers", p))
            .transpose()?;
        if let Some(rule) = &peers {
            check_peer_combination(rule.mode, &spec)?;
        }
        let indices = match &spec.requires.providers {
            None => (0..providers.len()).collect(),
            Some(names) => {
                if names.is_empty() && spec.requires.mode != RequireMode::None {
                    return Err(ConfigError::field("requires.providers", "cannot be empty"));
                }
                let mut out = Vec::with_capacity(names.len());
                for (i, name) in names.iter().enumerate() {
                    let idx = providers
                        .iter()
                        .position(|p| &p.name == name)
                        .ok_or_else(|| {
                            ConfigError::field(
                                format!("requires.providers[{i}]"),
                                format!("no provider is named '{name}'"),
                            )
                        })?;
                    if !out.contains(&idx) {
                        out.push(idx);
                    }
                }
                out
            }
        };
        let scopes = match spec.scopes {
            None => ScopeRule::default(),
            Some(ScopesSpec::All(all_of)) => {
                check_scopes("scopes", &all_of)?;
                ScopeRule {
                    all_of,
                    any_of: Vec::new(),
                }
            }
            Some(ScopesSpec::Sets(sets)) => {
                check_scopes("scopes.all_of", &sets.all_of)?;
                check_scopes("scopes.any_of", &sets.any_of)?;
                ScopeRule {
                    all_of: sets.all_of,
                    any_of: sets.any_of,
                }
            }
        };
        let claims = spec
            .claims
            .iter()
            .enumerate()
            .map(|(i, c)| ClaimRule::compile(&format!("claims[{i}]"), c))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Requirement {
            mode: spec.requires.mode,
            providers: indices,
            allow_missing: spec.allow_missing,
            allow_missing_or_failed: spec.allow_missing_or_failed,
            scopes,
            claims,
            bypass_cors_preflight: spec.bypass_cors_preflight,
            peers,
        })
    }
}

/// Refuses peer modes whose token side asks for nothing: `or_token` with a token requirement
/// that lets tokenless requests through would admit everyone, and `and_token` without a token
/// requirement is `alone` under another name.
fn check_peer_combination(mode: PeerMode, spec: &RequirementSpec) -> Result<(), ConfigError> {
    let lenient = if spec.requires.mode == RequireMode::None {
        Some("requires.mode 'none'")
    } else if spec.allow_missing_or_failed {
        Some("allow_missing_or_failed")
    } else if spec.allow_missing {
        Some("allow_missing")
    } else {
        None
    };
    match (mode, lenient) {
        (PeerMode::OrToken, Some(what)) => Err(ConfigError::field(
            "peers.mode",
            format!("'or_token' with {what} would let requests without a valid token or peer through; use 'alone' or 'and_token', or drop {what}"),
        )),
        (PeerMode::AndToken, Some(what)) if spec.requires.mode == RequireMode::None => {
            Err(ConfigError::field(
                "peers.mode",
                format!("'and_token' with {what} asks for no token: use 'alone'"),
            ))
        }
        _ => Ok(()),
    }
}
