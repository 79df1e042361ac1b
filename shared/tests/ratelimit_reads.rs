#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! What the rate-limit filter reads from Envoy per request: only what its config can use (each
//! host read that returns data costs about a microsecond).

use palisade::ratelimit::key::Reads;
use palisade::ratelimit::RateLimitConfig;
use serde_json::json;
use wasm_bindgen_test::wasm_bindgen_test;

fn reads(config: serde_json::Value) -> Reads {
    RateLimitConfig::from_value(config).unwrap().reads()
}

const NOTHING: Reads = Reads {
    headers: false,
    peer: false,
};
const PEER: Reads = Reads {
    headers: false,
    peer: true,
};
const HEADERS: Reads = Reads {
    headers: true,
    peer: false,
};
const BOTH: Reads = Reads {
    headers: true,
    peer: true,
};

#[wasm_bindgen_test(unsupported = test)]
fn a_global_bucket_reads_nothing() {
    let cfg = json!({"limits": [{"name": "all", "requests": 10, "per": "second", "key": {"constant": "x"}}]});
    assert_eq!(reads(cfg), NOTHING);
}

#[wasm_bindgen_test(unsupported = test)]
fn the_client_address_reads_the_peer_and_xff_only_with_trusted_hops() {
    let per_client = json!([{"name": "c", "requests": 10, "per": "second"}]);
    assert_eq!(reads(json!({"limits": per_client})), PEER);
    assert_eq!(
        reads(json!({"limits": per_client, "client_ip": {"trusted_hops": 1}})),
        BOTH
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn request_keys_and_rules_read_the_headers() {
    for key in [
        json!({"header": "x-api-key"}),
        json!({"query": "k"}),
        json!({"cookie": "s"}),
        json!({"claim": "sub"}),
        json!({"path": true}),
    ] {
        let cfg = json!({"limits": [{"name": "k", "requests": 1, "per": "hour", "key": key}]});
        assert_eq!(reads(cfg), HEADERS);
    }
    let with_rules = json!({
        "limits": [{"name": "all", "requests": 10, "per": "second", "key": {"constant": "x"}}],
        "rules": [{"match": {"path": {"prefix": "/login"}}, "limits": [{"name": "login", "requests": 5, "per": "minute", "key": {"constant": "l"}}]}]
    });
    assert_eq!(reads(with_rules), HEADERS);
    let throttle = json!({"auth_failure": {"max_failures": 3, "window": 60, "block_for": 60}});
    assert_eq!(
        reads(throttle),
        PEER,
        "the auth-failure throttle keys on the client address"
    );
}
