//! Claims: time, issuer, audience, subject, required claims, scopes, and claims to headers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "token_support/mod.rs"]
mod support;

use palisade::token::alg::JwsAlgorithm;
use palisade::token::claims::{Claims, TimeFormat};
use palisade::token::headers::{claims_to_headers, ClaimToHeader};
use palisade::token::outcome::DenyReason;
use palisade::token::TokenConfig;
use serde_json::{json, Value};
use support::*;
use wasm_bindgen_test::wasm_bindgen_test;

fn signer() -> Signer {
    Signer::for_alg(JwsAlgorithm::EdDsa)
}

/// A config with one EdDSA provider; `extra` is merged into the provider, `route` into the
/// document (the default requirement).
fn cfg(extra: Value, route: Value) -> TokenConfig {
    let mut provider = json!({
        "name": "main",
        "issuer": "https://issuer.example",
        "audiences": ["api"],
        "jwks": jwks(vec![signer().jwk("k", None)]),
    });
    for (k, v) in extra.as_object().unwrap() {
        provider[k] = v.clone();
    }
    let mut doc = json!({ "providers": [provider] });
    for (k, v) in route.as_object().unwrap() {
        doc[k] = v.clone();
    }
    config(doc)
}

fn token(claims: &Value) -> String {
    jwt(&signer(), JwsAlgorithm::EdDsa, "k", claims)
}

