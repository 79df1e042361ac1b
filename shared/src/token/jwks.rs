//! JSON Web Key Sets: keys, each bound to exactly one algorithm.
//!
//! A key's algorithm comes from its own `kty`/`crv`/`alg` (never from a token): an RSA key with
//! `alg: RS256` verifies RS256 and nothing else, so a token that says `PS256` or `HS256` for it is
//! refused. RSA keys that publish no `alg` are used for one configured algorithm (RS256 unless
//! configured). A key that cannot be used (unknown type, not for signatures, too weak, private
//! material) is skipped with a reason; a set with no usable key at all is an error.

use super::alg::JwsAlgorithm;
use base64ct::{Base64UrlUnpadded, Encoding};
use jwt_compact::alg::{Hs256Key, Hs384Key, Hs512Key, RsaPublicKey};
use rsa::traits::PublicKeyParts;
use serde_json::{Map, Value};
use std::fmt;

/// The smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// The key bytes of a [`VerificationKey`], ready for its algorithm.
#[derive(Clone)]
pub(crate) enum KeyMaterial {
    Hs256(Hs256Key),
    Hs384(Hs384Key),
    Hs512(Hs512Key),
    Rsa {
        key: RsaPublicKey,
        spki_der: Vec<u8>,
    },
    P256 {
        key: p256::ecdsa::VerifyingKey,
        spki_der: Vec<u8>,
    },
    P384 {
        key: p384::ecdsa::VerifyingKey,
        spki_der: Vec<u8>,
    },
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// One key that verifies one algorithm.
#[derive(Clone)]
pub struct VerificationKey {
    kid: Option<String>,
    alg: JwsAlgorithm,
    pub(crate) material: KeyMaterial,
}

impl fmt::Debug for VerificationKey {
    // Never prints key material (HMAC secrets).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// Why a key was not loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key type '{0}' is not supported")]
    UnsupportedKeyType(String),
    #[error("curve '{0}' is not supported")]
    UnsupportedCurve(String),
    #[error("the key is not for signatures (use '{0}')")]
    NotForSignatures(String),
    #[error("the key's key_ops do not include 'verify'")]
    NotForVerification,
    #[error("algorithm '{0}' is not supported")]
    UnsupportedAlgorithm(String),
    #[error("algorithm {alg} does not fit a key of type {kty}")]
    AlgorithmDoesNotFitKey { alg: String, kty: String },
    #[error("missing member '{0}'")]
    MissingMember(&'static str),
    #[error("member '{0}' is not valid base64url")]
    BadBase64(&'static str),
    #[error("member '{0}' has the wrong type")]
    WrongType(&'static str),
    #[error("the key is not a valid public key: {0}")]
    InvalidKey(String),
    #[error("the RSA key has {bits} bits; at least {min} are required")]
    WeakRsaKey { bits: usize, min: usize },
    #[error("the {alg} secret has {len} bytes; at least {min} are required")]
    ShortSecret {
        alg: JwsAlgorithm,
        len: usize,
        min: usize,
    },
    #[error("symmetric ('oct') keys are only accepted from inline configuration")]
    SymmetricNotAllowed,
    #[error("the key carries private key material; publish only public keys")]
    PrivateMaterial,
}

impl VerificationKey {
    /// The key's `kid`, if it has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The one algorithm this key verifies.
    pub fn algorithm(&self) -> JwsAlgorithm {
        self.alg
    }

    /// An HMAC key for `alg` from secret bytes (e.g. read by the filter from a VM environment
    /// variable). Secrets shorter than the hash output are refused (RFC 7518 §3.2).
    pub fn hmac(alg: JwsAlgorithm, secret: &[u8], kid: Option<String>) -> Result<Self, KeyError> {
        let min = alg.min_hmac_secret_len();
        if secret.len() < min {
            return Err(KeyError::ShortSecret {
                alg,
                len: secret.len(),
                min,
            });
        }
        let material = match alg {
            JwsAlgorithm::Hs256 => KeyMaterial::Hs256(Hs256Key::new(secret)),
            JwsAlgorithm::Hs384 => KeyMaterial::Hs384(Hs384Key::new(secret)),
            JwsAlgorithm::Hs512 => KeyMaterial::Hs512(Hs512Key::new(secret)),
            other => {
                return Err(KeyError::AlgorithmDoesNotFitKey {
                    alg: other.name().to_owned(),
                    kty: "oct".to_owned(),
                })
            }
        };
        Ok(VerificationKey { kid, alg, material })
    }

    /// The public key in DER (SubjectPublicKeyInfo) form, for RSA and EC keys.
    pub fn spki_der(&self) -> Option<&[u8]> {
        match &self.material {
            KeyMaterial::Rsa { spki_der, .. }
            | KeyMaterial::P256 { spki_der, .. }
            | KeyMaterial::P384 { spki_der, .. } => Some(spki_der),
            _ => None,
        }
    }
}

/// How a key set is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwksPolicy {
    /// The algorithm for RSA keys that publish no `alg` (RS256 unless configured).
    pub rsa_default_alg: JwsAlgorithm,
    /// Whether `oct` (HMAC) keys are accepted: only for inline configuration, never for keys
    /// fetched from a URI.
    pub allow_symmetric: bool,
    /// The smallest RSA modulus accepted, in bits.
    pub min_rsa_bits: usize,
}

impl Default for JwksPolicy {
    fn default() -> Self {
        JwksPolicy {
            rsa_default_alg: JwsAlgorithm::Rs256,
            allow_symmetric: false,
            min_rsa_bits: MIN_RSA_BITS,
        }
    }
}

/// The keys of one provider.
#[derive(Debug, Default, Clone)]
pub struct KeySet {
    keys: Vec<VerificationKey>,
}

impl KeySet {
    pub fn new(keys: Vec<VerificationKey>) -> Self {
        KeySet { keys }
    }

    pub fn keys(&self) -> &[VerificationKey] {
        &self.keys
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether any key has this `kid`.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// Adds keys from another set (e.g. an HMAC secret next to a JWKS).
    pub fn extend(&mut self, other: KeySet) {
        self.keys.extend(other.keys);
    }

    pub(crate) fn push(&mut self, key: VerificationKey) {
        self.keys.push(key);
    }
}

/// A key that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    /// Position in the `keys` array.
    pub index: usize,
    pub kid: Option<String>,
    pub reason: KeyError,
}

impl fmt::Display for SkippedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kid {
            Some(kid) => write!(f, "keys[{}] (kid '{}'): {}", self.index, kid, self.reason),
            None => write!(f, "keys[{}]: {}", self.index, self.reason),
        }
    }
}

/// A parsed key set and the keys that were left out.
#[derive(Debug)]
pub struct ParsedJwks {
    pub keys: KeySet,
    pub skipped: Vec<SkippedKey>,
}

/// Why a JWKS document was refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("the key set is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the key set is not valid JSON")]
    NotJson,
    #[error("the key set is not an object with a 'keys' array")]
    NotAKeySet,
    #[error("the key set has no usable key{}", describe_skipped(.skipped))]
    NoUsableKeys { skipped: Vec<SkippedKey> },
}

