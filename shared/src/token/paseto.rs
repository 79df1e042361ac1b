//! PASETO v4.public (Ed25519 over PAE(header, payload, footer, implicit assertion)).
//!
//! Verification is pasetors' (`version4::PublicToken::verify`); claims are read here: `exp`, `nbf`
//! and `iat` are RFC 3339 strings in PASETO. A footer that is a JSON object with a string `kid`
//! picks the key; the footer is authenticated either way, and an `expected_footer` from the
//! config must match it exactly. Only `v4.public.` tokens are accepted.

use super::claims::{ClaimError, Claims, TimeFormat};
use super::error::{Malformation, Part, TokenError};
use super::jwks::{self, KeyError};
use super::strict_json::parse_object;
use base64ct::{Base64UrlUnpadded, Encoding};
use pasetors::keys::AsymmetricPublicKey;
use pasetors::token::UntrustedToken;
use pasetors::version4::{PublicToken, V4};
use pasetors::Public;
use serde_json::Value;
use std::fmt;

/// The prefix of every token this module verifies.
pub const V4_PUBLIC: &str = "v4.public.";

/// Whether a string is a PASETO token of any version or purpose (`v1.local.` … `v4.public.`).
pub fn looks_like_paseto(token: &str) -> bool {
    let b = token.as_bytes();
    b.len() > 3 && b[0] == b'v' && b[1].is_ascii_digit() && b[2] == b'.'
}

/// A v4.public verification key, with an optional `kid` matched against the footer's.
#[derive(Clone)]
pub struct PasetoKey {
    kid: Option<String>,
    key: AsymmetricPublicKey<V4>,
}

impl fmt::Debug for PasetoKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasetoKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl PasetoKey {
    /// A key from its PASERK form (`k4.public.<base64url>`) or 64 hex digits.
    pub fn parse(text: &str, kid: Option<String>) -> Result<Self, KeyError> {
        let bytes = if let Some(b64) = text.strip_prefix("k4.public.") {
            Base64UrlUnpadded::decode_vec(b64).map_err(|_| KeyError::BadBase64("public_key"))?
        } else {
            decode_hex(text).ok_or(KeyError::InvalidKey(
                "expected 'k4.public.<base64url>' or 64 hex digits".to_owned(),
            ))?
        };
        Self::from_bytes(&bytes, kid)
    }

    /// A key from the 32 bytes of an Ed25519 public key.
    pub fn from_bytes(bytes: &[u8], kid: Option<String>) -> Result<Self, KeyError> {
        // Refuse what is not a curve point, or is one anyone could sign for, now rather than
        // failing (or passing) tokens later.
        jwks::ed25519_key(bytes)?;
        let key = AsymmetricPublicKey::<V4>::from(bytes)
            .map_err(|_| KeyError::InvalidKey("not a v4.public key".to_owned()))?;
        Ok(PasetoKey { kid, key })
    }

    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// What a provider expects of its PASETO tokens besides the signature.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PasetoRules {
    /// The implicit assertion (bound into the signature, never sent).
    pub implicit_assertion: Option<Vec<u8>>,
    /// The footer every token must carry, exactly.
    pub expected_footer: Option<Vec<u8>>,
}

/// A parsed v4.public token whose signature has not been checked.
pub struct UntrustedPaseto {
    token: UntrustedToken<Public, V4>,
    claims: Claims,
    footer_kid: Option<String>,
}

impl fmt::Debug for UntrustedPaseto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UntrustedPaseto")
            .field("footer_kid", &self.footer_kid)
            .finish_non_exhaustive()
    }
}

/// A v4.public token whose signature was checked.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedPaseto {
    pub key_id: Option<String>,
    pub claims: Claims,
    /// The footer (authenticated), possibly empty.
    pub footer: Vec<u8>,
    /// The payload JSON, base64url-encoded, for forwarding it upstream.
    pub payload_b64: String,
}

impl UntrustedPaseto {
    /// Parses a `v4.public.` token of at most `max_size` bytes.
    pub fn parse(token: &str, max_size: usize) -> Result<Self, TokenError> {
        if token.len() > max_size {
            return Err(TokenError::TooLarge { limit: max_size });
        }
        if !token.starts_with(V4_PUBLIC) {
            // v1-v3, or a `local` (encrypted) token: not something we verify.
            return Err(if looks_like_paseto(token) {
                TokenError::AlgorithmNotAllowed
            } else {
                TokenError::Malformed(Malformation::Structure)
            });
        }
        let untrusted = UntrustedToken::<Public, V4>::try_from(token).map_err(|e| match e {
            pasetors::errors::Error::Base64 => {
                TokenError::Malformed(Malformation::Base64(Part::Payload))
            }
            _ => TokenError::Malformed(Malformation::Structure),
        })?;
        let map = parse_object(untrusted.untrusted_payload())
            .map_err(|e| TokenError::Malformed(Malformation::Json(Part::Payload, e)))?;
        let claims = Claims::from_map(map, TimeFormat::Rfc3339).map_err(|e| match e {
            ClaimError::Malformed(name) => TokenError::Malformed(Malformation::Claim(name)),
            _ => TokenError::Malformed(Malformation::Claim("payload")),
        })?;
        let footer = untrusted.untrusted_footer();
        let footer_kid = if footer.first() == Some(&b'{') {
            let obj = parse_object(footer)
                .map_err(|e| TokenError::Malformed(Malformation::Json(Part::Footer, e)))?;
            match obj.get("kid") {
                None => None,
                Some(Value::String(k)) => Some(k.clone()),
                Some(_) => return Err(TokenError::Malformed(Malformation::HeaderMember("kid"))),
            }
        } else {
            None
        };
        Ok(UntrustedPaseto {
            token: untrusted,
            claims,
            footer_kid,
        })
    }

    /// The footer's `kid` (untrusted: only for choosing a key).
    pub fn kid(&self) -> Option<&str> {
        self.footer_kid.as_deref()
    }

    /// The `iss` claim (untrusted: only for choosing a provider).
    pub fn untrusted_issuer(&self) -> Option<&str> {
        self.claims.issuer()
    }

    /// Checks the signature with the keys whose `kid` fits the footer's.
    pub fn verify(
        &self,
        keys: &[PasetoKey],
        rules: &PasetoRules,
    ) -> Result<VerifiedPaseto, TokenError> {
        let fits = |k: &PasetoKey| match (self.footer_kid.as_deref(), k.kid()) {
            (Some(want), Some(have)) => want == have,
            _ => true,
        };
        let mut tried = false;
        for key in keys.iter().filter(|k| fits(k)) {
            tried = true;
            let verified = PublicToken::verify(
                &key.key,
                &self.token,
                rules.expected_footer.as_deref(),
                rules.implicit_assertion.as_deref(),
            );
            if verified.is_ok() {
                return Ok(VerifiedPaseto {
                    key_id: key.kid.clone(),
                    payload_b64: Base64UrlUnpadded::encode_string(self.token.untrusted_payload()),
                    footer: self.token.untrusted_footer().to_vec(),
                    claims: self.claims.clone(),
                });
            }
        }
        match (tried, self.footer_kid.as_deref()) {
            (true, _) => Err(TokenError::BadSignature),
            (false, Some(_)) => Err(TokenError::UnknownKid),
            (false, None) => Err(TokenError::AlgorithmNotAllowed),
        }
    }
}
