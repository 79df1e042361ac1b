//! The host signature seam and the verified-token cache.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "token_support/mod.rs"]
mod support;

use palisade::matcher::Request;
use palisade::token::alg::JwsAlgorithm;
use palisade::token::backend::{EcdsaSignatureError, HashFunction, HostScheme};
use palisade::token::outcome::{DenyReason, Outcome};
use palisade::token::{
    ecdsa_raw_to_der, HostCheck, HostVerdict, KeyStore, SignatureBackend, TokenCache, TokenConfig,
    TokenRequest, Verifier,
};
use serde_json::json;
use std::cell::RefCell;
use support::*;
use wasm_bindgen_test::wasm_bindgen_test;

#[derive(Debug, Clone, PartialEq)]
struct Seen {
    algorithm: JwsAlgorithm,
    scheme: HostScheme,
    hash: &'static str,
    key: Vec<u8>,
    message: Vec<u8>,
    signature: Vec<u8>,
}

/// A host that answers `verdict` and records what it was asked.
struct Host {
    verdict: HostVerdict,
    seen: RefCell<Vec<Seen>>,
}

impl Host {
    fn new(verdict: HostVerdict) -> Self {
        Host {
            verdict,
            seen: RefCell::new(Vec::new()),
        }
    }
    fn calls(&self) -> usize {
        self.seen.borrow().len()
    }
}

impl SignatureBackend for Host {
    fn verify(&self, c: &HostCheck<'_>) -> HostVerdict {
        self.seen.borrow_mut().push(Seen {
            algorithm: c.algorithm,
            scheme: c.scheme,
            hash: c.hash.name(),
            key: c.public_key_der.to_vec(),
            message: c.message.to_vec(),
            signature: c.signature.to_vec(),
        });
        self.verdict
    }
}

fn run(
    cfg: &TokenConfig,
    keys: &KeyStore,
    host: &Host,
    token: &str,
    now: u64,
    cache: Option<&mut TokenCache>,
) -> Outcome {
    let headers = bearer(token);
    let route = Request::new("GET", "api.example", "/");
    let req = TokenRequest {
        method: "GET",
        path: "/",
        headers: &headers,
    };
    Verifier::new(cfg, keys)
        .with_backend(host)
        .check(cfg.select(&route).policy, &req, now, cache)
}

fn single(alg: JwsAlgorithm) -> (TokenConfig, Signer) {
    let signer = Signer::for_alg(alg);
    (
        inline_config(jwks(vec![signer.jwk("k", Some(alg.name()))])),
        signer,
    )
}

