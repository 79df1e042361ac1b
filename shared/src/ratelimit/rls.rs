//! The distributed mode's wire format: Envoy's rate-limit service (RLS) v3.
//!
//! The filter calls `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit` on the
//! `distributed.cluster` with proxy-wasm's gRPC call; this module builds the request bytes and
//! reads the response, using [`crate::proto`]'s wire primitives (no protobuf runtime in the Wasm).
//! Field numbers, from `envoy/service/ratelimit/v3/rls.proto` and
//! `envoy/extensions/common/ratelimit/v3/ratelimit.proto`:
//!
//! - `RateLimitRequest { domain = 1; repeated RateLimitDescriptor descriptors = 2; uint32 hits_addend = 3 }`
//! - `RateLimitDescriptor { repeated Entry entries = 1 }`, `Entry { key = 1; value = 2 }`
//! - `RateLimitResponse { Code overall_code = 1; repeated DescriptorStatus statuses = 2;
//!   repeated HeaderValue response_headers_to_add = 3; request_headers_to_add = 4 }`
//! - `DescriptorStatus { Code code = 1; RateLimit current_limit = 2; uint32 limit_remaining = 3;
//!   google.protobuf.Duration duration_until_reset = 4 }`
//! - `RateLimit { uint32 requests_per_unit = 1; Unit unit = 2; string name = 3 }`
//! - `Duration { int64 seconds = 1; int32 nanos = 2 }`, `HeaderValue { key = 1; value = 2; raw_value = 3 }`
//!
//! Each limit of a plan becomes one descriptor: `("palisade_limit", <limit name>)` followed by
//! the key's entries, named as Envoy names them (`remote_address`, `generic_key`, a header's
//! name, ...), so an envoyproxy/ratelimit or Limitador config nests the limit's rate under the
//! limit name. The backend counts every descriptor it is sent (also for a request that another
//! descriptor refuses): that is the RLS contract, not this filter's local semantics.

use super::config::{FailureMode, Plan, RateLimitConfig};
use super::gcra::{Period, NANOS_PER_SEC};
use super::key::KeyValue;
use super::limiter::{LimitStatus, Verdict};
use crate::proto::{fields, put_bytes, put_uint, put_varint, Malformed, Value};
use crate::response::ErrorResponse;

/// The gRPC service and method the filter calls.
pub const SERVICE: &str = "envoy.service.ratelimit.v3.RateLimitService";
pub const METHOD: &str = "ShouldRateLimit";
/// The first entry of every descriptor: the limit's name.
pub const LIMIT_ENTRY: &str = "palisade_limit";
/// The entry that replaces a key whose input was missing.
pub const MISSING_ENTRY: &str = "palisade_missing_key";

/// Why an RLS response could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RlsError {
    #[error(transparent)]
    Malformed(#[from] Malformed),
    /// A known field came with a wire type its declaration does not allow.
    #[error("field {field} of {message} has the wrong wire type")]
    WireType { message: &'static str, field: u32 },
    #[error("field {field} of {message} is not valid UTF-8")]
    Utf8 { message: &'static str, field: u32 },
}

/// A per-descriptor or overall answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RlsCode {
    Unknown,
    Ok,
    OverLimit,
}

impl RlsCode {
    fn from_wire(v: u64) -> Self {
        match v {
            1 => RlsCode::Ok,
            2 => RlsCode::OverLimit,
            _ => RlsCode::Unknown,
        }
    }
}

/// `RateLimitResponse.RateLimit.Unit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RlsUnit {
    Unknown,
    Second,
    Minute,
    Hour,
    Day,
    Month,
    Year,
}

impl RlsUnit {
    fn from_wire(v: u64) -> Self {
        match v {
            1 => RlsUnit::Second,
            2 => RlsUnit::Minute,
            3 => RlsUnit::Hour,
            4 => RlsUnit::Day,
            5 => RlsUnit::Month,
            6 => RlsUnit::Year,
            _ => RlsUnit::Unknown,
        }
    }

    /// The matching local period, if there is one.
    pub fn period(self) -> Option<Period> {
        match self {
            RlsUnit::Second => Some(Period::Second),
            RlsUnit::Minute => Some(Period::Minute),
            RlsUnit::Hour => Some(Period::Hour),
            RlsUnit::Day => Some(Period::Day),
            _ => None,
        }
    }
}

/// `RateLimitResponse.RateLimit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RlsLimit {
    pub name: String,
    pub requests_per_unit: u32,
    pub unit: RlsUnit,
}

