//! Keys, JWKs and token minting shared by the `token_*` test crates (included with `#[path]`).
//!
//! Tokens are signed with the crates' own signing APIs over bytes we choose, so tests can also
//! build tokens no well-behaved library would (duplicate claims, `alg: none`, `crit`, ...).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64ct::{Base64UrlUnpadded, Encoding};
use jwt_compact::alg::{Ed25519, Es256, Hs256, Hs256Key, Hs384, Hs384Key, Hs512, Hs512Key, Rsa};
use jwt_compact::{Algorithm, AlgorithmSignature};
use palisade::token::alg::{Es384, JwsAlgorithm};
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{json, Value};

/// A 2048-bit RSA test key (generated for these tests with `openssl genpkey`).
pub const RSA_2048_PEM: &str = r"-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDHny6gZnVC/IE0
UsTQ9t/YwF5AV/Ovih7vNlXvN+uaCmZv+fG39w/T83Lls1C/1njw5ZpyedzJdIff
0lCe07+JHf0m76iyu3fpHiqreX0zOBtMgrsGNQg1AsM3td+sZ+/7M5enEAy7AGoZ
TgWJfBU7FHLIp2lvwN5bjfpB412jAwopFTh2C1Y1iPOfu62Wn91YwOLzG/h0OTm8
b7ubiBZGaoX8stzooGgLljOXgiYtXPt+Mf6vMQMoW4fP7hYGRG8n4MwYsoGRw+UO
qdN48krHyrCzR32Zw8Bor1NpcsUrGI5Ud5G8bi1jOcbSy3PgB6EaP/T7h9tc9jUZ
U1bB0viJAgMBAAECggEAVoqQMEG6/HtzmDd51A3zJYjgU4zNvIBowNQRlU/s+C8i
EdGOFW8qkXythx+iFkjozab8ujxSl5PJhCMtiG3MT6mMomCsBjB337yQSx60RIxC
aX0Tj7FWCYVVFMXoXloBFCpdyLOQkVGwrZ/BjsUYfzByQsMxVp2KyK5YnE/xvEVE
tpupiOvKqk9E6xUXt7GUejzSIw78M4pDPE1iiBGxibyNbV84NN2+tGUHCVdfwym+
QiuWdBN/y6tjewLXc2AEnviZOjfrvKnAwK0OJmHKTcM86Ew4k0nYx7LbsNRyCKx4
dW0JkQtE/GO7QZmu6AS/X+2d2/vlwkh7aBskspFPsQKBgQDwSZw/L3XpvtEXIUui
kjM0uj6ILRu5R8oebF+uxClu/H9kBKpk6j5TYl1WenLSlBPeGndmcbE2xSnXwieE
aunvw0b9nRZxnSinXY7+6NZf7FtWaTqMdfQpcRYDW6peGDG0yZK8CCTjOO/9H6cN
zPNa5TK6KXpezVMlPRgU3PXOvwKBgQDUrNTXWxRBjk7FuxOk+lI9Lql0sCZiiw5G
d4Wprdktw2TsUobHUcPBh+wsYfLhU1ove6S/hy+JNt7x6lOKFx+bQwkZh/Ych1D7
yWqQV5jdolT7ipcLKn4i3WZ21j4D17Me3loDdSu3u7UoVOwZE0xuh/kswAQsGQFn
AJwqKd1StwKBgFNu+9XkwOic3TVO1lhos2cHlFbscsfu6XuO3dptOoXTHti31gKc
Y2/Io+g3NE9yI0PnpLXpnEMMSu8j91y/UuNxxuCg/v4MN+WFUvWoG2fLRhvHBhFn
k5QgNCiOV6W8eOXxaAXqPgS37HzT1Mmx9H4HP4nshRUN7mTrxcTYxHE5AoGAF+JR
BN51p+cTcaFQ03ZJRhW3ciNWLDrxn3hMyoF7omgPLXsXJ8tG8LUTEOjvHd7+gdag
6eGEtSQ0ZXaraxattgIRQ4zBVvLbZWt5TDyKLlnMsXMfA2ICSGgU2cO1szjGJPFT
qo++GSQ7dAwVd7tzGfarRRtLXKhyP98RqqqI8IECgYEAo/6WjvqsMfqIt853D+2c
Ksr9ZXE9Wtccu2mQWLYRrz9mfy2WHZvwwmApiWRD1ZVS4OUy9BYFOXOPKjFGnbGt
Vum60OhmZbsc5A0jzOpq+faooM92gFMuX5BdjE7Ia8bYMhy/SbE1/9Ub40cybfVu
pPjRma1lGo9/FqKc9qAh1WM=
-----END PRIVATE KEY-----";

