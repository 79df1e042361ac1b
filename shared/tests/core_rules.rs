#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Route rules, matching, config errors, client IP and error bodies: the pieces every filter uses.

use palisade::client_ip::{client_ip, parse_address, ClientIpConfig};
use palisade::config::{from_slice, ConfigError};
use palisade::matcher::Request;
use palisade::response::ErrorResponse;
use palisade::rules::RuleSet;
use serde::Deserialize;
use serde_json::{json, Value};
use wasm_bindgen_test::wasm_bindgen_test;

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Demo {
    #[serde(default)]
    level: u32,
    #[serde(default)]
    tag: Option<String>,
}

fn rules(doc: Value) -> Result<RuleSet<Demo>, ConfigError> {
    let Value::Object(map) = doc else { panic!() };
    RuleSet::from_document(&map, &["providers"], palisade::config::from_value)
}

fn pick<'a>(set: &'a RuleSet<Demo>, req: &Request<'_>) -> (Option<&'a str>, &'a Demo) {
    let s = set.select(req);
    (s.rule, s.policy)
}

#[wasm_bindgen_test(unsupported = test)]
fn default_policy_when_nothing_matches() {
    let set = rules(
        json!({"level": 1, "rules": [{"match": {"path": {"prefix": "/admin"}}, "level": 9}]}),
    )
    .unwrap();
    let (rule, p) = pick(&set, &Request::new("GET", "a.example", "/public"));
    assert_eq!(rule, None);
    assert_eq!(p.level, 1);
}