fn describe_skipped(skipped: &[SkippedKey]) -> String {
    if skipped.is_empty() {
        String::new()
    } else {
        let parts: Vec<String> = skipped.iter().map(ToString::to_string).collect();
        format!(": {}", parts.join("; "))
    }
}

/// Parses a JWKS document (`{"keys": [...]}`).
pub fn parse_jwks(bytes: &[u8], policy: &JwksPolicy) -> Result<ParsedJwks, JwksError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|_| JwksError::NotJson)?;
    parse_jwks_value(&value, policy)
}

/// Parses a JWKS document that is already JSON.
pub fn parse_jwks_value(value: &Value, policy: &JwksPolicy) -> Result<ParsedJwks, JwksError> {
    let Some(Value::Array(raw_keys)) = value.as_object().and_then(|o| o.get("keys")) else {
        return Err(JwksError::NotAKeySet);
    };
    let mut keys = KeySet::default();
    let mut skipped = Vec::new();
    for (index, raw) in raw_keys.iter().enumerate() {
        let kid = raw
            .get("kid")
            .and_then(Value::as_str)
            .map(ToOwned::to_owned);
        match raw
            .as_object()
            .ok_or(KeyError::WrongType("key"))
            .and_then(|jwk| parse_jwk(jwk, policy))
        {
            Ok(key) => keys.push(key),
            Err(reason) => skipped.push(SkippedKey { index, kid, reason }),
        }
    }
    if keys.is_empty() {
        return Err(JwksError::NoUsableKeys { skipped });
    }
    Ok(ParsedJwks { keys, skipped })
}

