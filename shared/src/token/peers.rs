//! Service-to-service: an allow-list of mTLS peer identities (SPIFFE IDs), alone or combined with
//! the route's token requirement.
//!
//! ```json
//! { "peers": { "spiffe_ids": ["spiffe://cluster.local/ns/payments/sa/checkout"],
//!              "trust_domains": ["partners.example"],
//!              "mode": "alone" } }
//! ```
//!
//! A peer is allowed when the SPIFFE ID in its client certificate (the certificate's URI SAN, as
//! an X.509-SVID has exactly one) is one of `spiffe_ids`, or belongs to one of `trust_domains`.
//! `mode` says how this combines with the route's token requirement (`requires`, scopes...):
//! - `alone`: the peer identity is enough; no token is looked at.
//! - `and_token`: the peer must be allowed, and the token requirement must hold too.
//! - `or_token`: an allowed peer passes without a token; any other request must meet the token
//!   requirement (and gets the token's answer, e.g. 401, when it does not).
//!
//! The certificate itself is validated by Envoy (the listener's `validation_context`); this only
//! decides which validated identities may call the route.

use crate::config::ConfigError;
use serde::Deserialize;
use std::fmt;

/// The longest SPIFFE ID accepted (the SPIFFE ID specification's limit for URI SANs).
pub const MAX_SPIFFE_ID_LEN: usize = 2048;
/// The longest trust domain name accepted.
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;

const SCHEME: &str = "spiffe://";

/// Why a string is not a SPIFFE ID (or not a trust domain name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SpiffeIdError {
    #[error("does not start with 'spiffe://'")]
    Scheme,
    #[error("is longer than {MAX_SPIFFE_ID_LEN} bytes")]
    TooLong,
    #[error("has an empty trust domain")]
    EmptyTrustDomain,
    #[error("has a trust domain longer than {MAX_TRUST_DOMAIN_LEN} bytes")]
    TrustDomainTooLong,
    #[error("has a trust domain with a character other than a-z, 0-9, '.', '-' or '_' (no upper case, port or user)")]
    TrustDomainCharacter,
    #[error("has an empty path segment (double or trailing '/')")]
    EmptySegment,
    #[error("has a '.' or '..' path segment")]
    DotSegment,
    #[error("has a path character other than a-z, A-Z, 0-9, '.', '-' or '_' (no query, fragment or percent-encoding)")]
    PathCharacter,
}

fn is_trust_domain_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
}

fn is_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
}

/// Checks a trust domain name (`cluster.local`), without the scheme.
pub fn check_trust_domain(name: &str) -> Result<(), SpiffeIdError> {
    if name.is_empty() {
        return Err(SpiffeIdError::EmptyTrustDomain);
    }
    if name.len() > MAX_TRUST_DOMAIN_LEN {
        return Err(SpiffeIdError::TrustDomainTooLong);
    }
    if !name.bytes().all(is_trust_domain_byte) {
        return Err(SpiffeIdError::TrustDomainCharacter);
    }
    Ok(())
}

/// A well-formed SPIFFE ID: `spiffe://<trust domain><path>`, per the SPIFFE ID specification.
#[derive(Clone, PartialEq, Eq)]
pub struct SpiffeId {
    id: String,
    /// The trust domain is `id[SCHEME.len()..domain_end]`.
    domain_end: usize,
}

