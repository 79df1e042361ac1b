//! What the token filter decides, why, and what it answers.
//!
//! Each [`DenyReason`] variant has one metric label and one HTTP answer: 401 `invalid_token` with
//! an RFC 6750 `WWW-Authenticate` value for a token we refuse, 401 without an error code when
//! there is no token, 403 `insufficient_scope` for a valid token that lacks a scope or claim, and
//! a configurable status (503) with `Retry-After` when the provider has no usable keys, since the
//! client did nothing wrong, and 403 `forbidden` (no challenge) when the route's mTLS peer
//! allow-list refuses the connection. Nothing from the token is echoed back.

use super::alg::JwsAlgorithm;
use super::claims::{ClaimError, Claims};
use super::config::{KeysUnavailable, TokenConfig};
use super::error::{Malformation, TokenError};
use super::extract::TokenLocation;
use super::headers::claims_to_headers;
use super::peers::{PeerDenial, SpiffeId};
use crate::response::ErrorResponse;
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenyReason {
    /// No token where the route needs one.
    Missing,
    TooLarge,
    Malformed(Malformation),
    /// `alg: none`, an unknown algorithm, one no key of the provider has, or a token type the
    /// provider does not accept.
    AlgorithmNotAllowed,
    UnsupportedCritical,
    /// The token's `iss` is none of the required providers'.
    Issuer,
    UnknownKid,
    BadSignature,
    MissingExp,
    Expired,
    NotYetValid,
    IssuedInFuture,
    LifetimeTooLong,
    Audience,
    Subject,
    /// A valid token without the route's scopes (the scopes it needs, space-separated).
    InsufficientScope {
        required: String,
    },
    /// A valid token whose claims do not meet the route's claim rules.
    ClaimsNotMet,
    /// The provider has no usable keys at all (e.g. its JWKS was never fetched).
    KeysUnavailable(KeysUnavailable),
    /// The route's mTLS peer allow-list refused the connection.
    Peer(PeerDenial),
}

impl DenyReason {
    /// Every metric label, for defining the counters once.
    pub const METRIC_LABELS: [&'static str; 20] = [
        "missing",
        "too_large",
        "malformed",
        "algorithm",
        "crit",
        "issuer",
        "unknown_kid",
        "bad_signature",
        "missing_exp",
        "expired",
        "not_yet_valid",
        "issued_in_future",
        "lifetime",
        "audience",
        "subject",
        "insufficient_scope",
        "claims",
        "keys_unavailable",
        "peer_missing",
        "peer",
    ];

