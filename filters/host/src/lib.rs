//! The proxy-wasm boundary shared by every Palisade filter.
//!
//! Filters call these helpers instead of `proxy_wasm::hostcalls` directly, so that reading config,
//! defining metrics, reading request facts and sending error replies is written once. Host
//! failures are mapped to `None`/no-ops here: a filter decides on what it could read, and the core
//! (`palisade`) decides what missing facts mean.

use log::{error, warn};
use palisade::header_map::HeaderList;
use palisade::metrics::{counter_name, Counter};
use palisade::response::ErrorResponse;
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType};
use std::cell::RefCell;
use std::time::Duration;

pub mod pipeline;

pub use proxy_wasm;

/// Installs the logger. Envoy does not allow asking its log level while the module starts, so
/// this starts at `info` and the pipeline's root moves to Envoy's level when it loads its
/// configuration.
pub fn init_logging() {
    proxy_wasm::set_log_level(LogLevel::Info);
}

/// Follows Envoy's log level (so `debug!` costs nothing when Envoy runs at `info`).
pub(crate) fn follow_host_log_level() {
    if let Ok(level) = hostcalls::get_log_level() {
        proxy_wasm::set_log_level(level);
    }
}

/// How often counts kept in the VM reach Envoy's counters ([`flush_metrics`], from the root
/// context's tick).
pub const METRICS_FLUSH: Duration = Duration::from_millis(100);

thread_local! {
    /// Each defined counter's host id and what was counted since the last flush. An increment is
    /// a host call of about a thousand instructions (`make bench`, group "host operations"); a
    /// request counts one to three things, so counts are added up here and sent once per flush.
    static PENDING: RefCell<Vec<(u32, u64)>> = const { RefCell::new(Vec::new()) };
}

/// A counter defined once per VM through the host (`palisade_<filter>_<what>_total`). What it
/// counts reaches Envoy at the next [`flush_metrics`] (at most [`METRICS_FLUSH`] later).
#[derive(Debug, Clone, Copy)]
pub struct HostCounter(Option<usize>);

impl HostCounter {
    pub fn define(filter: &str, what: &str) -> Self {
        let name = counter_name(filter, what);
        match hostcalls::define_metric(MetricType::Counter, &name) {
            // One slot per host counter: defining it again (a new configuration) reuses it.
            Ok(id) => PENDING.with(|pending| {
                let mut pending = pending.borrow_mut();
                let slot = match pending.iter().position(|(known, _)| *known == id) {
                    Some(slot) => slot,
                    None => {
                        pending.push((id, 0));
                        pending.len() - 1
                    }
                };
                HostCounter(Some(slot))
            }),
            Err(status) => {
                warn!("palisade {filter}: cannot define metric {name}: {status:?}");
                HostCounter(None)
            }
        }
    }
}

impl Counter for HostCounter {
    fn add(&self, delta: u64) {
        if let (Some(slot), true) = (self.0, delta > 0) {
            PENDING.with(|pending| {
                if let Some((_, count)) = pending.borrow_mut().get_mut(slot) {
                    *count = count.saturating_add(delta);
                }
            });
        }
    }
}

/// Sends what the VM's counters counted since the last flush to Envoy: one host call per counter
/// that moved.
pub fn flush_metrics() {
    PENDING.with(|pending| {
        for (id, count) in pending.borrow_mut().iter_mut().filter(|(_, c)| *c > 0) {
            let delta = i64::try_from(*count).unwrap_or(i64::MAX);
            let _ = hostcalls::increment_metric(*id, delta);
            *count = 0;
        }
    });
}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
}

/// A whole header map, in one host call.
///
/// Read here rather than through the SDK's `get_map`, which panics on a value that is not UTF-8
/// (HTTP/1 allows such bytes and Envoy passes them on): one request carrying one would stop the
/// filter's VM. [`HeaderList`] decides on such values as text and keeps their bytes.
fn header_map(map: MapType) -> HeaderList {
    const OK: u32 = 0;
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: the host writes the address and size of a buffer it allocated in this module's
    // memory through the SDK's `proxy_on_memory_allocate` (a boxed `[u8]` of exactly `size`
    // bytes), or leaves `data` null.
    let status = unsafe { proxy_get_header_map_pairs(map as u32, &mut data, &mut size) };
    if status != OK || data.is_null() {
        return HeaderList::default();
    }
    // SAFETY: as above; ownership of the buffer passes to this function, which frees it.
    let bytes: Box<[u8]> = unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(data, size)) };
    HeaderList::decode(bytes.into_vec()).unwrap_or_else(|e| {
        warn!("palisade: cannot read {map:?}: {e}");
        HeaderList::default()
    })
}

