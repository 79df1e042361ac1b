//! PASETO v4.public: the official test vectors, footers, implicit assertions and RFC 3339 times.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "token_support/mod.rs"]
mod support;

use palisade::token::error::{Malformation, Part};
use palisade::token::outcome::{DenyReason, TokenFormat};
use palisade::token::strict_json::JsonError;
use palisade::token::TokenConfig;
use pasetors::keys::AsymmetricSecretKey;
use pasetors::version4::{PublicToken, V4};
use serde_json::{json, Value};
use support::*;
use wasm_bindgen_test::wasm_bindgen_test;

// From paseto-standard/test-vectors, v4.json.
const PUBLIC_KEY: &str = "1eb9dbbbbc047c03fd70604e0071f0987e16b28b757225c11f00415d0e20b1a2";
const SECRET_KEY: &str = "b4cbfb43df4ce210727d953e4a713307fa19bb7d9f85041438d9e11b942a37741eb9dbbbbc047c03fd70604e0071f0987e16b28b757225c11f00415d0e20b1a2";
const V4_S_1: &str = "v4.public.eyJkYXRhIjoidGhpcyBpcyBhIHNpZ25lZCBtZXNzYWdlIiwiZXhwIjoiMjAyMi0wMS0wMVQwMDowMDowMCswMDowMCJ9bg_XBBzds8lTZShVlwwKSgeKpLT3yukTw6JUz3W4h_ExsQV-P0V54zemZDcAxFaSeef1QlXEFtkqxT1ciiQEDA";
const V4_S_2: &str = "v4.public.eyJkYXRhIjoidGhpcyBpcyBhIHNpZ25lZCBtZXNzYWdlIiwiZXhwIjoiMjAyMi0wMS0wMVQwMDowMDowMCswMDowMCJ9v3Jt8mx_TdM2ceTGoqwrh4yDFn0XsHvvV_D0DtwQxVrJEBMl0F2caAdgnpKlt4p7xBnx1HcO-SPo8FPp214HDw.eyJraWQiOiJ6VmhNaVBCUDlmUmYyc25FY1Q3Z0ZUaW9lQTlDT2NOeTlEZmdMMVc2MGhhTiJ9";
const V4_S_3: &str = "v4.public.eyJkYXRhIjoidGhpcyBpcyBhIHNpZ25lZCBtZXNzYWdlIiwiZXhwIjoiMjAyMi0wMS0wMVQwMDowMDowMCswMDowMCJ9NPWciuD3d0o5eXJXG5pJy-DiVEoyPYWs1YSTwWHNJq6DZD3je5gf-0M4JR9ipdUSJbIovzmBECeaWmaqcaP0DQ.eyJraWQiOiJ6VmhNaVBCUDlmUmYyc25FY1Q3Z0ZUaW9lQTlDT2NOeTlEZmdMMVc2MGhhTiJ9";
const FOOTER: &str = r#"{"kid":"zVhMiPBP9fRf2snEcT7gFTioeA9COcNy9DfgL1W60haN"}"#;
const KID: &str = "zVhMiPBP9fRf2snEcT7gFTioeA9COcNy9DfgL1W60haN";
const S_3_ASSERTION: &str = r#"{"test-vector":"4-S-3"}"#;

/// The vectors expire at 2022-01-01T00:00:00Z; an hour before that they are valid.
const VECTOR_NOW: u64 = 1_640_995_200 - 3600;

fn paseto_cfg(paseto: Value) -> TokenConfig {
    config(json!({ "providers": [{ "name": "p", "paseto": paseto }] }))
}