    /// The metric label (`palisade_token_denied_<label>_total`).
    pub fn metric(&self) -> &'static str {
        match self {
            DenyReason::Missing => "missing",
            DenyReason::TooLarge => "too_large",
            DenyReason::Malformed(_) => "malformed",
            DenyReason::AlgorithmNotAllowed => "algorithm",
            DenyReason::UnsupportedCritical => "crit",
            DenyReason::Issuer => "issuer",
            DenyReason::UnknownKid => "unknown_kid",
            DenyReason::BadSignature => "bad_signature",
            DenyReason::MissingExp => "missing_exp",
            DenyReason::Expired => "expired",
            DenyReason::NotYetValid => "not_yet_valid",
            DenyReason::IssuedInFuture => "issued_in_future",
            DenyReason::LifetimeTooLong => "lifetime",
            DenyReason::Audience => "audience",
            DenyReason::Subject => "subject",
            DenyReason::InsufficientScope { .. } => "insufficient_scope",
            DenyReason::ClaimsNotMet => "claims",
            DenyReason::KeysUnavailable(_) => "keys_unavailable",
            DenyReason::Peer(PeerDenial::NoCertificate) => "peer_missing",
            DenyReason::Peer(PeerDenial::NotSpiffe | PeerDenial::NotAllowed) => "peer",
        }
    }

    /// A fixed description for logs and `error_description` (never token content).
    pub fn description(&self) -> &'static str {
        match self {
            DenyReason::Missing => "a token is required",
            DenyReason::TooLarge => "the token is too large",
            DenyReason::Malformed(_) => "the token is malformed",
            DenyReason::AlgorithmNotAllowed => "the token's algorithm or type is not accepted",
            DenyReason::UnsupportedCritical => "the token has an unsupported critical header",
            DenyReason::Issuer => "the token's issuer is not accepted",
            DenyReason::UnknownKid => "the token's signing key is unknown",
            DenyReason::BadSignature => "the token's signature is invalid",
            DenyReason::MissingExp => "the token has no expiration time",
            DenyReason::Expired => "the token has expired",
            DenyReason::NotYetValid => "the token is not valid yet",
            DenyReason::IssuedInFuture => "the token was issued in the future",
            DenyReason::LifetimeTooLong => "the token's lifetime is too long",
            DenyReason::Audience => "the token is not meant for this audience",
            DenyReason::Subject => "the token's subject is not allowed",
            DenyReason::InsufficientScope { .. } => "the token lacks a required scope",
            DenyReason::ClaimsNotMet => "the token's claims do not allow this request",
            DenyReason::KeysUnavailable(_) => "token keys are not available yet",
            DenyReason::Peer(PeerDenial::NoCertificate) => "a client certificate is required",
            DenyReason::Peer(PeerDenial::NotSpiffe) => {
                "the client certificate does not hold a SPIFFE ID"
            }
            DenyReason::Peer(PeerDenial::NotAllowed) => "the client is not allowed on this route",
        }
    }

    /// The HTTP status of the answer.
    pub fn status(&self) -> u32 {
        match self {
            DenyReason::InsufficientScope { .. } | DenyReason::ClaimsNotMet => 403,
            DenyReason::Peer(_) => 403,
            DenyReason::KeysUnavailable(k) => k.status,
            _ => 401,
        }
    }

    /// How far verification got before this reason; with several providers, the failure that
    /// got furthest is the one reported.
    pub(crate) fn stage(&self) -> u8 {
        match self {
            DenyReason::Missing => 0,
            DenyReason::TooLarge | DenyReason::Malformed(_) => 1,
            DenyReason::AlgorithmNotAllowed | DenyReason::UnsupportedCritical => 2,
            DenyReason::Issuer => 3,
            DenyReason::UnknownKid => 4,
            DenyReason::BadSignature => 5,
            DenyReason::KeysUnavailable(_) => 6,
            DenyReason::MissingExp
            | DenyReason::Expired
            | DenyReason::NotYetValid
            | DenyReason::IssuedInFuture
            | DenyReason::LifetimeTooLong
            | DenyReason::Audience
            | DenyReason::Subject => 7,
            DenyReason::InsufficientScope { .. } | DenyReason::ClaimsNotMet => 8,
            // Decided before any token is looked at; never compared with token failures.
            DenyReason::Peer(_) => 9,
        }
    }

    /// The `WWW-Authenticate` value, if this answer carries one.
    pub fn www_authenticate(&self, realm: Option<&str>) -> Option<String> {
        let mut parts: Vec<String> = Vec::new();
        if let Some(r) = realm {
            parts.push(format!("realm=\"{r}\""));
        }
        match self {
            // No HTTP challenge can ask for a client certificate.
            DenyReason::KeysUnavailable(_) | DenyReason::Peer(_) => return None,
            DenyReason::Missing => {}
            DenyReason::InsufficientScope { required } => {
                parts.push("error=\"insufficient_scope\"".to_owned());
                parts.push(format!("error_description=\"{}\"", self.description()));
                if !required.is_empty() {
                    parts.push(format!("scope=\"{required}\""));
                }
            }
            DenyReason::ClaimsNotMet => {
                parts.push("error=\"insufficient_scope\"".to_owned());
                parts.push(format!("error_description=\"{}\"", self.description()));
            }
            _ => {
                parts.push("error=\"invalid_token\"".to_owned());
                parts.push(format!("error_description=\"{}\"", self.description()));
            }
        }
        Some(if parts.is_empty() {
            "Bearer".to_owned()
        } else {
            format!("Bearer {}", parts.join(", "))
        })
    }

    /// The full answer: status, JSON body, `WWW-Authenticate` or `Retry-After`.
    pub fn response(&self, realm: Option<&str>) -> ErrorResponse {
        let code = match self {
            DenyReason::Missing => "unauthorized",
            DenyReason::InsufficientScope { .. } | DenyReason::ClaimsNotMet => "insufficient_scope",
            DenyReason::KeysUnavailable(_) => "keys_unavailable",
            DenyReason::Peer(_) => "forbidden",
            _ => "invalid_token",
        };
        let mut resp = ErrorResponse::new(self.status(), code, self.description());
        if let Some(value) = self.www_authenticate(realm) {
            resp = resp.with_header("www-authenticate", value);
        }
        if let DenyReason::KeysUnavailable(k) = self {
            resp = resp.with_header("retry-after", k.retry_after_secs.to_string());
        }
        resp
    }
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DenyReason::Malformed(m) => write!(f, "{}: {m}", self.description()),
            _ => f.write_str(self.description()),
        }
    }
}

impl From<TokenError> for DenyReason {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::TooLarge { .. } => DenyReason::TooLarge,
            TokenError::Malformed(m) => DenyReason::Malformed(m),
            TokenError::AlgorithmNotAllowed => DenyReason::AlgorithmNotAllowed,
            TokenError::UnsupportedCritical => DenyReason::UnsupportedCritical,
            TokenError::UnknownKid => DenyReason::UnknownKid,
            TokenError::BadSignature => DenyReason::BadSignature,
        }
    }
}

impl From<ClaimError> for DenyReason {
    fn from(e: ClaimError) -> Self {
        match e {
            ClaimError::Malformed(name) => DenyReason::Malformed(Malformation::Claim(name)),
            ClaimError::MissingExp => DenyReason::MissingExp,
            ClaimError::Expired => DenyReason::Expired,
            ClaimError::NotYetValid => DenyReason::NotYetValid,
            ClaimError::IssuedInFuture => DenyReason::IssuedInFuture,
            ClaimError::LifetimeTooLong => DenyReason::LifetimeTooLong,
            ClaimError::Issuer => DenyReason::Issuer,
            ClaimError::Audience => DenyReason::Audience,
            ClaimError::Subject => DenyReason::Subject,
        }
    }
}

