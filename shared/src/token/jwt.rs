//! Compact JWS (JWT) parsing and signature checks.
//!
//! The token is parsed by hand, strictly (three parts, unpadded base64url, JSON objects without
//! duplicate names), and the signature is checked with jwt-compact's algorithms and the key's own
//! algorithm. The `alg` header only has to agree with the key; `none` and unknown names are
//! refused; `jwk`, `jku`, `x5u` and `x5c` headers are never read; any `crit` extension is
//! refused, since we implement none.

use super::alg::{Es384, JwsAlgorithm};
use super::backend::{ecdsa_raw_to_der, HostCheck, HostVerdict, SignatureBackend};
use super::claims::{ClaimError, Claims, TimeFormat};
use super::error::{Malformation, Part, TokenError};
use super::jwks::{KeyMaterial, KeySet, VerificationKey};
use super::strict_json::parse_object;
use jwt_compact::alg::{Ed25519, Es256, Hs256, Hs384, Hs512, Rsa};
use jwt_compact::{Algorithm, AlgorithmSignature};
use serde_json::Value;

/// A parsed JWT whose signature has not been checked. Nothing in it is to be trusted yet.
#[derive(Debug)]
pub struct UntrustedJwt<'a> {
    signing_input: &'a str,
    payload_b64: &'a str,
    alg: String,
    kid: Option<String>,
    claims: Claims,
    signature: Vec<u8>,
}

/// A JWT whose signature was checked with one of the provider's keys.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedJwt {
    pub algorithm: JwsAlgorithm,
    /// The `kid` of the key that verified it.
    pub key_id: Option<String>,
    /// The claims (types checked; times, issuer and audience are checked separately).
    pub claims: Claims,
    /// The payload as sent (base64url), for forwarding it upstream.
    pub payload_b64: String,
}

/// Whether a string looks like a JWT (three dot-separated parts) rather than a PASETO.
pub fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|b| *b == b'.').count() == 2
}

/// base64url without padding, canonical only (trailing bits must be zero). A token's parts are
/// public, so the table-driven decoder is used rather than a constant-time one (several times
/// slower for nothing to hide).
fn decode_part(s: &str, part: Part) -> Result<Vec<u8>, TokenError> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| TokenError::Malformed(Malformation::Base64(part)))
}

impl<'a> UntrustedJwt<'a> {
    /// Parses a compact JWS of at most `max_size` bytes.
    pub fn parse(token: &'a str, max_size: usize) -> Result<Self, TokenError> {
        if token.len() > max_size {
            return Err(TokenError::TooLarge { limit: max_size });
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed(Malformation::Structure));
        };
        if h.is_empty() || p.is_empty() {
            return Err(TokenError::Malformed(Malformation::Structure));
        }
        let header_bytes = decode_part(h, Part::Header)?;
        let header = parse_object(&header_bytes)
            .map_err(|e| TokenError::Malformed(Malformation::Json(Part::Header, e)))?;
        let alg = match header.get("alg") {
            Some(Value::String(a)) => a.clone(),
            _ => return Err(TokenError::Malformed(Malformation::HeaderMember("alg"))),
        };
        if alg.eq_ignore_ascii_case("none") || JwsAlgorithm::from_name(&alg).is_none() {
            return Err(TokenError::AlgorithmNotAllowed);
        }
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(k)) => Some(k.clone()),
            Some(_) => return Err(TokenError::Malformed(Malformation::HeaderMember("kid"))),
        };
        if let Some(crit) = header.get("crit") {
            let well_formed = crit
                .as_array()
                .is_some_and(|c| !c.is_empty() && c.iter().all(Value::is_string));
            if !well_formed {
                return Err(TokenError::Malformed(Malformation::HeaderMember("crit")));
            }
            return Err(TokenError::UnsupportedCritical);
        }
        let payload = decode_part(p, Part::Payload)?;
        let map = parse_object(&payload)
            .map_err(|e| TokenError::Malformed(Malformation::Json(Part::Payload, e)))?;
        let claims = Claims::from_map(map, TimeFormat::NumericDate).map_err(|e| match e {
            ClaimError::Malformed(name) => TokenError::Malformed(Malformation::Claim(name)),
            _ => TokenError::Malformed(Malformation::Claim("payload")),
        })?;
        if s.is_empty() {
            return Err(TokenError::Malformed(Malformation::SignatureLength));
        }
        let signature = decode_part(s, Part::Signature)?;
        let signing_input = &token[..h.len() + 1 + p.len()];
        Ok(UntrustedJwt {
            signing_input,
            payload_b64: p,
            alg,
            kid,
            claims,
            signature,
        })
    }

    /// The `alg` header.
    pub fn alg(&self) -> &str {
        &self.alg
    }

    /// The `kid` header (untrusted: only for choosing a key).
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The `iss` claim (untrusted: only for choosing a provider).
    pub fn untrusted_issuer(&self) -> Option<&str> {
        self.claims.issuer()
    }

    /// Checks the signature with the keys whose algorithm and `kid` fit the token.
    pub fn verify(
        &self,
        keys: &KeySet,
        backend: &dyn SignatureBackend,
    ) -> Result<VerifiedJwt, TokenError> {
        let alg = JwsAlgorithm::from_name(&self.alg).ok_or(TokenError::AlgorithmNotAllowed)?;
        let kid_fits = |key: &VerificationKey| match (self.kid.as_deref(), key.kid()) {
            (Some(want), Some(have)) => want == have,
            _ => true,
        };
        let mut tried = false;
        for key in keys.keys() {
            if key.algorithm() != alg || !kid_fits(key) {
                continue;
            }
            tried = true;
            if verify_with(key, self.signing_input.as_bytes(), &self.signature, backend) {
                return Ok(VerifiedJwt {
                    algorithm: alg,
                    key_id: key.kid().map(ToOwned::to_owned),
                    claims: self.claims.clone(),
                    payload_b64: self.payload_b64.to_owned(),
                });
            }
        }
        if tried {
            Err(TokenError::BadSignature)
        } else if self.kid.is_none() || keys.keys().iter().any(kid_fits) {
            // A key could be used for this kid, but not with this algorithm.
            Err(TokenError::AlgorithmNotAllowed)
        } else {
            Err(TokenError::UnknownKid)
        }
    }
}