#[wasm_bindgen_test(unsupported = test)]
fn first_match_wins_and_rules_inherit_defaults() {
    let set = rules(json!({
        "level": 1, "tag": "base",
        "rules": [
            {"name": "admin", "match": {"path": {"prefix": "/admin"}}, "level": 9},
            {"name": "admin-again", "match": {"path": {"prefix": "/admin/x"}}, "level": 5}
        ]
    }))
    .unwrap();
    let (rule, p) = pick(&set, &Request::new("GET", "a", "/admin/x/y"));
    assert_eq!(rule, Some("admin"));
    assert_eq!(
        p,
        &Demo {
            level: 9,
            tag: Some("base".into())
        }
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn path_kinds_ignore_the_query_string() {
    let set = rules(json!({"rules": [
        {"name": "exact", "match": {"path": {"exact": "/login"}}},
        {"name": "regex", "match": {"path": {"regex": "/users/[0-9]+"}}}
    ]}))
    .unwrap();
    assert_eq!(
        pick(&set, &Request::new("POST", "h", "/login?next=/")).0,
        Some("exact")
    );
    assert_eq!(pick(&set, &Request::new("POST", "h", "/login/x")).0, None);
    assert_eq!(
        pick(&set, &Request::new("GET", "h", "/users/42?x=1")).0,
        Some("regex")
    );
    // A regex matches the whole path, not a part of it.
    assert_eq!(
        pick(&set, &Request::new("GET", "h", "/users/42/keys")).0,
        None
    );
    assert_eq!(
        pick(&set, &Request::new("GET", "h", "/v1/users/42")).0,
        None
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn host_wildcards_ports_and_case() {
    let set = rules(json!({"rules": [
        {"name": "sub", "match": {"hosts": ["*.example.com"]}},
        {"name": "api", "match": {"hosts": ["api.*"]}},
        {"name": "exact", "match": {"hosts": ["Example.org"]}}
    ]}))
    .unwrap();
    let name = |authority: &str| pick(&set, &Request::new("GET", authority, "/")).0;
    assert_eq!(name("a.example.com"), Some("sub"));
    assert_eq!(name("A.B.EXAMPLE.COM:8443"), Some("sub"));
    assert_eq!(name("example.com"), None, "the apex is not a subdomain");
    assert_eq!(name("evil-example.com"), None);
    assert_eq!(name("api.internal"), Some("api"));
    assert_eq!(name("example.org:80"), Some("exact"));
    assert_eq!(name("[::1]:80"), None);
}

#[wasm_bindgen_test(unsupported = test)]
fn methods_route_names_and_headers() {
    let set = rules(json!({"rules": [
        {"name": "writes", "match": {"methods": ["post", "PUT"]}},
        {"name": "route", "match": {"route_names": ["checkout"]}},
        {"name": "hdr", "match": {"headers": [{"name": "X-Tenant", "exact": "acme"}, {"name": "x-debug", "present": false}]}}
    ]}))
    .unwrap();
    assert!(set.needs_route_name());
    assert_eq!(
        pick(&set, &Request::new("POST", "h", "/")).0,
        Some("writes")
    );
    let mut req = Request::new("GET", "h", "/");
    req.route_name = Some("checkout");
    assert_eq!(pick(&set, &req).0, Some("route"));
    let headers = vec![("x-tenant".to_string(), "acme".to_string())];
    let mut req = Request::new("GET", "h", "/");
    req.headers = &headers;
    assert_eq!(pick(&set, &req).0, Some("hdr"));
    let headers = vec![
        ("x-tenant".to_string(), "acme".to_string()),
        ("x-debug".to_string(), "1".to_string()),
    ];
    req.headers = &headers;
    assert_eq!(pick(&set, &req).0, None);
}

fn err_of(doc: Value) -> String {
    rules(doc).unwrap_err().to_string()
}

#[wasm_bindgen_test(unsupported = test)]
fn config_errors_name_the_field() {
    assert_eq!(
        err_of(json!({"rules": [{"match": {}}, {"match": {"path": {"exact": "admin"}}}]})),
        "rules[1].match.path.exact: expected a string starting with '/', got 'admin'"
    );
    assert!(err_of(json!({"rules": [{"match": {"paths": []}}]}))
        .starts_with("rules[0].match.paths: unknown field `paths`"));
    assert!(
        err_of(json!({"rules": [{"match": {"hosts": ["a.*.com"]}}]}))
            .starts_with("rules[0].match.hosts[0]: invalid host pattern")
    );
    assert!(err_of(json!({"rules": [{"match": {"methods": ["GE T"]}}]}))
        .starts_with("rules[0].match.methods[0]:"));
    assert!(
        err_of(json!({"rules": [{"match": {"path": {"regex": "("}}}]}))
            .starts_with("rules[0].match.path.regex: invalid regex")
    );
    assert_eq!(
        err_of(json!({"rules": [{"level": 1}]})),
        "rules[0]: missing field `match`"
    );
    assert!(err_of(json!({"rules": [{"match": {}, "level": "high"}]}))
        .starts_with("rules[0].level: invalid type"));
    assert!(err_of(json!({"levle": 1})).starts_with("levle: unknown field"));
    assert_eq!(
        err_of(json!({"providers": [], "rules": [{"match": {}, "providers": []}]})),
        "rules[0].providers: can only be set at the top level of the config, not in a rule"
    );
    assert_eq!(
        err_of(json!({"rules": {"a": 1}})),
        "rules: invalid type: expected a list of rules"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn not_json_and_empty_config() {
    let e = from_slice::<Demo>(b"{ level: 1").unwrap_err();
    assert!(matches!(e, ConfigError::NotJson(_)), "{e}");
    assert_eq!(
        from_slice::<Demo>(b"  ").unwrap(),
        Demo {
            level: 0,
            tag: None
        }
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn client_ip_trusts_only_configured_hops() {
    let zero = ClientIpConfig { trusted_hops: 0 };
    let one = ClientIpConfig { trusted_hops: 1 };
    let two = ClientIpConfig { trusted_hops: 2 };
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    // No trusted proxies: the peer, whatever the header says.
    assert_eq!(
        client_ip(&zero, Some("1.1.1.1"), Some("10.0.0.5:4000")),
        Some(ip("10.0.0.5"))
    );
    // One trusted appender: the right-most entry, never the spoofable left-most.
    assert_eq!(
        client_ip(&one, Some("6.6.6.6, 203.0.113.7"), Some("10.0.0.5:4000")),
        Some(ip("203.0.113.7"))
    );
    // An LB appended the client, Envoy (use_remote_address) appended the LB: two appenders.
    assert_eq!(
        client_ip(
            &two,
            Some("6.6.6.6, 203.0.113.7, 10.1.1.1"),
            Some("10.1.1.1:1")
        ),
        Some(ip("203.0.113.7"))
    );
    // Fewer entries than trusted appenders: the earliest one a trusted proxy wrote.
    assert_eq!(
        client_ip(&two, Some("198.51.100.9"), Some("10.0.0.5:1")),
        Some(ip("198.51.100.9"))
    );
    // No header behind a trusted proxy: the peer.
    assert_eq!(
        client_ip(&one, None, Some("[2001:db8::1]:443")),
        Some(ip("2001:db8::1"))
    );
    // Garbage in the header is not an address.
    assert_eq!(client_ip(&one, Some("not-an-ip"), Some("10.0.0.5:1")), None);
    assert_eq!(parse_address("[::1]:80"), Some(ip("::1")));
    assert_eq!(parse_address("1.2.3.4"), Some(ip("1.2.3.4")));
}

#[wasm_bindgen_test(unsupported = test)]
fn error_body_shape_and_request_id() {
    let r = ErrorResponse::new(401, "unauthorized", "token expired")
        .with_header("www-authenticate", "Bearer");
    let body: Value = serde_json::from_slice(&r.body(Some("abc-123"))).unwrap();
    assert_eq!(
        body,
        json!({"error": "unauthorized", "message": "token expired", "status": 401, "request_id": "abc-123"})
    );
    let body: Value = serde_json::from_slice(&r.body(Some("bad\nid"))).unwrap();
    assert_eq!(
        body.get("request_id"),
        None,
        "an unsafe request id is left out"
    );
    let headers = r.all_headers();
    assert_eq!(headers[0], ("content-type", "application/json"));
    assert!(headers.contains(&("www-authenticate", "Bearer")));
}

#[wasm_bindgen_test(unsupported = test)]
fn error_bodies_are_valid_json_whatever_the_message() {
    for message in [
        "plain text",
        "quotes \" and \\ backslashes",
        "control\ncharacters\t\u{1}",
        "unicode: é ✓ \u{7f}",
        "",
    ] {
        let r = ErrorResponse::new(503, "unavailable", message);
        let text = r.body(Some("req-9"));
        let body: Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(
            body,
            json!({"error": "unavailable", "message": message, "status": 503, "request_id": "req-9"})
        );
        let expected = format!(
            r#"{{"error":"unavailable","message":{},"status":503,"request_id":"req-9"}}"#,
            serde_json::to_string(message).unwrap()
        );
        assert_eq!(
            String::from_utf8(text).unwrap(),
            expected,
            "compact, in field order"
        );
    }
    assert_eq!(
        ErrorResponse::new(429, "rate_limited", "slow down").body(None),
        br#"{"error":"rate_limited","message":"slow down","status":429}"#
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn every_character_that_needs_escaping_is_escaped_wherever_it_stands() {
    // The body's strings are checked eight bytes at a time: each ASCII character (and a
    // multi-byte one) at each place of messages around and across that width.
    let mut specials = (0u8..0x80).map(char::from).collect::<Vec<_>>();
    specials.push('é');
    for len in 1..=17 {
        for at in 0..len {
            for &c in &specials {
                let message: String = (0..len).map(|i| if i == at { c } else { 'a' }).collect();
                let text = ErrorResponse::new(503, "unavailable", message.as_str()).body(None);
                let expected = format!(
                    r#"{{"error":"unavailable","message":{},"status":503}}"#,
                    serde_json::to_string(&message).unwrap()
                );
                assert_eq!(String::from_utf8(text).unwrap(), expected, "{message:?}");
            }
        }
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn decimals_are_written_in_full() {
    use palisade::decimal;
    for n in [0, 7, 10, 429, 86_400, u64::from(u32::MAX), u64::MAX] {
        assert_eq!(decimal::string(n), n.to_string());
    }
}
