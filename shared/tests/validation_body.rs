#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Request bodies: the strict JSON parser (duplicates, depth, UTF-8, hostile numbers), form
//! bodies with the same field rules, the streaming size limit, and body presence.

use palisade::header_map::HeaderList;
use palisade::json::{parse_strict, JsonError};
use palisade::validation::{BodyBuffer, BodyKind, Policy, RequestHead, TooLarge, Verdict};
use serde_json::{json, Value};
use wasm_bindgen_test::wasm_bindgen_test;

fn policy(doc: Value) -> Policy {
    Policy::compile(doc).expect("the policy compiles")
}

fn body_rules(v: &Verdict) -> Vec<(String, &'static str)> {
    match v.problem() {
        None => vec![],
        Some(p) => p
            .violations()
            .iter()
            .map(|x| (x.pointer.clone(), x.rule))
            .collect(),
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn strict_parser_accepts_ordinary_json() {
    let v = parse_strict(
        br#" {"a": [1, -2.5e3, true, null, "Zo\u00eb \ud83d\ude00"], "b": {}} "#,
        32,
    )
    .unwrap();
    assert_eq!(v, json!({"a": [1, -2500.0, true, null, "Zoë 😀"], "b": {}}));
    assert_eq!(parse_strict(b"42", 1).unwrap(), json!(42));
    assert_eq!(
        parse_strict("\"日本\"".as_bytes(), 1).unwrap(),
        json!("日本")
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn duplicate_keys_are_rejected_with_their_pointer() {
    assert_eq!(
        parse_strict(br#"{"role":"user","role":"admin"}"#, 32),
        Err(JsonError::DuplicateKey {
            pointer: "/role".into()
        })
    );
    assert_eq!(
        parse_strict(br#"{"a":[{"x":1},{"x":1,"x":2}]}"#, 32),
        Err(JsonError::DuplicateKey {
            pointer: "/a/1/x".into()
        })
    );
    // The same name through an escape is the same key.
    assert_eq!(
        parse_strict(br#"{"role":"user","r\u006fle":"admin"}"#, 32),
        Err(JsonError::DuplicateKey {
            pointer: "/role".into()
        })
    );
    // The same key in different objects is fine.
    assert!(parse_strict(br#"{"a":{"x":1},"b":{"x":1}}"#, 32).is_ok());
}

#[wasm_bindgen_test(unsupported = test)]
fn nesting_is_limited() {
    assert!(parse_strict(b"[[[]]]", 3).is_ok());
    assert_eq!(
        parse_strict(b"[[[[]]]]", 3),
        Err(JsonError::TooDeep {
            max: 3,
            pointer: "/0/0/0".into()
        })
    );
    assert_eq!(
        parse_strict(br#"{"a":{"b":{"c":{}}}}"#, 3),
        Err(JsonError::TooDeep {
            max: 3,
            pointer: "/a/b/c".into()
        })
    );
    // Far deeper than serde_json's own limit: still our clean error, no stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(
        parse_strict(deep.as_bytes(), 32),
        Err(JsonError::TooDeep { max: 32, .. })
    ));
    let deep_objects = "{\"a\":".repeat(50_000);
    assert!(matches!(
        parse_strict(deep_objects.as_bytes(), 32),
        Err(JsonError::TooDeep { .. })
    ));
    // The configurable maximum is capped below serde_json's recursion limit.
    assert!(matches!(
        parse_strict(deep.as_bytes(), 10_000),
        Err(JsonError::TooDeep { max: 100, .. })
    ));
}

#[wasm_bindgen_test(unsupported = test)]
fn bad_bytes_are_typed_errors() {
    assert_eq!(
        parse_strict(b"\"\xc3\x28\"", 32),
        Err(JsonError::InvalidUtf8(1))
    );
    assert_eq!(
        parse_strict(b"\xef\xbb\xbf{}", 32).map(|_| ()),
        Err(JsonError::Syntax { line: 1, column: 1 })
    );
    assert_eq!(parse_strict(b"", 32), Err(JsonError::Empty));
    assert_eq!(parse_strict(b" \n\t", 32), Err(JsonError::Empty));
    for bad in [
        &b"{"[..],
        b"{\"a\":1,}",
        b"[1,]",
        b"{'a':1}",
        b"NaN",
        b"Infinity",
        b"1e400",
        b"-1e400",
        b"01",
        b"{} {}",
        b"\"a\x00b\"",
        b"\"\\ud800\"",
        b"\"\\x41\"",
        b"[1] trailing",
    ] {
        assert!(
            matches!(parse_strict(bad, 32), Err(JsonError::Syntax { .. })),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    // Big integers are numbers (rounded), small exponents too.
    assert!(parse_strict(b"123456789012345678901234567890", 32)
        .unwrap()
        .is_number());
    assert!(parse_strict(b"1e-400", 32).unwrap().is_number());
}

fn json_post(p: &Policy, body: &[u8]) -> Verdict {
    let headers = vec![("content-type".to_owned(), "application/json".to_owned())];
    let head = RequestHead {
        method: "POST",
        path: "/",
        headers: &HeaderList::from(headers),
        has_body: true,
    };
    assert_eq!(p.check_head(&head), Verdict::Allow);
    let plan = p.body_plan(&head);
    assert_eq!(plan.kind, BodyKind::Json);
    p.check_body(plan.kind, body)
}

#[wasm_bindgen_test(unsupported = test)]
fn json_bodies_are_checked_even_without_a_schema() {
    let p = policy(json!({"body": {"max_depth": 2}}));
    assert_eq!(json_post(&p, br#"{"a":[1]}"#), Verdict::Allow);
    assert_eq!(
        body_rules(&json_post(&p, br#"{"a":[[1]]}"#)),
        vec![("/a/0".to_owned(), "maxDepth")]
    );
    assert_eq!(
        body_rules(&json_post(&p, br#"{"a":1,"a":2}"#)),
        vec![("/a".to_owned(), "duplicateKey")]
    );
    assert_eq!(
        body_rules(&json_post(&p, b"{\"a\":\"\xff\"}")),
        vec![(String::new(), "encoding")]
    );
    assert_eq!(
        body_rules(&json_post(&p, b"{\"a\":")),
        vec![(String::new(), "json")]
    );
    // No schema: an empty body is fine.
    assert_eq!(json_post(&p, b""), Verdict::Allow);
    assert!(!p.body().required());
}

fn form_policy() -> Policy {
    policy(json!({"body": {"schema": {
        "type": "object",
        "required": ["email", "name"],
        "properties": {
            "email": {"type": "string", "format": "email"},
            "name": {"type": "string", "minLength": 1, "maxLength": 20},
            "age": {"type": "integer", "minimum": 13},
            "newsletter": {"type": "boolean"},
            "tags": {"type": "array", "maxItems": 2, "items": {"enum": ["a", "b", "c"]}}
        },
        "additionalProperties": false
    }}}))
}

fn form_post(p: &Policy, body: &str) -> Verdict {
    let headers = vec![(
        "content-type".to_owned(),
        "application/x-www-form-urlencoded; charset=UTF-8".to_owned(),
    )];
    let head = RequestHead {
        method: "POST",
        path: "/",
        headers: &HeaderList::from(headers),
        has_body: true,
    };
    assert_eq!(p.check_head(&head), Verdict::Allow);
    let plan = p.body_plan(&head);
    assert_eq!(plan.kind, BodyKind::Form);
    assert!(plan.validate);
    p.check_body(plan.kind, body.as_bytes())
}

#[wasm_bindgen_test(unsupported = test)]
fn form_bodies_use_the_same_field_rules() {
    let p = form_policy();
    assert_eq!(
        form_post(&p, "email=o.brien%2Bnews%40example.ie&name=O%27Brien"),
        Verdict::Allow
    );
    assert_eq!(form_post(&p, "email=z%40example.com&name=Zo%C3%AB+%E6%97%A5%E6%9C%AC&age=13&newsletter=true&tags=a&tags=c"), Verdict::Allow);
    let cases = [
        ("name=Ana", vec![("/email", "required")]),
        ("email=nope&name=Ana", vec![("/email", "format")]),
        ("email=a%40b.co&name=", vec![("/name", "minLength")]),
        ("email=a%40b.co&name=Ana&age=12", vec![("/age", "minimum")]),
        ("email=a%40b.co&name=Ana&age=twelve", vec![("/age", "type")]),
        (
            "email=a%40b.co&name=Ana&newsletter=yes",
            vec![("/newsletter", "type")],
        ),
        (
            "email=a%40b.co&name=Ana&tags=a&tags=z",
            vec![("/tags/1", "enum")],
        ),
        (
            "email=a%40b.co&name=Ana&tags=a&tags=b&tags=c",
            vec![("/tags", "maxItems")],
        ),
        (
            "email=a%40b.co&name=Ana&name=Bob",
            vec![("/name", "repeated")],
        ),
        (
            "email=a%40b.co&name=Ana&admin=1",
            vec![("/admin", "additionalProperties")],
        ),
        ("email=a%40b.co&name=%ZZ", vec![("", "percentEncoding")]),
        ("email=a%40b.co&name=%C3", vec![("", "encoding")]),
        ("email=a%40b.co&name=a%00b", vec![("", "controlCharacter")]),
    ];
    for (body, expected) in cases {
        let expected: Vec<(String, &str)> = expected
            .into_iter()
            .map(|(p, r)| (p.to_owned(), r))
            .collect();
        assert_eq!(body_rules(&form_post(&p, body)), expected, "{body}");
    }
    // Line breaks in a text area are legitimate.
    assert_eq!(
        form_post(&p, "email=a%40b.co&name=A%0D%0AB"),
        Verdict::Allow
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn a_schema_makes_the_body_required_unless_told_otherwise() {
    let p = form_policy();
    let headers = vec![("content-type".to_owned(), "application/json".to_owned())];
    let no_body = RequestHead {
        method: "POST",
        path: "/",
        headers: &HeaderList::from(headers),
        has_body: false,
    };
    assert_eq!(
        body_rules(&p.check_head(&no_body)),
        vec![(String::new(), "required")]
    );
    assert_eq!(
        body_rules(&p.check_body(BodyKind::Json, b"  ")),
        vec![(String::new(), "required")]
    );
    let optional = policy(json!({"body": {"required": false, "schema": {"type": "object"}}}));
    assert_eq!(optional.check_head(&no_body), Verdict::Allow);
    assert_eq!(optional.check_body(BodyKind::Json, b""), Verdict::Allow);
    let required = policy(json!({"body": {"required": true}}));
    assert_eq!(
        body_rules(&required.check_head(&no_body)),
        vec![(String::new(), "required")]
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn the_body_buffer_stops_at_the_limit() {
    let mut buffer = BodyBuffer::new(10);
    assert_eq!(buffer.push(b"0123"), Ok(()));
    assert_eq!(buffer.push(b"456789"), Ok(()));
    assert_eq!(buffer.as_bytes(), b"0123456789");
    // One byte more and it says so at once, and drops what it held.
    assert_eq!(buffer.push(b"x"), Err(TooLarge { limit: 10 }));
    assert_eq!(buffer.as_bytes(), b"");
    assert_eq!(buffer.push(b""), Err(TooLarge { limit: 10 }));
    assert_eq!(buffer.seen(), 11);
    // A single huge chunk never gets stored.
    let mut buffer = BodyBuffer::new(1024);
    assert!(buffer.push(&vec![b'a'; 1_000_000]).is_err());
    assert!(buffer.as_bytes().is_empty());
    // Envoy's running total can be checked without copying.
    assert!(BodyBuffer::check_total(10, 10).is_ok());
    assert_eq!(BodyBuffer::check_total(10, 11), Err(TooLarge { limit: 10 }));
}

#[wasm_bindgen_test(unsupported = test)]
fn oversized_bodies_get_413_even_at_the_end() {
    let p = policy(json!({"body": {"max_size": 8}}));
    assert_eq!(p.body_too_large().problem().unwrap().status(), 413);
    assert_eq!(p.check_body(BodyKind::Json, b"[1,2,3]"), Verdict::Allow);
    assert_eq!(
        p.check_body(BodyKind::Json, b"[1,2,3,4]")
            .problem()
            .unwrap()
            .status(),
        413
    );
    let report = policy(json!({"mode": "report", "body": {"max_size": 8}}));
    assert!(matches!(report.body_too_large(), Verdict::Report(_)));
}

#[wasm_bindgen_test(unsupported = test)]
fn body_kinds_come_from_the_media_type() {
    assert_eq!(BodyKind::of(Some("application/json")), BodyKind::Json);
    assert_eq!(
        BodyKind::of(Some("APPLICATION/JSON;charset=utf-8")),
        BodyKind::Json
    );
    assert_eq!(
        BodyKind::of(Some("application/merge-patch+json")),
        BodyKind::Json
    );
    assert_eq!(
        BodyKind::of(Some("application/x-www-form-urlencoded")),
        BodyKind::Form
    );
    assert_eq!(BodyKind::of(Some("text/json")), BodyKind::Other);
    assert_eq!(
        BodyKind::of(Some("multipart/form-data; boundary=x")),
        BodyKind::Other
    );
    assert_eq!(BodyKind::of(None), BodyKind::Other);
    // Other bodies are only counted, unless a body is required.
    let p = policy(json!({}));
    let headers = vec![("content-type".to_owned(), "image/png".to_owned())];
    let head = RequestHead {
        method: "POST",
        path: "/",
        headers: &HeaderList::from(headers),
        has_body: true,
    };
    let plan = p.body_plan(&head);
    assert_eq!(
        (plan.kind, plan.validate, plan.limit),
        (BodyKind::Other, false, 1024 * 1024)
    );
}
