//! Route requirements, token sources, answers, stripping and upstream headers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "token_support/mod.rs"]
mod support;

use palisade::token::alg::JwsAlgorithm;
use palisade::token::config::KeysUnavailable;
use palisade::token::outcome::{AllowBasis, DenyReason, Outcome};
use palisade::token::{strip_cookie, strip_query_param, KeyStore, TokenConfig, TokenLocation};
use serde_json::{json, Value};
use support::*;
use wasm_bindgen_test::wasm_bindgen_test;

fn corp() -> Signer {
    Signer::Ed(ed_key(11))
}

fn partner() -> Signer {
    Signer::P256(p256_key(12))
}

/// Two providers: `corp` (EdDSA, iss corp) and `partner` (ES256, iss partner, token in
/// `x-partner-token` or the `pt` cookie), plus `extra` document fields.
fn two_providers(extra: Value) -> TokenConfig {
    let mut doc = json!({
        "realm": "api",
        "providers": [
            {"name": "corp", "issuer": "https://corp.example", "jwks": jwks(vec![corp().jwk("c", None)]),
             "claim_to_headers": [{"claim": "sub", "header": "x-user"}, {"claim": "roles", "header": "x-roles"}],
             "payload_header": "x-jwt-payload"},
            {"name": "partner", "issuer": "https://partner.example", "jwks": jwks(vec![partner().jwk("p", None)]),
             "sources": [{"header": "x-partner-token"}, {"cookie": "pt"}, {"query": "pt"}],
             "forward": true,
             "claim_to_headers": [{"claim": "sub", "header": "x-partner"}]}
        ]
    });
    for (k, v) in extra.as_object().unwrap() {
        doc[k] = v.clone();
    }
    config(doc)
}

fn corp_token(extra: Value) -> String {
    let mut claims = json!({"iss": "https://corp.example", "sub": "alice", "exp": NOW + 600, "roles": ["dev", "ops"], "scope": "read"});
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    jwt(&corp(), JwsAlgorithm::EdDsa, "c", &claims)
}

fn partner_token() -> String {
    let claims = json!({"iss": "https://partner.example", "sub": "acme", "exp": NOW + 600});
    jwt(&partner(), JwsAlgorithm::Es256, "p", &claims)
}

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn run(cfg: &TokenConfig, path: &str, headers: &[(String, String)]) -> Outcome {
    check_request(cfg, &KeyStore::new(cfg), path, headers, NOW)
}

fn reason(o: &Outcome) -> Option<DenyReason> {
    o.denial().map(|f| f.reason.clone())
}