/// `RateLimitResponse.DescriptorStatus`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RlsStatus {
    pub code: RlsCode,
    pub current_limit: Option<RlsLimit>,
    pub limit_remaining: u32,
    /// `duration_until_reset` in nanoseconds (negative durations read as 0).
    pub reset_ns: Option<u64>,
}

/// `RateLimitResponse` (the fields the filter uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RlsResponse {
    pub overall: RlsCode,
    pub statuses: Vec<RlsStatus>,
    pub response_headers_to_add: Vec<(String, String)>,
    pub request_headers_to_add: Vec<(String, String)>,
}

fn put_message(out: &mut Vec<u8>, field: u32, message: &[u8]) {
    // Embedded messages are written even when empty: a repeated element must not vanish.
    put_varint(out, u64::from(field) << 3 | 2);
    put_varint(out, message.len() as u64);
    out.extend_from_slice(message);
}

/// Encodes a `RateLimitRequest`.
pub fn encode_request(
    domain: &str,
    descriptors: &[Vec<(String, String)>],
    hits_addend: u32,
) -> Vec<u8> {
    let mut out = Vec::new();
    put_bytes(&mut out, 1, domain.as_bytes());
    for descriptor in descriptors {
        let mut d = Vec::new();
        for (key, value) in descriptor {
            let mut entry = Vec::with_capacity(key.len() + value.len() + 4);
            put_bytes(&mut entry, 1, key.as_bytes());
            put_bytes(&mut entry, 2, value.as_bytes());
            put_message(&mut d, 1, &entry);
        }
        put_message(&mut out, 2, &d);
    }
    put_uint(&mut out, 3, u64::from(hits_addend));
    out
}

/// The descriptors for a plan: one per limit, in plan order.
pub fn descriptors(cfg: &RateLimitConfig, plan: &Plan) -> Vec<Vec<(String, String)>> {
    plan.checks
        .iter()
        .filter_map(|check| {
            let limit = cfg.limits().get(check.limit)?;
            let mut entries = vec![(LIMIT_ENTRY.to_owned(), limit.name.to_string())];
            match &check.key {
                KeyValue::Present(parts) => entries.extend(
                    parts
                        .iter()
                        .map(|e| (e.name.to_string(), e.value.to_string())),
                ),
                KeyValue::Missing => entries.push((MISSING_ENTRY.to_owned(), "true".to_owned())),
            }
            Some(entries)
        })
        .collect()
}

/// The `RateLimitRequest` for a plan, or `None` when the config has no `distributed` section or
/// the plan has no limit.
pub fn request_for(cfg: &RateLimitConfig, plan: &Plan) -> Option<Vec<u8>> {
    let distributed = cfg.distributed.as_ref()?;
    if plan.checks.is_empty() {
        return None;
    }
    Some(encode_request(
        &distributed.domain,
        &descriptors(cfg, plan),
        1,
    ))
}

fn varint(message: &'static str, field: u32, v: Value<'_>) -> Result<u64, RlsError> {
    match v {
        Value::Varint(n) => Ok(n),
        _ => Err(RlsError::WireType { message, field }),
    }
}

fn bytes<'a>(message: &'static str, field: u32, v: Value<'a>) -> Result<&'a [u8], RlsError> {
    match v {
        Value::Bytes(b) => Ok(b),
        _ => Err(RlsError::WireType { message, field }),
    }
}

fn string(message: &'static str, field: u32, v: Value<'_>) -> Result<String, RlsError> {
    let b = bytes(message, field, v)?;
    std::str::from_utf8(b)
        .map(str::to_owned)
        .map_err(|_| RlsError::Utf8 { message, field })
}

fn decode_limit(buf: &[u8]) -> Result<RlsLimit, RlsError> {
    const M: &str = "RateLimit";
    let mut limit = RlsLimit {
        name: String::new(),
        requests_per_unit: 0,
        unit: RlsUnit::Unknown,
    };
    for (field, v) in fields(buf)? {
        match field {
            1 => limit.requests_per_unit = varint(M, field, v)? as u32,
            2 => limit.unit = RlsUnit::from_wire(varint(M, field, v)?),
            3 => limit.name = string(M, field, v)?,
            _ => {}
        }
    }
    Ok(limit)
}

fn decode_duration(buf: &[u8]) -> Result<u64, RlsError> {
    const M: &str = "Duration";
    let (mut seconds, mut nanos) = (0i64, 0i64);
    for (field, v) in fields(buf)? {
        match field {
            1 => seconds = varint(M, field, v)? as i64,
            // int32 is sign-extended to 64 bits on the wire.
            2 => nanos = i64::from(varint(M, field, v)? as i32),
            _ => {}
        }
    }
    let total = i128::from(seconds) * i128::from(NANOS_PER_SEC) + i128::from(nanos);
    Ok(u64::try_from(total.max(0)).unwrap_or(u64::MAX))
}