fn str_member<'a>(
    jwk: &'a Map<String, Value>,
    name: &'static str,
) -> Result<Option<&'a str>, KeyError> {
    match jwk.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(KeyError::WrongType(name)),
    }
}

/// An Ed25519 public key from its 32 bytes. Refused when the bytes are not a curve point, or are
/// a point of small order (the identity or another of the eight torsion points): for such a key
/// anyone can make a signature that verifies, for any message, in a few tries.
pub(crate) fn ed25519_key(bytes: &[u8]) -> Result<ed25519_dalek::VerifyingKey, KeyError> {
    let bytes: &[u8; 32] = bytes
        .try_into()
        .map_err(|_| KeyError::InvalidKey("an Ed25519 key has 32 bytes".to_owned()))?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(bytes)
        .map_err(|_| KeyError::InvalidKey("not an Ed25519 public key".to_owned()))?;
    if key.is_weak() {
        return Err(KeyError::InvalidKey(
            "an Ed25519 key of small order (anyone could sign for it)".to_owned(),
        ));
    }
    Ok(key)
}

fn b64_member(jwk: &Map<String, Value>, name: &'static str) -> Result<Vec<u8>, KeyError> {
    let s = str_member(jwk, name)?.ok_or(KeyError::MissingMember(name))?;
    // Some publishers pad JWK members; the value is the same.
    Base64UrlUnpadded::decode_vec(s.trim_end_matches('=')).map_err(|_| KeyError::BadBase64(name))
}

