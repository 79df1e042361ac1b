#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The combined module's config: each section parsed by its policy's own parser, errors named from
//! the document's root, unknown sections and empty documents refused.

use palisade::combined::CombinedConfig;
use serde_json::json;
use wasm_bindgen_test::wasm_bindgen_test;

fn parse(doc: serde_json::Value) -> Result<CombinedConfig, palisade::ConfigError> {
    CombinedConfig::from_slice(doc.to_string().as_bytes())
}

fn error(doc: serde_json::Value) -> String {
    parse(doc).unwrap_err().to_string()
}

#[wasm_bindgen_test(unsupported = test)]
fn sections_left_out_are_policies_that_do_not_run() {
    let c = parse(json!({ "security_headers": { "preset": "api" } })).unwrap();
    assert!(c.security_headers.is_some());
    assert!(c.rate_limit.is_none() && c.token_auth.is_none() && c.input_validation.is_none());

    let c = parse(json!({
        "input_validation": {},
        "rate_limit": { "limits": [ { "name": "all", "requests": 10, "per": "second" } ] },
        "security_headers": null
    }))
    .unwrap();
    assert!(c.input_validation.is_some());
    assert_eq!(c.rate_limit.unwrap().limits().len(), 1);
    assert!(c.security_headers.is_none(), "null is a section left out");
}

#[wasm_bindgen_test(unsupported = test)]
fn a_section_is_exactly_its_filters_config() {
    // The same mistake, reported by the filter alone and inside the combined document.
    let bad = json!({ "preset": "strict", "hsts": { "max_agee": 1 } });
    let alone = palisade::security_headers::SecurityHeaders::from_slice(bad.to_string().as_bytes())
        .unwrap_err();
    let inside = parse(json!({ "security_headers": bad })).unwrap_err();
    assert_eq!(alone.path(), Some("hsts.max_agee"));
    assert_eq!(inside.path(), Some("security_headers.hsts.max_agee"));
    assert_eq!(
        alone.to_string().split_once(": ").map(|p| p.1),
        inside.to_string().split_once(": ").map(|p| p.1),
        "the same reason"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn every_section_names_its_fields_from_the_root() {
    let e = parse(json!({ "token_auth": { "providers": [ { "name": "x", "jwks_uri": { "cluster": "c", "path": "jwks" } } ] } }))
        .unwrap_err();
    assert!(
        e.path().unwrap().starts_with("token_auth.providers[0]"),
        "{e}"
    );
    let e = parse(json!({ "rate_limit": { "limits": [ { "name": "a", "requests": 1, "per": "fortnight" } ] } }))
        .unwrap_err();
    assert_eq!(e.path(), Some("rate_limit.limits[0].per"), "{e}");
    let e = parse(json!({ "input_validation": { "methods": "GET" } })).unwrap_err();
    assert!(
        e.path().unwrap().starts_with("input_validation.methods"),
        "{e}"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn unknown_sections_wrong_shapes_and_empty_documents_are_refused() {
    assert!(error(json!({ "rate_limits": {} })).contains("rate_limits"));
    let e = parse(json!({ "security_headers": "strict" })).unwrap_err();
    assert_eq!(e.path(), Some("security_headers"));
    for empty in [json!({}), json!({ "token_auth": null })] {
        let e = error(empty);
        assert!(e.contains("no policy configured"), "{e}");
        assert!(e.contains("security_headers, rate_limit, token_auth, input_validation"));
    }
    assert!(CombinedConfig::from_slice(b"").is_err());
    assert!(CombinedConfig::from_slice(b"{not json").is_err());
}
