#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Key descriptors: which bucket a request counts against.

use palisade::client_ip::ClientIpConfig;
use palisade::matcher::Request;
use palisade::ratelimit::key::{cookie, mask, query_param, Key, KeySpec, KeyValue, RequestFacts};
use serde_json::json;
use wasm_bindgen_test::wasm_bindgen_test;

fn key(spec: serde_json::Value) -> Key {
    let spec: KeySpec = serde_json::from_value(spec).unwrap();
    Key::compile("key", &spec).unwrap()
}

struct Req {
    path: &'static str,
    headers: Vec<(String, String)>,
    peer: &'static str,
    route: Option<&'static str>,
    hops: u32,
}

impl Req {
    fn new(path: &'static str) -> Self {
        Req {
            path,
            headers: Vec::new(),
            peer: "203.0.113.7:40000",
            route: None,
            hops: 0,
        }
    }
    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
    fn value(&self, key: &Key) -> KeyValue {
        let request = Request {
            authority: "api.example.com",
            path: self.path,
            method: "GET",
            route_name: self.route,
            headers: &self.headers,
        };
        let cip = ClientIpConfig {
            trusted_hops: self.hops,
        };
        key.extract(&RequestFacts {
            request: &request,
            downstream: Some(self.peer),
            client_ip: &cip,
        })
    }
}

