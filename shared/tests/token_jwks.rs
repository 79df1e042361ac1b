//! Key sets: each key is bound to exactly one algorithm, unusable keys are skipped with a reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "token_support/mod.rs"]
mod support;

use palisade::token::alg::JwsAlgorithm;
use palisade::token::jwks::{parse_jwks, JwksError, JwksPolicy, KeyError};
use palisade::token::keys::KeyStoreError;
use palisade::token::outcome::DenyReason;
use palisade::token::KeyStore;
use serde_json::{json, Value};
use support::*;
use wasm_bindgen_test::wasm_bindgen_test;

fn parse(doc: &Value, policy: &JwksPolicy) -> Result<palisade::token::jwks::ParsedJwks, JwksError> {
    parse_jwks(doc.to_string().as_bytes(), policy)
}

/// The algorithm a single JWK is bound to, or why it was skipped.
fn bind(jwk: Value, policy: &JwksPolicy) -> Result<JwsAlgorithm, KeyError> {
    match parse(&jwks(vec![jwk]), policy) {
        Ok(parsed) => Ok(parsed.keys.keys()[0].algorithm()),
        Err(JwksError::NoUsableKeys { skipped }) => Err(skipped[0].reason.clone()),
        Err(other) => panic!("{other}"),
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn each_key_type_binds_to_one_algorithm() {
    let p = JwksPolicy::default();
    let rsa = Signer::for_alg(JwsAlgorithm::Rs256);
    let ec256 = Signer::for_alg(JwsAlgorithm::Es256);
    let ec384 = Signer::for_alg(JwsAlgorithm::Es384);
    let ed = Signer::for_alg(JwsAlgorithm::EdDsa);
    assert_eq!(bind(rsa.jwk("a", None), &p), Ok(JwsAlgorithm::Rs256));
    assert_eq!(
        bind(rsa.jwk("a", Some("PS384")), &p),
        Ok(JwsAlgorithm::Ps384)
    );
    assert_eq!(bind(ec256.jwk("a", None), &p), Ok(JwsAlgorithm::Es256));
    assert_eq!(bind(ec384.jwk("a", None), &p), Ok(JwsAlgorithm::Es384));
    assert_eq!(bind(ed.jwk("a", None), &p), Ok(JwsAlgorithm::EdDsa));
    assert_eq!(
        bind(ed.jwk("a", Some("EdDSA")), &p),
        Ok(JwsAlgorithm::EdDsa)
    );
    let ps = JwksPolicy {
        rsa_default_alg: JwsAlgorithm::Ps512,
        ..JwksPolicy::default()
    };
    assert_eq!(bind(rsa.jwk("a", None), &ps), Ok(JwsAlgorithm::Ps512));
}

#[wasm_bindgen_test(unsupported = test)]
fn an_alg_that_does_not_fit_the_key_skips_it() {
    let p = JwksPolicy::default();
    let misfit = |alg: &str, kty: &str| KeyError::AlgorithmDoesNotFitKey {
        alg: alg.to_owned(),
        kty: kty.to_owned(),
    };
    let rsa = Signer::for_alg(JwsAlgorithm::Rs256);
    let ec256 = Signer::for_alg(JwsAlgorithm::Es256);
    let ed = Signer::for_alg(JwsAlgorithm::EdDsa);
    assert_eq!(
        bind(rsa.jwk("a", Some("HS256")), &p),
        Err(misfit("HS256", "RSA"))
    );
    assert_eq!(
        bind(rsa.jwk("a", Some("ES256")), &p),
        Err(misfit("ES256", "RSA"))
    );
    assert_eq!(
        bind(ec256.jwk("a", Some("ES384")), &p),
        Err(misfit("ES384", "EC"))
    );
    assert_eq!(
        bind(ed.jwk("a", Some("ES256")), &p),
        Err(misfit("ES256", "OKP"))
    );
    assert_eq!(
        bind(rsa.jwk("a", Some("none")), &p),
        Err(KeyError::UnsupportedAlgorithm("none".to_owned()))
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn unusable_keys_are_skipped_with_a_reason() {
    let p = JwksPolicy::default();
    let ed = Signer::for_alg(JwsAlgorithm::EdDsa);
    let mut enc = ed.jwk("a", None);
    enc["use"] = json!("enc");
    assert_eq!(
        bind(enc, &p),
        Err(KeyError::NotForSignatures("enc".to_owned()))
    );
    let mut ops = ed.jwk("a", None);
    ops["key_ops"] = json!(["encrypt"]);
    assert_eq!(bind(ops, &p), Err(KeyError::NotForVerification));
    let mut private = ed.jwk("a", None);
    private["d"] = json!(b64(&[1; 32]));
    assert_eq!(bind(private, &p), Err(KeyError::PrivateMaterial));
    let mut p521 = Signer::for_alg(JwsAlgorithm::Es256).jwk("a", None);
    p521["crv"] = json!("P-521");
    assert_eq!(
        bind(p521, &p),
        Err(KeyError::UnsupportedCurve("P-521".to_owned()))
    );
    let x25519 = json!({"kty": "OKP", "crv": "X25519", "x": b64(&[9; 32])});
    assert_eq!(
        bind(x25519, &p),
        Err(KeyError::UnsupportedCurve("X25519".to_owned()))
    );
    assert_eq!(
        bind(json!({"kty": "XYZ"}), &p),
        Err(KeyError::UnsupportedKeyType("XYZ".to_owned()))
    );
    assert_eq!(
        bind(json!({"kty": "OKP", "crv": "Ed25519", "x": "***"}), &p),
        Err(KeyError::BadBase64("x"))
    );
    assert_eq!(
        bind(json!({"kty": "RSA", "e": "AQAB"}), &p),
        Err(KeyError::MissingMember("n"))
    );
    let weak = rsa_jwk(&weak_rsa_key().to_public_key());
    assert_eq!(
        bind(weak, &p),
        Err(KeyError::WeakRsaKey {
            bits: 1024,
            min: 2048
        })
    );
    // Points of small order: the identity (y = 1), and y = 0 (order 4). Anyone can sign for them.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    for weak in [identity, [0; 32]] {
        assert_eq!(
            bind(json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&weak)}), &p),
            Err(KeyError::InvalidKey(
                "an Ed25519 key of small order (anyone could sign for it)".to_owned()
            ))
        );
    }
    // y = 2 is not the y of any curve point.
    let mut not_a_point = [0u8; 32];
    not_a_point[0] = 2;
    assert_eq!(
        bind(
            json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&not_a_point)}),
            &p
        ),
        Err(KeyError::InvalidKey("not an Ed25519 public key".to_owned()))
    );
    let off_curve = json!({"kty": "EC", "crv": "P-256", "x": b64(&[1; 32]), "y": b64(&[2; 32])});
    assert!(matches!(bind(off_curve, &p), Err(KeyError::InvalidKey(_))));
    let oct = json!({"kty": "oct", "alg": "HS256", "k": b64(&[1; 32])});
    assert_eq!(bind(oct, &p), Err(KeyError::SymmetricNotAllowed));
}

