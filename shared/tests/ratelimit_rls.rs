#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The RLS wire format against byte vectors worked out by hand from rls.proto's field numbers,
//! and the verdicts the filter derives from a backend's answer or failure.
//!
//! Tag bytes are `field << 3 | wire type` (0 varint, 2 length-delimited): field 1 → 0x08 / 0x0a,
//! field 2 → 0x10 / 0x12, field 3 → 0x18 / 0x1a, field 4 → 0x22, field 7 → 0x3a.

use palisade::client_ip::ClientIpConfig;
use palisade::matcher::Request;
use palisade::ratelimit::gcra::{Period, NANOS_PER_SEC};
use palisade::ratelimit::rls::{
    decide, decode_response, descriptors, encode_request, read_answer, request_for, verdict,
    BackendError, CallEnd, Decision, RlsCode, RlsError, RlsLimit, RlsResponse, RlsUnit,
    GRPC_DEADLINE_EXCEEDED, GRPC_OK, LIMIT_ENTRY, MAX_RESPONSE_BYTES,
};
use palisade::ratelimit::store::MemoryStore;
use palisade::ratelimit::{Plan, RateLimitConfig, RequestFacts, Verdict};
use serde_json::json;
use wasm_bindgen_test::wasm_bindgen_test;

const NOW: u64 = 1_700_000_000 * NANOS_PER_SEC;

fn entry(k: &str, v: &str) -> (String, String) {
    (k.to_owned(), v.to_owned())
}