#[wasm_bindgen_test(unsupported = test)]
fn any_of_picks_the_provider_by_issuer() {
    let cfg = two_providers(json!({}));
    let o = run(&cfg, "/", &bearer(&corp_token(json!({}))));
    assert_eq!(o.tokens()[0].provider, 0);
    let o = run(&cfg, "/", &h(&[("x-partner-token", &partner_token())]));
    assert_eq!(o.tokens()[0].provider, 1);
    // A partner token in the corp's place: looked at by corp only, whose issuer it is not.
    let o = run(&cfg, "/", &bearer(&partner_token()));
    assert_eq!(reason(&o), Some(DenyReason::Issuer));
    assert_eq!(
        run(&cfg, "/", &[]).denial().map(|f| f.reason.clone()),
        Some(DenyReason::Missing)
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn routes_choose_their_requirement() {
    let cfg = two_providers(json!({
        "requires": {"providers": ["corp"]},
        "rules": [
            {"name": "health", "match": {"path": {"exact": "/health"}}, "requires": {"mode": "none"}},
            {"name": "b2b", "match": {"path": {"prefix": "/b2b"}}, "requires": {"mode": "all", "providers": ["corp", "partner"]}},
            {"name": "partner-only", "match": {"path": {"prefix": "/partner"}}, "requires": {"providers": ["partner"]}},
            {"name": "admin", "match": {"path": {"prefix": "/admin"}}, "claims": [{"claim": "roles", "contains": "admin"}]},
            {"name": "write", "match": {"methods": ["GET"], "path": {"prefix": "/write"}}, "scopes": ["write"]}
        ]
    }));
    let corp = corp_token(json!({}));
    let partner = partner_token();
    assert_eq!(
        run(&cfg, "/health", &[]),
        Outcome::Allow {
            basis: AllowBasis::NotRequired,
            tokens: vec![],
            found: vec![]
        }
    );
    // The default requires corp: a partner token alone is not enough.
    assert_eq!(
        reason(&run(&cfg, "/", &h(&[("x-partner-token", &partner)]))),
        Some(DenyReason::Missing)
    );
    // all-of: both tokens, each verified by its provider.
    let both = h(&[
        ("authorization", &format!("Bearer {corp}")),
        ("x-partner-token", &partner),
    ]);
    let o = run(&cfg, "/b2b/orders", &both);
    assert!(o.is_allowed());
    assert_eq!(
        o.tokens().iter().map(|t| t.provider).collect::<Vec<_>>(),
        vec![0, 1]
    );
    let o = run(&cfg, "/b2b/orders", &bearer(&corp));
    assert_eq!(
        o.denial().map(|f| (f.reason.clone(), f.provider)),
        Some((DenyReason::Missing, Some(1)))
    );
    assert!(run(
        &cfg,
        "/partner/x",
        &h(&[("cookie", &format!("a=1; pt={partner}"))])
    )
    .is_allowed());
    assert_eq!(
        reason(&run(&cfg, "/partner/x", &bearer(&corp))),
        Some(DenyReason::Missing)
    );
    assert_eq!(
        reason(&run(&cfg, "/admin", &bearer(&corp))),
        Some(DenyReason::ClaimsNotMet)
    );
    let admin = corp_token(json!({"roles": ["admin"]}));
    assert!(run(&cfg, "/admin", &bearer(&admin)).is_allowed());
    assert_eq!(
        reason(&run(&cfg, "/write", &bearer(&corp))),
        Some(DenyReason::InsufficientScope {
            required: "write".to_owned()
        })
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn optional_tokens() {
    let cfg = two_providers(json!({
        "requires": {"providers": ["corp"]},
        "rules": [
            {"match": {"path": {"prefix": "/maybe"}}, "allow_missing": true},
            {"match": {"path": {"prefix": "/anything"}}, "allow_missing_or_failed": true}
        ]
    }));
    let expired = corp_token(json!({"exp": NOW - 3600}));
    let good = corp_token(json!({}));
    let o = run(&cfg, "/maybe", &[]);
    assert!(matches!(
        o,
        Outcome::Allow {
            basis: AllowBasis::MissingAllowed,
            ..
        }
    ));
    assert_eq!(
        reason(&run(&cfg, "/maybe", &bearer(&expired))),
        Some(DenyReason::Expired)
    );
    assert_eq!(run(&cfg, "/maybe", &bearer(&good)).tokens().len(), 1);
    let o = run(&cfg, "/anything", &bearer(&expired));
    match &o {
        Outcome::Allow {
            basis: AllowBasis::FailureAllowed(f),
            tokens,
            ..
        } => {
            assert_eq!(f.reason, DenyReason::Expired);
            assert!(tokens.is_empty());
        }
        other => panic!("{other:?}"),
    }
    // Claims of a failed token never reach the upstream.
    assert!(o.upstream_headers(&cfg).is_empty());
    assert!(matches!(
        run(&cfg, "/anything", &[]),
        Outcome::Allow {
            basis: AllowBasis::MissingAllowed,
            ..
        }
    ));
}

#[wasm_bindgen_test(unsupported = test)]
fn the_answer_to_a_missing_token_is_written_once_per_config() {
    // With a realm and without: the reply the filter reuses for every request without a token
    // is the one written for the denial itself; other denials are written per request.
    let with_realm = two_providers(json!({}));
    let without = inline_config(jwks(vec![corp().jwk("c", None)]));
    for (cfg, realm) in [(&with_realm, Some("api")), (&without, None)] {
        let reply = run(cfg, "/", &[]).response(cfg).unwrap();
        assert!(matches!(reply, std::borrow::Cow::Borrowed(_)));
        assert_eq!(*reply, DenyReason::Missing.response(realm));
        let bad = run(cfg, "/", &bearer("abc.def.ghi")).response(cfg).unwrap();
        assert!(matches!(bad, std::borrow::Cow::Owned(_)));
        assert_eq!(bad.error, "invalid_token");
    }
    assert_eq!(
        run(&without, "/", &[]).response(&without).unwrap().headers,
        vec![("www-authenticate", "Bearer".to_owned())]
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn answers_follow_rfc_6750() {
    let cfg = two_providers(json!({"scopes": ["write", "admin"]}));
    let missing = run(&cfg, "/", &[]).response(&cfg).unwrap();
    assert_eq!(missing.status, 401);
    assert_eq!(
        missing.headers,
        vec![("www-authenticate", "Bearer realm=\"api\"".to_owned())]
    );
    let bad = run(&cfg, "/", &bearer("abc.def.ghi"))
        .response(&cfg)
        .unwrap();
    assert_eq!(bad.status, 401);
    assert_eq!(bad.error, "invalid_token");
    assert_eq!(
        bad.headers[0].1,
        "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"the token is malformed\""
    );
    let body: Value = serde_json::from_slice(&bad.body(Some("req-1"))).unwrap();
    assert_eq!(
        body,
        json!({"error": "invalid_token", "message": "the token is malformed", "status": 401, "request_id": "req-1"})
    );
    let scope = run(&cfg, "/", &bearer(&corp_token(json!({}))))
        .response(&cfg)
        .unwrap();
    assert_eq!(scope.status, 403);
    assert_eq!(
        scope.headers[0].1,
        "Bearer realm=\"api\", error=\"insufficient_scope\", error_description=\"the token lacks a required scope\", scope=\"write admin\""
    );
    // Nothing of the token is echoed back.
    let token = corp_token(json!({"exp": NOW - 999}));
    let expired = run(&cfg, "/", &bearer(&token)).response(&cfg).unwrap();
    let text = String::from_utf8(expired.body(None)).unwrap() + &expired.headers[0].1;
    assert!(!text.contains(&token[..20]) && !text.contains("alice"));
}

#[wasm_bindgen_test(unsupported = test)]
fn metric_labels_map_one_to_one() {
    let cfg = two_providers(json!({}));
    assert_eq!(
        run(&cfg, "/", &bearer(&corp_token(json!({})))).metric(),
        "allowed"
    );
    assert_eq!(run(&cfg, "/", &[]).metric(), "denied_missing");
    assert_eq!(
        run(&cfg, "/", &bearer(&corp_token(json!({"exp": 5})))).metric(),
        "denied_expired"
    );
    let mut labels = DenyReason::METRIC_LABELS.to_vec();
    labels.sort_unstable();
    labels.dedup();
    assert_eq!(labels.len(), DenyReason::METRIC_LABELS.len());
    assert_eq!(
        palisade::metrics::counter_name(palisade::token::FILTER_NAME, "denied_bad_signature"),
        "palisade_token_denied_bad_signature_total"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn tokens_are_found_in_headers_cookies_and_queries() {
    let cfg = two_providers(json!({"requires": {"providers": ["partner"]}}));
    let p = partner_token();
    for (path, headers, at) in [
        (
            "/",
            h(&[("x-partner-token", &p)]),
            TokenLocation::Header("x-partner-token".into()),
        ),
        (
            "/",
            h(&[("cookie", &format!("theme=dark; pt=\"{p}\""))]),
            TokenLocation::Cookie("pt".into()),
        ),
        (
            &*format!("/x?a=1&pt={p}#frag"),
            vec![],
            TokenLocation::Query("pt".into()),
        ),
    ] {
        let o = run(&cfg, path, &headers);
        assert!(o.is_allowed(), "{at:?}: {o:?}");
        assert_eq!(o.tokens()[0].location, at);
    }
    // The Bearer scheme is case-insensitive; other schemes are not a token.
    let corp_cfg = two_providers(json!({"requires": {"providers": ["corp"]}}));
    let c = corp_token(json!({}));
    assert!(run(
        &corp_cfg,
        "/",
        &h(&[("authorization", &format!("bearer  {c}"))])
    )
    .is_allowed());
    assert_eq!(
        reason(&run(
            &corp_cfg,
            "/",
            &h(&[("authorization", &format!("Basic {c}"))])
        )),
        Some(DenyReason::Missing)
    );
    assert_eq!(
        reason(&run(&corp_cfg, "/", &h(&[("authorization", "Bearer ")]))),
        Some(DenyReason::Missing)
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn tokens_are_stripped_unless_forwarded() {
    let cfg = two_providers(json!({"requires": {"mode": "all", "providers": ["corp", "partner"]}}));
    let both = h(&[
        (
            "authorization",
            &format!("Bearer {}", corp_token(json!({}))),
        ),
        ("x-partner-token", &partner_token()),
    ]);
    let o = run(&cfg, "/", &both);
    assert!(o.is_allowed());
    // corp's token goes; partner's says `forward: true`.
    assert_eq!(
        o.locations_to_strip(&cfg),
        vec![TokenLocation::Header("authorization".into())]
    );
    assert_eq!(
        strip_query_param("/a?x=1&pt=abc&y=2#f", "pt"),
        "/a?x=1&y=2#f"
    );
    assert_eq!(strip_query_param("/a?pt=abc", "pt"), "/a");
    assert_eq!(strip_query_param("/a?p%74=abc&ptx=1", "pt"), "/a?ptx=1");
    assert_eq!(
        strip_cookie("a=1; pt=xyz; b=2", "pt").as_deref(),
        Some("a=1; b=2")
    );
    assert_eq!(strip_cookie("pt=xyz", "pt"), None);
}

#[wasm_bindgen_test(unsupported = test)]
fn verified_claims_go_upstream_and_spoofed_copies_are_named() {
    let cfg = two_providers(json!({}));
    let token = corp_token(json!({}));
    let o = run(&cfg, "/", &bearer(&token));
    let payload = token.split('.').nth(1).unwrap();
    assert_eq!(
        o.upstream_headers(&cfg),
        vec![
            ("x-user".to_owned(), "alice".to_owned()),
            ("x-roles".to_owned(), r#"["dev","ops"]"#.to_owned()),
            ("x-jwt-payload".to_owned(), payload.to_owned()),
        ]
    );
    assert_eq!(
        cfg.claim_header_names(),
        vec!["x-user", "x-roles", "x-jwt-payload", "x-partner"]
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn cors_preflights_can_bypass() {
    let cfg = two_providers(
        json!({"rules": [{"match": {"path": {"prefix": "/cors"}}, "bypass_cors_preflight": true}]}),
    );
    let preflight = h(&[
        ("origin", "https://app.example"),
        ("access-control-request-method", "POST"),
    ]);
    let keys = KeyStore::new(&cfg);
    let options = |path: &str| {
        let route = palisade::matcher::Request {
            authority: "a",
            path,
            method: "OPTIONS",
            route_name: None,
            headers: &preflight,
        };
        let req = palisade::token::TokenRequest {
            method: "OPTIONS",
            path,
            headers: &preflight,
        };
        palisade::token::Verifier::new(&cfg, &keys).check(
            cfg.select(&route).policy,
            &req,
            NOW,
            None,
        )
    };
    assert!(matches!(
        options("/cors/x"),
        Outcome::Allow {
            basis: AllowBasis::CorsPreflight,
            ..
        }
    ));
    assert_eq!(reason(&options("/other")), Some(DenyReason::Missing));
}

#[wasm_bindgen_test(unsupported = test)]
fn remote_keys_not_fetched_yet_answer_503() {
    let cfg = config(json!({
        "providers": [{"name": "idp", "issuer": "https://idp.example", "jwks_uri": {"cluster": "idp", "path": "/keys"},
                        "keys_unavailable": {"retry_after_secs": 7}}]
    }));
    let signer = corp();
    let token = jwt(
        &signer,
        JwsAlgorithm::EdDsa,
        "c",
        &json!({"iss": "https://idp.example", "exp": NOW + 60}),
    );
    let mut keys = KeyStore::new(&cfg);
    let o = check_request(&cfg, &keys, "/", &bearer(&token), NOW);
    assert_eq!(
        reason(&o),
        Some(DenyReason::KeysUnavailable(KeysUnavailable {
            status: 503,
            retry_after_secs: 7
        }))
    );
    let resp = o.response(&cfg).unwrap();
    assert_eq!(resp.status, 503);
    assert_eq!(resp.headers, vec![("retry-after", "7".to_owned())]);
    // The filter fetched the keys: now it works.
    let parsed = cfg.providers()[0]
        .parse_fetched_jwks(jwks(vec![signer.jwk("c", None)]).to_string().as_bytes())
        .unwrap();
    keys.set_fetched(0, parsed.keys).unwrap();
    assert!(check_request(&cfg, &keys, "/", &bearer(&token), NOW).is_allowed());
    // A rotated key: unknown kid until the next fetch.
    let rotated = Signer::Ed(ed_key(99));
    let new_token = jwt(
        &rotated,
        JwsAlgorithm::EdDsa,
        "c2",
        &json!({"iss": "https://idp.example", "exp": NOW + 60}),
    );
    let o = check_request(&cfg, &keys, "/", &bearer(&new_token), NOW);
    assert_eq!(o.unknown_kid_provider(), Some(0));
    let parsed = cfg.providers()[0]
        .parse_fetched_jwks(
            jwks(vec![signer.jwk("c", None), rotated.jwk("c2", None)])
                .to_string()
                .as_bytes(),
        )
        .unwrap();
    keys.set_fetched(0, parsed.keys).unwrap();
    assert!(check_request(&cfg, &keys, "/", &bearer(&new_token), NOW).is_allowed());
}

#[wasm_bindgen_test(unsupported = test)]
fn config_mistakes_name_the_field() {
    let ed = json!(jwks(vec![corp().jwk("c", None)]));
    let cases = [
        (json!({"providers": []}), "providers: at least one provider is required"),
        (json!({"providers": [{"name": "a", "jwks": ed}], "requires": {"providers": ["b"]}}), "requires.providers[0]: no provider is named 'b'"),
        (json!({"providers": [{"name": "a", "jwks": ed}], "rules": [{"match": {}, "requires": {"mode": "some"}}]}), "rules[0].requires.mode: unknown variant `some`, expected one of `any`, `all`, `none`"),
        (json!({"providers": [{"name": "a", "jwks": ed}, {"name": "a", "jwks": ed}]}), "providers[1].name: provider 'a' is defined twice"),
        (json!({"providers": [{"name": "a"}]}), "providers[0]: a provider needs keys: 'jwks', 'jwks_uri', 'discovery', 'hmac_secret_env' or 'paseto'"),
        (json!({"providers": [{"name": "a", "jwks": ed, "jwks_uri": {"cluster": "c", "path": "/k"}}]}), "providers[0]: set at most one of 'jwks', 'jwks_uri' or 'discovery'"),
        (json!({"providers": [{"name": "a", "discovery": {"cluster": "c"}}]}), "providers[0].issuer: is required with 'discovery'"),
        (json!({"providers": [{"name": "a", "jwks": ed, "sources": [{"query": "t", "prefix": "x"}]}]}), "providers[0].sources[0].prefix: only a 'header' source has a prefix"),
        (json!({"providers": [{"name": "a", "jwks": ed}], "scopes": ["a b"]}), "scopes[0]: 'a b' is not a scope (printable ASCII without spaces, quotes or backslashes)"),
        (json!({"providers": [{"name": "a", "jwks": ed}], "claims": [{"claim": "x", "equals": 1, "contains": 2}]}), "claims[0]: set exactly one of 'equals', 'one_of' or 'contains'"),
        (json!({"providers": [{"name": "a", "jwks": ed}], "realm": "a\"b"}), "realm: cannot hold quotes, backslashes or control characters"),
        (json!({"providers": [{"name": "a", "jwks": ed}], "rules": [{"match": {}, "max_token_size": 5}]}), "rules[0].max_token_size: can only be set at the top level of the config, not in a rule"),
        (json!({"providers": [{"name": "a", "jwks": ed, "hmac_algorithm": "RS256", "hmac_secret_env": "S"}]}), "providers[0].hmac_algorithm: 'RS256' is not HS256, HS384 or HS512"),
        (json!({"providers": [{"name": "a", "jwks": ed}], "unknown": 1}), "unknown: unknown field `unknown`, expected one of `requires`, `allow_missing`, `allow_missing_or_failed`, `scopes`, `claims`, `bypass_cors_preflight`, `peers`"),
    ];
    for (doc, want) in cases {
        let err = config_error(doc);
        assert_eq!(err, want);
    }
}