fn with(changes: Value) -> Value {
    let mut c = good_claims();
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn reason(cfg: &TokenConfig, claims: &Value, now: u64) -> Option<DenyReason> {
    check_bearer(cfg, &token(claims), now).err()
}

#[wasm_bindgen_test(unsupported = test)]
fn expiry_is_required_and_checked_with_skew() {
    let c = cfg(json!({}), json!({}));
    assert_eq!(
        reason(&c, &with(json!({"exp": null})), NOW),
        Some(DenyReason::MissingExp)
    );
    let exp = NOW + 100;
    let claims = with(json!({ "exp": exp }));
    assert_eq!(reason(&c, &claims, exp + 59), None);
    assert_eq!(reason(&c, &claims, exp + 60), Some(DenyReason::Expired));
    let strict = cfg(json!({"clock_skew_secs": 0}), json!({}));
    assert_eq!(reason(&strict, &claims, exp - 1), None);
    assert_eq!(reason(&strict, &claims, exp), Some(DenyReason::Expired));
    let optional = cfg(json!({"require_exp": false}), json!({}));
    assert_eq!(reason(&optional, &with(json!({"exp": null})), NOW), None);
}

#[wasm_bindgen_test(unsupported = test)]
fn not_before_and_issued_at_allow_only_the_skew() {
    let c = cfg(json!({}), json!({}));
    assert_eq!(reason(&c, &with(json!({"nbf": NOW + 60})), NOW), None);
    assert_eq!(
        reason(&c, &with(json!({"nbf": NOW + 61})), NOW),
        Some(DenyReason::NotYetValid)
    );
    assert_eq!(reason(&c, &with(json!({"iat": NOW + 60})), NOW), None);
    assert_eq!(
        reason(&c, &with(json!({"iat": NOW + 61})), NOW),
        Some(DenyReason::IssuedInFuture)
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn max_lifetime_limits_exp_minus_iat() {
    let c = cfg(json!({"max_lifetime_secs": 3600}), json!({}));
    let ok = with(json!({"iat": NOW - 10, "exp": NOW + 3590}));
    assert_eq!(reason(&c, &ok, NOW), None);
    let long = with(json!({"iat": NOW - 10, "exp": NOW + 3591}));
    assert_eq!(reason(&c, &long, NOW), Some(DenyReason::LifetimeTooLong));
    // Without iat (or nbf) the lifetime counts from now.
    let no_iat = with(json!({"iat": null, "exp": NOW + 7200}));
    assert_eq!(reason(&c, &no_iat, NOW), Some(DenyReason::LifetimeTooLong));
    // A lifetime limit needs an expiry even if `require_exp` is off.
    let c = cfg(
        json!({"max_lifetime_secs": 3600, "require_exp": false}),
        json!({}),
    );
    assert_eq!(
        reason(&c, &with(json!({"exp": null})), NOW),
        Some(DenyReason::MissingExp)
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn issuer_must_be_the_providers() {
    let c = cfg(json!({}), json!({}));
    assert_eq!(
        reason(&c, &with(json!({"iss": "https://evil.example"})), NOW),
        Some(DenyReason::Issuer)
    );
    assert_eq!(
        reason(&c, &with(json!({"iss": null})), NOW),
        Some(DenyReason::Issuer)
    );
    let any_issuer = cfg(json!({"issuer": null}), json!({}));
    assert_eq!(
        reason(
            &any_issuer,
            &with(json!({"iss": "https://evil.example"})),
            NOW
        ),
        None
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn audience_is_a_string_or_an_array() {
    let c = cfg(json!({"audiences": ["api", "admin-api"]}), json!({}));
    assert_eq!(reason(&c, &with(json!({"aud": "admin-api"})), NOW), None);
    assert_eq!(
        reason(&c, &with(json!({"aud": ["other", "api"]})), NOW),
        None
    );
    assert_eq!(
        reason(&c, &with(json!({"aud": ["other"]})), NOW),
        Some(DenyReason::Audience)
    );
    assert_eq!(
        reason(&c, &with(json!({"aud": null})), NOW),
        Some(DenyReason::Audience)
    );
    let unchecked = cfg(json!({"audiences": []}), json!({}));
    assert_eq!(reason(&unchecked, &with(json!({"aud": null})), NOW), None);
}

#[wasm_bindgen_test(unsupported = test)]
fn subjects_can_be_restricted() {
    let c = cfg(
        json!({"subjects": [{"exact": "alice"}, {"prefix": "svc-"}, {"suffix": "@corp.example"}, {"regex": "team-[0-9]+"}]}),
        json!({}),
    );
    for ok in ["alice", "svc-billing", "bob@corp.example", "team-42"] {
        assert_eq!(reason(&c, &with(json!({ "sub": ok })), NOW), None, "{ok}");
    }
    for bad in ["mallory", "team-42x", "xsvc-a", "alice2"] {
        assert_eq!(
            reason(&c, &with(json!({ "sub": bad })), NOW),
            Some(DenyReason::Subject),
            "{bad}"
        );
    }
    assert_eq!(
        reason(&c, &with(json!({"sub": null})), NOW),
        Some(DenyReason::Subject)
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn scopes_come_from_scope_or_scp() {
    let c = cfg(json!({}), json!({"scopes": ["read", "write"]}));
    assert_eq!(
        reason(&c, &with(json!({"scope": "write admin read"})), NOW),
        None
    );
    assert_eq!(
        reason(
            &c,
            &with(json!({"scope": null, "scp": ["read", "write"]})),
            NOW
        ),
        None
    );
    assert_eq!(
        reason(&c, &with(json!({"scope": null, "scp": "read write"})), NOW),
        None
    );
    assert_eq!(
        reason(&c, &with(json!({"scope": "read"})), NOW),
        Some(DenyReason::InsufficientScope {
            required: "read write".to_owned()
        })
    );
    // "readwrite" is not "read".
    assert!(reason(&c, &with(json!({"scope": "readwrite"})), NOW).is_some());
    let any = cfg(
        json!({}),
        json!({"scopes": {"any_of": ["a", "b"], "all_of": ["base"]}}),
    );
    assert_eq!(reason(&any, &with(json!({"scope": "base b"})), NOW), None);
    assert!(reason(&any, &with(json!({"scope": "a b"})), NOW).is_some());
    assert!(reason(&any, &with(json!({"scope": "base"})), NOW).is_some());
}

#[wasm_bindgen_test(unsupported = test)]
fn required_claims_equal_one_of_or_contain() {
    let c = cfg(
        json!({}),
        json!({"claims": [
            {"claim": "org.tier", "equals": "gold"},
            {"claim": "region", "one_of": ["eu", "us"]},
            {"claim": "roles", "contains": "admin"},
            {"claim": "https://example.com/verified", "equals": true}
        ]}),
    );
    let ok = with(json!({
        "org": {"tier": "gold"}, "region": "eu", "roles": ["user", "admin"],
        "https://example.com/verified": true
    }));
    assert_eq!(reason(&c, &ok, NOW), None);
    let mut words = ok.clone();
    words["roles"] = json!("user admin");
    assert_eq!(reason(&c, &words, NOW), None);
    let mut substring = ok.clone();
    substring["roles"] = json!("superadmins");
    assert_eq!(reason(&c, &substring, NOW), Some(DenyReason::ClaimsNotMet));
    for (claim, bad) in [
        ("org", json!({"tier": "silver"})),
        ("region", json!("apac")),
        ("roles", json!(["user"])),
        ("https://example.com/verified", json!("true")),
    ] {
        let mut claims = ok.clone();
        claims[claim] = bad;
        assert_eq!(
            reason(&c, &claims, NOW),
            Some(DenyReason::ClaimsNotMet),
            "{claim}"
        );
    }
    let mut missing = ok.clone();
    missing.as_object_mut().unwrap().remove("region");
    assert_eq!(reason(&c, &missing, NOW), Some(DenyReason::ClaimsNotMet));
}

#[wasm_bindgen_test(unsupported = test)]
fn claims_become_upstream_headers() {
    let claims = Claims::from_map(
        json!({
            "sub": "alice",
            "n": 42,
            "admin": true,
            "roles": ["a", "b"],
            "org": {"id": "o1", "meta": {"tier": "gold"}},
            "evil": "x\r\nx-injected: 1",
            "nothing": null,
            "https://example.com/email": "a@example.com"
        })
        .as_object()
        .unwrap()
        .clone(),
        TimeFormat::NumericDate,
    )
    .unwrap();
    let map = |claim: &str, header: &str| ClaimToHeader {
        claim: claim.to_owned(),
        header: header.to_owned(),
    };
    let headers = claims_to_headers(
        &claims,
        &[
            map("sub", "x-sub"),
            map("n", "x-n"),
            map("admin", "x-admin"),
            map("roles", "x-roles"),
            map("org", "x-org"),
            map("org.meta.tier", "x-tier"),
            map("evil", "x-evil"),
            map("nothing", "x-nothing"),
            map("absent", "x-absent"),
            map("https://example.com/email", "x-email"),
        ],
    );
    let expect: Vec<(String, String)> = [
        ("x-sub", "alice"),
        ("x-n", "42"),
        ("x-admin", "true"),
        ("x-roles", r#"["a","b"]"#),
        ("x-org", r#"{"id":"o1","meta":{"tier":"gold"}}"#),
        ("x-tier", "gold"),
        ("x-email", "a@example.com"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(headers, expect);
}

#[wasm_bindgen_test(unsupported = test)]
fn claim_header_config_is_checked() {
    let err = config_error(json!({
        "providers": [{"name": "m", "jwks": jwks(vec![signer().jwk("k", None)]),
                        "claim_to_headers": [{"claim": "sub", "header": "Host"}]}]
    }));
    assert_eq!(
        err,
        "providers[0].claim_to_headers[0].header: 'Host' cannot carry claims"
    );
    let err = config_error(json!({
        "providers": [{"name": "m", "jwks": jwks(vec![signer().jwk("k", None)]),
                        "claim_to_headers": [{"claim": "sub", "header": "x user"}]}]
    }));
    assert_eq!(
        err,
        "providers[0].claim_to_headers[0].header: 'x user' is not a header name"
    );
}