/// Parses one JWK (a JSON object) into a key bound to one algorithm.
pub fn parse_jwk(
    jwk: &Map<String, Value>,
    policy: &JwksPolicy,
) -> Result<VerificationKey, KeyError> {
    let kty = str_member(jwk, "kty")?.ok_or(KeyError::MissingMember("kty"))?;
    let kid = str_member(jwk, "kid")?.map(ToOwned::to_owned);
    if let Some(use_) = str_member(jwk, "use")? {
        if use_ != "sig" {
            return Err(KeyError::NotForSignatures(use_.to_owned()));
        }
    }
    if let Some(ops) = jwk.get("key_ops") {
        let ops = ops.as_array().ok_or(KeyError::WrongType("key_ops"))?;
        if !ops.iter().any(|op| op.as_str() == Some("verify")) {
            return Err(KeyError::NotForVerification);
        }
    }
    let alg = match str_member(jwk, "alg")? {
        None => None,
        Some(name) => Some(
            JwsAlgorithm::from_name(name)
                .ok_or_else(|| KeyError::UnsupportedAlgorithm(name.to_owned()))?,
        ),
    };
    let misfit = |alg: JwsAlgorithm| KeyError::AlgorithmDoesNotFitKey {
        alg: alg.name().to_owned(),
        kty: kty.to_owned(),
    };
    if kty != "oct" && jwk.contains_key("d") {
        return Err(KeyError::PrivateMaterial);
    }
    match kty {
        "RSA" => {
            let alg = alg.unwrap_or(policy.rsa_default_alg);
            if !alg.is_rsa() {
                return Err(misfit(alg));
            }
            let n = b64_member(jwk, "n")?;
            let e = b64_member(jwk, "e")?;
            let key = RsaPublicKey::new(
                rsa::BigUint::from_bytes_be(&n),
                rsa::BigUint::from_bytes_be(&e),
            )
            .map_err(|err| KeyError::InvalidKey(err.to_string()))?;
            let bits = key.n().bits();
            if bits < policy.min_rsa_bits {
                return Err(KeyError::WeakRsaKey {
                    bits,
                    min: policy.min_rsa_bits,
                });
            }
            let spki_der = rsa_spki_der(&key)?;
            Ok(VerificationKey {
                kid,
                alg,
                material: KeyMaterial::Rsa { key, spki_der },
            })
        }
        "EC" => {
            let crv = str_member(jwk, "crv")?.ok_or(KeyError::MissingMember("crv"))?;
            let (curve_alg, size) = match crv {
                "P-256" => (JwsAlgorithm::Es256, 32),
                "P-384" => (JwsAlgorithm::Es384, 48),
                other => return Err(KeyError::UnsupportedCurve(other.to_owned())),
            };
            if let Some(alg) = alg {
                if alg != curve_alg {
                    return Err(misfit(alg));
                }
            }
            let x = b64_member(jwk, "x")?;
            let y = b64_member(jwk, "y")?;
            if x.len() != size || y.len() != size {
                return Err(KeyError::InvalidKey(format!(
                    "{crv} coordinates must be {size} bytes each"
                )));
            }
            let mut sec1 = Vec::with_capacity(1 + 2 * size);
            sec1.push(0x04);
            sec1.extend_from_slice(&x);
            sec1.extend_from_slice(&y);
            let material = if curve_alg == JwsAlgorithm::Es256 {
                let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
                    .map_err(|_| KeyError::InvalidKey("not a point on P-256".to_owned()))?;
                let spki_der = ec_spki_der(&p256::PublicKey::from(&key))?;
                KeyMaterial::P256 { key, spki_der }
            } else {
                let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
                    .map_err(|_| KeyError::InvalidKey("not a point on P-384".to_owned()))?;
                let spki_der = ec_spki_der(&p384::PublicKey::from(&key))?;
                KeyMaterial::P384 { key, spki_der }
            };
            Ok(VerificationKey {
                kid,
                alg: curve_alg,
                material,
            })
        }
        "OKP" => {
            let crv = str_member(jwk, "crv")?.ok_or(KeyError::MissingMember("crv"))?;
            if crv != "Ed25519" {
                return Err(KeyError::UnsupportedCurve(crv.to_owned()));
            }
            if let Some(alg) = alg {
                if alg != JwsAlgorithm::EdDsa {
                    return Err(misfit(alg));
                }
            }
            let key = ed25519_key(&b64_member(jwk, "x")?)?;
            Ok(VerificationKey {
                kid,
                alg: JwsAlgorithm::EdDsa,
                material: KeyMaterial::Ed25519(key),
            })
        }
        "oct" => {
            if !policy.allow_symmetric {
                return Err(KeyError::SymmetricNotAllowed);
            }
            // A shared secret has no algorithm of its own: it must say which one.
            let alg = alg.ok_or(KeyError::MissingMember("alg"))?;
            if !alg.is_hmac() {
                return Err(misfit(alg));
            }
            let k = b64_member(jwk, "k")?;
            VerificationKey::hmac(alg, &k, kid)
        }
        other => Err(KeyError::UnsupportedKeyType(other.to_owned())),
    }
}

fn rsa_spki_der(key: &RsaPublicKey) -> Result<Vec<u8>, KeyError> {
    use rsa::pkcs8::EncodePublicKey;
    key.to_public_key_der()
        .map(|doc| doc.as_bytes().to_vec())
        .map_err(|e| KeyError::InvalidKey(e.to_string()))
}

fn ec_spki_der<K: p256::pkcs8::EncodePublicKey>(key: &K) -> Result<Vec<u8>, KeyError> {
    key.to_public_key_der()
        .map(|doc| doc.as_bytes().to_vec())
        .map_err(|e| KeyError::InvalidKey(e.to_string()))
}