#[wasm_bindgen_test(unsupported = test)]
fn a_request_with_one_descriptor_encodes_to_the_expected_bytes() {
    // RateLimitRequest{domain:"d", descriptors:[{entries:[{key:"k", value:"v"}]}], hits_addend:1}
    //   domain       0a 01 'd'
    //   descriptors  12 08 | descriptor: entries 0a 06 | entry: 0a 01 'k' 12 01 'v'
    //   hits_addend  18 01
    let bytes = encode_request("d", &[vec![entry("k", "v")]], 1);
    assert_eq!(
        bytes,
        [
            0x0a, 0x01, b'd', 0x12, 0x08, 0x0a, 0x06, 0x0a, 0x01, b'k', 0x12, 0x01, b'v', 0x18,
            0x01
        ]
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn several_descriptors_and_entries_keep_their_order() {
    // Two descriptors: [{a:1},{b:2}] and [{c:3}]; hits_addend 0 is omitted (proto3 default).
    let bytes = encode_request(
        "rl",
        &[
            vec![entry("a", "1"), entry("b", "2")],
            vec![entry("c", "3")],
        ],
        0,
    );
    #[rustfmt::skip]
    let expected = [
        0x0a, 0x02, b'r', b'l',
        0x12, 0x10,
            0x0a, 0x06, 0x0a, 0x01, b'a', 0x12, 0x01, b'1',
            0x0a, 0x06, 0x0a, 0x01, b'b', 0x12, 0x01, b'2',
        0x12, 0x08,
            0x0a, 0x06, 0x0a, 0x01, b'c', 0x12, 0x01, b'3',
    ];
    assert_eq!(bytes, expected);
}

#[wasm_bindgen_test(unsupported = test)]
fn a_long_value_uses_a_multi_byte_length() {
    let value = "x".repeat(200);
    let bytes = encode_request("d", &[vec![entry("k", &value)]], 1);
    // entry = 0a 01 'k' 12 c8 01 <200>  → 206 bytes = varint ce 01
    // descriptor = 0a ce 01 <206>       → 209 bytes = varint d1 01
    assert_eq!(&bytes[3..9], &[0x12, 0xd1, 0x01, 0x0a, 0xce, 0x01]);
    assert_eq!(&bytes[9..15], &[0x0a, 0x01, b'k', 0x12, 0xc8, 0x01]);
    assert_eq!(bytes.len(), 3 + 3 + 209 + 2);
}

#[rustfmt::skip]
fn sample_response() -> Vec<u8> {
    vec![
        // overall_code OVER_LIMIT
        0x08, 0x02,
        // statuses[0]: code OK, current_limit {10 per MINUTE}, limit_remaining 7,
        // duration_until_reset {30 s, 500000000 ns (varint 80 ca b5 ee 01)}
        0x12, 0x14,
            0x08, 0x01,
            0x12, 0x04, 0x08, 0x0a, 0x10, 0x02,
            0x18, 0x07,
            0x22, 0x08, 0x08, 0x1e, 0x10, 0x80, 0xca, 0xb5, 0xee, 0x01,
        // statuses[1]: code OVER_LIMIT, duration_until_reset {5 s}
        0x12, 0x06,
            0x08, 0x02,
            0x22, 0x02, 0x08, 0x05,
        // response_headers_to_add: {key "x-rl", value "1"}
        0x1a, 0x09, 0x0a, 0x04, b'x', b'-', b'r', b'l', 0x12, 0x01, b'1',
        // quota (field 7), unknown to the filter: skipped
        0x3a, 0x02, 0x08, 0x01,
    ]
}

#[wasm_bindgen_test(unsupported = test)]
fn a_response_decodes_with_statuses_limits_durations_and_headers() {
    let resp = decode_response(&sample_response()).unwrap();
    assert_eq!(resp.overall, RlsCode::OverLimit);
    assert_eq!(resp.statuses.len(), 2);
    let first = &resp.statuses[0];
    assert_eq!(first.code, RlsCode::Ok);
    assert_eq!(
        first.current_limit,
        Some(RlsLimit {
            name: String::new(),
            requests_per_unit: 10,
            unit: RlsUnit::Minute
        })
    );
    assert_eq!(first.limit_remaining, 7);
    assert_eq!(first.reset_ns, Some(30 * NANOS_PER_SEC + 500_000_000));
    let second = &resp.statuses[1];
    assert_eq!(second.code, RlsCode::OverLimit);
    assert_eq!(second.current_limit, None);
    assert_eq!(second.reset_ns, Some(5 * NANOS_PER_SEC));
    assert_eq!(resp.response_headers_to_add, [entry("x-rl", "1")]);
    assert!(resp.request_headers_to_add.is_empty());
}

#[wasm_bindgen_test(unsupported = test)]
fn edge_values_decode_safely() {
    // An empty message is all defaults.
    let empty = decode_response(&[]).unwrap();
    assert_eq!(empty.overall, RlsCode::Unknown);
    // A negative duration (-1 s: a ten-byte two's complement varint) reads as 0, not a panic.
    let mut duration = vec![0x08];
    duration.extend_from_slice(&[0xff; 9]);
    duration.push(0x01);
    let mut status = vec![0x08, 0x01, 0x22, duration.len() as u8];
    status.extend_from_slice(&duration);
    let mut msg = vec![0x12, status.len() as u8];
    msg.extend_from_slice(&status);
    let resp = decode_response(&msg).unwrap();
    assert_eq!(resp.statuses[0].reset_ns, Some(0));
    // An unknown code is Unknown, not an error; a month unit has no local period.
    let resp = decode_response(&[0x08, 0x09, 0x12, 0x04, 0x12, 0x02, 0x10, 0x05]).unwrap();
    assert_eq!(resp.overall, RlsCode::Unknown);
    let unit = resp.statuses[0].current_limit.as_ref().unwrap().unit;
    assert_eq!(unit, RlsUnit::Month);
    assert_eq!(unit.period(), None);
    assert_eq!(RlsUnit::Day.period(), Some(Period::Day));
}

#[wasm_bindgen_test(unsupported = test)]
fn malformed_responses_are_errors_not_panics() {
    let full = sample_response();
    // Top-level fields end after bytes 2, 24, 32, 43 and 47: a cut there is a shorter valid
    // message; a cut anywhere else is inside a field and must be refused.
    let boundaries = [2usize, 24, 32, 43, 47];
    assert_eq!(full.len(), 47);
    for cut in 1..full.len() {
        let result = decode_response(&full[..cut]);
        if boundaries.contains(&cut) {
            assert!(result.is_ok(), "cut at {cut}");
        } else {
            assert_eq!(
                result,
                Err(RlsError::Malformed(palisade::proto::Malformed)),
                "cut at {cut}"
            );
        }
    }
    assert!(decode_response(&full[..3]).is_err());
    // overall_code sent as a string: wrong wire type.
    assert_eq!(
        decode_response(&[0x0a, 0x01, b'x']),
        Err(RlsError::WireType {
            message: "RateLimitResponse",
            field: 1
        })
    );
    // A header key that is not UTF-8.
    assert!(matches!(
        decode_response(&[0x1a, 0x03, 0x0a, 0x01, 0xff]),
        Err(RlsError::Utf8 { .. })
    ));
    // Wire type 7 does not exist.
    assert!(decode_response(&[0x0f]).is_err());
}

fn config() -> RateLimitConfig {
    RateLimitConfig::from_value(json!({
        "distributed": {"cluster": "rls", "domain": "edge", "failure_mode": "local"},
        "limits": [
            {"name": "per-client", "requests": 3, "per": "minute"},
            {"name": "per-key", "requests": 100, "per": "hour",
             "key": {"header": "x-api-key"}, "shadow": true}
        ]
    }))
    .unwrap()
}

fn plan(cfg: &RateLimitConfig, headers: &[(&str, &str)]) -> Plan {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let req = Request {
        authority: "h",
        path: "/",
        method: "GET",
        route_name: None,
        headers: &headers,
    };
    cfg.plan(&RequestFacts {
        request: &req,
        downstream: Some("192.0.2.5:1"),
        client_ip: &ClientIpConfig::default(),
    })
}

#[wasm_bindgen_test(unsupported = test)]
fn a_plan_becomes_one_descriptor_per_limit() {
    let cfg = config();
    let p = plan(&cfg, &[("x-api-key", "k-9")]);
    assert_eq!(
        descriptors(&cfg, &p),
        [
            vec![
                entry(LIMIT_ENTRY, "per-client"),
                entry("remote_address", "192.0.2.5/32")
            ],
            vec![entry(LIMIT_ENTRY, "per-key"), entry("x-api-key", "k-9")],
        ]
    );
    let bytes = request_for(&cfg, &p).unwrap();
    assert_eq!(&bytes[..6], &[0x0a, 0x04, b'e', b'd', b'g', b'e']);
    assert_eq!(&bytes[bytes.len() - 2..], &[0x18, 0x01]);
    let missing = plan(&cfg, &[]);
    assert_eq!(
        descriptors(&cfg, &missing)[1],
        [
            entry(LIMIT_ENTRY, "per-key"),
            entry("palisade_missing_key", "true")
        ]
    );
    let local_only = RateLimitConfig::from_value(json!({})).unwrap();
    assert_eq!(request_for(&local_only, &plan(&local_only, &[])), None);
}

#[wasm_bindgen_test(unsupported = test)]
fn a_backend_answer_becomes_a_verdict_with_header_figures() {
    let cfg = config();
    let p = plan(&cfg, &[("x-api-key", "k-9")]);
    let resp = decode_response(&sample_response()).unwrap();
    let v = verdict(&cfg, &p, &resp);
    // The second descriptor (the shadow limit) is over its limit: marked, not refused.
    assert!(v.admitted);
    assert!(v.is_shadow_limited());
    let first = &v.statuses[0];
    assert_eq!(
        (&*first.name, first.requests, first.period),
        ("per-client", 10, Period::Minute)
    );
    assert_eq!(first.remaining, 7);
    // Without per-descriptor statuses, the overall code decides.
    let overall_only = decode_response(&[0x08, 0x02]).unwrap();
    assert!(verdict(&cfg, &p, &overall_only).is_limited());
    let ok = decode_response(&[0x08, 0x01]).unwrap();
    assert!(verdict(&cfg, &p, &ok).admitted);
}

#[wasm_bindgen_test(unsupported = test)]
fn a_descriptor_the_backend_has_no_limit_for_gives_no_quota_figures() {
    let cfg = config();
    let p = plan(&cfg, &[("x-api-key", "k-9")]);
    // statuses: [OK without current_limit, OK with 100/hour and 99 left]
    #[rustfmt::skip]
    let bytes = [
        0x08, 0x01,
        0x12, 0x02, 0x08, 0x01,
        0x12, 0x08, 0x08, 0x01, 0x12, 0x02, 0x08, 0x64, 0x18, 0x63,
    ];
    let v = verdict(&cfg, &p, &decode_response(&bytes).unwrap());
    assert!(v.admitted);
    let names: Vec<&str> = v.statuses.iter().map(|s| &*s.name).collect();
    assert_eq!(names, ["per-key"]);
    assert_eq!(v.statuses[0].remaining, 99);
}

#[wasm_bindgen_test(unsupported = test)]
fn an_enforced_over_limit_status_refuses_with_the_backend_reset_as_retry_after() {
    let cfg = config();
    let p = plan(&cfg, &[("x-api-key", "k-9")]);
    // statuses: [OVER_LIMIT reset 12 s, OK]
    #[rustfmt::skip]
    let bytes = [
        0x08, 0x02,
        0x12, 0x06, 0x08, 0x02, 0x22, 0x02, 0x08, 0x0c,
        0x12, 0x02, 0x08, 0x01,
    ];
    let v = verdict(&cfg, &p, &decode_response(&bytes).unwrap());
    assert!(v.is_limited());
    assert_eq!(v.retry_after_ns(), Some(12 * NANOS_PER_SEC));
}

fn failure_mode(mode: &str) -> RateLimitConfig {
    RateLimitConfig::from_value(json!({
        "distributed": {"cluster": "rls", "domain": "edge", "failure_mode": mode},
        "limits": [{"name": "l", "requests": 1, "per": "minute"}]
    }))
    .unwrap()
}

fn failed() -> Result<RlsResponse, BackendError> {
    Err(BackendError::Status(14))
}

const MS: u64 = 1_000_000;

fn end(grpc_status: u32, size: usize, message: Option<&[u8]>, elapsed_ns: u64) -> CallEnd<'_> {
    CallEnd {
        grpc_status,
        size,
        message,
        elapsed_ns,
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn a_call_outcome_reads_as_an_answer_or_a_typed_failure() {
    let answer = read_answer(20, &end(GRPC_OK, 2, Some(&[0x08, 0x02]), 3 * MS)).unwrap();
    assert_eq!(answer.overall, RlsCode::OverLimit);
    // An OK call with an empty message is a valid, all-default response.
    let empty = read_answer(20, &end(GRPC_OK, 0, None, MS)).unwrap();
    assert_eq!(empty.overall, RlsCode::Unknown);
    // A message cut short, or too long to read, is never decoded.
    assert_eq!(
        read_answer(20, &end(GRPC_OK, 4, Some(&[0x08, 0x02]), MS)),
        Err(BackendError::Size(4))
    );
    let huge = MAX_RESPONSE_BYTES + 1;
    assert_eq!(
        read_answer(20, &end(GRPC_OK, huge, None, MS)),
        Err(BackendError::Size(huge))
    );
    assert!(matches!(
        read_answer(20, &end(GRPC_OK, 3, Some(&[0x12, 0x05, 0x08]), MS)),
        Err(BackendError::Malformed(_))
    ));
}

#[wasm_bindgen_test(unsupported = test)]
fn a_failure_at_the_timeout_is_a_timeout_and_an_early_one_is_not() {
    // A refused connection fails fast with UNAVAILABLE.
    let refused = read_answer(200, &end(14, 0, None, 2 * MS)).unwrap_err();
    assert_eq!(refused, BackendError::Status(14));
    assert!(!refused.is_timeout());
    // Envoy reports its own timeout with the same UNAVAILABLE, at the timeout. Its timer counts
    // from the event loop's cached start time, so it may fire a little before the filter's own
    // clock says the timeout has passed: a tenth of the timeout (at least 2 ms) of slack.
    for elapsed in [180 * MS, 199 * MS + 1, 200 * MS, 5_000 * MS] {
        let e = read_answer(200, &end(14, 0, None, elapsed)).unwrap_err();
        assert_eq!(e, BackendError::Timeout, "{elapsed}");
        assert!(e.is_timeout());
    }
    assert!(!read_answer(200, &end(14, 0, None, 179 * MS))
        .unwrap_err()
        .is_timeout());
    assert!(read_answer(20, &end(14, 0, None, 18 * MS))
        .unwrap_err()
        .is_timeout());
    assert!(!read_answer(20, &end(14, 0, None, 17 * MS))
        .unwrap_err()
        .is_timeout());
    // DEADLINE_EXCEEDED is a timeout whenever it comes; OK is an answer even if slow.
    assert!(read_answer(200, &end(GRPC_DEADLINE_EXCEEDED, 0, None, MS))
        .unwrap_err()
        .is_timeout());
    assert!(read_answer(200, &end(GRPC_OK, 0, None, 300 * MS)).is_ok());
}

#[wasm_bindgen_test(unsupported = test)]
fn a_backend_answer_is_acted_on_whatever_the_failure_mode() {
    for mode in ["open", "closed", "local"] {
        let cfg = failure_mode(mode);
        let p = plan(&cfg, &[]);
        let over = read_answer(20, &end(GRPC_OK, 2, Some(&[0x08, 0x02]), MS));
        match decide(&cfg, &p, &over) {
            Decision::Act(v) => assert!(v.is_limited(), "{mode}"),
            other => panic!("{mode}: {other:?}"),
        }
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn open_admits_when_the_backend_fails() {
    let cfg = failure_mode("open");
    let p = plan(&cfg, &[]);
    for err in [
        failed(),
        Err(BackendError::Timeout),
        Err(BackendError::Dispatch),
    ] {
        assert_eq!(decide(&cfg, &p, &err), Decision::Act(Verdict::unlimited()));
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn closed_refuses_with_a_503_json_error_unless_only_shadow_limits_apply() {
    let cfg = failure_mode("closed");
    let p = plan(&cfg, &[]);
    let Decision::Unavailable(reply) = decide(&cfg, &p, &failed()) else {
        panic!("closed must refuse");
    };
    assert_eq!(reply.status, 503);
    assert_eq!(reply.error, "rate_limit_unavailable");
    let body: serde_json::Value = serde_json::from_slice(&reply.body(Some("r-1"))).unwrap();
    assert_eq!(
        body,
        json!({"error": "rate_limit_unavailable", "status": 503, "request_id": "r-1",
               "message": "the rate-limit service is unavailable"})
    );
    let shadow = RateLimitConfig::from_value(json!({
        "distributed": {"cluster": "rls", "domain": "edge", "failure_mode": "closed"},
        "limits": [{"name": "l", "requests": 1, "per": "minute", "shadow": true}]
    }))
    .unwrap();
    let p = plan(&shadow, &[]);
    assert_eq!(
        decide(&shadow, &p, &failed()),
        Decision::Act(Verdict::unlimited())
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn local_falls_back_to_the_local_limits() {
    let store = MemoryStore::new();
    let cfg = config();
    cfg.prepare_store(&store).unwrap();
    let p = plan(&cfg, &[("x-api-key", "k")]);
    assert_eq!(
        decide(&cfg, &p, &Err(BackendError::Timeout)),
        Decision::DecideLocally
    );
    // What the filter then does: the local limits (3 per minute) decide, exactly.
    let admitted: Vec<bool> = (0..5)
        .map(|_| cfg.check(&store, &p, NOW).unwrap().admitted)
        .collect();
    assert_eq!(admitted, [true, true, true, false, false]);
    // `local` is the default.
    let default = RateLimitConfig::from_value(json!({
        "distributed": {"cluster": "rls", "domain": "edge"},
        "limits": [{"name": "l", "requests": 1, "per": "minute"}]
    }))
    .unwrap();
    let p = plan(&default, &[]);
    assert_eq!(decide(&default, &p, &failed()), Decision::DecideLocally);
}