fn decode_status(buf: &[u8]) -> Result<RlsStatus, RlsError> {
    const M: &str = "DescriptorStatus";
    let mut status = RlsStatus {
        code: RlsCode::Unknown,
        current_limit: None,
        limit_remaining: 0,
        reset_ns: None,
    };
    for (field, v) in fields(buf)? {
        match field {
            1 => status.code = RlsCode::from_wire(varint(M, field, v)?),
            2 => status.current_limit = Some(decode_limit(bytes(M, field, v)?)?),
            3 => status.limit_remaining = varint(M, field, v)? as u32,
            4 => status.reset_ns = Some(decode_duration(bytes(M, field, v)?)?),
            _ => {}
        }
    }
    Ok(status)
}

fn decode_header(buf: &[u8]) -> Result<(String, String), RlsError> {
    const M: &str = "HeaderValue";
    let (mut key, mut value, mut raw) = (String::new(), String::new(), None);
    for (field, v) in fields(buf)? {
        match field {
            1 => key = string(M, field, v)?,
            2 => value = string(M, field, v)?,
            3 => raw = Some(string(M, field, v)?),
            _ => {}
        }
    }
    Ok((key, raw.filter(|_| value.is_empty()).unwrap_or(value)))
}

/// Decodes a `RateLimitResponse`; unknown fields are skipped.
pub fn decode_response(buf: &[u8]) -> Result<RlsResponse, RlsError> {
    const M: &str = "RateLimitResponse";
    let mut resp = RlsResponse {
        overall: RlsCode::Unknown,
        statuses: Vec::new(),
        response_headers_to_add: Vec::new(),
        request_headers_to_add: Vec::new(),
    };
    for (field, v) in fields(buf)? {
        match field {
            1 => resp.overall = RlsCode::from_wire(varint(M, field, v)?),
            2 => resp.statuses.push(decode_status(bytes(M, field, v)?)?),
            3 => resp
                .response_headers_to_add
                .push(decode_header(bytes(M, field, v)?)?),
            4 => resp
                .request_headers_to_add
                .push(decode_header(bytes(M, field, v)?)?),
            _ => {}
        }
    }
    Ok(resp)
}

/// The verdict for a plan from the backend's answer, so headers and metrics work as for local
/// limits. Statuses are matched to the plan's limits by position; a shadow limit's refusal does
/// not refuse the request. Without per-descriptor statuses, the overall code decides. An OK
/// status without `current_limit` means the backend has no limit for that descriptor: it gives
/// no quota figures (no `r=0` for a limit that does not exist).
pub fn verdict(cfg: &RateLimitConfig, plan: &Plan, resp: &RlsResponse) -> Verdict {
    if resp.statuses.len() != plan.checks.len() {
        return Verdict {
            admitted: resp.overall != RlsCode::OverLimit,
            statuses: Vec::new(),
        };
    }
    let statuses: Vec<LimitStatus> = plan
        .checks
        .iter()
        .zip(&resp.statuses)
        .filter(|(_, status)| status.code == RlsCode::OverLimit || status.current_limit.is_some())
        .filter_map(|(check, status)| {
            let limit = cfg.limits().get(check.limit)?;
            let allowed = status.code != RlsCode::OverLimit;
            let remote = status
                .current_limit
                .as_ref()
                .and_then(|l| l.unit.period().map(|p| (l.requests_per_unit, p)));
            let (requests, period) = remote.unwrap_or((limit.rate.requests(), limit.rate.period()));
            let reset_ns = status.reset_ns.unwrap_or(0);
            Some(LimitStatus {
                name: limit.name.clone(),
                requests,
                period,
                burst: requests,
                allowed,
                shadow: check.shadow,
                consumed: allowed,
                remaining: status.limit_remaining,
                reset_ns,
                wait_ns: if allowed { 0 } else { reset_ns.max(1) },
                overflow: false,
                evicted: false,
                reserved: 0,
            })
        })
        .collect();
    let admitted = statuses.iter().all(|s| s.shadow || s.allowed);
    Verdict { admitted, statuses }
}

/// gRPC status codes the filter tells apart (`on_grpc_call_response`'s `status_code`).
pub const GRPC_OK: u32 = 0;
pub const GRPC_DEADLINE_EXCEEDED: u32 = 4;
/// The largest answer the filter reads; a longer one is a malformed answer.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The status of the reply when the backend failed and `failure_mode` is `closed`.
pub const UNAVAILABLE_STATUS: u32 = 503;
/// The `error` code of that reply.
pub const UNAVAILABLE_ERROR: &str = "rate_limit_unavailable";

