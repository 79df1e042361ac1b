#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Request shape checked when the headers arrive: method (405), path and query length (414),
//! path shape and traversal, typed path parameters, query parameters, header count and size
//! (431), required, forbidden and patterned headers, content type (415), declared length (413).

use palisade::header_map::HeaderList;
use palisade::matcher::Request;
use palisade::validation::{Policy, RequestHead, ValidationConfig, Verdict};
use serde_json::{json, Value};
use wasm_bindgen_test::wasm_bindgen_test;

fn policy(doc: Value) -> Policy {
    Policy::compile(doc).expect("the policy compiles")
}

fn head_verdict(
    p: &Policy,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    has_body: bool,
) -> Verdict {
    let headers: HeaderList = headers.iter().copied().collect();
    p.check_head(&RequestHead {
        method,
        path,
        headers: &headers,
        has_body,
    })
}

fn get(p: &Policy, path: &str) -> Verdict {
    head_verdict(p, "GET", path, &[], false)
}

/// `(status, location, pointer, rule)` of each violation.
fn found(v: &Verdict) -> Vec<(u32, &'static str, String, &'static str)> {
    match v.problem() {
        None => vec![],
        Some(p) => p
            .violations()
            .iter()
            .map(|x| (p.status(), x.location.as_str(), x.pointer.clone(), x.rule))
            .collect(),
    }
}

fn rules_of(v: &Verdict) -> Vec<&'static str> {
    found(v).into_iter().map(|(_, _, _, r)| r).collect()
}