fn parse_sig<A: Algorithm>(bytes: &[u8]) -> Option<A::Signature> {
    // jwt-compact's HMAC signatures panic on a wrong length; check it first.
    if let Some(len) = A::Signature::LENGTH {
        if bytes.len() != len.get() {
            return None;
        }
    }
    A::Signature::try_from_slice(bytes).ok()
}

fn check<A: Algorithm>(alg: &A, key: &A::VerifyingKey, message: &[u8], sig: &[u8]) -> bool {
    parse_sig::<A>(sig).is_some_and(|s| alg.verify_signature(&s, key, message))
}

fn host_check(
    alg: JwsAlgorithm,
    der: &[u8],
    message: &[u8],
    signature: &[u8],
    backend: &dyn SignatureBackend,
) -> HostVerdict {
    let Some((scheme, hash)) = HostCheck::scheme_for(alg) else {
        return HostVerdict::Unavailable;
    };
    let ecdsa_der;
    let signature = if matches!(alg, JwsAlgorithm::Es256 | JwsAlgorithm::Es384) {
        match ecdsa_raw_to_der(alg, signature) {
            Ok(der) => {
                ecdsa_der = der;
                ecdsa_der.as_slice()
            }
            Err(_) => return HostVerdict::Invalid,
        }
    } else {
        signature
    };
    backend.verify(&HostCheck {
        algorithm: alg,
        scheme,
        hash,
        public_key_der: der,
        message,
        signature,
    })
}

/// Verifies `signature` over `message` with `key`, using the key's own algorithm.
pub(crate) fn verify_with(
    key: &VerificationKey,
    message: &[u8],
    signature: &[u8],
    backend: &dyn SignatureBackend,
) -> bool {
    let alg = key.algorithm();
    match (&key.material, alg) {
        (KeyMaterial::Hs256(k), JwsAlgorithm::Hs256) => check(&Hs256, k, message, signature),
        (KeyMaterial::Hs384(k), JwsAlgorithm::Hs384) => check(&Hs384, k, message, signature),
        (KeyMaterial::Hs512(k), JwsAlgorithm::Hs512) => check(&Hs512, k, message, signature),
        (KeyMaterial::Rsa { key: k, spki_der }, _) if alg.is_rsa() => {
            match host_check(alg, spki_der, message, signature, backend) {
                HostVerdict::Valid => true,
                HostVerdict::Invalid => false,
                HostVerdict::Unavailable => {
                    let rsa = match alg {
                        JwsAlgorithm::Rs256 => Rsa::rs256(),
                        JwsAlgorithm::Rs384 => Rsa::rs384(),
                        JwsAlgorithm::Rs512 => Rsa::rs512(),
                        JwsAlgorithm::Ps256 => Rsa::ps256(),
                        JwsAlgorithm::Ps384 => Rsa::ps384(),
                        _ => Rsa::ps512(),
                    };
                    check(&rsa, k, message, signature)
                }
            }
        }
        (KeyMaterial::P256 { key: k, spki_der }, JwsAlgorithm::Es256) => {
            if signature.len() != 64 {
                return false;
            }
            match host_check(alg, spki_der, message, signature, backend) {
                HostVerdict::Valid => true,
                HostVerdict::Invalid => false,
                HostVerdict::Unavailable => check(&Es256, k, message, signature),
            }
        }
        (KeyMaterial::P384 { key: k, spki_der }, JwsAlgorithm::Es384) => {
            if signature.len() != 96 {
                return false;
            }
            match host_check(alg, spki_der, message, signature, backend) {
                HostVerdict::Valid => true,
                HostVerdict::Invalid => false,
                HostVerdict::Unavailable => check::<Es384>(&Es384, k, message, signature),
            }
        }
        (KeyMaterial::Ed25519(k), JwsAlgorithm::EdDsa) => check(&Ed25519, k, message, signature),
        _ => false,
    }
}