impl SpiffeId {
    /// Parses and checks a SPIFFE ID. Nothing is normalised: the scheme and trust domain must be
    /// lower case, the path is case-sensitive.
    pub fn parse(s: &str) -> Result<Self, SpiffeIdError> {
        if s.len() > MAX_SPIFFE_ID_LEN {
            return Err(SpiffeIdError::TooLong);
        }
        let rest = s.strip_prefix(SCHEME).ok_or(SpiffeIdError::Scheme)?;
        let (domain, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        check_trust_domain(domain)?;
        if !path.is_empty() {
            // `path` starts with '/': every segment after it must be non-empty.
            for segment in path.split('/').skip(1) {
                if segment.is_empty() {
                    return Err(SpiffeIdError::EmptySegment);
                }
                if segment == "." || segment == ".." {
                    return Err(SpiffeIdError::DotSegment);
                }
                if !segment.bytes().all(is_path_byte) {
                    return Err(SpiffeIdError::PathCharacter);
                }
            }
        }
        Ok(SpiffeId {
            id: s.to_owned(),
            domain_end: SCHEME.len() + domain.len(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.id
    }

    pub fn trust_domain(&self) -> &str {
        self.id.get(SCHEME.len()..self.domain_end).unwrap_or("")
    }

    /// The path (`/ns/payments/sa/checkout`), empty for the trust domain's own ID.
    pub fn path(&self) -> &str {
        self.id.get(self.domain_end..).unwrap_or("")
    }
}

impl fmt::Debug for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpiffeId({})", self.id)
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

/// How an allowed peer combines with the route's token requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum PeerMode {
    /// The peer identity is enough: no token is needed (nor looked at).
    Alone,
    /// The peer must be allowed and the token requirement must hold.
    AndToken,
    /// An allowed peer, or else a request that meets the token requirement.
    OrToken,
}

impl PeerMode {
    pub fn name(self) -> &'static str {
        match self {
            PeerMode::Alone => "alone",
            PeerMode::AndToken => "and_token",
            PeerMode::OrToken => "or_token",
        }
    }
}

/// `peers` as written in the config.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PeersSpec {
    /// Allowed peer SPIFFE IDs (`spiffe://trust.domain/path`).
    #[serde(default)]
    pub spiffe_ids: Vec<String>,
    /// Allowed trust domains: any peer SPIFFE ID in one of them.
    #[serde(default)]
    pub trust_domains: Vec<String>,
    /// `alone`: the peer is enough; `and_token`: the token requirement must hold too;
    /// `or_token`: an allowed peer, or else a request that meets the token requirement.
    pub mode: PeerMode,
}

/// The client certificate of the downstream connection, as the host reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer<'a> {
    /// No client certificate: plain text, or TLS without one.
    NoCertificate,
    /// A client certificate (validated by the listener) and its URI SANs (Envoy reports the
    /// first one only: `connection.uri_san_peer_certificate`).
    Certificate { uri_sans: &'a [String] },
}

/// Why a peer was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerDenial {
    /// No client certificate.
    NoCertificate,
    /// A certificate whose identity is not a SPIFFE ID (no URI SAN, several, or malformed).
    NotSpiffe,
    /// A SPIFFE ID that is not on the list.
    NotAllowed,
}

/// A compiled peer allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRule {
    pub spiffe_ids: Vec<SpiffeId>,
    pub trust_domains: Vec<String>,
    pub mode: PeerMode,
}

impl PeerRule {
    /// Compiles `peers` as written (`path` names it in errors).
    pub fn compile(path: &str, spec: PeersSpec) -> Result<Self, ConfigError> {
        if spec.spiffe_ids.is_empty() && spec.trust_domains.is_empty() {
            return Err(ConfigError::field(
                path,
                "list at least one of 'spiffe_ids' or 'trust_domains'",
            ));
        }
        let mut spiffe_ids: Vec<SpiffeId> = Vec::with_capacity(spec.spiffe_ids.len());
        for (i, s) in spec.spiffe_ids.iter().enumerate() {
            let id = SpiffeId::parse(s).map_err(|e| {
                ConfigError::field(
                    format!("{path}.spiffe_ids[{i}]"),
                    format!("'{s}' is not a SPIFFE ID: it {e}"),
                )
            })?;
            if !spiffe_ids.contains(&id) {
                spiffe_ids.push(id);
            }
        }
        let mut trust_domains: Vec<String> = Vec::with_capacity(spec.trust_domains.len());
        for (i, d) in spec.trust_domains.iter().enumerate() {
            check_trust_domain(d).map_err(|e| {
                let hint = if d.starts_with(SCHEME) {
                    " (write the name without 'spiffe://')"
                } else {
                    ""
                };
                ConfigError::field(
                    format!("{path}.trust_domains[{i}]"),
                    format!("'{d}' is not a trust domain name: it {e}{hint}"),
                )
            })?;
            if !trust_domains.contains(d) {
                trust_domains.push(d.clone());
            }
        }
        Ok(PeerRule {
            spiffe_ids,
            trust_domains,
            mode: spec.mode,
        })
    }

    /// The peer's SPIFFE ID if it is allowed, else why not.
    pub fn check(&self, peer: &Peer<'_>) -> Result<SpiffeId, PeerDenial> {
        let uri_sans = match peer {
            Peer::NoCertificate => return Err(PeerDenial::NoCertificate),
            Peer::Certificate { uri_sans } => uri_sans,
        };
        // An X.509-SVID carries exactly one URI SAN.
        let [san] = uri_sans else {
            return Err(PeerDenial::NotSpiffe);
        };
        let id = SpiffeId::parse(san).map_err(|_| PeerDenial::NotSpiffe)?;
        let listed = self.spiffe_ids.iter().any(|s| s == &id)
            || self.trust_domains.iter().any(|d| d == id.trust_domain());
        if listed {
            Ok(id)
        } else {
            Err(PeerDenial::NotAllowed)
        }
    }
}