fn vector_key() -> Value {
    json!({ "public_key": PUBLIC_KEY })
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A v4.public token signed with the vectors' secret key.
fn mint(payload: &str, footer: Option<&str>, implicit: Option<&str>) -> String {
    let sk = AsymmetricSecretKey::<V4>::from(&hex(SECRET_KEY)).unwrap();
    PublicToken::sign(
        &sk,
        payload.as_bytes(),
        footer.map(str::as_bytes),
        implicit.map(str::as_bytes),
    )
    .unwrap()
}

#[wasm_bindgen_test(unsupported = test)]
fn official_vectors_verify() {
    let plain = paseto_cfg(json!({ "keys": [vector_key()] }));
    let asserted =
        paseto_cfg(json!({ "keys": [vector_key()], "implicit_assertion": S_3_ASSERTION }));
    for (name, cfg, token) in [
        ("4-S-1", &plain, V4_S_1),
        ("4-S-2", &plain, V4_S_2),
        ("4-S-3", &asserted, V4_S_3),
    ] {
        let outcome =
            check_bearer(cfg, token, VECTOR_NOW).unwrap_or_else(|r| panic!("{name}: {r:?}"));
        let verified = &outcome.tokens()[0];
        assert_eq!(verified.format, TokenFormat::PasetoV4Public);
        assert_eq!(
            verified.claims.get("data"),
            Some(&json!("this is a signed message")),
            "{name}"
        );
        assert_eq!(verified.claims.exp(), Some(1_640_995_200), "{name}");
        // The same tokens have expired by now.
        assert_eq!(
            check_bearer(cfg, token, NOW).err(),
            Some(DenyReason::Expired),
            "{name}"
        );
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn the_implicit_assertion_must_match() {
    let plain = paseto_cfg(json!({ "keys": [vector_key()] }));
    assert_eq!(
        check_bearer(&plain, V4_S_3, VECTOR_NOW).err(),
        Some(DenyReason::BadSignature)
    );
    let wrong = paseto_cfg(
        json!({ "keys": [vector_key()], "implicit_assertion": r#"{"test-vector":"4-S-4"}"# }),
    );
    assert_eq!(
        check_bearer(&wrong, V4_S_3, VECTOR_NOW).err(),
        Some(DenyReason::BadSignature)
    );
    assert_eq!(
        check_bearer(&wrong, V4_S_1, VECTOR_NOW).err(),
        Some(DenyReason::BadSignature)
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn changed_tokens_do_not_verify() {
    let cfg = paseto_cfg(json!({ "keys": [vector_key()] }));
    // Payload: {"data":"this is a signed message", ...} with one byte changed ('t' → 'T').
    let forged = V4_S_1.replacen("eyJkYXRhIjoidGhpcy", "eyJkYXRhIjoiVGhpcy", 1);
    assert_ne!(forged, V4_S_1);
    assert_eq!(
        check_bearer(&cfg, &forged, VECTOR_NOW).err(),
        Some(DenyReason::BadSignature)
    );
    // Another footer (same kid member, other content).
    let other_footer = b64(format!(r#"{{"kid":"{KID}","x":1}}"#).as_bytes());
    let (body, _) = V4_S_2.rsplit_once('.').unwrap();
    let refooted = format!("{body}.{other_footer}");
    assert_eq!(
        check_bearer(&cfg, &refooted, VECTOR_NOW).err(),
        Some(DenyReason::BadSignature)
    );
    // The footer removed.
    assert_eq!(
        check_bearer(&cfg, body, VECTOR_NOW).err(),
        Some(DenyReason::BadSignature)
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn the_footer_kid_picks_the_key() {
    let other = b64(ed_key(3).verifying_key().as_bytes());
    let cfg = paseto_cfg(json!({ "keys": [
        { "kid": "other", "public_key": format!("k4.public.{other}") },
        { "kid": KID, "public_key": PUBLIC_KEY },
    ]}));
    let outcome = check_bearer(&cfg, V4_S_2, VECTOR_NOW).unwrap();
    assert_eq!(outcome.tokens()[0].key_id.as_deref(), Some(KID));
    // No footer: every key is tried.
    assert!(check_bearer(&cfg, V4_S_1, VECTOR_NOW).is_ok());
    let only_other = paseto_cfg(
        json!({ "keys": [{ "kid": "other", "public_key": format!("k4.public.{other}") }] }),
    );
    assert_eq!(
        check_bearer(&only_other, V4_S_2, VECTOR_NOW).err(),
        Some(DenyReason::UnknownKid)
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn an_expected_footer_must_be_present_and_equal() {
    let cfg = paseto_cfg(json!({ "keys": [vector_key()], "footer": FOOTER }));
    assert!(check_bearer(&cfg, V4_S_2, VECTOR_NOW).is_ok());
    assert_eq!(
        check_bearer(&cfg, V4_S_1, VECTOR_NOW).err(),
        Some(DenyReason::BadSignature)
    );
    let other = paseto_cfg(json!({ "keys": [vector_key()], "footer": r#"{"kid":"x"}"# }));
    assert_eq!(
        check_bearer(&other, V4_S_2, VECTOR_NOW).err(),
        Some(DenyReason::BadSignature)
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn other_versions_and_purposes_are_refused() {
    let cfg = paseto_cfg(json!({ "keys": [vector_key()] }));
    let local = "v4.local.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAQAr68PS4AXe7If_ZgesdkUMvSwscFlAl1pk5HC0e8kApeaqMfGo_7OpBnwJOAbY9V7WU6abu74MmcUE8YWAiaArVI8XJ5hOb_4v9RmDkneN0S92dx0OW4pgy7omxgf3S8c3LlQg";
    for token in [local, "v3.public.AAAA", "v2.public.AAAA", "v1.local.AAAA"] {
        assert_eq!(
            check_bearer(&cfg, token, VECTOR_NOW).err(),
            Some(DenyReason::AlgorithmNotAllowed),
            "{token}"
        );
    }
    assert_eq!(
        check_bearer(&cfg, "v4.public.!!!!", VECTOR_NOW).err(),
        Some(DenyReason::Malformed(Malformation::Base64(Part::Payload)))
    );
    assert_eq!(
        check_bearer(&cfg, "v4.public.AAAA", VECTOR_NOW).err(),
        Some(DenyReason::Malformed(Malformation::Structure))
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn times_are_rfc3339_strings() {
    let cfg = paseto_cfg(json!({ "keys": [vector_key()] }));
    let in_an_hour = "2026-01-01T03:00:00+02:00"; // 01:00Z
    let ok = mint(
        &format!(r#"{{"sub":"alice","exp":"{in_an_hour}"}}"#),
        None,
        None,
    );
    let outcome = check_bearer(&cfg, &ok, NOW).unwrap();
    assert_eq!(outcome.tokens()[0].claims.exp(), Some(NOW as i64 + 3600));
    assert_eq!(
        check_bearer(&cfg, &ok, NOW + 3660).err(),
        Some(DenyReason::Expired)
    );
    let numeric = mint(&format!(r#"{{"exp":{}}}"#, NOW + 60), None, None);
    assert_eq!(
        check_bearer(&cfg, &numeric, NOW).err(),
        Some(DenyReason::Malformed(Malformation::Claim("exp")))
    );
    let not_a_date = mint(r#"{"exp":"next tuesday"}"#, None, None);
    assert_eq!(
        check_bearer(&cfg, &not_a_date, NOW).err(),
        Some(DenyReason::Malformed(Malformation::Claim("exp")))
    );
    let future = mint(
        r#"{"exp":"2026-01-02T00:00:00Z","nbf":"2026-01-01T00:05:00Z"}"#,
        None,
        None,
    );
    assert_eq!(
        check_bearer(&cfg, &future, NOW).err(),
        Some(DenyReason::NotYetValid)
    );
    assert!(check_bearer(&cfg, &future, NOW + 300).is_ok());
}

#[wasm_bindgen_test(unsupported = test)]
fn payloads_are_parsed_strictly() {
    let cfg = paseto_cfg(json!({ "keys": [vector_key()] }));
    let dup = mint(
        r#"{"exp":"2026-01-02T00:00:00Z","sub":"a","sub":"b"}"#,
        None,
        None,
    );
    assert_eq!(
        check_bearer(&cfg, &dup, NOW).err(),
        Some(DenyReason::Malformed(Malformation::Json(
            Part::Payload,
            JsonError::DuplicateName
        )))
    );
    let array = mint("[1,2,3]", None, None);
    assert_eq!(
        check_bearer(&cfg, &array, NOW).err(),
        Some(DenyReason::Malformed(Malformation::Json(
            Part::Payload,
            JsonError::NotObject
        )))
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn issuer_and_audience_rules_apply_to_paseto_too() {
    let cfg = config(json!({ "providers": [{
        "name": "p", "issuer": "https://issuer.example", "audiences": ["api"],
        "paseto": { "keys": [vector_key()] }
    }]}));
    let ok = mint(
        r#"{"iss":"https://issuer.example","aud":"api","exp":"2026-01-02T00:00:00Z"}"#,
        None,
        None,
    );
    assert!(check_bearer(&cfg, &ok, NOW).is_ok());
    let wrong_aud = mint(
        r#"{"iss":"https://issuer.example","aud":"web","exp":"2026-01-02T00:00:00Z"}"#,
        None,
        None,
    );
    assert_eq!(
        check_bearer(&cfg, &wrong_aud, NOW).err(),
        Some(DenyReason::Audience)
    );
    let wrong_iss = mint(
        r#"{"iss":"https://evil.example","aud":"api","exp":"2026-01-02T00:00:00Z"}"#,
        None,
        None,
    );
    assert_eq!(
        check_bearer(&cfg, &wrong_iss, NOW).err(),
        Some(DenyReason::Issuer)
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn a_provider_only_accepts_the_token_types_it_has_keys_for() {
    let paseto_only = paseto_cfg(json!({ "keys": [vector_key()] }));
    let ed = Signer::Ed(ed_key(5));
    let a_jwt = jwt(
        &ed,
        palisade::token::JwsAlgorithm::EdDsa,
        "k",
        &good_claims(),
    );
    assert_eq!(
        check_bearer(&paseto_only, &a_jwt, NOW).err(),
        Some(DenyReason::AlgorithmNotAllowed)
    );
    let jwt_only = inline_config(jwks(vec![ed.jwk("k", None)]));
    let a_paseto = mint(
        r#"{"iss":"https://issuer.example","aud":"api","exp":"2026-01-02T00:00:00Z"}"#,
        None,
        None,
    );
    assert_eq!(
        check_bearer(&jwt_only, &a_paseto, NOW).err(),
        Some(DenyReason::AlgorithmNotAllowed)
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn paseto_keys_are_checked_in_the_config() {
    let err = config_error(
        json!({ "providers": [{ "name": "p", "paseto": { "keys": [{ "public_key": "abcd" }] } }] }),
    );
    assert_eq!(
        err,
        "providers[0].paseto.keys[0].public_key: the key is not a valid public key: expected 'k4.public.<base64url>' or 64 hex digits"
    );
    // The identity point: a key anyone could sign for.
    let identity = format!("01{}", "00".repeat(31));
    let err = config_error(
        json!({ "providers": [{ "name": "p", "paseto": { "keys": [{ "public_key": identity }] } }] }),
    );
    assert_eq!(
        err,
        "providers[0].paseto.keys[0].public_key: the key is not a valid public key: an Ed25519 key of small order (anyone could sign for it)"
    );
    let err = config_error(json!({ "providers": [{ "name": "p", "paseto": { "keys": [] } }] }));
    assert_eq!(err, "providers[0].paseto.keys: cannot be empty");
}