/// A 1024-bit RSA test key: too weak to be accepted.
pub const RSA_1024_PEM: &str = r"-----BEGIN PRIVATE KEY-----
MIICdQIBADANBgkqhkiG9w0BAQEFAASCAl8wggJbAgEAAoGBAKbPww42Lrp2cYb3
TMv19oPnaYaBQ/AhZb3JQYYnN9/reQY6RIUGPKBB9zROCGOXGpCgP1ytwfhxoSch
3poR7a7TpjcTyxF/lNBe8Oj41ewqQ3QvEz52k/Rkc6D4c20lgeIYQTZ8lBTTbaYp
gZ/Z8lpoGkN6stGObGKuIVX/aA4lAgMBAAECgYAO+Avf5ZrR3rkXTG/Wya6ibYy5
pjXrgYO4wSuhFznbXS0SEv59FW8xTloZlnsIPNIEcmzdKzaBzeiRM2ffWYaDiaHa
UXDa9Uy2qEwp6TtJ5nnFPzzGIcdiZsA4c3xWw+qAkbd9X7NE5KMwxr8hj1rZ5rkG
fr/qY4JKvoUqVswAzQJBANAFfR9oEvxVMD/xboep68SjxGPyUl6PhGMnDNQg2dST
vdPms8+sx17j05K5w+5I2gTTO0YI5zmEhJAAGh/j9+cCQQDNSQ8hTVenyNV9B9O0
dejmqTtZsEAgTyCOkgs1kdBKY5upCTFEGUrvPu7Xu0P6yuvhx2R/x1XrW/6kje83
6RgTAkB6zmK5wdVDhn8/oKaiDJyVsCDm6E3caVm8t3cJXIN8zePJT29j8RqaWGG1
Q1n6OKQNKS7a/7KR8DvaT1Uc8paNAkAG6cHvrioYhWPjHQNdHWdldSeBgrT2IZQI
GRT1jd6E0svoKl4VXACxA96JN043wOOmq89PmkfjcCqoIft/V4MvAkB70SCkKVTv
cZgFIjJm5Ky5J+FbA/hIOLrbnGqAamuttD8y5NQV7Pwqwb5FFYGDxq+5AtxId5m8
V0yWY95grtGr
-----END PRIVATE KEY-----";

/// A fixed "now" for tests: 2026-01-01T00:00:00Z.
pub const NOW: u64 = 1_767_225_600;

pub fn b64(bytes: &[u8]) -> String {
    Base64UrlUnpadded::encode_string(bytes)
}

pub fn b64_decode(text: &str) -> Vec<u8> {
    Base64UrlUnpadded::decode_vec(text).unwrap()
}

pub fn rsa_key() -> RsaPrivateKey {
    RsaPrivateKey::from_pkcs8_pem(RSA_2048_PEM).unwrap()
}

pub fn weak_rsa_key() -> RsaPrivateKey {
    RsaPrivateKey::from_pkcs8_pem(RSA_1024_PEM).unwrap()
}

pub fn p256_key(seed: u8) -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap()
}

pub fn p384_key(seed: u8) -> p384::ecdsa::SigningKey {
    p384::ecdsa::SigningKey::from_slice(&[seed; 48]).unwrap()
}

pub fn ed_key(seed: u8) -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
}

/// An HMAC secret long enough for any HS algorithm.
pub fn hmac_secret(seed: u8) -> Vec<u8> {
    vec![seed; 64]
}

/// A signing key of one of the test kinds.
pub enum Signer {
    Hmac(Vec<u8>),
    Rsa(RsaPrivateKey),
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    Ed(ed25519_dalek::SigningKey),
}

impl Signer {
    /// The signer for an algorithm, with the fixed test keys.
    pub fn for_alg(alg: JwsAlgorithm) -> Signer {
        match alg {
            a if a.is_hmac() => Signer::Hmac(hmac_secret(1)),
            a if a.is_rsa() => Signer::Rsa(rsa_key()),
            JwsAlgorithm::Es256 => Signer::P256(p256_key(7)),
            JwsAlgorithm::Es384 => Signer::P384(p384_key(9)),
            _ => Signer::Ed(ed_key(5)),
        }
    }

