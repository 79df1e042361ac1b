#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The `POST /users` endpoint of the end-to-end test, with exactly its config: the whole request
//! flow a filter runs (select, head, body), the problem document, no false positives on real
//! names and emails, report-only mode, and scrubbing of the response.

use palisade::header_map::HeaderList;
use palisade::matcher::Request;
use palisade::validation::{
    BodyBuffer, BodyKind, Policy, RequestHead, Scrubbed, ValidationConfig, Verdict,
};
use serde_json::{json, Value};
use wasm_bindgen_test::wasm_bindgen_test;

const USERS_CONFIG: &str = r#"{
  "scrub": { "fields": ["password", "secret"] },
  "rules": [
    { "name": "create-user",
      "match": { "path": { "exact": "/users" } },
      "methods": ["POST"],
      "body": {
        "max_size": 4096,
        "content_types": ["application/json"],
        "schema": {
          "type": "object",
          "required": ["email", "password", "name"],
          "properties": {
            "email":    { "type": "string", "format": "email" },
            "password": { "type": "string", "minLength": 5, "maxLength": 50 },
            "name":     { "type": "string", "minLength": 1, "maxLength": 100 },
            "age":      { "type": "integer", "minimum": 13, "maximum": 150 }
          },
          "additionalProperties": false
        }
      }
    }
  ]
}"#;

fn config() -> ValidationConfig {
    ValidationConfig::from_slice(USERS_CONFIG.as_bytes()).expect("the users config loads")
}

fn json_headers(len: usize) -> Vec<(String, String)> {
    vec![
        (":method".into(), "POST".into()),
        (":path".into(), "/users".into()),
        ("content-type".into(), "application/json".into()),
        ("content-length".into(), len.to_string()),
    ]
}