#[wasm_bindgen_test(unsupported = test)]
fn the_host_checks_rsa_pkcs1_and_ecdsa_with_der_keys() {
    for (alg, scheme, hash) in [
        (
            JwsAlgorithm::Rs256,
            HostScheme::RsaPkcs1v15,
            HashFunction::Sha256,
        ),
        (
            JwsAlgorithm::Rs512,
            HostScheme::RsaPkcs1v15,
            HashFunction::Sha512,
        ),
        (JwsAlgorithm::Es256, HostScheme::Ecdsa, HashFunction::Sha256),
        (JwsAlgorithm::Es384, HostScheme::Ecdsa, HashFunction::Sha384),
    ] {
        let (cfg, signer) = single(alg);
        let keys = KeyStore::new(&cfg);
        let token = jwt(&signer, alg, "k", &good_claims());
        let host = Host::new(HostVerdict::Valid);
        assert!(
            run(&cfg, &keys, &host, &token, NOW, None).is_allowed(),
            "{alg}"
        );
        let seen = host.seen.borrow()[0].clone();
        assert_eq!(
            (seen.algorithm, seen.scheme, seen.hash),
            (alg, scheme, hash.name())
        );
        let (input, sig) = token.rsplit_once('.').unwrap();
        assert_eq!(seen.message, input.as_bytes());
        let raw = <base64ct::Base64UrlUnpadded as base64ct::Encoding>::decode_vec(sig).unwrap();
        let key = keys.jwt_keys(0).unwrap().keys()[0]
            .spki_der()
            .unwrap()
            .to_vec();
        assert_eq!(seen.key, key);
        match scheme {
            HostScheme::RsaPkcs1v15 => assert_eq!(seen.signature, raw),
            HostScheme::Ecdsa => {
                // DER SEQUENCE of two INTEGERs holding r and s.
                assert_eq!(seen.signature[0], 0x30);
                assert_eq!(seen.signature, ecdsa_raw_to_der(alg, &raw).unwrap());
            }
        }
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn the_hosts_verdict_is_final() {
    let (cfg, signer) = single(JwsAlgorithm::Rs256);
    let keys = KeyStore::new(&cfg);
    let token = jwt(&signer, JwsAlgorithm::Rs256, "k", &good_claims());
    let no = Host::new(HostVerdict::Invalid);
    assert_eq!(
        run(&cfg, &keys, &no, &token, NOW, None)
            .denial()
            .map(|f| f.reason.clone()),
        Some(DenyReason::BadSignature)
    );
    // A host without the function: the pure-Rust path decides.
    let absent = Host::new(HostVerdict::Unavailable);
    assert!(run(&cfg, &keys, &absent, &token, NOW, None).is_allowed());
    let (input, _) = token.rsplit_once('.').unwrap();
    let forged = format!("{input}.{}", b64(&[1; 256]));
    assert!(!run(&cfg, &keys, &absent, &forged, NOW, None).is_allowed());
}

#[wasm_bindgen_test(unsupported = test)]
fn the_host_is_never_asked_about_other_algorithms_nor_chooses_the_key() {
    // A host that says yes to everything cannot make PS256, EdDSA or HMAC forgeries pass...
    let yes = Host::new(HostVerdict::Valid);
    for alg in [
        JwsAlgorithm::Ps256,
        JwsAlgorithm::EdDsa,
        JwsAlgorithm::Hs256,
    ] {
        let (cfg, signer) = single(alg);
        let keys = KeyStore::new(&cfg);
        let token = jwt(&signer, alg, "k", &good_claims());
        let (input, _) = token.rsplit_once('.').unwrap();
        let forged = format!("{input}.{}", b64(&signer.sign(alg, b"something else")));
        assert!(
            !run(&cfg, &keys, &yes, &forged, NOW, None).is_allowed(),
            "{alg}"
        );
    }
    assert_eq!(yes.calls(), 0);
    // ...nor make an ES256 key verify an RS256 token: the binding is checked first.
    let (cfg, _) = single(JwsAlgorithm::Es256);
    let keys = KeyStore::new(&cfg);
    let rs = jwt(
        &Signer::for_alg(JwsAlgorithm::Rs256),
        JwsAlgorithm::Rs256,
        "k",
        &good_claims(),
    );
    assert_eq!(
        run(&cfg, &keys, &yes, &rs, NOW, None)
            .denial()
            .map(|f| f.reason.clone()),
        Some(DenyReason::AlgorithmNotAllowed)
    );
    assert_eq!(yes.calls(), 0);
}

#[wasm_bindgen_test(unsupported = test)]
fn raw_ecdsa_signatures_convert_to_der_strictly() {
    let mut r = vec![0u8; 32];
    r[31] = 1; // r = 1: one content byte
    let mut s = vec![0x80u8; 1];
    s.extend_from_slice(&[0u8; 30]);
    s.push(1); // s has its top bit set: a leading zero byte is needed
    let raw = [r.clone(), s.clone()].concat();
    let der = ecdsa_raw_to_der(JwsAlgorithm::Es256, &raw).unwrap();
    let mut want = vec![0x30, 3 + 2 + 33, 0x02, 0x01, 0x01, 0x02, 0x21, 0x00];
    want.extend_from_slice(&s);
    assert_eq!(der, want);
    for (alg, len) in [
        (JwsAlgorithm::Es256, 63),
        (JwsAlgorithm::Es256, 65),
        (JwsAlgorithm::Es256, 96),
        (JwsAlgorithm::Es384, 64),
        (JwsAlgorithm::Es384, 97),
    ] {
        assert!(
            matches!(ecdsa_raw_to_der(alg, &vec![1; len]), Err(EcdsaSignatureError::WrongLength { actual, .. }) if actual == len),
            "{alg} {len}"
        );
    }
    assert_eq!(
        ecdsa_raw_to_der(JwsAlgorithm::Es256, &[0; 64]),
        Err(EcdsaSignatureError::OutOfRange)
    );
    assert_eq!(
        ecdsa_raw_to_der(JwsAlgorithm::Es384, &[0xFF; 96]),
        Err(EcdsaSignatureError::OutOfRange)
    );
    assert_eq!(
        ecdsa_raw_to_der(JwsAlgorithm::Rs256, &[1; 64]),
        Err(EcdsaSignatureError::NotEcdsa(JwsAlgorithm::Rs256))
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn a_cached_token_skips_the_signature_check_but_not_the_rules() {
    let (cfg, signer) = single(JwsAlgorithm::Es256);
    let keys = KeyStore::new(&cfg);
    let mut cache = TokenCache::from_config(&cfg);
    let host = Host::new(HostVerdict::Valid);
    let mut claims = good_claims();
    claims["exp"] = json!(NOW + 100);
    let token = jwt(&signer, JwsAlgorithm::Es256, "k", &claims);
    assert!(run(&cfg, &keys, &host, &token, NOW, Some(&mut cache)).is_allowed());
    assert!(run(&cfg, &keys, &host, &token, NOW + 1, Some(&mut cache)).is_allowed());
    assert_eq!(host.calls(), 1);
    assert_eq!((cache.hits(), cache.misses()), (1, 1));
    // Expiry is checked on every hit (skew lets it live until exp + 60)...
    let o = run(&cfg, &keys, &host, &token, NOW + 160, Some(&mut cache));
    assert_eq!(
        o.denial().map(|f| f.reason.clone()),
        Some(DenyReason::Expired)
    );
    // ...and the entry itself is never returned at or after `exp`.
    assert_eq!(cache.hits(), 1);
    assert!(cache.is_empty());
}

#[wasm_bindgen_test(unsupported = test)]
fn only_the_very_token_that_was_verified_is_served_from_the_cache() {
    // The cache finds entries by a hash of the token's end (its signature) and confirms them by
    // comparing the whole token: tokens that end the same and are as long must still differ.
    let (cfg, signer) = single(JwsAlgorithm::Es256);
    let keys = KeyStore::new(&cfg);
    let mut cache = TokenCache::from_config(&cfg);
    let host = Host::new(HostVerdict::Valid);
    let token = jwt(&signer, JwsAlgorithm::Es256, "k", &good_claims());
    assert!(run(&cfg, &keys, &host, &token, NOW, Some(&mut cache)).is_allowed());
    let sub = "\"sub\":\"alice\"";
    let payload = token.split('.').nth(1).unwrap();
    let forged_claims = String::from_utf8(b64_decode(payload))
        .unwrap()
        .replace(sub, "\"sub\":\"admin\"");
    let forged = format!(
        "{}.{}.{}",
        token.split('.').next().unwrap(),
        b64(forged_claims.as_bytes()),
        token.split('.').nth(2).unwrap()
    );
    assert_eq!(forged.len(), token.len());
    assert_ne!(forged, token);
    // The host says "invalid" from now on: only the cache could let the forged token through.
    let refusing = Host::new(HostVerdict::Invalid);
    let o = run(&cfg, &keys, &refusing, &forged, NOW, Some(&mut cache));
    assert_eq!(
        o.denial().map(|f| f.reason.clone()),
        Some(DenyReason::BadSignature)
    );
    assert_eq!(refusing.calls(), 1);
    assert_eq!(cache.hits(), 0);
    // The genuine token is still a hit.
    assert!(run(&cfg, &keys, &refusing, &token, NOW, Some(&mut cache)).is_allowed());
    assert_eq!((cache.hits(), refusing.calls()), (1, 1));
}

#[wasm_bindgen_test(unsupported = test)]
fn new_keys_invalidate_cached_verifications() {
    let cfg = config(
        json!({"providers": [{"name": "main", "issuer": "https://issuer.example",
                                           "jwks_uri": {"cluster": "idp", "path": "/keys"}}]}),
    );
    let provider = &cfg.providers()[0];
    let signer = Signer::P256(p256_key(7));
    let other = Signer::P256(p256_key(42));
    let fetched = |s: &Signer| {
        provider
            .parse_fetched_jwks(jwks(vec![s.jwk("k", None)]).to_string().as_bytes())
            .unwrap()
            .keys
    };
    let mut keys = KeyStore::new(&cfg);
    keys.set_fetched(0, fetched(&signer)).unwrap();
    let mut cache = TokenCache::from_config(&cfg);
    let host = Host::new(HostVerdict::Unavailable);
    let token = jwt(&signer, JwsAlgorithm::Es256, "k", &good_claims());
    assert!(run(&cfg, &keys, &host, &token, NOW, Some(&mut cache)).is_allowed());
    assert!(run(&cfg, &keys, &host, &token, NOW, Some(&mut cache)).is_allowed());
    assert_eq!(cache.hits(), 1);
    // The key was rotated out: the cached verification no longer counts.
    keys.set_fetched(0, fetched(&other)).unwrap();
    let o = run(&cfg, &keys, &host, &token, NOW, Some(&mut cache));
    assert_eq!(
        o.denial().map(|f| f.reason.clone()),
        Some(DenyReason::BadSignature)
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn the_cache_is_bounded() {
    let (_, signer) = single(JwsAlgorithm::EdDsa);
    let cfg = config(json!({
        "providers": [{"name": "main", "jwks": jwks(vec![Signer::for_alg(JwsAlgorithm::EdDsa).jwk("k", None)])}],
        "cache": {"max_entries": 3, "max_ttl_secs": 30}
    }));
    let keys = KeyStore::new(&cfg);
    let host = Host::new(HostVerdict::Unavailable);
    let mut cache = TokenCache::from_config(&cfg);
    let tokens: Vec<String> = (0..5)
        .map(|i| {
            let mut c = good_claims();
            c["n"] = json!(i);
            jwt(&signer, JwsAlgorithm::EdDsa, "k", &c)
        })
        .collect();
    for t in &tokens {
        assert!(run(&cfg, &keys, &host, t, NOW, Some(&mut cache)).is_allowed());
    }
    assert_eq!(cache.len(), 3);
    // The newest are kept: token 4 hits, token 0 was evicted.
    run(&cfg, &keys, &host, &tokens[4], NOW, Some(&mut cache));
    assert_eq!(cache.hits(), 1);
    run(&cfg, &keys, &host, &tokens[0], NOW, Some(&mut cache));
    assert_eq!(cache.hits(), 1);
    // `max_ttl_secs` bounds entries of long-lived tokens.
    run(&cfg, &keys, &host, &tokens[4], NOW + 31, Some(&mut cache));
    assert_eq!(cache.hits(), 1);
    // `max_entries: 0` turns it off.
    let off = config(json!({
        "providers": [{"name": "main", "jwks": jwks(vec![Signer::for_alg(JwsAlgorithm::EdDsa).jwk("k", None)])}],
        "cache": {"max_entries": 0}
    }));
    let mut none = TokenCache::from_config(&off);
    run(
        &off,
        &KeyStore::new(&off),
        &host,
        &tokens[0],
        NOW,
        Some(&mut none),
    );
    assert!(none.is_empty());
}