    /// The public JWK of this key, with `kid` and (if given) `alg`.
    pub fn jwk(&self, kid: &str, alg: Option<&str>) -> Value {
        let mut jwk = match self {
            Signer::Hmac(secret) => json!({"kty": "oct", "k": b64(secret)}),
            Signer::Rsa(k) => rsa_jwk(&k.to_public_key()),
            Signer::P256(k) => {
                let point = k.verifying_key().to_encoded_point(false);
                json!({"kty": "EC", "crv": "P-256", "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())})
            }
            Signer::P384(k) => {
                let point = k.verifying_key().to_encoded_point(false);
                json!({"kty": "EC", "crv": "P-384", "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())})
            }
            Signer::Ed(k) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(k.verifying_key().as_bytes())})
            }
        };
        jwk["kid"] = json!(kid);
        if let Some(alg) = alg {
            jwk["alg"] = json!(alg);
        }
        jwk
    }

    /// Signs `message` as `alg` would.
    pub fn sign(&self, alg: JwsAlgorithm, message: &[u8]) -> Vec<u8> {
        match (self, alg) {
            (Signer::Hmac(s), JwsAlgorithm::Hs256) => {
                Hs256.sign(&Hs256Key::new(s), message).as_bytes().to_vec()
            }
            (Signer::Hmac(s), JwsAlgorithm::Hs384) => {
                Hs384.sign(&Hs384Key::new(s), message).as_bytes().to_vec()
            }
            (Signer::Hmac(s), JwsAlgorithm::Hs512) => {
                Hs512.sign(&Hs512Key::new(s), message).as_bytes().to_vec()
            }
            (Signer::Rsa(k), a) if a.is_rsa() => Rsa::from_str_name(a.name())
                .sign(k, message)
                .as_bytes()
                .to_vec(),
            (Signer::P256(k), JwsAlgorithm::Es256) => Es256.sign(k, message).as_bytes().to_vec(),
            (Signer::P384(k), JwsAlgorithm::Es384) => Es384.sign(k, message).as_bytes().to_vec(),
            (Signer::Ed(k), JwsAlgorithm::EdDsa) => Ed25519.sign(k, message).as_bytes().to_vec(),
            _ => panic!("test signer does not fit {alg}"),
        }
    }
}

trait FromStrName {
    fn from_str_name(name: &str) -> Self;
}

impl FromStrName for Rsa {
    fn from_str_name(name: &str) -> Self {
        name.parse().unwrap()
    }
}

pub fn rsa_jwk(key: &RsaPublicKey) -> Value {
    json!({"kty": "RSA", "n": b64(&key.n().to_bytes_be()), "e": b64(&key.e().to_bytes_be())})
}

/// A JWKS document with these keys.
pub fn jwks(keys: Vec<Value>) -> Value {
    json!({ "keys": keys })
}

/// A compact JWS over raw header and payload bytes, signed by `signer` as `alg`.
pub fn sign_raw(signer: &Signer, alg: JwsAlgorithm, header: &[u8], payload: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let sig = signer.sign(alg, input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

/// A compact JWS with a JSON header and payload.
pub fn sign_jwt(signer: &Signer, alg: JwsAlgorithm, header: &Value, claims: &Value) -> String {
    sign_raw(
        signer,
        alg,
        header.to_string().as_bytes(),
        claims.to_string().as_bytes(),
    )
}

/// A JWT with `{"alg": alg, "kid": kid}` and the given claims.
pub fn jwt(signer: &Signer, alg: JwsAlgorithm, kid: &str, claims: &Value) -> String {
    sign_jwt(
        signer,
        alg,
        &json!({"alg": alg.name(), "typ": "JWT", "kid": kid}),
        claims,
    )
}

/// Claims valid at [`NOW`] for an hour, from `https://issuer.example` to `api`.
pub fn good_claims() -> Value {
    json!({
        "iss": "https://issuer.example",
        "aud": "api",
        "sub": "alice",
        "iat": NOW - 10,
        "exp": NOW + 3600,
        "scope": "read write",
    })
}

use palisade::matcher::Request;
use palisade::token::outcome::{DenyReason, Outcome};
use palisade::token::{KeyStore, TokenConfig, TokenRequest, Verifier};

/// Compiles a config document, panicking with the error if it is refused.
pub fn config(doc: Value) -> TokenConfig {
    TokenConfig::from_value(doc).unwrap_or_else(|e| panic!("config refused: {e}"))
}

/// The error a refused config document gives.
pub fn config_error(doc: Value) -> String {
    match TokenConfig::from_value(doc) {
        Ok(_) => panic!("config accepted"),
        Err(e) => e.to_string(),
    }
}

/// A config with one provider `main` holding `jwks` inline, for `https://issuer.example`/`api`.
pub fn inline_config(jwks: Value) -> TokenConfig {
    config(json!({
        "providers": [{
            "name": "main",
            "issuer": "https://issuer.example",
            "audiences": ["api"],
            "jwks": jwks,
        }]
    }))
}

/// Request headers with `Authorization: Bearer <token>`.
pub fn bearer(token: &str) -> Vec<(String, String)> {
    vec![("authorization".to_owned(), format!("Bearer {token}"))]
}

/// Checks a `GET <path>` with these headers under the route's requirement.
pub fn check_request(
    config: &TokenConfig,
    keys: &KeyStore,
    path: &str,
    headers: &[(String, String)],
    now: u64,
) -> Outcome {
    let headers = headers.to_vec();
    let route = Request {
        authority: "api.example",
        path,
        method: "GET",
        route_name: None,
        headers: &headers,
    };
    let requirement = config.select(&route).policy;
    let request = TokenRequest {
        method: "GET",
        path,
        headers: &headers,
    };
    Verifier::new(config, keys).check(requirement, &request, now, None)
}

/// Checks a bearer token on `/` at `now`; `Ok(())` if allowed, else the deny reason.
pub fn check_bearer(config: &TokenConfig, token: &str, now: u64) -> Result<Outcome, DenyReason> {
    let keys = KeyStore::new(config);
    let outcome = check_request(config, &keys, "/", &bearer(token), now);
    match outcome.denial() {
        Some(f) => Err(f.reason.clone()),
        None => Ok(outcome),
    }
}