fn entries(v: &KeyValue) -> Vec<(String, String)> {
    match v {
        KeyValue::Present(e) => e
            .iter()
            .map(|e| (e.name.to_string(), e.value.to_string()))
            .collect(),
        KeyValue::Missing => panic!("expected a key, got missing"),
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn client_ip_defaults_to_the_peer_and_ignores_forwarded_for() {
    let k = key(json!({"client_ip": {}}));
    let r = Req::new("/").header("x-forwarded-for", "1.2.3.4");
    assert_eq!(
        entries(&r.value(&k)),
        [("remote_address".into(), "203.0.113.7/32".into())]
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn client_ip_uses_trusted_forwarded_for_hops() {
    let k = key(json!({"client_ip": {}}));
    let mut r = Req::new("/").header("x-forwarded-for", "198.51.100.23, 10.0.0.1");
    r.peer = "10.0.0.2:1";
    r.hops = 2;
    assert_eq!(entries(&r.value(&k))[0].1, "198.51.100.23/32");
}

#[wasm_bindgen_test(unsupported = test)]
fn addresses_group_by_prefix() {
    let k = key(json!({"client_ip": {"ipv4_prefix": 24, "ipv6_prefix": 48}}));
    let mut a = Req::new("/");
    a.peer = "198.51.100.23:1";
    let mut b = Req::new("/");
    b.peer = "198.51.100.250:2";
    let mut c = Req::new("/");
    c.peer = "198.51.101.1:2";
    assert_eq!(a.value(&k), b.value(&k), "same /24");
    assert_ne!(a.value(&k), c.value(&k), "another /24");
    assert_eq!(entries(&a.value(&k))[0].1, "198.51.100.0/24");

    let mut v6 = Req::new("/");
    v6.peer = "[2001:db8:1234:5678::1]:443";
    assert_eq!(entries(&v6.value(&k))[0].1, "2001:db8:1234::/48");
}

#[wasm_bindgen_test(unsupported = test)]
fn ipv6_defaults_to_a_64_and_mapped_ipv4_counts_as_ipv4() {
    let k = key(json!({"client_ip": {}}));
    let mut a = Req::new("/");
    a.peer = "[2001:db8::1]:1";
    let mut b = Req::new("/");
    b.peer = "[2001:db8::ffff:1]:1";
    assert_eq!(a.value(&k), b.value(&k), "one host rotating inside its /64");
    let mut mapped = Req::new("/");
    mapped.peer = "[::ffff:203.0.113.7]:1";
    assert_eq!(mapped.value(&k), Req::new("/").value(&k));
    assert_eq!(&*mask("10.1.2.3".parse().unwrap(), 0, 0), "0.0.0.0/0");
    let full: std::net::IpAddr = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe".parse().unwrap();
    assert_eq!(
        &*mask(full, 32, 128),
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/128",
        "the longest value"
    );
    assert_eq!(&*mask("10.1.2.3".parse().unwrap(), 24, 64), "10.1.2.0/24");
}

#[wasm_bindgen_test(unsupported = test)]
fn header_query_cookie_and_claim_read_their_inputs() {
    let r = Req::new("/v1/items?page=2&api_key=k%2D1+x&api_key=second")
        .header("X-Tenant", "acme")
        .header("cookie", "theme=dark; session=s-123")
        .header("x-palisade-claim-sub", "user-42");
    assert_eq!(
        entries(&r.value(&key(json!({"header": "x-tenant"}))))[0].1,
        "acme"
    );
    assert_eq!(
        entries(&r.value(&key(json!({"query": "api_key"}))))[0].1,
        "k-1 x",
        "percent-decoded, first occurrence"
    );
    assert_eq!(
        entries(&r.value(&key(json!({"cookie": "session"}))))[0].1,
        "s-123"
    );
    assert_eq!(
        entries(&r.value(&key(json!({"claim": "sub"}))))[0].1,
        "user-42"
    );
    assert_eq!(
        entries(&r.value(&key(json!({"path": true}))))[0].1,
        "/v1/items"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn equivalent_encodings_of_a_query_value_share_a_bucket() {
    let k = key(json!({"query": "api_key"}));
    assert_eq!(
        Req::new("/?api_key=abc").value(&k),
        Req::new("/?api%5Fkey=%61%62c").value(&k)
    );
    assert_eq!(query_param("/?a=%zz%4", "a").as_deref(), Some("%zz%4"));
    assert_eq!(query_param("/?a=%+1", "a").as_deref(), Some("% 1"));
    assert_eq!(query_param("/p#?a=1", "a"), None);
    assert_eq!(query_param("/p?b=1#a=2", "a"), None);
}

#[wasm_bindgen_test(unsupported = test)]
fn cookie_names_are_exact() {
    assert_eq!(cookie("a=1; Session=2; session=3", "session"), Some("3"));
    assert_eq!(cookie("sessionid=1", "session"), None);
    assert_eq!(cookie("broken; session=x", "session"), Some("x"));
}

#[wasm_bindgen_test(unsupported = test)]
fn route_and_constant_keys() {
    let mut r = Req::new("/anything");
    r.route = Some("checkout");
    assert_eq!(
        entries(&r.value(&key(json!({"route": true}))))[0].1,
        "checkout"
    );
    assert!(key(json!({"route": true})).needs_route_name());
    let all = key(json!({"constant": "everyone"}));
    assert_eq!(Req::new("/a").value(&all), Req::new("/b").value(&all));
    assert_eq!(
        entries(&Req::new("/a").value(&all)),
        [("generic_key".into(), "everyone".into())]
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn a_combination_needs_every_part() {
    let k = key(json!({"client_ip": {}, "header": "x-tenant"}));
    let with = Req::new("/").header("x-tenant", "acme");
    let other_tenant = Req::new("/").header("x-tenant", "globex");
    assert_eq!(entries(&with.value(&k)).len(), 2);
    assert_ne!(with.value(&k), other_tenant.value(&k));
    assert_eq!(Req::new("/").value(&k), KeyValue::Missing);
    assert_eq!(
        Req::new("/").header("x-tenant", "").value(&k),
        KeyValue::Missing,
        "an empty value is no value"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn key_bytes_are_unambiguous() {
    let k = key(json!({"header": "a", "query": "b"}));
    let one = Req::new("/?b=c").header("a", "x");
    let two = Req::new("/?b=xc").header("a", "");
    let three = Req::new("/?b=c").header("a", "x,");
    assert_ne!(one.value(&k).to_bytes(), three.value(&k).to_bytes());
    assert_ne!(one.value(&k).to_bytes(), KeyValue::Missing.to_bytes());
    assert_eq!(two.value(&k), KeyValue::Missing);
}

#[wasm_bindgen_test(unsupported = test)]
fn bad_keys_are_refused_with_their_path() {
    let bad = |spec: serde_json::Value| {
        let spec: KeySpec = serde_json::from_value(spec).unwrap();
        Key::compile("limits[0].key", &spec)
            .unwrap_err()
            .to_string()
    };
    assert!(bad(json!({})).starts_with("limits[0].key: set at least one"));
    assert!(bad(json!({"client_ip": {"ipv4_prefix": 33}}))
        .starts_with("limits[0].key.client_ip.ipv4_prefix:"));
    assert!(bad(json!({"client_ip": {"ipv6_prefix": 129}}))
        .starts_with("limits[0].key.client_ip.ipv6_prefix:"));
    assert!(bad(json!({"header": "bad header"})).starts_with("limits[0].key.header:"));
    assert!(bad(json!({"query": ""})).starts_with("limits[0].key.query:"));
    assert!(bad(json!({"claim": "a b"})).starts_with("limits[0].key.claim:"));
    assert!(serde_json::from_value::<KeySpec>(json!({"ip": {}})).is_err());
}