/// A refusal and the provider it concerns (when one does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: DenyReason,
    /// Index of the provider whose check failed.
    pub provider: Option<usize>,
}

/// A token found in the request. Its `Debug` form never shows the token.
#[derive(Clone, PartialEq, Eq)]
pub struct FoundToken {
    pub token: String,
    pub location: TokenLocation,
    /// The providers that look for a token there.
    pub providers: Vec<usize>,
}

impl fmt::Debug for FoundToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FoundToken")
            .field("token", &"<redacted>")
            .field("location", &self.location)
            .field("providers", &self.providers)
            .finish()
    }
}

/// The kind of a verified token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFormat {
    Jwt(JwsAlgorithm),
    PasetoV4Public,
}

/// A token that passed every check of its provider.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedToken {
    /// Index of the provider that verified it.
    pub provider: usize,
    pub format: TokenFormat,
    /// `kid` of the key that verified it.
    pub key_id: Option<Arc<str>>,
    pub claims: Claims,
    /// The payload, base64url-encoded (for `payload_header`).
    pub payload_b64: Arc<str>,
    pub location: TokenLocation,
}

/// Why a request was let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowBasis {
    /// Verified token(s) met the requirement.
    Verified,
    /// The route needs no token.
    NotRequired,
    /// A CORS preflight on a route that lets them through.
    CorsPreflight,
    /// No token, and the route allows that.
    MissingAllowed,
    /// A token failed, and the route allows that (`allow_missing_or_failed`).
    FailureAllowed(Failure),
    /// The mTLS peer is on the route's allow-list, and that is enough (`alone`, `or_token`).
    Peer(SpiffeId),
}

/// The decision for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Allow {
        basis: AllowBasis,
        /// Verified tokens (claims for upstream headers).
        tokens: Vec<VerifiedToken>,
        found: Vec<FoundToken>,
    },
    Deny {
        failure: Failure,
        found: Vec<FoundToken>,
    },
}

impl Outcome {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Outcome::Allow { .. })
    }

    /// The refusal, if the request is denied.
    pub fn denial(&self) -> Option<&Failure> {
        match self {
            Outcome::Deny { failure, .. } => Some(failure),
            Outcome::Allow { .. } => None,
        }
    }

    /// The metric label: `allowed`, or `denied_<reason>`.
    pub fn metric(&self) -> String {
        match self {
            Outcome::Allow { .. } => "allowed".to_owned(),
            Outcome::Deny { failure, .. } => format!("denied_{}", failure.reason.metric()),
        }
    }

    /// The answer to send instead of forwarding, if denied.
    pub fn response<'c>(&self, config: &'c TokenConfig) -> Option<Cow<'c, ErrorResponse>> {
        self.denial().map(|f| match f.reason {
            DenyReason::Missing => Cow::Borrowed(config.missing_reply()),
            ref reason => Cow::Owned(reason.response(config.realm())),
        })
    }

    /// The provider to refetch keys for, when a token named an unknown `kid`.
    pub fn unknown_kid_provider(&self) -> Option<usize> {
        let failure = match self {
            Outcome::Deny { failure, .. } => failure,
            Outcome::Allow {
                basis: AllowBasis::FailureAllowed(failure),
                ..
            } => failure,
            Outcome::Allow { .. } => return None,
        };
        match failure.reason {
            DenyReason::UnknownKid => failure.provider,
            _ => None,
        }
    }

    /// The verified tokens (empty when denied).
    pub fn tokens(&self) -> &[VerifiedToken] {
        match self {
            Outcome::Allow { tokens, .. } => tokens,
            Outcome::Deny { .. } => &[],
        }
    }

    /// Where to remove tokens before the upstream: every token found, unless one of its
    /// providers says `forward: true`.
    pub fn locations_to_strip(&self, config: &TokenConfig) -> Vec<TokenLocation> {
        let found = match self {
            Outcome::Allow { found, .. } | Outcome::Deny { found, .. } => found,
        };
        let mut out: Vec<TokenLocation> = Vec::new();
        for f in found {
            let forwarded = f
                .providers
                .iter()
                .any(|p| config.providers().get(*p).is_some_and(|p| p.forward));
            if !forwarded && !out.contains(&f.location) {
                out.push(f.location.clone());
            }
        }
        out
    }

    /// Headers to set upstream from the verified tokens' claims (and payloads), in provider
    /// order. Remove [`TokenConfig::claim_header_names`] from the request first.
    pub fn upstream_headers(&self, config: &TokenConfig) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for t in self.tokens() {
            let Some(p) = config.providers().get(t.provider) else {
                continue;
            };
            out.extend(claims_to_headers(&t.claims, &p.claim_to_headers));
            if let Some(h) = &p.payload_header {
                out.push((h.clone(), t.payload_b64.to_string()));
            }
        }
        out
    }
}