/// One header value as text (see [`palisade::header_map::value_text`]).
fn header_value(map: MapType, name: &str) -> Option<String> {
    let bytes = hostcalls::get_map_value_bytes(map, name).ok().flatten()?;
    Some(palisade::header_map::value_text(bytes))
}

/// All request headers (pseudo-headers included), in one host call.
pub fn request_headers() -> HeaderList {
    header_map(MapType::HttpRequestHeaders)
}

/// All response headers, in one host call, with the bytes of values that are not UTF-8.
pub fn response_headers() -> HeaderList {
    header_map(MapType::HttpResponseHeaders)
}

/// One request header.
pub fn request_header(name: &str) -> Option<String> {
    header_value(MapType::HttpRequestHeaders, name)
}

/// Removes a request header before the upstream sees it.
pub fn remove_request_header(name: &str) {
    let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, name);
}

/// Sets (replaces) a request header.
pub fn set_request_header(name: &str, value: &str) {
    let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value));
}

/// An Envoy attribute as a string (e.g. `["xds", "route_name"]`, `["source", "address"]`).
pub fn property(path: &[&str]) -> Option<String> {
    let bytes = hostcalls::get_property(path.to_vec()).ok().flatten()?;
    String::from_utf8(bytes).ok()
}

/// Envoy's route name for this request, when rules match on it.
pub fn route_name() -> Option<String> {
    property(&["xds", "route_name"])
}

/// Sends one of Palisade's JSON error replies with the request's id, plus `extra` headers (e.g.
/// security headers). Stages call [`pipeline::Request::send_error`], which finds the id.
pub(crate) fn send_error(reply: &ErrorResponse, request_id: Option<&str>, extra: &[(&str, &str)]) {
    let body = reply.body(request_id);
    let mut headers = reply.all_headers();
    headers.extend_from_slice(extra);
    send_response(reply.status, headers, Some(&body));
}

/// Sends a local reply.
pub fn send_response(status: u32, headers: Vec<(&str, &str)>, body: Option<&[u8]>) {
    if let Err(status) = hostcalls::send_http_response(status, headers, body) {
        error!("palisade: cannot send a local reply: {status:?}");
    }
}

/// Sets (replaces) a response header.
pub fn set_response_header(name: &str, value: &str) {
    let _ = hostcalls::set_map_value(MapType::HttpResponseHeaders, name, Some(value));
}

/// Removes a response header.
pub fn remove_response_header(name: &str) {
    let _ = hostcalls::remove_map_value(MapType::HttpResponseHeaders, name);
}

/// Appends a response header value (never merged with existing ones: `set-cookie`).
pub fn add_response_header(name: &str, value: &str) {
    let _ = hostcalls::add_map_value(MapType::HttpResponseHeaders, name, value);
}

/// Appends a response header value given as bytes (one the upstream sent that is not UTF-8).
pub fn add_response_header_bytes(name: &str, value: &[u8]) {
    let _ = hostcalls::add_map_value_bytes(MapType::HttpResponseHeaders, name, value);
}

/// The host's clock, in nanoseconds since the Unix epoch (0 if the host cannot tell).
pub fn now_nanos() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Shared data (one store for every worker VM with the same `vm_id`): the value and its CAS.
pub fn shared_get(key: &str) -> (Option<Vec<u8>>, Option<u32>) {
    hostcalls::get_shared_data(key).unwrap_or((None, None))
}

/// Why a shared-data write did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedWriteError {
    /// Another worker wrote since our read: read again and retry.
    CasMismatch,
    /// The host refused the write.
    Failed,
}