/// Why the backend gave no answer to act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The host refused to start the call (e.g. an unknown cluster).
    #[error("the call could not be started")]
    Dispatch,
    /// No answer within `distributed.timeout_ms`.
    #[error("no answer within the timeout")]
    Timeout,
    /// The call ended with a gRPC status other than OK (14: the backend is unreachable).
    #[error("the call failed with gRPC status {0}")]
    Status(u32),
    #[error("unreadable answer: {0}")]
    Malformed(#[from] RlsError),
    /// The answer is longer than [`MAX_RESPONSE_BYTES`], or shorter than announced.
    #[error("an answer of {0} bytes was not read")]
    Size(usize),
}

impl BackendError {
    pub fn is_timeout(&self) -> bool {
        matches!(self, BackendError::Timeout)
    }
}

/// How a call ended, as the host reported it (`on_grpc_call_response`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallEnd<'a> {
    pub grpc_status: u32,
    /// The announced size of the response message.
    pub size: usize,
    /// The message as read from the host, at most [`MAX_RESPONSE_BYTES`] (`None`: nothing).
    pub message: Option<&'a [u8]>,
    /// Time from dispatching the call to its end, in nanoseconds.
    pub elapsed_ns: u64,
}

/// Reads the end of a call made with a timeout of `timeout_ms`. A message longer than
/// [`MAX_RESPONSE_BYTES`] (or shorter than announced) is an error, never a truncated message that
/// could still decode. Envoy ends a timed-out call with UNAVAILABLE (14), like a refused
/// connection: a failure is a timeout when it came with DEADLINE_EXCEEDED or after the timeout.
pub fn read_answer(timeout_ms: u32, end: &CallEnd<'_>) -> Result<RlsResponse, BackendError> {
    match end.grpc_status {
        GRPC_OK => {
            let message = end.message.unwrap_or_default();
            if end.size > MAX_RESPONSE_BYTES || message.len() != end.size {
                return Err(BackendError::Size(end.size));
            }
            Ok(decode_response(message)?)
        }
        GRPC_DEADLINE_EXCEEDED => Err(BackendError::Timeout),
        // Envoy's timer counts from its event loop's cached start time, which can be a little
        // before the filter read the clock when it sent the call: a tenth of the timeout (at
        // least 2 ms) of slack. A refused connection on the way fails far sooner than that.
        _ if end.elapsed_ns.saturating_add(timeout_slack_ns(timeout_ms))
            >= u64::from(timeout_ms) * 1_000_000 =>
        {
            Err(BackendError::Timeout)
        }
        other => Err(BackendError::Status(other)),
    }
}

fn timeout_slack_ns(timeout_ms: u32) -> u64 {
    (u64::from(timeout_ms) * 100_000).max(2_000_000)
}

/// What the filter does with a request once the backend answered or failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Act on this verdict exactly as on a local one: refuse with
    /// [`RateLimitConfig::rejection`] when it is limited, otherwise pass (shadow mark, headers).
    Act(Verdict),
    /// The backend failed and `failure_mode` is `local`: decide with the local limits
    /// ([`RateLimitConfig::check`], and its store-error policy).
    DecideLocally,
    /// The backend failed and `failure_mode` is `closed`: refuse with this reply.
    Unavailable(ErrorResponse),
}

/// The reply for `failure_mode: closed` when the backend failed: 503 with the JSON error body.
pub fn unavailable_response() -> ErrorResponse {
    ErrorResponse::new(
        UNAVAILABLE_STATUS,
        UNAVAILABLE_ERROR,
        "the rate-limit service is unavailable",
    )
}

/// The decision for a plan from the backend's answer, or from its failure per
/// `distributed.failure_mode`: `open` admits, `closed` refuses with [`unavailable_response`]
/// (a plan of only shadow limits is admitted), `local` decides with the local limits.
pub fn decide(
    cfg: &RateLimitConfig,
    plan: &Plan,
    answer: &Result<RlsResponse, BackendError>,
) -> Decision {
    let mode = match answer {
        Ok(resp) => return Decision::Act(verdict(cfg, plan, resp)),
        Err(_) => cfg
            .distributed
            .as_ref()
            .map_or(FailureMode::Local, |d| d.failure_mode),
    };
    match mode {
        FailureMode::Open => Decision::Act(Verdict::unlimited()),
        FailureMode::Closed if plan.checks.iter().all(|c| c.shadow) => {
            Decision::Act(Verdict::unlimited())
        }
        FailureMode::Closed => Decision::Unavailable(unavailable_response()),
        FailureMode::Local => Decision::DecideLocally,
    }
}
