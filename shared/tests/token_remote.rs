//! Remote keys: endpoints from the config, OpenID discovery documents, and the fetch schedule.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "token_support/mod.rs"]
mod support;

use palisade::token::remote::{
    parse_discovery, DiscoveryError, Endpoint, FetchSchedule, RefreshSettings, RemoteKeys,
};
use serde_json::json;
use support::*;
use wasm_bindgen_test::wasm_bindgen_test;

#[wasm_bindgen_test(unsupported = test)]
fn endpoints_default_from_the_issuer() {
    let cfg = config(json!({"providers": [
        {"name": "kc", "issuer": "https://sso.example.com/realms/main", "discovery": {"cluster": "sso"}},
        {"name": "plain", "issuer": "https://idp.example", "jwks_uri": {"cluster": "idp", "path": "/keys"}},
        {"name": "custom", "issuer": "urn:corp", "jwks_uri": {"cluster": "idp", "path": "/k?v=2", "authority": "keys.internal"}}
    ]}));
    let remote = |i: usize| cfg.providers()[i].remote.clone().unwrap();
    assert_eq!(
        remote(0),
        RemoteKeys::Discovery(Endpoint {
            cluster: "sso".into(),
            path: "/realms/main/.well-known/openid-configuration".into(),
            authority: "sso.example.com".into()
        })
    );
    assert_eq!(
        remote(1),
        RemoteKeys::Jwks(Endpoint {
            cluster: "idp".into(),
            path: "/keys".into(),
            authority: "idp.example".into()
        })
    );
    assert_eq!(
        remote(2),
        RemoteKeys::Jwks(Endpoint {
            cluster: "idp".into(),
            path: "/k?v=2".into(),
            authority: "keys.internal".into()
        })
    );
    let refresh = cfg.providers()[1].refresh;
    assert_eq!(
        (
            refresh.interval_ms,
            refresh.timeout_ms,
            refresh.retry_base_ms,
            refresh.retry_max_ms
        ),
        (600_000, 5000, 1000, 10_000)
    );
    let err = config_error(
        json!({"providers": [{"name": "a", "jwks_uri": {"cluster": "c", "path": "keys"}}]}),
    );
    assert_eq!(
        err,
        "providers[0].jwks_uri.path: expected a string starting with '/', got 'keys'"
    );
    let err = config_error(
        json!({"providers": [{"name": "a", "issuer": "urn:x", "discovery": {"cluster": "c"}}]}),
    );
    assert_eq!(err, "providers[0].issuer: must be an http(s) URL to derive the discovery path; or set discovery.path");
    let err = config_error(
        json!({"providers": [{"name": "a", "jwks_uri": {"cluster": "c", "path": "/k"}, "refresh": {"retry_base_ms": 5000, "retry_max_ms": 10}}]}),
    );
    assert_eq!(
        err,
        "providers[0].refresh.retry_max_ms: must be at least retry_base_ms"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn discovery_documents_must_name_the_same_issuer() {
    let issuer = "https://sso.example.com/realms/main";
    let doc = json!({"issuer": issuer, "jwks_uri": "https://sso.example.com/realms/main/protocol/openid-connect/certs"});
    let found = parse_discovery(doc.to_string().as_bytes(), issuer, 65536).unwrap();
    assert_eq!(found.authority, "sso.example.com");
    assert_eq!(found.path, "/realms/main/protocol/openid-connect/certs");
    let evil = json!({"issuer": "https://evil.example", "jwks_uri": "https://evil.example/keys"});
    assert_eq!(
        parse_discovery(evil.to_string().as_bytes(), issuer, 65536),
        Err(DiscoveryError::IssuerMismatch {
            expected: issuer.into(),
            found: "https://evil.example".into()
        })
    );
    let no_uri = json!({"issuer": issuer});
    assert_eq!(
        parse_discovery(no_uri.to_string().as_bytes(), issuer, 65536),
        Err(DiscoveryError::NoJwksUri)
    );
    let bad_uri = json!({"issuer": issuer, "jwks_uri": "ftp://x/keys"});
    assert_eq!(
        parse_discovery(bad_uri.to_string().as_bytes(), issuer, 65536),
        Err(DiscoveryError::NoJwksUri)
    );
    assert_eq!(
        parse_discovery(b"<html>", issuer, 65536),
        Err(DiscoveryError::NotJson)
    );
    assert_eq!(
        parse_discovery(doc.to_string().as_bytes(), issuer, 10),
        Err(DiscoveryError::TooLarge(10))
    );
}

fn settings() -> RefreshSettings {
    RefreshSettings {
        interval_ms: 600_000,
        timeout_ms: 5000,
        retry_base_ms: 1000,
        retry_max_ms: 10_000,
        unknown_kid_refetch_ms: 30_000,
        max_document_bytes: 65536,
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn fetches_back_off_after_failures_and_refresh_after_success() {
    let t0 = 1_000_000;
    let mut s = FetchSchedule::new(settings(), t0);
    assert!(s.due(t0));
    s.started();
    assert!(!s.due(t0 + 50_000), "one fetch at a time");
    let mut now = t0;
    let mut delays = Vec::new();
    for _ in 0..6 {
        s.failed(now);
        delays.push(s.next_attempt_ms() - now);
        now = s.next_attempt_ms();
        assert!(s.due(now) && !s.due(now - 1));
        s.started();
    }
    assert_eq!(delays, vec![1000, 2000, 4000, 8000, 10_000, 10_000]);
    assert_eq!(s.consecutive_failures(), 6);
    s.succeeded(now);
    assert_eq!(s.consecutive_failures(), 0);
    assert_eq!(s.last_success_ms(), Some(now));
    assert_eq!(s.next_attempt_ms(), now + 600_000);
    // After a success, the next failure starts from the base delay again.
    s.started();
    s.failed(now + 600_000);
    assert_eq!(s.next_attempt_ms(), now + 601_000);
}

#[wasm_bindgen_test(unsupported = test)]
fn unknown_kids_trigger_one_rate_limited_refetch() {
    let t0 = 5_000_000;
    let mut s = FetchSchedule::new(settings(), t0);
    s.started();
    s.succeeded(t0);
    assert!(!s.due(t0 + 1000));
    assert!(s.unknown_kid(t0 + 1000));
    assert!(s.due(t0 + 1000));
    s.started();
    s.succeeded(t0 + 1100);
    // A burst of unknown kids does not turn into a burst of fetches.
    assert!(!s.unknown_kid(t0 + 2000));
    assert!(!s.due(t0 + 2000));
    assert!(!s.unknown_kid(t0 + 30_999));
    assert!(s.unknown_kid(t0 + 31_000));
    assert!(s.due(t0 + 31_000));
}