/// Writes shared data if nobody wrote since `cas` was read (`None`: unconditionally).
pub fn shared_set(key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SharedWriteError> {
    match hostcalls::set_shared_data(key, Some(value), cas) {
        Ok(()) => Ok(()),
        Err(proxy_wasm::types::Status::CasMismatch) => Err(SharedWriteError::CasMismatch),
        Err(_) => Err(SharedWriteError::Failed),
    }
}

/// Starts an HTTP call to an Envoy cluster; the answer arrives in `on_http_call_response`.
pub fn http_call(
    cluster: &str,
    headers: Vec<(&str, &str)>,
    body: Option<&[u8]>,
    timeout: std::time::Duration,
) -> Option<u32> {
    match hostcalls::dispatch_http_call(cluster, headers, body, vec![], timeout) {
        Ok(token) => Some(token),
        Err(status) => {
            warn!("palisade: cannot call cluster '{cluster}': {status:?}");
            None
        }
    }
}

/// The headers of an HTTP call's answer (inside `on_http_call_response`).
pub fn http_call_response_headers() -> HeaderList {
    header_map(MapType::HttpCallResponseHeaders)
}

/// The body of an HTTP call's answer, up to `max` bytes.
pub fn http_call_response_body(size: usize, max: usize) -> Option<Vec<u8>> {
    hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, size.min(max))
        .ok()
        .flatten()
}

/// Starts a unary gRPC call to an Envoy cluster (which must speak HTTP/2); the answer arrives in
/// `on_grpc_call_response`.
pub fn grpc_call(
    cluster: &str,
    service: &str,
    method: &str,
    message: &[u8],
    timeout: std::time::Duration,
) -> Option<u32> {
    match hostcalls::dispatch_grpc_call(cluster, service, method, vec![], Some(message), timeout) {
        Ok(token) => Some(token),
        Err(status) => {
            warn!("palisade: cannot call {service}/{method} on cluster '{cluster}': {status:?}");
            None
        }
    }
}

/// The message of a gRPC call's answer (inside `on_grpc_call_response`), up to `max` bytes.
pub fn grpc_call_response_body(size: usize, max: usize) -> Option<Vec<u8>> {
    hostcalls::get_buffer(BufferType::GrpcReceiveBuffer, 0, size.min(max))
        .ok()
        .flatten()
}

/// Resumes a request paused in `on_http_request_headers`.
pub fn resume_request() {
    if let Err(status) = hostcalls::resume_http_request() {
        error!("palisade: cannot resume the request: {status:?}");
    }
}

/// The request body received so far (inside `on_http_request_body`).
pub fn request_body(start: usize, size: usize) -> Option<Vec<u8>> {
    hostcalls::get_buffer(BufferType::HttpRequestBody, start, size)
        .ok()
        .flatten()
}

/// The response body received so far (inside `on_http_response_body`).
pub fn response_body(start: usize, size: usize) -> Option<Vec<u8>> {
    hostcalls::get_buffer(BufferType::HttpResponseBody, start, size)
        .ok()
        .flatten()
}

/// Replaces the whole buffered response body.
pub fn replace_response_body(size: usize, body: &[u8]) {
    let _ = hostcalls::set_buffer(BufferType::HttpResponseBody, 0, size, body);
}

/// Result of asking Envoy (BoringSSL) to verify a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostVerify {
    Valid,
    Invalid,
    /// The host has no `verify_signature` function, or refused the key: verify in wasm instead.
    Unavailable,
}

/// Verifies a signature with Envoy's `verify_signature` foreign function (RSA PKCS#1 v1.5 and
/// ECDSA with a DER signature; `hash` is e.g. `sha256`; `der_key` is a SubjectPublicKeyInfo).
pub fn verify_signature(hash: &str, der_key: &[u8], signature: &[u8], text: &[u8]) -> HostVerify {
    let args = palisade::proto::verify_signature_arguments(hash, der_key, signature, text);
    match hostcalls::call_foreign_function("verify_signature", Some(&args)) {
        Ok(Some(result)) => match palisade::proto::verify_signature_result(&result) {
            Ok(true) => HostVerify::Valid,
            Ok(false) => HostVerify::Invalid,
            Err(_) => HostVerify::Unavailable,
        },
        Ok(None) => HostVerify::Invalid,
        Err(_) => HostVerify::Unavailable,
    }
}
