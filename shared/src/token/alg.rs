//! The JWS algorithms Palisade verifies, and the ES384 algorithm jwt-compact 0.8 lacks.
//!
//! Every key is bound to exactly one [`JwsAlgorithm`] when it is loaded (see `jwks.rs`); a token's
//! `alg` header only has to agree with it. `none` is not an algorithm here, so it cannot be chosen.

use jwt_compact::{Algorithm, AlgorithmSignature};
use p384::ecdsa::signature::Verifier;
use std::borrow::Cow;
use std::fmt;
use std::num::NonZeroUsize;

/// A JWS signature algorithm (RFC 7518 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JwsAlgorithm {
    Hs256,
    Hs384,
    Hs512,
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    EdDsa,
}

impl JwsAlgorithm {
    /// All supported algorithms.
    pub const ALL: [JwsAlgorithm; 12] = [
        JwsAlgorithm::Hs256,
        JwsAlgorithm::Hs384,
        JwsAlgorithm::Hs512,
        JwsAlgorithm::Rs256,
        JwsAlgorithm::Rs384,
        JwsAlgorithm::Rs512,
        JwsAlgorithm::Ps256,
        JwsAlgorithm::Ps384,
        JwsAlgorithm::Ps512,
        JwsAlgorithm::Es256,
        JwsAlgorithm::Es384,
        JwsAlgorithm::EdDsa,
    ];

    /// The name used in the `alg` header and in JWKs.
    pub fn name(self) -> &'static str {
        match self {
            JwsAlgorithm::Hs256 => "HS256",
            JwsAlgorithm::Hs384 => "HS384",
            JwsAlgorithm::Hs512 => "HS512",
            JwsAlgorithm::Rs256 => "RS256",
            JwsAlgorithm::Rs384 => "RS384",
            JwsAlgorithm::Rs512 => "RS512",
            JwsAlgorithm::Ps256 => "PS256",
            JwsAlgorithm::Ps384 => "PS384",
            JwsAlgorithm::Ps512 => "PS512",
            JwsAlgorithm::Es256 => "ES256",
            JwsAlgorithm::Es384 => "ES384",
            JwsAlgorithm::EdDsa => "EdDSA",
        }
    }

    /// The algorithm with this exact (case-sensitive) name; `none` and unknown names give `None`.
    pub fn from_name(name: &str) -> Option<Self> {
        JwsAlgorithm::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Whether this is an HMAC algorithm (shared secret).
    pub fn is_hmac(self) -> bool {
        matches!(
            self,
            JwsAlgorithm::Hs256 | JwsAlgorithm::Hs384 | JwsAlgorithm::Hs512
        )
    }

    /// Whether this is an RSA algorithm (PKCS#1 v1.5 or PSS).
    pub fn is_rsa(self) -> bool {
        matches!(
            self,
            JwsAlgorithm::Rs256
                | JwsAlgorithm::Rs384
                | JwsAlgorithm::Rs512
                | JwsAlgorithm::Ps256
                | JwsAlgorithm::Ps384
                | JwsAlgorithm::Ps512
        )
    }

    /// The smallest HMAC secret RFC 7518 §3.2 allows for this algorithm, in bytes.
    pub fn min_hmac_secret_len(self) -> usize {
        match self {
            JwsAlgorithm::Hs384 => 48,
            JwsAlgorithm::Hs512 => 64,
            _ => 32,
        }
    }
}

impl fmt::Display for JwsAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `ES384`: ECDSA on P-384 with SHA-384, as a jwt-compact [`Algorithm`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Es384;

/// An ES384 signature (`r || s`, 96 bytes).
#[derive(Debug, Clone)]
pub struct Es384Signature(pub p384::ecdsa::Signature);

impl AlgorithmSignature for Es384Signature {
    const LENGTH: Option<NonZeroUsize> = NonZeroUsize::new(96);

    fn try_from_slice(bytes: &[u8]) -> anyhow::Result<Self> {
        p384::ecdsa::Signature::from_slice(bytes)
            .map(Es384Signature)
            .map_err(|_| anyhow::anyhow!("malformed ES384 signature"))
    }

    fn as_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.0.to_bytes().to_vec())
    }
}

impl Algorithm for Es384 {
    type SigningKey = p384::ecdsa::SigningKey;
    type VerifyingKey = p384::ecdsa::VerifyingKey;
    type Signature = Es384Signature;

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed("ES384")
    }

    fn sign(&self, signing_key: &Self::SigningKey, message: &[u8]) -> Self::Signature {
        use p384::ecdsa::signature::Signer;
        Es384Signature(signing_key.sign(message))
    }

    fn verify_signature(
        &self,
        signature: &Self::Signature,
        verifying_key: &Self::VerifyingKey,
        message: &[u8],
    ) -> bool {
        verifying_key.verify(message, &signature.0).is_ok()
    }
}