#[wasm_bindgen_test(unsupported = test)]
fn symmetric_keys_need_an_alg_and_a_long_enough_secret() {
    let inline = JwksPolicy {
        allow_symmetric: true,
        ..JwksPolicy::default()
    };
    let ok = json!({"kty": "oct", "alg": "HS384", "k": b64(&[1; 48])});
    assert_eq!(bind(ok, &inline), Ok(JwsAlgorithm::Hs384));
    let no_alg = json!({"kty": "oct", "k": b64(&[1; 48])});
    assert_eq!(bind(no_alg, &inline), Err(KeyError::MissingMember("alg")));
    let short = json!({"kty": "oct", "alg": "HS512", "k": b64(&[1; 32])});
    assert_eq!(
        bind(short, &inline),
        Err(KeyError::ShortSecret {
            alg: JwsAlgorithm::Hs512,
            len: 32,
            min: 64
        })
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn good_keys_survive_next_to_bad_ones() {
    let ed = Signer::for_alg(JwsAlgorithm::EdDsa);
    let doc = jwks(vec![
        json!({"kty": "XYZ", "kid": "odd"}),
        ed.jwk("good", None),
    ]);
    let parsed = parse(&doc, &JwksPolicy::default()).unwrap();
    assert_eq!(parsed.keys.len(), 1);
    assert_eq!(parsed.keys.keys()[0].kid(), Some("good"));
    assert_eq!(parsed.skipped.len(), 1);
    assert_eq!(parsed.skipped[0].index, 0);
    assert_eq!(parsed.skipped[0].kid.as_deref(), Some("odd"));
    assert_eq!(
        parsed.skipped[0].to_string(),
        "keys[0] (kid 'odd'): key type 'XYZ' is not supported"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn documents_that_are_not_key_sets_are_refused() {
    let p = JwksPolicy::default();
    assert_eq!(parse_jwks(b"not json", &p).err(), Some(JwksError::NotJson));
    assert_eq!(
        parse(&json!({"keys": {}}), &p).err(),
        Some(JwksError::NotAKeySet)
    );
    assert_eq!(parse(&json!([1]), &p).err(), Some(JwksError::NotAKeySet));
    assert!(matches!(
        parse(&json!({"keys": []}), &p),
        Err(JwksError::NoUsableKeys { skipped }) if skipped.is_empty()
    ));
}

/// DER SubjectPublicKeyInfo holds the algorithm's OID: check it without our own encoder.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[wasm_bindgen_test(unsupported = test)]
fn rsa_and_ec_keys_carry_their_der_form_for_the_host() {
    let p = JwksPolicy::default();
    let rsa = Signer::for_alg(JwsAlgorithm::Rs256);
    let doc = jwks(vec![
        rsa.jwk("r", None),
        Signer::for_alg(JwsAlgorithm::Es256).jwk("e256", None),
        Signer::for_alg(JwsAlgorithm::Es384).jwk("e384", None),
        Signer::for_alg(JwsAlgorithm::EdDsa).jwk("ed", None),
    ]);
    let parsed = parse(&doc, &p).unwrap();
    let der = |kid: &str| {
        parsed
            .keys
            .keys()
            .iter()
            .find(|k| k.kid() == Some(kid))
            .unwrap()
            .spki_der()
            .map(<[u8]>::to_vec)
    };
    let rsa_der = der("r").unwrap();
    let Signer::Rsa(private) = &rsa else {
        unreachable!()
    };
    use rsa::pkcs8::EncodePublicKey;
    assert_eq!(
        rsa_der,
        private
            .to_public_key()
            .to_public_key_der()
            .unwrap()
            .as_bytes()
    );
    let rsa_encryption = [
        0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01,
    ];
    assert!(contains(&rsa_der, &rsa_encryption));
    let ec_public_key = [0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
    let prime256v1 = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
    let secp384r1 = [0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22];
    let e256 = der("e256").unwrap();
    assert!(contains(&e256, &ec_public_key) && contains(&e256, &prime256v1));
    assert_eq!(e256.len(), 91);
    let e384 = der("e384").unwrap();
    assert!(contains(&e384, &ec_public_key) && contains(&e384, &secp384r1));
    assert_eq!(e384.len(), 120);
    assert_eq!(der("ed"), None);
}

#[wasm_bindgen_test(unsupported = test)]
fn an_unusable_inline_key_is_a_config_error() {
    let err = config_error(json!({
        "providers": [{"name": "main", "jwks": {"keys": [{"kty": "RSA", "alg": "ES256", "n": "AQAB", "e": "AQAB", "kid": "x"}]}}]
    }));
    assert_eq!(err, "providers[0].jwks: the key set has no usable key: keys[0] (kid 'x'): algorithm ES256 does not fit a key of type RSA");
    // A JWKS given as a JSON string works like an object.
    let ed = Signer::for_alg(JwsAlgorithm::EdDsa);
    let cfg = config(json!({
        "providers": [{"name": "main", "jwks": jwks(vec![ed.jwk("k", None)]).to_string()}]
    }));
    let token = jwt(&ed, JwsAlgorithm::EdDsa, "k", &good_claims());
    assert!(check_bearer(&cfg, &token, NOW).is_ok());
}

#[wasm_bindgen_test(unsupported = test)]
fn fetched_key_sets_never_hold_secrets_and_are_size_limited() {
    let cfg = config(json!({
        "providers": [{"name": "remote", "jwks_uri": {"cluster": "idp", "path": "/keys"},
                        "refresh": {"max_document_bytes": 2000}}]
    }));
    let provider = &cfg.providers()[0];
    let oct = jwks(vec![
        json!({"kty": "oct", "alg": "HS256", "k": b64(&[1; 32])}),
    ]);
    assert!(matches!(
        provider.parse_fetched_jwks(oct.to_string().as_bytes()),
        Err(JwksError::NoUsableKeys { skipped }) if skipped[0].reason == KeyError::SymmetricNotAllowed
    ));
    let ed = Signer::for_alg(JwsAlgorithm::EdDsa).jwk("k", None);
    assert!(provider
        .parse_fetched_jwks(jwks(vec![ed.clone()]).to_string().as_bytes())
        .is_ok());
    let big = jwks(vec![ed; 30]).to_string();
    assert!(big.len() > 2000);
    assert_eq!(
        provider.parse_fetched_jwks(big.as_bytes()).err(),
        Some(JwksError::TooLarge(2000))
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn hmac_secrets_come_from_the_vm_environment() {
    let cfg = config(json!({
        "providers": [
            {"name": "hs", "hmac_secret_env": "JWT_SECRET", "hmac_algorithm": "HS384"},
            {"name": "missing", "issuer": "https://other.example", "hmac_secret_env": "NOT_SET"}
        ]
    }));
    let mut keys = KeyStore::new(&cfg);
    let problems = keys.load_hmac_secrets(&cfg, |name| match name {
        "JWT_SECRET" => Some(vec![3; 48]),
        _ => None,
    });
    assert_eq!(problems, vec![(1, None)]);
    let signer = Signer::Hmac(vec![3; 48]);
    let token = jwt(&signer, JwsAlgorithm::Hs384, "any", &good_claims());
    let outcome = check_request(&cfg, &keys, "/", &bearer(&token), NOW);
    assert!(outcome.is_allowed(), "{outcome:?}");
    // HS256 with the same secret: the secret is bound to HS384.
    let hs256 = jwt(&signer, JwsAlgorithm::Hs256, "any", &good_claims());
    let outcome = check_request(&cfg, &keys, "/", &bearer(&hs256), NOW);
    assert_eq!(
        outcome.denial().map(|f| f.reason.clone()),
        Some(DenyReason::AlgorithmNotAllowed)
    );
    // A secret shorter than the hash is refused.
    assert_eq!(
        keys.set_hmac_secret(0, &[1; 20]),
        Err(KeyStoreError::Key(KeyError::ShortSecret {
            alg: JwsAlgorithm::Hs384,
            len: 20,
            min: 48
        }))
    );
    assert_eq!(
        keys.set_hmac_secret(7, &[1; 64]),
        Err(KeyStoreError::NoSuchProvider(7))
    );
}
