//! JWT verification as a client sees it: which tokens pass, and the reason each bad one gets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "token_support/mod.rs"]
mod support;

use palisade::token::alg::JwsAlgorithm;
use palisade::token::error::{Malformation, Part};
use palisade::token::outcome::{DenyReason, TokenFormat};
use palisade::token::strict_json::JsonError;
use serde_json::json;
use support::*;
use wasm_bindgen_test::wasm_bindgen_test;

fn single_key_config(alg: JwsAlgorithm, kid: &str) -> palisade::token::TokenConfig {
    let signer = Signer::for_alg(alg);
    inline_config(jwks(vec![signer.jwk(kid, Some(alg.name()))]))
}

#[wasm_bindgen_test(unsupported = test)]
fn every_algorithm_verifies_with_a_key_bound_to_it() {
    for alg in JwsAlgorithm::ALL {
        let cfg = single_key_config(alg, "k1");
        let signer = Signer::for_alg(alg);
        let token = jwt(&signer, alg, "k1", &good_claims());
        let outcome = check_bearer(&cfg, &token, NOW).unwrap_or_else(|r| panic!("{alg}: {r:?}"));
        let verified = &outcome.tokens()[0];
        assert_eq!(verified.format, TokenFormat::Jwt(alg));
        assert_eq!(verified.key_id.as_deref(), Some("k1"));
        assert_eq!(verified.claims.subject(), Some("alice"));
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn a_changed_payload_breaks_every_algorithm() {
    for alg in JwsAlgorithm::ALL {
        let cfg = single_key_config(alg, "k1");
        let token = jwt(&Signer::for_alg(alg), alg, "k1", &good_claims());
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut claims = good_claims();
        claims["sub"] = json!("admin");
        parts[1] = b64(claims.to_string().as_bytes());
        let forged = parts.join(".");
        assert_eq!(
            check_bearer(&cfg, &forged, NOW).err(),
            Some(DenyReason::BadSignature),
            "{alg}"
        );
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn a_key_never_verifies_another_algorithm() {
    // One token per algorithm, all with kid "k"; each key set holds one key of another algorithm
    // under that kid. The token's `alg` must not choose how the key is used.
    let tokens: Vec<(JwsAlgorithm, String)> = JwsAlgorithm::ALL
        .into_iter()
        .map(|alg| (alg, jwt(&Signer::for_alg(alg), alg, "k", &good_claims())))
        .collect();
    for key_alg in JwsAlgorithm::ALL {
        let cfg = single_key_config(key_alg, "k");
        for (token_alg, token) in &tokens {
            if *token_alg == key_alg {
                continue;
            }
            assert_eq!(
                check_bearer(&cfg, token, NOW).err(),
                Some(DenyReason::AlgorithmNotAllowed),
                "key {key_alg}, token {token_alg}"
            );
        }
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn rsa_key_without_alg_is_for_rs256_only() {
    let signer = Signer::for_alg(JwsAlgorithm::Rs256);
    let cfg = inline_config(jwks(vec![signer.jwk("r", None)]));
    let ok = jwt(&signer, JwsAlgorithm::Rs256, "r", &good_claims());
    assert!(check_bearer(&cfg, &ok, NOW).is_ok());
    for alg in [
        JwsAlgorithm::Ps256,
        JwsAlgorithm::Rs384,
        JwsAlgorithm::Rs512,
    ] {
        let token = jwt(&signer, alg, "r", &good_claims());
        assert_eq!(
            check_bearer(&cfg, &token, NOW).err(),
            Some(DenyReason::AlgorithmNotAllowed),
            "{alg}"
        );
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn rsa_default_algorithm_can_be_configured() {
    let signer = Signer::for_alg(JwsAlgorithm::Ps256);
    let cfg = config(json!({
        "providers": [{
            "name": "main",
            "issuer": "https://issuer.example",
            "jwks": jwks(vec![signer.jwk("r", None)]),
            "rsa_default_algorithm": "PS256",
        }]
    }));
    let ps = jwt(&signer, JwsAlgorithm::Ps256, "r", &good_claims());
    assert!(check_bearer(&cfg, &ps, NOW).is_ok());
    let rs = jwt(&signer, JwsAlgorithm::Rs256, "r", &good_claims());
    assert_eq!(
        check_bearer(&cfg, &rs, NOW).err(),
        Some(DenyReason::AlgorithmNotAllowed)
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn hmac_token_signed_with_the_rsa_public_key_is_refused() {
    // The classic confusion: use the published RSA key as an HMAC secret.
    let rsa = Signer::for_alg(JwsAlgorithm::Rs256);
    let cfg = inline_config(jwks(vec![rsa.jwk("r", Some("RS256"))]));
    let Signer::Rsa(private) = &rsa else {
        unreachable!()
    };
    use rsa::pkcs8::EncodePublicKey;
    let public_der = private.to_public_key().to_public_key_der().unwrap();
    let forger = Signer::Hmac(public_der.as_bytes().to_vec());
    let token = jwt(&forger, JwsAlgorithm::Hs256, "r", &good_claims());
    assert_eq!(
        check_bearer(&cfg, &token, NOW).err(),
        Some(DenyReason::AlgorithmNotAllowed)
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn alg_none_never_verifies() {
    let cfg = single_key_config(JwsAlgorithm::Hs256, "k");
    for alg in ["none", "None", "NONE"] {
        let header = json!({"alg": alg, "kid": "k"}).to_string();
        let unsigned = format!(
            "{}.{}.",
            b64(header.as_bytes()),
            b64(good_claims().to_string().as_bytes())
        );
        assert_eq!(
            check_bearer(&cfg, &unsigned, NOW).err(),
            Some(DenyReason::AlgorithmNotAllowed),
            "{alg}"
        );
        // Even with a valid HS256 signature over the same bytes.
        let signed = sign_raw(
            &Signer::for_alg(JwsAlgorithm::Hs256),
            JwsAlgorithm::Hs256,
            header.as_bytes(),
            good_claims().to_string().as_bytes(),
        );
        assert_eq!(
            check_bearer(&cfg, &signed, NOW).err(),
            Some(DenyReason::AlgorithmNotAllowed)
        );
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn keys_named_in_the_token_header_are_never_used() {
    let provider_key = Signer::Ed(ed_key(5));
    let attacker = Signer::Ed(ed_key(66));
    let cfg = inline_config(jwks(vec![provider_key.jwk("k", Some("EdDSA"))]));
    let header = json!({
        "alg": "EdDSA",
        "kid": "k",
        "jwk": attacker.jwk("k", Some("EdDSA")),
        "jku": "https://attacker.example/jwks.json",
        "x5u": "https://attacker.example/cert.pem",
        "x5c": ["MIIB"],
    });
    let token = sign_jwt(&attacker, JwsAlgorithm::EdDsa, &header, &good_claims());
    assert_eq!(
        check_bearer(&cfg, &token, NOW).err(),
        Some(DenyReason::BadSignature)
    );
    // The same headers on a token the provider's key did sign are simply ignored.
    let token = sign_jwt(&provider_key, JwsAlgorithm::EdDsa, &header, &good_claims());
    assert!(check_bearer(&cfg, &token, NOW).is_ok());
}

#[wasm_bindgen_test(unsupported = test)]
fn critical_extensions_reject() {
    let signer = Signer::for_alg(JwsAlgorithm::Hs256);
    let cfg = single_key_config(JwsAlgorithm::Hs256, "k");
    let crit = sign_jwt(
        &signer,
        JwsAlgorithm::Hs256,
        &json!({"alg": "HS256", "kid": "k", "crit": ["b64"], "b64": false}),
        &good_claims(),
    );
    assert_eq!(
        check_bearer(&cfg, &crit, NOW).err(),
        Some(DenyReason::UnsupportedCritical)
    );
    let bad_crit = sign_jwt(
        &signer,
        JwsAlgorithm::Hs256,
        &json!({"alg": "HS256", "kid": "k", "crit": "exp"}),
        &good_claims(),
    );
    assert_eq!(
        check_bearer(&cfg, &bad_crit, NOW).err(),
        Some(DenyReason::Malformed(Malformation::HeaderMember("crit")))
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn tokens_over_the_size_limit_are_refused() {
    let signer = Signer::for_alg(JwsAlgorithm::Hs256);
    let jwk = signer.jwk("k", Some("HS256"));
    let mut claims = good_claims();
    claims["pad"] = json!("x".repeat(9000));
    let big = jwt(&signer, JwsAlgorithm::Hs256, "k", &claims);
    let default_cfg = inline_config(jwks(vec![jwk.clone()]));
    assert_eq!(
        check_bearer(&default_cfg, &big, NOW).err(),
        Some(DenyReason::TooLarge)
    );
    let roomy = config(json!({
        "providers": [{"name": "main", "jwks": jwks(vec![jwk])}],
        "max_token_size": 16384,
    }));
    assert!(check_bearer(&roomy, &big, NOW).is_ok());
}

#[wasm_bindgen_test(unsupported = test)]
fn malformed_tokens_get_a_typed_reason() {
    let cfg = single_key_config(JwsAlgorithm::Hs256, "k");
    let signer = Signer::for_alg(JwsAlgorithm::Hs256);
    let good = jwt(&signer, JwsAlgorithm::Hs256, "k", &good_claims());
    let parts: Vec<&str> = good.split('.').collect();
    let header_b64 = parts[0];
    let sign =
        |header: &[u8], payload: &[u8]| sign_raw(&signer, JwsAlgorithm::Hs256, header, payload);
    let hs256 = br#"{"alg":"HS256","kid":"k"}"#;
    let cases: Vec<(String, Malformation)> = vec![
        ("abc".to_owned(), Malformation::Structure),
        (
            format!("{}.{}", parts[0], parts[1]),
            Malformation::Structure,
        ),
        (format!("{good}.extra"), Malformation::Structure),
        (
            format!(".{}.{}", parts[1], parts[2]),
            Malformation::Structure,
        ),
        (
            format!("{header_b64}=.{}.{}", parts[1], parts[2]),
            Malformation::Base64(Part::Header),
        ),
        (
            format!("{header_b64}.{}*.{}", parts[1], parts[2]),
            Malformation::Base64(Part::Payload),
        ),
        (
            format!("{}.{}.{}+/", parts[0], parts[1], parts[2]),
            Malformation::Base64(Part::Signature),
        ),
        (
            format!("{}.{}.", parts[0], parts[1]),
            Malformation::SignatureLength,
        ),
        (
            // The same bytes with a trailing bit set: only the canonical encoding is accepted.
            format!("{}.{}.{}", parts[0], parts[1], with_trailing_bit(parts[2])),
            Malformation::Base64(Part::Signature),
        ),
        (
            sign(b"[1,2]", b"{}"),
            Malformation::Json(Part::Header, JsonError::NotObject),
        ),
        (
            sign(b"{\"alg\":", b"{}"),
            Malformation::Json(Part::Header, JsonError::NotJson),
        ),
        (
            sign(br#"{"kid":"k"}"#, b"{}"),
            Malformation::HeaderMember("alg"),
        ),
        (
            sign(br#"{"alg":"HS256","kid":7}"#, b"{}"),
            Malformation::HeaderMember("kid"),
        ),
        (
            sign(hs256, b"\"just a string\""),
            Malformation::Json(Part::Payload, JsonError::NotObject),
        ),
        (
            sign(hs256, b"{\"sub\":\"a\"} trailing"),
            Malformation::Json(Part::Payload, JsonError::NotJson),
        ),
        (
            sign(hs256, b"\xff\xfe"),
            Malformation::Json(Part::Payload, JsonError::NotJson),
        ),
        (
            sign(hs256, br#"{"exp":"1767229200"}"#),
            Malformation::Claim("exp"),
        ),
        (
            sign(hs256, br#"{"exp":1767229200,"nbf":true}"#),
            Malformation::Claim("nbf"),
        ),
        (
            sign(hs256, br#"{"exp":1767229200,"iat":null}"#),
            Malformation::Claim("iat"),
        ),
        (sign(hs256, br#"{"exp":1e300}"#), Malformation::Claim("exp")),
        (sign(hs256, br#"{"exp":-5}"#), Malformation::Claim("exp")),
        (
            sign(hs256, br#"{"exp":1767229200,"aud":5}"#),
            Malformation::Claim("aud"),
        ),
        (
            sign(hs256, br#"{"exp":1767229200,"aud":["api",5]}"#),
            Malformation::Claim("aud"),
        ),
        (
            sign(hs256, br#"{"exp":1767229200,"iss":["x"]}"#),
            Malformation::Claim("iss"),
        ),
    ];
    let deep = format!("{{\"a\":{}{}}}", "[".repeat(3000), "]".repeat(3000));
    let cases = cases
        .into_iter()
        .chain([(
            sign(hs256, deep.as_bytes()),
            Malformation::Json(Part::Payload, JsonError::NotJson),
        )])
        .collect::<Vec<_>>();
    for (token, want) in cases {
        assert_eq!(
            check_bearer(&cfg, &token, NOW).err(),
            Some(DenyReason::Malformed(want.clone())),
            "{want:?}"
        );
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn duplicate_names_reject_at_any_depth() {
    let cfg = single_key_config(JwsAlgorithm::Hs256, "k");
    let signer = Signer::for_alg(JwsAlgorithm::Hs256);
    let dup = Malformation::Json(Part::Payload, JsonError::DuplicateName);
    let top = format!(
        r#"{{"iss":"https://issuer.example","aud":"api","exp":{},"sub":"alice","sub":"admin"}}"#,
        NOW + 60
    );
    let nested = format!(
        r#"{{"iss":"https://issuer.example","aud":"api","exp":{},"org":{{"role":"user","role":"admin"}}}}"#,
        NOW + 60
    );
    for payload in [top, nested] {
        let token = sign_raw(
            &signer,
            JwsAlgorithm::Hs256,
            br#"{"alg":"HS256","kid":"k"}"#,
            payload.as_bytes(),
        );
        assert_eq!(
            check_bearer(&cfg, &token, NOW).err(),
            Some(DenyReason::Malformed(dup.clone()))
        );
    }
    let header_dup = sign_raw(
        &signer,
        JwsAlgorithm::Hs256,
        br#"{"alg":"HS256","kid":"k","kid":"other"}"#,
        good_claims().to_string().as_bytes(),
    );
    assert_eq!(
        check_bearer(&cfg, &header_dup, NOW).err(),
        Some(DenyReason::Malformed(Malformation::Json(
            Part::Header,
            JsonError::DuplicateName
        )))
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn fractional_times_round_to_the_safe_side() {
    let cfg = single_key_config(JwsAlgorithm::Hs256, "k");
    let signer = Signer::for_alg(JwsAlgorithm::Hs256);
    let mut claims = good_claims();
    claims["exp"] = json!(NOW as f64 + 0.9);
    let token = jwt(&signer, JwsAlgorithm::Hs256, "k", &claims);
    let outcome = check_bearer(&cfg, &token, NOW).unwrap();
    assert_eq!(outcome.tokens()[0].claims.exp(), Some(NOW as i64));
    // With 60 s of skew it expires at NOW + 60, not a fraction later.
    assert_eq!(
        check_bearer(&cfg, &token, NOW + 60).err(),
        Some(DenyReason::Expired)
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn the_kid_picks_the_key() {
    let a = Signer::Ed(ed_key(1));
    let b = Signer::Ed(ed_key(2));
    let cfg = inline_config(jwks(vec![a.jwk("a", None), b.jwk("b", None)]));
    let by_b = jwt(&b, JwsAlgorithm::EdDsa, "b", &good_claims());
    let outcome = check_bearer(&cfg, &by_b, NOW).unwrap();
    assert_eq!(outcome.tokens()[0].key_id.as_deref(), Some("b"));
    // Signed by b but claiming a's kid: a's key does not verify it.
    let wrong_kid = jwt(&b, JwsAlgorithm::EdDsa, "a", &good_claims());
    assert_eq!(
        check_bearer(&cfg, &wrong_kid, NOW).err(),
        Some(DenyReason::BadSignature)
    );
    // No kid: every key of the algorithm is tried.
    let no_kid = sign_jwt(
        &b,
        JwsAlgorithm::EdDsa,
        &json!({"alg": "EdDSA"}),
        &good_claims(),
    );
    assert!(check_bearer(&cfg, &no_kid, NOW).is_ok());
    // An unknown kid is its own reason, and names the provider to refetch keys for.
    let unknown = jwt(&b, JwsAlgorithm::EdDsa, "rotated", &good_claims());
    let keys = palisade::token::KeyStore::new(&cfg);
    let outcome = check_request(&cfg, &keys, "/", &bearer(&unknown), NOW);
    assert_eq!(
        outcome.denial().map(|f| f.reason.clone()),
        Some(DenyReason::UnknownKid)
    );
    assert_eq!(outcome.unknown_kid_provider(), Some(0));
}

#[wasm_bindgen_test(unsupported = test)]
fn signatures_of_the_wrong_length_are_refused_without_panicking() {
    for (alg, len) in [
        (JwsAlgorithm::Hs256, 5),
        (JwsAlgorithm::Hs512, 100),
        (JwsAlgorithm::Es256, 65),
        (JwsAlgorithm::Es384, 64),
        (JwsAlgorithm::EdDsa, 63),
        (JwsAlgorithm::Rs256, 10),
        (JwsAlgorithm::Ps256, 300),
    ] {
        let cfg = single_key_config(alg, "k");
        let token = jwt(&Signer::for_alg(alg), alg, "k", &good_claims());
        let (input, _) = token.rsplit_once('.').unwrap();
        let forged = format!("{input}.{}", b64(&vec![0xA5; len]));
        assert_eq!(
            check_bearer(&cfg, &forged, NOW).err(),
            Some(DenyReason::BadSignature),
            "{alg}"
        );
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn garbage_never_panics_and_never_passes() {
    let cfg = single_key_config(JwsAlgorithm::Es256, "k");
    let good = jwt(
        &Signer::for_alg(JwsAlgorithm::Es256),
        JwsAlgorithm::Es256,
        "k",
        &good_claims(),
    );
    // A small deterministic generator: flip, cut and splice the good token.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet = b"ABCxyz019-_.=+/ {}\"\\\x00\xc3";
    for _ in 0..300 {
        let mut bytes = good.as_bytes().to_vec();
        for _ in 0..(1 + next() % 4) {
            let i = (next() as usize) % bytes.len();
            match next() % 3 {
                0 => bytes[i] = alphabet[(next() as usize) % alphabet.len()],
                1 => bytes.truncate(i.max(1)),
                _ => bytes.insert(i, b'.'),
            }
        }
        let Ok(token) = String::from_utf8(bytes) else {
            continue;
        };
        if token == good {
            continue;
        }
        assert!(check_bearer(&cfg, &token, NOW).is_err(), "{token}");
    }
}

/// `b64` (unpadded base64url of a length that leaves spare bits) with its last character's
/// lowest spare bit set.
fn with_trailing_bit(b64: &str) -> String {
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    assert_ne!(b64.len() % 4, 0, "needs spare bits");
    let (head, last) = b64.split_at(b64.len() - 1);
    let value = ALPHABET.find(last).unwrap();
    assert_eq!(value & 1, 0, "canonical to start with");
    format!("{head}{}", &ALPHABET[(value | 1)..=(value | 1)])
}