/// Runs the whole request flow as a filter would; returns the first non-Allow verdict.
fn run(
    cfg: &ValidationConfig,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Verdict {
    let lookup = headers.to_vec();
    let req = Request {
        authority: "api.example.com",
        path,
        method,
        route_name: None,
        headers: &lookup,
    };
    let selected = cfg.select(&req);
    assert_eq!(
        selected.rule,
        Some("create-user"),
        "the rule matches {path}"
    );
    let policy: &Policy = selected.policy;
    let head = RequestHead {
        method,
        path,
        headers: &HeaderList::from(headers.to_vec()),
        has_body: !body.is_empty(),
    };
    let verdict = policy.check_head(&head);
    if verdict != Verdict::Allow || body.is_empty() {
        return verdict;
    }
    let plan = policy.body_plan(&head);
    let mut buffer = BodyBuffer::new(plan.limit);
    for chunk in body.chunks(7) {
        if buffer.push(chunk).is_err() {
            return policy.body_too_large();
        }
    }
    assert!(plan.validate);
    policy.check_body(plan.kind, buffer.as_bytes())
}

fn post(body: &Value) -> Verdict {
    let bytes = serde_json::to_vec(body).unwrap();
    run(
        &config(),
        "POST",
        "/users",
        &json_headers(bytes.len()),
        &bytes,
    )
}

/// `(pointer, rule)` of every violation, or a panic if the request passed.
fn violations(verdict: &Verdict) -> Vec<(String, &'static str)> {
    let problem = verdict.problem().expect("the request is rejected");
    problem
        .violations()
        .iter()
        .map(|v| (v.pointer.clone(), v.rule))
        .collect()
}

#[wasm_bindgen_test(unsupported = test)]
fn a_valid_user_passes() {
    let verdict = post(
        &json!({"email": "ana@example.com", "password": "hunter22", "name": "Ana", "age": 30}),
    );
    assert_eq!(verdict, Verdict::Allow);
    // `age` is optional.
    let verdict = post(&json!({"email": "ana@example.com", "password": "hunter22", "name": "Ana"}));
    assert_eq!(verdict, Verdict::Allow);
}

#[wasm_bindgen_test(unsupported = test)]
fn legitimate_names_and_emails_are_not_false_positives() {
    for (name, email) in [
        ("O'Brien", "o.brien+news@example.ie"),
        ("Zoë Saldaña", "zoe@example.com"),
        ("日本 太郎", "taro@例え.jp"),
        ("<script>", "first.last+tag@sub.example.co.uk"),
        ("Robert'); DROP TABLE users;--", "a_b-c@example.org"),
    ] {
        let verdict = post(&json!({"email": email, "password": "pässwörd", "name": name}));
        assert_eq!(verdict, Verdict::Allow, "{name} / {email}");
    }
    // `\u` escapes are just characters: "Zo\u00eb" is 3 characters, within 1..100.
    let body = br#"{"email":"zoe@example.com","password":"\u0070\u0061ssword","name":"Zo\u00eb \ud83d\ude00"}"#;
    let verdict = run(&config(), "POST", "/users", &json_headers(body.len()), body);
    assert_eq!(verdict, Verdict::Allow);
}

#[wasm_bindgen_test(unsupported = test)]
fn lengths_count_characters_not_bytes() {
    // 50 characters of 'ö' is 100 bytes: still a valid password.
    let fifty = "ö".repeat(50);
    assert_eq!(
        post(&json!({"email": "a@b.co", "password": fifty, "name": "A"})),
        Verdict::Allow
    );
    let fifty_one = "ö".repeat(51);
    let v = post(&json!({"email": "a@b.co", "password": fifty_one, "name": "A"}));
    assert_eq!(violations(&v), vec![("/password".to_owned(), "maxLength")]);
    // 4 characters of 4-byte emoji is 16 bytes: still too short.
    let v = post(&json!({"email": "a@b.co", "password": "😀😀😀😀", "name": "A"}));
    assert_eq!(violations(&v), vec![("/password".to_owned(), "minLength")]);
}

#[wasm_bindgen_test(unsupported = test)]
fn each_field_rule_is_enforced() {
    let cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
        (
            json!({"password": "hunter22", "name": "Ana"}),
            vec![("/email", "required")],
        ),
        (
            json!({"email": "not-an-email", "password": "hunter22", "name": "Ana"}),
            vec![("/email", "format")],
        ),
        (
            json!({"email": "a@b.co", "password": "1234", "name": "Ana"}),
            vec![("/password", "minLength")],
        ),
        (
            json!({"email": "a@b.co", "password": "x".repeat(51), "name": "Ana"}),
            vec![("/password", "maxLength")],
        ),
        (
            json!({"email": "a@b.co", "password": "hunter22", "name": ""}),
            vec![("/name", "minLength")],
        ),
        (
            json!({"email": "a@b.co", "password": "hunter22", "name": "n".repeat(101)}),
            vec![("/name", "maxLength")],
        ),
        (
            json!({"email": "a@b.co", "password": "hunter22", "name": "Ana", "age": 12}),
            vec![("/age", "minimum")],
        ),
        (
            json!({"email": "a@b.co", "password": "hunter22", "name": "Ana", "age": 151}),
            vec![("/age", "maximum")],
        ),
        (
            json!({"email": "a@b.co", "password": "hunter22", "name": "Ana", "age": 30.5}),
            vec![("/age", "type")],
        ),
        (
            json!({"email": "a@b.co", "password": "hunter22", "name": "Ana", "age": "30"}),
            vec![("/age", "type")],
        ),
        (
            json!({"email": "a@b.co", "password": "hunter22", "name": "Ana", "admin": true}),
            vec![("/admin", "additionalProperties")],
        ),
        (
            json!({"email": 7, "password": "hunter22", "name": "Ana"}),
            vec![("/email", "type")],
        ),
        (json!(["not", "an", "object"]), vec![("", "type")]),
    ];
    for (body, expected) in cases {
        let v = post(&body);
        let expected: Vec<(String, &str)> = expected
            .into_iter()
            .map(|(p, r)| (p.to_owned(), r))
            .collect();
        assert_eq!(violations(&v), expected, "{body}");
        assert_eq!(v.problem().unwrap().status(), 400);
    }
    // Age boundaries are inclusive; 30.0 is an integer in JSON Schema.
    for age in [json!(13), json!(150), json!(30.0)] {
        let v =
            post(&json!({"email": "a@b.co", "password": "hunter22", "name": "Ana", "age": age}));
        assert_eq!(v, Verdict::Allow, "age {age}");
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn all_violations_are_listed_with_pointer_and_rule() {
    let v = post(&json!({"email": "nope", "password": "1", "age": 200}));
    let mut got = violations(&v);
    got.sort();
    assert_eq!(
        got,
        vec![
            ("/age".to_owned(), "maximum"),
            ("/email".to_owned(), "format"),
            ("/name".to_owned(), "required"),
            ("/password".to_owned(), "minLength"),
        ]
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn wrong_method_content_type_and_size_get_their_statuses() {
    let cfg = config();
    let body = br#"{"email":"a@b.co","password":"hunter22","name":"Ana"}"#;

    let get = run(&cfg, "GET", "/users", &json_headers(0), b"");
    let problem = get.problem().unwrap();
    assert_eq!(problem.status(), 405);
    assert!(problem.headers().contains(&("allow", "POST")));

    let mut form = json_headers(body.len());
    form[2].1 = "text/plain".into();
    assert_eq!(
        run(&cfg, "POST", "/users", &form, body)
            .problem()
            .unwrap()
            .status(),
        415
    );

    // Declared too large: rejected at the headers, before any byte of body.
    let big = json_headers(5000);
    let head = RequestHead {
        method: "POST",
        path: "/users",
        headers: &HeaderList::from(big),
        has_body: true,
    };
    let selected = cfg.select(&Request::new("POST", "api.example.com", "/users"));
    assert_eq!(
        selected
            .policy
            .check_head(&head)
            .problem()
            .unwrap()
            .status(),
        413
    );

    // Streamed (chunked, no content-length) past 4096 bytes: rejected while streaming.
    let mut chunked = json_headers(0);
    chunked.pop();
    let padding = "x".repeat(5000);
    let large = format!(r#"{{"email":"a@b.co","password":"hunter22","name":"{padding}"}}"#);
    let verdict = run(&cfg, "POST", "/users", &chunked, large.as_bytes());
    assert_eq!(verdict.problem().unwrap().status(), 413);

    // No body at all: the schema makes it required.
    let empty = run(&cfg, "POST", "/users", &json_headers(0), b"");
    assert_eq!(violations(&empty), vec![(String::new(), "required")]);
}

#[wasm_bindgen_test(unsupported = test)]
fn the_problem_document_is_rfc_9457_and_does_not_echo_input() {
    let v = post(
        &json!({"email": "<script>alert(1)</script>", "password": "hunter22", "name": "Ana", "<img src=x onerror=alert(1)>": 1}),
    );
    let problem = v.problem().unwrap();
    assert!(problem
        .headers()
        .contains(&("content-type", "application/problem+json")));
    let body = problem.body();
    let text = String::from_utf8(body.clone()).unwrap();
    assert!(!text.contains("<script>"), "{text}");
    assert!(!text.contains('<') && !text.contains('>'), "{text}");
    assert!(!text.contains("alert(1)</"), "{text}");
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["status"], 400);
    assert_eq!(doc["title"], "Bad Request");
    assert_eq!(doc["type"], "about:blank");
    let errors = doc["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    let email = errors.iter().find(|e| e["pointer"] == "/email").unwrap();
    assert_eq!(email["in"], "body");
    assert_eq!(email["rule"], "format");
    assert_eq!(email["detail"], "must be a valid email address");
    // The unknown member's name is kept in the pointer, but escaped.
    let extra = errors
        .iter()
        .find(|e| e["rule"] == "additionalProperties")
        .unwrap();
    assert_eq!(extra["pointer"], "/<img src=x onerror=alert(1)>");
    assert!(text.contains("\\u003cimg"), "{text}");
}

#[wasm_bindgen_test(unsupported = test)]
fn hostile_bodies_are_rejected_cleanly() {
    let cfg = config();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            br#"{"email":"a@b.co","password":"hunter22","name":"Ana","name":"Bob"}"#.to_vec(),
            "duplicateKey",
        ),
        (
            b"{\"email\":\"a@b.co\",\"password\":\"hunter22\",\"name\":\"\xff\xfe\"}".to_vec(),
            "encoding",
        ),
        (
            br#"{"email":"a@b.co","password":"hunter22","name":"Ana""#.to_vec(),
            "json",
        ),
        (
            br#"{"email":"a@b.co","password":"hunter22","name":"Ana","age":1e999}"#.to_vec(),
            "json",
        ),
        (
            br#"{"email":"a@b.co","password":"hunter22","name":"\ud800"}"#.to_vec(),
            "json",
        ),
        (
            format!("{}{}", "[".repeat(2000), "]".repeat(2000)).into_bytes(),
            "maxDepth",
        ),
        (
            b"{\"email\":\"a@b.co\",\"password\":\"hunter22\",\"name\":\"A\x00\"}".to_vec(),
            "json",
        ),
    ];
    for (body, rule) in cases {
        let v = run(&cfg, "POST", "/users", &json_headers(body.len()), &body);
        let got = violations(&v);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].1, rule, "{}", String::from_utf8_lossy(&body));
    }
    // A NUL written as an escape is a character like any other: the schema decides.
    let body = br#"{"email":"a@b.co","password":"hunter22","name":"A\u0000"}"#;
    assert_eq!(
        run(&cfg, "POST", "/users", &json_headers(body.len()), body),
        Verdict::Allow
    );
    // A huge integer is a number, out of range for age.
    let body = br#"{"email":"a@b.co","password":"hunter22","name":"A","age":123456789012345678901234567890}"#;
    let v = run(&cfg, "POST", "/users", &json_headers(body.len()), body);
    assert_eq!(violations(&v), vec![("/age".to_owned(), "maximum")]);
}

#[wasm_bindgen_test(unsupported = test)]
fn report_mode_reports_what_it_would_reject_and_passes() {
    let mut doc: Value = serde_json::from_str(USERS_CONFIG).unwrap();
    doc["rules"][0]["mode"] = json!("report");
    let cfg = ValidationConfig::from_value(doc).unwrap();
    let body = br#"{"email":"nope","password":"hunter22","name":"Ana"}"#;
    let verdict = run(&cfg, "POST", "/users", &json_headers(body.len()), body);
    match &verdict {
        Verdict::Report(problem) => {
            assert_eq!(problem.status(), 400);
            assert_eq!(problem.violations()[0].rule, "format");
            assert!(problem.summary().contains("/email"));
        }
        other => panic!("expected a report, got {other:?}"),
    }
    assert!(!verdict.is_reject());
    // The default (enforce) policy is unchanged by the rule's mode.
    let good = br#"{"email":"a@b.co","password":"hunter22","name":"Ana"}"#;
    assert_eq!(
        run(&cfg, "POST", "/users", &json_headers(good.len()), good),
        Verdict::Allow
    );
    assert!(run(&config(), "POST", "/users", &json_headers(body.len()), body).is_reject());
}

#[wasm_bindgen_test(unsupported = test)]
fn the_response_is_scrubbed_on_every_route() {
    let cfg = config();
    for path in ["/users", "/anything"] {
        let policy = cfg.select(&Request::new("GET", "h", path)).policy;
        let scrubber = policy
            .scrubber()
            .expect("scrubbing is configured at the top level");
        assert!(scrubber.applies_to(Some("application/json; charset=utf-8")));
        let upstream = br#"{"id":7,"email":"a@b.co","password":"hunter22","profile":{"secret":"s","bio":"hi"}}"#;
        match scrubber.scrub(upstream) {
            Scrubbed::Changed { body, removed } => {
                assert_eq!(removed, 2);
                let v: Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(
                    v,
                    json!({"id": 7, "email": "a@b.co", "profile": {"bio": "hi"}})
                );
            }
            other => panic!("expected scrubbing, got {other:?}"),
        }
    }
    assert_eq!(BodyKind::of(Some("application/json")), BodyKind::Json);
}

#[wasm_bindgen_test(unsupported = test)]
fn counters_follow_the_project_naming() {
    assert_eq!(
        palisade::validation::metric_name("rejected"),
        "palisade_input_validation_rejected_total"
    );
    let v = post(&json!({"email": "a@b.co", "password": "1", "name": "A"}));
    assert_eq!(v.problem().unwrap().category(), "body");
    let v = run(&config(), "PUT", "/users", &json_headers(0), b"");
    assert_eq!(v.problem().unwrap().category(), "method");
}
