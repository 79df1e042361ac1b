#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Response scrubbing: sensitive members removed by name anywhere or by pointer, the rest of
//! the body kept byte for byte, and bodies it cannot scrub reported as such.

use palisade::validation::{OnFailure, Policy, Scrubbed, Scrubber};
use serde_json::{json, Value};
use wasm_bindgen_test::wasm_bindgen_test;

fn scrubbed(s: &Scrubber, body: &str) -> (String, usize) {
    match s.scrub(body.as_bytes()) {
        Scrubbed::Changed { body, removed } => (String::from_utf8(body).unwrap(), removed),
        other => panic!("expected a change for {body}, got {other:?}"),
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn fields_are_removed_by_name_at_any_depth() {
    let s = Scrubber::new(&["password", "secret"], &[]).unwrap();
    let (out, removed) = scrubbed(
        &s,
        r#"{"user":{"name":"Zoë","password":"p1","tokens":[{"secret":"s1","id":1},{"id":2,"Secret":"s2"}]},"password":"p2"}"#,
    );
    assert_eq!(removed, 4);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v,
        json!({"user": {"name": "Zoë", "tokens": [{"id": 1}, {"id": 2}]}})
    );
    // Escapes cannot hide a name.
    let (out, _) = scrubbed(&s, r#"{"pass\u0077ord":"x","ok":1}"#);
    assert_eq!(out, r#"{"ok":1}"#);
    // A removed member may hold anything, however nested.
    let (out, _) = scrubbed(
        &s,
        r#"{"a":1,"secret":{"deep":[1,{"x":[true,null]}]},"b":2}"#,
    );
    assert_eq!(out, r#"{"a":1,"b":2}"#);
}

#[wasm_bindgen_test(unsupported = test)]
fn pointers_remove_exact_places_with_wildcards() {
    let s = Scrubber::new(&[], &["/data/token", "/users/*/ssn", "/list/0", "/a~1b"]).unwrap();
    let (out, removed) = scrubbed(
        &s,
        r#"{"data":{"token":"t","keep":1},"token":"top-level stays","users":[{"ssn":"1","n":"a"},{"n":"b","ssn":"2"}],"list":["first","second"],"a/b":1}"#,
    );
    assert_eq!(removed, 5);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v,
        json!({"data": {"keep": 1}, "token": "top-level stays", "users": [{"n": "a"}, {"n": "b"}], "list": ["second"]})
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn kept_values_are_byte_for_byte() {
    let s = Scrubber::new(&["secret"], &[]).unwrap();
    let (out, _) = scrubbed(
        &s,
        "{ \"big\" : 123456789012345678901234567890 , \"f\": 1.50e+2, \"s\": \"a\\u00e9\\n\\\"\", \"secret\": 1, \"e\": [ ], \"o\": { } }",
    );
    assert_eq!(
        out,
        r#"{"big":123456789012345678901234567890,"f":1.50e+2,"s":"a\u00e9\n\"","e":[],"o":{}}"#
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn nothing_to_remove_leaves_the_body_alone() {
    let s = Scrubber::new(&["password"], &["/x/y"]).unwrap();
    assert_eq!(
        s.scrub(br#"{"name": "O'Brien", "passwords_changed": 2}"#),
        Scrubbed::Unchanged
    );
    assert_eq!(
        s.scrub(br#"[1, "password", {"x": 1}]"#),
        Scrubbed::Unchanged
    );
    assert_eq!(s.scrub(b"\"password\""), Scrubbed::Unchanged);
}

#[wasm_bindgen_test(unsupported = test)]
fn bodies_that_are_not_json_cannot_be_scrubbed() {
    let s = Scrubber::new(&["password"], &[]).unwrap();
    for bad in [
        &b""[..],
        b"<html>password</html>",
        b"{\"password\": \"x\"",
        b"{\"password\": \"x\"} trailing",
        b"{\"password\" \"x\"}",
        b"{\"a\":1,}",
        b"[1,,2]",
        b"{\"a\": tru}",
        b"{\"a\": 01}",
        b"{\"a\": \"\xff\"}",
        b"{\"a\": \"\\q\"}",
        b"{\"a\": \"\\u12\"}",
        b"{\"a\": \"line\nbreak\"}",
    ] {
        assert_eq!(
            s.scrub(bad),
            Scrubbed::NotJson,
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    // Nesting past what the scrubber follows is refused, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(s.scrub(deep.as_bytes()), Scrubbed::NotJson);
}

#[wasm_bindgen_test(unsupported = test)]
fn scrub_config_per_route_with_limits_and_failure_mode() {
    let p = Policy::compile(json!({"scrub": {
        "fields": ["password"],
        "max_body_size": 2048,
        "on_failure": "block",
        "content_types": ["application/vnd.api+json"]
    }}))
    .unwrap();
    let s = p.scrubber().unwrap();
    assert_eq!(s.max_body_size(), 2048);
    assert_eq!(s.on_failure(), OnFailure::Block);
    assert!(s.applies_to(Some("application/vnd.api+json; charset=utf-8")));
    assert!(!s.applies_to(Some("application/json")));
    let problem = s.failure_problem();
    assert_eq!(problem.status(), 502);
    let body: Value = serde_json::from_slice(&problem.body()).unwrap();
    assert_eq!(body["title"], "Bad Gateway");

    let defaults = Policy::compile(json!({"scrub": {"fields": ["password"]}})).unwrap();
    let s = defaults.scrubber().unwrap();
    assert_eq!(s.max_body_size(), 1024 * 1024);
    assert_eq!(s.on_failure(), OnFailure::Pass);
    assert!(s.applies_to(Some("application/json")));
    assert!(s.applies_to(Some("application/problem+json")));
    assert!(!s.applies_to(Some("text/html")));
    assert!(!s.applies_to(None));
    // No fields and no pointers: no scrubber.
    assert!(Policy::compile(json!({})).unwrap().scrubber().is_none());
}
