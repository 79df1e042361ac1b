#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The security-headers policy, without Envoy: what a response looks like after hardening.

use palisade::header_map::HeaderList;
use palisade::matcher::Request;
use palisade::security_headers::cookie::{harden, CookieRules, SameSite};
use palisade::security_headers::{HeaderSink, RequestAction, RequestFacts, SecurityHeaders};
use wasm_bindgen_test::wasm_bindgen_test;

/// Applies sink operations to a header list, the way Envoy would.
#[derive(Default)]
struct Headers(Vec<(String, String)>);

impl HeaderSink for Headers {
    fn set(&mut self, name: &str, value: &str) {
        self.0.retain(|(k, _)| k != name);
        self.0.push((name.into(), value.into()));
    }
    fn add(&mut self, name: &str, value: &str) {
        self.0.push((name.into(), value.into()));
    }
    fn remove(&mut self, name: &str) {
        self.0.retain(|(k, _)| k != name);
    }
    fn add_bytes(&mut self, name: &str, value: &[u8]) {
        let text = std::str::from_utf8(value).expect("these tests' headers are UTF-8");
        self.0.push((name.into(), text.into()));
    }
}

impl Headers {
    fn get(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    fn one(&self, name: &str) -> Option<&str> {
        let v = self.get(name);
        assert!(v.len() <= 1, "{name} appears {} times", v.len());
        v.first().copied()
    }
}

fn upstream() -> Vec<(String, String)> {
    [
        (":status", "200"),
        ("content-type", "application/json"),
        ("server", "gunicorn"),
        ("x-powered-by", "Express"),
        ("set-cookie", "sid=1; Path=/"),
        ("set-cookie", "pref=a; SameSite=Strict"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn harden_with(config: &str, https: bool, path: &str) -> Headers {
    let sh = SecurityHeaders::from_slice(config.as_bytes()).unwrap();
    let req = Request::new("GET", "example.com", path);
    let policy = sh.rules.select(&req).policy;
    let original = upstream();
    let mut out = Headers(original.clone());
    policy.harden_response(&HeaderList::from(original), https, &mut out);
    out
}

fn facts<'a>(scheme: &'a str, xfp: Option<&'a str>, path: &'a str) -> RequestFacts<'a> {
    RequestFacts {
        scheme: Some(scheme),
        forwarded_proto: xfp,
        authority: "shop.example:8080",
        path,
        method: "GET",
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn strict_by_default() {
    let out = harden_with("{}", false, "/");
    assert_eq!(out.one("x-frame-options"), Some("deny"));
    assert_eq!(out.one("x-content-type-options"), Some("nosniff"));
    assert_eq!(out.one("referrer-policy"), Some("no-referrer"));
    assert!(out
        .one("content-security-policy")
        .unwrap()
        .starts_with("default-src 'self'"));
    assert_eq!(out.one("server"), None);
    assert_eq!(out.one("x-powered-by"), None);
    assert_eq!(
        out.one("strict-transport-security"),
        None,
        "no HSTS over plain HTTP"
    );
    assert_eq!(out.one("clear-site-data"), None);
    let https = harden_with("{}", true, "/");
    assert_eq!(
        https.one("strict-transport-security"),
        Some("max-age=63072000; includeSubDomains")
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn cookies_hardened_one_by_one_in_order() {
    let out = harden_with("{}", false, "/");
    assert_eq!(
        out.get("set-cookie"),
        vec![
            "sid=1; Path=/; Secure; HttpOnly; SameSite=Lax",
            "pref=a; SameSite=Strict; Secure; HttpOnly"
        ]
    );
}

/// Keeps what the sink is given as bytes (what Envoy would send).
#[derive(Default)]
struct Bytes(Vec<(String, Vec<u8>)>);

impl HeaderSink for Bytes {
    fn set(&mut self, name: &str, value: &str) {
        self.add_bytes(name, value.as_bytes());
    }
    fn add(&mut self, name: &str, value: &str) {
        self.add_bytes(name, value.as_bytes());
    }
    fn remove(&mut self, name: &str) {
        self.0.retain(|(k, _)| k != name);
    }
    fn add_bytes(&mut self, name: &str, value: &[u8]) {
        self.0.push((name.into(), value.to_vec()));
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn a_cookie_that_is_not_utf8_is_hardened_on_the_bytes_the_upstream_sent() {
    let sh = SecurityHeaders::from_slice(br#"{"cookies": {"http_only": false}}"#).unwrap();
    let policy = sh
        .rules
        .select(&Request::new("GET", "example.com", "/"))
        .policy;
    let mut headers = HeaderList::default();
    headers.push_bytes(b"set-cookie", b"sid=1; Path=/");
    headers.push_bytes(b"set-cookie", b"note=caf\xe9; Path=/;  ");
    headers.push_bytes(b"set-cookie", b"old=\xff; Secure; SameSite=Lax");
    let mut out = Bytes(Vec::new());
    let done = policy.harden_response(&headers, false, &mut out);
    assert_eq!(done.cookies_hardened, 2);
    let cookies: Vec<&[u8]> = (out.0.iter())
        .filter(|(k, _)| k == "set-cookie")
        .map(|(_, v)| v.as_slice())
        .collect();
    assert_eq!(
        cookies,
        [
            &b"sid=1; Path=/; Secure; SameSite=Lax"[..],
            b"note=caf\xe9; Path=/; Secure; SameSite=Lax",
            b"old=\xff; Secure; SameSite=Lax",
        ]
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn cookie_rules() {
    let all = CookieRules {
        secure: true,
        http_only: true,
        same_site: Some(SameSite::Lax),
    };
    assert_eq!(
        harden("a=1; secure; httponly; samesite=none", &all),
        None,
        "nothing to add"
    );
    assert_eq!(
        harden("a=1;", &all).as_deref(),
        Some("a=1; Secure; HttpOnly; SameSite=Lax")
    );
    let none = CookieRules {
        secure: false,
        http_only: false,
        same_site: Some(SameSite::None),
    };
    assert_eq!(
        harden("a=1", &none).as_deref(),
        Some("a=1; Secure; SameSite=None"),
        "SameSite=None needs Secure"
    );
    assert_eq!(
        harden(
            "a=1; SameSite=None",
            &CookieRules {
                secure: false,
                http_only: false,
                same_site: None
            }
        )
        .as_deref(),
        Some("a=1; SameSite=None; Secure")
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn logout_rule_gets_clear_site_data_only() {
    let cfg = r#"{"rules": [{"match": {"path": {"exact": "/logout"}}, "clear_site_data": true}]}"#;
    assert_eq!(
        harden_with(cfg, false, "/logout").one("clear-site-data"),
        Some("\"cache\",\"cookies\",\"storage\"")
    );
    assert_eq!(harden_with(cfg, false, "/").one("clear-site-data"), None);
}

#[wasm_bindgen_test(unsupported = test)]
fn https_redirect_reject_and_exemptions() {
    let sh = SecurityHeaders::from_slice(
        br#"{"https": {"mode": "redirect", "exempt": [{"prefix": "/health"}]}}"#,
    )
    .unwrap();
    let p = sh.rules.default_policy();
    assert_eq!(
        p.check_request(&facts("http", None, "/a?b=1")),
        RequestAction::Redirect {
            status: 308,
            location: "https://shop.example/a?b=1".into()
        }
    );
    assert_eq!(
        p.check_request(&facts("https", None, "/a")),
        RequestAction::Continue
    );
    assert_eq!(
        p.check_request(&facts("http", Some("https"), "/a")),
        RequestAction::Continue
    );
    assert_eq!(
        p.check_request(&facts("http", None, "/healthz")),
        RequestAction::Continue
    );
    let mut bad_host = facts("http", None, "/");
    bad_host.authority = "evil.example\r\nx: y";
    assert!(matches!(p.check_request(&bad_host), RequestAction::Reject(e) if e.status == 400));

    let sh = SecurityHeaders::from_slice(
        br#"{"https": {"mode": "reject", "trust_forwarded_proto": false}}"#,
    )
    .unwrap();
    let p = sh.rules.default_policy();
    assert!(
        matches!(p.check_request(&facts("http", Some("https"), "/")), RequestAction::Reject(e) if e.status == 403 && e.error == "https_required")
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn strips_palisade_headers_by_default() {
    let sh = SecurityHeaders::from_slice(b"{}").unwrap();
    let headers: HeaderList = [("X-Palisade-Claim-Sub", "admin"), ("x-other", "1")]
        .into_iter()
        .collect();
    let stripped: Vec<&str> = sh
        .rules
        .default_policy()
        .headers_to_strip(&headers)
        .collect();
    assert_eq!(stripped, vec!["X-Palisade-Claim-Sub"]);
}

#[wasm_bindgen_test(unsupported = test)]
fn headers_the_upstream_sent_are_replaced_and_others_added_once() {
    // Headers the response lacks are added (no replacement needed), those it carries replaced:
    // either way each ends with exactly the policy's value.
    let sh = SecurityHeaders::from_slice(
        br#"{"headers": {"X-Frame-Options": "deny", "x-frame-options": "sameorigin", "x-extra": "1"}}"#,
    )
    .unwrap();
    let policy = sh
        .rules
        .select(&Request::new("GET", "example.com", "/"))
        .policy;
    let mut original = upstream();
    original.push((
        "x-frame-options".into(),
        "ALLOW-FROM https://evil.example".into(),
    ));
    original.push(("cache-control".into(), "public, max-age=600".into()));
    let mut out = Headers(original.clone());
    policy.harden_response(&HeaderList::from(original), false, &mut out);
    let frame = out.one("x-frame-options").unwrap();
    assert!(frame == "deny" || frame == "sameorigin", "{frame}");
    // `add_if_absent` in the preset: the upstream's own value stays, alone.
    assert_eq!(out.one("cache-control"), Some("public, max-age=600"));
    assert_eq!(out.one("x-extra"), Some("1"));
    assert_eq!(out.one("x-content-type-options"), Some("nosniff"));
    assert_eq!(out.one("referrer-policy"), Some("no-referrer"));
}

#[wasm_bindgen_test(unsupported = test)]
fn config_errors() {
    let err = |c: &str| {
        SecurityHeaders::from_slice(c.as_bytes())
            .unwrap_err()
            .to_string()
    };
    assert!(err(r#"{"hsts": {"max_agee": 1}}"#).starts_with("hsts.max_agee: unknown field"));
    assert!(err(r#"{"hsts": 5}"#).starts_with("hsts: invalid type"));
    assert!(err(r#"{"headers": {"x-a": 1}}"#).starts_with("headers.x-a: invalid type"));
    assert!(
        err(r#"{"headers": {"x-a": {"value": "1", "mode": "sometimes"}}}"#)
            .starts_with("headers.x-a.mode: unknown variant")
    );
    assert!(err(r#"{"headers": {"bad name": "1"}}"#)
        .starts_with("headers.bad name: is not a valid header name"));
    assert!(err(r#"{"headers": {"x-a": "line\nbreak"}}"#).contains("control characters"));
    assert!(err(r#"{"https": {"exempt": [{"exact": "healthz"}]}}"#)
        .starts_with("https.exempt[0].exact: expected a string starting with '/'"));
    assert!(
        err(r#"{"rules": [{"match": {}, "cookies": {"same_site": "Sometimes"}}]}"#)
            .starts_with("rules[0].cookies.same_site: unknown variant")
    );
    assert!(err("[]").contains("must be a JSON object"));
}
