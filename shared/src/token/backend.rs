//! A seam for signature checks done by the host.
//!
//! Envoy (1.40) lets wasm modules verify RSA PKCS#1 v1.5 and ECDSA signatures with BoringSSL
//! through the foreign function `verify_signature` (arguments: hash name, DER public key,
//! signature, text). That is 20-30 times faster than pure Rust inside V8. The filter may implement
//! [`SignatureBackend`] on top of it; the core decides which key and which algorithm (the key's
//! own), and falls back to its pure-Rust path whenever the backend declines.

use super::alg::JwsAlgorithm;

/// The hash a host check uses, with the name Envoy's `verify_signature` expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashFunction {
    Sha256,
    Sha384,
    Sha512,
}

impl HashFunction {
    /// `sha256`, `sha384` or `sha512`.
    pub fn name(self) -> &'static str {
        match self {
            HashFunction::Sha256 => "sha256",
            HashFunction::Sha384 => "sha384",
            HashFunction::Sha512 => "sha512",
        }
    }
}

/// The signature schemes a host may check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostScheme {
    /// RSASSA-PKCS1-v1_5 (RS256/384/512); the signature is the raw RSA signature.
    RsaPkcs1v15,
    /// ECDSA (ES256 on P-256, ES384 on P-384); the signature is DER-encoded.
    Ecdsa,
}

/// One signature check the core asks the host to do.
#[derive(Debug, Clone, Copy)]
pub struct HostCheck<'a> {
    /// The JWS algorithm, bound to the key by the core.
    pub algorithm: JwsAlgorithm,
    pub scheme: HostScheme,
    pub hash: HashFunction,
    /// The public key, DER SubjectPublicKeyInfo.
    pub public_key_der: &'a [u8],
    /// The signed bytes (for a JWS: `header.payload`, as sent).
    pub message: &'a [u8],
    /// The signature (DER for ECDSA, see [`ecdsa_raw_to_der`]).
    pub signature: &'a [u8],
}

impl<'a> HostCheck<'a> {
    /// The scheme and hash for an algorithm, if a host can check it.
    pub fn scheme_for(algorithm: JwsAlgorithm) -> Option<(HostScheme, HashFunction)> {
        match algorithm {
            JwsAlgorithm::Rs256 => Some((HostScheme::RsaPkcs1v15, HashFunction::Sha256)),
            JwsAlgorithm::Rs384 => Some((HostScheme::RsaPkcs1v15, HashFunction::Sha384)),
            JwsAlgorithm::Rs512 => Some((HostScheme::RsaPkcs1v15, HashFunction::Sha512)),
            JwsAlgorithm::Es256 => Some((HostScheme::Ecdsa, HashFunction::Sha256)),
            JwsAlgorithm::Es384 => Some((HostScheme::Ecdsa, HashFunction::Sha384)),
            _ => None,
        }
    }
}

/// What the host said about a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostVerdict {
    Valid,
    Invalid,
    /// The host cannot check this (no foreign function, an error calling it): use pure Rust.
    Unavailable,
}

/// Signature checks by the host. The core only asks for RSA PKCS#1 v1.5 and ECDSA.
pub trait SignatureBackend {
    fn verify(&self, check: &HostCheck<'_>) -> HostVerdict;
}

/// The default backend: everything is checked in pure Rust.
#[derive(Debug, Default, Clone, Copy)]
pub struct PureRust;

impl SignatureBackend for PureRust {
    fn verify(&self, _check: &HostCheck<'_>) -> HostVerdict {
        HostVerdict::Unavailable
    }
}

/// Why a raw ECDSA signature could not be converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EcdsaSignatureError {
    #[error("a raw {alg} signature has {expected} bytes, not {actual}")]
    WrongLength {
        alg: JwsAlgorithm,
        expected: usize,
        actual: usize,
    },
    #[error("{0} is not an ECDSA algorithm")]
    NotEcdsa(JwsAlgorithm),
    #[error("r or s is out of range")]
    OutOfRange,
}

/// Converts a JWS ECDSA signature (`r || s`, fixed width: 64 bytes for ES256, 96 for ES384) to the
/// DER `SEQUENCE { INTEGER r, INTEGER s }` that BoringSSL verifies. The length must be exact and
/// both `r` and `s` must be in `[1, n-1]` for the curve.
pub fn ecdsa_raw_to_der(alg: JwsAlgorithm, raw: &[u8]) -> Result<Vec<u8>, EcdsaSignatureError> {
    let expected = match alg {
        JwsAlgorithm::Es256 => 64,
        JwsAlgorithm::Es384 => 96,
        other => return Err(EcdsaSignatureError::NotEcdsa(other)),
    };
    if raw.len() != expected {
        return Err(EcdsaSignatureError::WrongLength {
            alg,
            expected,
            actual: raw.len(),
        });
    }
    // The curve crates check the range of r and s and encode DER.
    let der = if alg == JwsAlgorithm::Es256 {
        p256::ecdsa::Signature::from_slice(raw)
            .map_err(|_| EcdsaSignatureError::OutOfRange)?
            .to_der()
            .as_bytes()
            .to_vec()
    } else {
        p384::ecdsa::Signature::from_slice(raw)
            .map_err(|_| EcdsaSignatureError::OutOfRange)?
            .to_der()
            .as_bytes()
            .to_vec()
    };
    Ok(der)
}