#[wasm_bindgen_test(unsupported = test)]
fn methods_allow_list_gives_405_with_allow() {
    let p = policy(json!({"methods": ["get", "HEAD", "GET"]}));
    assert_eq!(get(&p, "/"), Verdict::Allow);
    assert_eq!(head_verdict(&p, "HEAD", "/", &[], false), Verdict::Allow);
    let v = head_verdict(&p, "DELETE", "/", &[], false);
    let problem = v.problem().unwrap();
    assert_eq!(problem.status(), 405);
    assert_eq!(
        problem
            .headers()
            .iter()
            .find(|(k, _)| *k == "allow")
            .unwrap()
            .1,
        "GET, HEAD"
    );
    // Methods are case-sensitive on the wire.
    assert_eq!(
        head_verdict(&p, "get", "/", &[], false)
            .problem()
            .unwrap()
            .status(),
        405
    );
    // No list: every method.
    assert_eq!(
        head_verdict(&policy(json!({})), "PATCH", "/", &[], false),
        Verdict::Allow
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn long_paths_and_queries_get_414() {
    let p = policy(json!({"path": {"max_length": 20}, "query": {"max_length": 10}}));
    assert_eq!(get(&p, "/aaaaaaaaaaaaaaaaaaa"), Verdict::Allow);
    assert_eq!(
        found(&get(&p, "/aaaaaaaaaaaaaaaaaaaa")),
        vec![(414, "path", String::new(), "maxLength")]
    );
    // The query does not count towards the path, and has its own limit.
    assert_eq!(get(&p, "/a?q=12345678"), Verdict::Allow);
    assert_eq!(
        found(&get(&p, "/a?q=123456789")),
        vec![(414, "query", String::new(), "maxLength")]
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn legitimate_paths_pass() {
    let p = policy(json!({}));
    for path in [
        "/",
        "/users/42",
        "/files/report.v2.final.pdf",
        "/a/b/c/?x=1",
        "/names/O'Brien",
        "/names/Zo%C3%AB",
        "/search/%E6%97%A5%E6%9C%AC",
        "/a/...",
        "/a/..b/c",
        "/.well-known/openid-configuration",
        "/api;v=2/items",
        "/~user/page",
        "/a%20b",
    ] {
        assert_eq!(get(&p, path), Verdict::Allow, "{path}");
    }
    // No `:path` at all (HTTP/2 CONNECT): nothing to check.
    assert_eq!(get(&p, ""), Verdict::Allow);
}

#[wasm_bindgen_test(unsupported = test)]
fn traversal_is_rejected_raw_and_encoded() {
    let p = policy(json!({}));
    for path in [
        "/../etc/passwd",
        "/a/../../etc/passwd",
        "/a/./b",
        "/a/..",
        "/a/%2e%2e/b",
        "/a/%2E%2E/b",
        "/a/.%2e/b",
        "/a/%252e%252e/b",
        "/a/%25252e%25252e/b",
        "/..;/admin",
        "/a/..;jsessionid=1/admin",
        "/a/%2e%2e;/admin",
    ] {
        assert!(
            rules_of(&get(&p, path)).contains(&"traversal"),
            "{path}: {:?}",
            found(&get(&p, path))
        );
        assert_eq!(get(&p, path).problem().unwrap().status(), 400);
    }
    // Backslashes: raw (not a URI character) and encoded (an encoded separator, and traversal).
    let raw = rules_of(&get(&p, "/a/..\\..\\windows"));
    assert!(
        raw.contains(&"traversal") && raw.contains(&"characters"),
        "{raw:?}"
    );
    let encoded = rules_of(&get(&p, "/a/..%5c..%5cwindows"));
    assert!(
        encoded.contains(&"traversal") && encoded.contains(&"encodedSlash"),
        "{encoded:?}"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn control_characters_and_bad_escapes_are_rejected() {
    let p = policy(json!({}));
    assert!(rules_of(&get(&p, "/a%00b")).contains(&"controlCharacter"));
    assert!(rules_of(&get(&p, "/a%0d%0aSet-Cookie:x")).contains(&"controlCharacter"));
    assert!(rules_of(&get(&p, "/a%2500b")).contains(&"controlCharacter"));
    assert!(rules_of(&get(&p, "/a\u{0}b")).contains(&"controlCharacter"));
    assert!(rules_of(&get(&p, "/a\tb")).contains(&"controlCharacter"));
    assert_eq!(rules_of(&get(&p, "/a%zz")), vec!["percentEncoding"]);
    assert_eq!(rules_of(&get(&p, "/a%4")), vec!["percentEncoding"]);
    // Overlong UTF-8 for '.' (%c0%ae) is not UTF-8.
    assert_eq!(rules_of(&get(&p, "/%c0%ae%c0%ae/etc")), vec!["encoding"]);
    // Raw non-ASCII and spaces are not URI characters.
    assert_eq!(rules_of(&get(&p, "/Zoë")), vec!["characters"]);
    assert_eq!(rules_of(&get(&p, "/a b")), vec!["characters"]);
    assert_eq!(rules_of(&get(&p, "relative")), vec!["characters"]);
}

#[wasm_bindgen_test(unsupported = test)]
fn encoded_slashes_follow_the_policy() {
    let strict = policy(json!({}));
    assert_eq!(
        rules_of(&get(&strict, "/files/a%2Fb")),
        vec!["encodedSlash"]
    );
    assert_eq!(
        rules_of(&get(&strict, "/files/a%2fb")),
        vec!["encodedSlash"]
    );
    assert_eq!(
        rules_of(&get(&strict, "/files/a%252Fb")),
        vec!["encodedSlash"]
    );
    let lax = policy(json!({"path": {"encoded_slashes": "allow"}}));
    assert_eq!(get(&lax, "/files/a%2Fb"), Verdict::Allow);
    // Allowing encoded slashes does not allow traversal through them.
    assert_eq!(
        rules_of(&get(&lax, "/files/..%2F..%2Fetc")),
        vec!["traversal"]
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn allowed_characters_apply_to_the_decoded_path() {
    let p = policy(json!({"path": {"allowed_characters": "[a-z0-9/._-]"}}));
    assert_eq!(get(&p, "/api/v1/items-2.json"), Verdict::Allow);
    // %61 is 'a': fine once decoded.
    assert_eq!(get(&p, "/%61pi"), Verdict::Allow);
    assert_eq!(rules_of(&get(&p, "/API")), vec!["characters"]);
    assert_eq!(rules_of(&get(&p, "/a%20b")), vec!["characters"]);
    let unicode = policy(json!({"path": {"allowed_characters": "[^<>\"]"}}));
    assert_eq!(get(&unicode, "/names/Zo%C3%AB"), Verdict::Allow);
    assert_eq!(
        rules_of(&get(&unicode, "/names/%3Cb%3E")),
        vec!["characters"]
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn templated_paths_type_their_parameters() {
    let p = policy(json!({"path": {
        "template": "/users/{id}/keys/{key}/{slug}",
        "params": {
            "id": {"type": "integer", "minimum": 1},
            "key": {"format": "uuid"},
            "slug": {"pattern": "^[a-z0-9-]{1,20}$"}
        }
    }}));
    let good = "/users/42/keys/123e4567-e89b-12d3-a456-426614174000/my-key";
    assert_eq!(get(&p, good), Verdict::Allow);
    assert_eq!(get(&p, &format!("{good}?x=1")), Verdict::Allow);
    let bad = "/users/abc/keys/not-a-uuid/Bad_Slug";
    assert_eq!(
        found(&get(&p, bad)),
        vec![
            (400, "path", "/id".to_owned(), "type"),
            (400, "path", "/key".to_owned(), "format"),
            (400, "path", "/slug".to_owned(), "pattern"),
        ]
    );
    assert_eq!(
        found(&get(
            &p,
            "/users/0/keys/123e4567-e89b-12d3-a456-426614174000/x"
        )),
        vec![(400, "path", "/id".to_owned(), "minimum")]
    );
    assert_eq!(
        rules_of(&get(
            &p,
            "/users/1.5/keys/123e4567-e89b-12d3-a456-426614174000/x"
        )),
        vec!["type"]
    );
    // Wrong shape: missing segment, extra segment, empty segment, wrong literal.
    for path in [
        "/users/42/keys/k",
        "/users/42/keys/k/s/extra",
        "/users//keys/k/s",
        "/people/42/keys/k/s",
    ] {
        assert_eq!(rules_of(&get(&p, path)), vec!["template"], "{path}");
    }
    // Parameters are percent-decoded before their rule: %34%32 is "42".
    assert_eq!(
        get(
            &p,
            "/users/%34%32/keys/123e4567-e89b-12d3-a456-426614174000/a"
        ),
        Verdict::Allow
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn query_parameters_have_rules() {
    let p = policy(json!({"query": {
        "unknown_params": "reject",
        "params": {
            "page": {"type": "integer", "minimum": 1, "maximum": 100},
            "sort": {"enum": ["name", "created"]},
            "tag": {"type": "string", "pattern": "^[a-z]+$", "repeated": true},
            "q": {"required": true, "maxLength": 20},
            "debug": {"type": "boolean"}
        }
    }}));
    assert_eq!(get(&p, "/s?q=x"), Verdict::Allow);
    assert_eq!(
        get(
            &p,
            "/s?q=Zo%C3%AB+O%27Brien&page=3&sort=name&tag=a&tag=b&debug=true"
        ),
        Verdict::Allow
    );
    let cases = [
        ("/s", vec![("/q", "required")]),
        ("/s?q=x&page=0", vec![("/page", "minimum")]),
        ("/s?q=x&page=abc", vec![("/page", "type")]),
        ("/s?q=x&page=1.5", vec![("/page", "type")]),
        ("/s?q=x&page=", vec![("/page", "type")]),
        ("/s?q=x&sort=price", vec![("/sort", "enum")]),
        ("/s?q=x&tag=ok&tag=NO", vec![("/tag/1", "pattern")]),
        ("/s?q=x&page=1&page=2", vec![("/page", "repeated")]),
        ("/s?q=x&debug=yes", vec![("/debug", "type")]),
        ("/s?q=x&evil=1", vec![("/evil", "unknownParameter")]),
        ("/s?q=123456789012345678901", vec![("/q", "maxLength")]),
    ];
    for (path, expected) in cases {
        let expected: Vec<(u32, &str, String, &str)> = expected
            .into_iter()
            .map(|(ptr, rule)| (400, "query", ptr.to_owned(), rule))
            .collect();
        assert_eq!(found(&get(&p, path)), expected, "{path}");
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn query_count_and_encoding_are_checked() {
    let p = policy(json!({"query": {"max_params": 3}}));
    assert_eq!(get(&p, "/s?a=1&b=2&c=3"), Verdict::Allow);
    assert_eq!(get(&p, "/s?a=1&&b=2&c=3&"), Verdict::Allow);
    assert_eq!(rules_of(&get(&p, "/s?a=1&b=2&c=3&d=4")), vec!["maxParams"]);
    assert_eq!(rules_of(&get(&p, "/s?a=%zz")), vec!["percentEncoding"]);
    assert_eq!(rules_of(&get(&p, "/s?a=%ff")), vec!["encoding"]);
    assert_eq!(rules_of(&get(&p, "/s?a=%00")), vec!["controlCharacter"]);
    // Unknown parameters are allowed by default.
    assert_eq!(get(&p, "/s?anything=goes"), Verdict::Allow);
}

#[wasm_bindgen_test(unsupported = test)]
fn header_count_and_size_give_431() {
    let p = policy(json!({"headers": {"max_count": 3, "max_size": 40}}));
    let three = [(":path", "/"), ("a", "1"), ("b", "2"), ("c", "3")];
    assert_eq!(head_verdict(&p, "GET", "/", &three, false), Verdict::Allow);
    let four = [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")];
    assert_eq!(
        found(&head_verdict(&p, "GET", "/", &four, false)),
        vec![(431, "header", String::new(), "maxCount")]
    );
    let big = [("x-big", "0123456789012345678901234567890123456789")];
    assert_eq!(
        found(&head_verdict(&p, "GET", "/", &big, false)),
        vec![(431, "header", String::new(), "maxSize")]
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn required_forbidden_and_patterned_headers() {
    let p = policy(json!({"headers": {
        "required": ["X-Api-Key"],
        "forbidden": ["x-debug"],
        "fields": {
            "x-request-id": {"format": "uuid"},
            "x-tenant": {"pattern": "^[a-z0-9-]{1,32}$", "required": true},
            "x-retries": {"type": "integer", "maximum": 3}
        }
    }}));
    let good = [
        ("x-api-key", "k"),
        ("x-tenant", "acme"),
        ("x-request-id", "123e4567-e89b-12d3-a456-426614174000"),
    ];
    assert_eq!(head_verdict(&p, "GET", "/", &good, false), Verdict::Allow);
    let v = head_verdict(
        &p,
        "GET",
        "/",
        &[
            ("X-Debug", "1"),
            ("x-request-id", "nope"),
            ("x-retries", "9"),
        ],
        false,
    );
    let mut got = found(&v);
    got.sort();
    assert_eq!(
        got,
        vec![
            (400, "header", "/x-api-key".to_owned(), "required"),
            (400, "header", "/x-debug".to_owned(), "forbidden"),
            (400, "header", "/x-request-id".to_owned(), "format"),
            (400, "header", "/x-retries".to_owned(), "maximum"),
            (400, "header", "/x-tenant".to_owned(), "required"),
        ]
    );
    // Every value of a repeated header is checked.
    let twice = [
        ("x-api-key", "k"),
        ("x-tenant", "acme"),
        ("x-tenant", "ACME!"),
    ];
    assert_eq!(
        found(&head_verdict(&p, "GET", "/", &twice, false)),
        vec![(400, "header", "/x-tenant".to_owned(), "pattern")]
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn content_type_allow_list_gives_415() {
    let p = policy(json!({"body": {"content_types": ["application/json", "text/*"]}}));
    for ct in [
        "application/json",
        "Application/JSON; charset=utf-8",
        "text/plain",
        "text/csv",
    ] {
        assert_eq!(
            head_verdict(&p, "POST", "/", &[("content-type", ct)], true),
            Verdict::Allow,
            "{ct}"
        );
    }
    for ct in [
        "application/xml",
        "application/json-patch+json",
        "multipart/form-data; boundary=x",
    ] {
        let v = head_verdict(&p, "POST", "/", &[("content-type", ct)], true);
        assert_eq!(
            found(&v),
            vec![(415, "header", "/content-type".to_owned(), "contentType")],
            "{ct}"
        );
    }
    // A body without a content type is refused when there is a list.
    assert_eq!(
        head_verdict(&p, "POST", "/", &[], true)
            .problem()
            .unwrap()
            .status(),
        415
    );
    // No body: the content type does not matter.
    assert_eq!(
        head_verdict(
            &p,
            "GET",
            "/",
            &[("content-type", "application/xml")],
            false
        ),
        Verdict::Allow
    );
    // With a schema and no list, only JSON and forms are accepted.
    let schema = policy(json!({"body": {"schema": {"type": "object"}}}));
    assert_eq!(
        head_verdict(
            &schema,
            "POST",
            "/",
            &[("content-type", "application/problem+json")],
            true
        ),
        Verdict::Allow
    );
    assert_eq!(
        head_verdict(
            &schema,
            "POST",
            "/",
            &[("content-type", "application/x-www-form-urlencoded")],
            true
        ),
        Verdict::Allow
    );
    assert_eq!(
        head_verdict(
            &schema,
            "POST",
            "/",
            &[("content-type", "text/plain")],
            true
        )
        .problem()
        .unwrap()
        .status(),
        415
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn declared_length_over_the_limit_gives_413_before_the_body() {
    let p = policy(json!({"body": {"max_size": 10}}));
    assert_eq!(
        head_verdict(&p, "POST", "/", &[("content-length", "10")], true),
        Verdict::Allow
    );
    let v = head_verdict(&p, "POST", "/", &[("content-length", "11")], true);
    assert_eq!(found(&v), vec![(413, "body", String::new(), "maxSize")]);
    // A length that cannot be read is left to the streaming check.
    assert_eq!(
        head_verdict(
            &p,
            "POST",
            "/",
            &[("content-length", "99999999999999999999999")],
            true
        ),
        Verdict::Allow
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn the_first_hard_failure_wins_then_400s_accumulate() {
    let p = policy(
        json!({"methods": ["GET"], "headers": {"required": ["x-key"]}, "query": {"params": {"n": {"type": "integer"}}}}),
    );
    // 405 before anything else.
    assert_eq!(
        head_verdict(&p, "POST", "/../x?n=a", &[], false)
            .problem()
            .unwrap()
            .status(),
        405
    );
    // All 400 violations together.
    let mut got = rules_of(&get(&p, "/../x?n=a"));
    got.sort();
    assert_eq!(got, vec!["required", "traversal", "type"]);
}

#[wasm_bindgen_test(unsupported = test)]
fn rules_pick_the_policy_per_route() {
    let cfg = ValidationConfig::from_value(json!({
        "methods": ["GET"],
        "rules": [
            {"name": "admin", "match": {"path": {"prefix": "/admin"}}, "headers": {"required": ["x-admin-token"]}},
            {"name": "upload", "match": {"path": {"exact": "/upload"}}, "methods": ["POST", "PUT"], "mode": "report"}
        ]
    }))
    .unwrap();
    let select = |method: &str, path: &str| cfg.select(&Request::new(method, "h", path));
    let admin = select("GET", "/admin/x");
    assert_eq!(admin.rule, Some("admin"));
    // The rule inherits `methods` from the default and adds its header rule.
    assert_eq!(
        head_verdict(admin.policy, "POST", "/admin/x", &[], false)
            .problem()
            .unwrap()
            .status(),
        405
    );
    assert_eq!(
        rules_of(&head_verdict(admin.policy, "GET", "/admin/x", &[], false)),
        vec!["required"]
    );
    let upload = select("DELETE", "/upload");
    assert_eq!(upload.rule, Some("upload"));
    assert!(matches!(
        head_verdict(upload.policy, "DELETE", "/upload", &[], false),
        Verdict::Report(_)
    ));
    let default = select("GET", "/other");
    assert_eq!(default.rule, None);
    assert_eq!(
        rules_of(&head_verdict(default.policy, "GET", "/other", &[], false)),
        Vec::<&str>::new()
    );
}

fn config_error(doc: Value) -> String {
    match ValidationConfig::from_value(doc) {
        Ok(_) => panic!("the config should be refused"),
        Err(e) => e.to_string(),
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn bad_configs_name_the_field() {
    let cases = [
        (
            json!({"methods": ["GET", "PO ST"]}),
            "methods[1]: 'PO ST' is not an HTTP method",
        ),
        (
            json!({"methods": []}),
            "methods: must list at least one method",
        ),
        (json!({"mode": "audit"}), "mode: unknown variant `audit`"),
        (
            json!({"path": {"max_lenght": 5}}),
            "path.max_lenght: unknown field `max_lenght`",
        ),
        (
            json!({"path": {"encoded_slashes": "decode"}}),
            "path.encoded_slashes: unknown variant `decode`",
        ),
        (
            json!({"path": {"template": "users/{id}"}}),
            "path.template: must start with '/'",
        ),
        (
            json!({"path": {"template": "/users/id-{id}"}}),
            "path.template: a parameter must be a whole segment",
        ),
        (
            json!({"path": {"template": "/a/{id}/{id}"}}),
            "path.template: parameter 'id' appears twice",
        ),
        (
            json!({"path": {"template": "/a/{id}", "params": {"uid": {}}}}),
            "path.params.uid: 'uid' is not a parameter",
        ),
        (
            json!({"path": {"params": {"id": {}}}}),
            "path.params.id: path parameters need a 'template'",
        ),
        (
            json!({"path": {"template": "/a/{id}", "params": {"id": {"repeated": true}}}}),
            "path.params.id.repeated: unknown field `repeated`",
        ),
        (
            json!({"path": {"allowed_characters": "[a-"}}),
            "path.allowed_characters: invalid regex",
        ),
        (
            json!({"query": {"params": {"p": {"type": "object"}}}}),
            "query.params.p: a parameter rule describes one text value",
        ),
        (
            json!({"query": {"params": {"p": {"required": "yes"}}}}),
            "query.params.p.required: expected true or false",
        ),
        (
            json!({"query": {"params": {"p": {"maxLenght": 3}}}}),
            "query.params.p.maxLenght: unknown field `maxLenght`",
        ),
        (
            json!({"query": {"unknown_params": "deny"}}),
            "query.unknown_params: unknown variant `deny`",
        ),
        (
            json!({"headers": {"required": ["bad header"]}}),
            "headers.required[0]: 'bad header' is not a header name",
        ),
        (
            json!({"headers": {"required": ["x-a"], "forbidden": ["X-A"]}}),
            "headers.forbidden[0]: 'x-a' is also required",
        ),
        (
            json!({"body": {"max_depth": 0}}),
            "body.max_depth: must be between 1 and 100",
        ),
        (
            json!({"body": {"max_depth": 500}}),
            "body.max_depth: must be between 1 and 100",
        ),
        (
            json!({"body": {"content_types": ["json"]}}),
            "body.content_types[0]: 'json' is not a media type",
        ),
        (
            json!({"body": {"content_types": ["text/plain"], "schema": {}}}),
            "body.content_types[0]: the body schema can only check JSON and form bodies",
        ),
        (
            json!({"body": {"schema": {"type": "objcet"}}}),
            "body.schema.type: unknown type 'objcet'",
        ),
        (
            json!({"max_errors": 0}),
            "max_errors: must be between 1 and 100",
        ),
        (
            json!({"scrub": {"pointers": ["password"]}}),
            "scrub.pointers[0]: 'password' is not a JSON pointer",
        ),
        (
            json!({"rules": [{"match": {"path": {"exact": "/x"}}, "body": {"schema": {"oneOf": []}}}]}),
            "rules[0].body.schema.oneOf: unknown field `oneOf`",
        ),
        (
            json!({"rules": [{"match": {"path": {"exact": "/x"}}, "methods": ["G3T"]}]}),
            "rules[0].methods[0]: 'G3T' is not an HTTP method",
        ),
    ];
    for (doc, expected) in cases {
        let e = config_error(doc.clone());
        assert!(
            e.starts_with(expected),
            "{doc}\n  got:  {e}\n  want: {expected}"
        );
    }
    assert!(ValidationConfig::from_slice(b"[1]").is_err());
    assert!(ValidationConfig::from_slice(b"{nope").is_err());
    // Empty configuration: every default, no error.
    assert!(ValidationConfig::from_slice(b"").is_ok());
}
