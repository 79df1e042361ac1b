//! The proxy-wasm boundary shared by every Palisade filter.
//!
//! Filters call these helpers instead of `proxy_wasm::hostcalls` directly, so that reading config,
//! defining metrics, reading request facts and sending error replies is written once. Host
//! failures are mapped to `None`/no-ops here: a filter decides on what it could read, and the core
//! (`palisade`) decides what missing facts mean.

use log::{error, info, warn};
use palisade::config::ConfigError;
use palisade::metrics::{counter_name, Counter};
use palisade::response::ErrorResponse;
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType};

pub use proxy_wasm;

/// Installs the logger. Envoy does not allow asking its log level while the module starts, so
/// this starts at `info` and [`load_config`] moves to Envoy's level.
pub fn init_logging() {
    proxy_wasm::set_log_level(LogLevel::Info);
}

/// Follows Envoy's log level (so `debug!` costs nothing when Envoy runs at `info`).
fn follow_host_log_level() {
    if let Ok(level) = hostcalls::get_log_level() {
        proxy_wasm::set_log_level(level);
    }
}

/// Reads the plugin configuration and compiles it with `parse`. On error, logs a line naming the
/// field at fault and returns `None`: the filter then refuses the configuration (Envoy rejects
/// the update, or does not start).
pub fn load_config<T>(
    filter: &str,
    parse: impl FnOnce(&[u8]) -> Result<T, ConfigError>,
) -> Option<T> {
    follow_host_log_level();
    let bytes = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => Vec::new(),
        Err(status) => {
            error!("palisade {filter}: cannot read the plugin configuration: {status:?}");
            return None;
        }
    };
    match parse(&bytes) {
        Ok(config) => {
            info!(
                "palisade {filter} v{}: configuration loaded",
                env!("CARGO_PKG_VERSION")
            );
            Some(config)
        }
        Err(e) => {
            error!("palisade {filter}: invalid configuration: {e}");
            None
        }
    }
}

/// A counter defined once per VM through the host (`palisade_<filter>_<what>_total`).
#[derive(Debug, Clone, Copy)]
pub struct HostCounter(Option<u32>);

impl HostCounter {
    pub fn define(filter: &str, what: &str) -> Self {
        let name = counter_name(filter, what);
        match hostcalls::define_metric(MetricType::Counter, &name) {
            Ok(id) => HostCounter(Some(id)),
            Err(status) => {
                warn!("palisade {filter}: cannot define metric {name}: {status:?}");
                HostCounter(None)
            }
        }
    }
}

impl Counter for HostCounter {
    fn add(&self, delta: u64) {
        if let Some(id) = self.0 {
            let delta = i64::try_from(delta).unwrap_or(i64::MAX);
            let _ = hostcalls::increment_metric(id, delta);
        }
    }
}

/// All request headers (pseudo-headers included), in one host call.
pub fn request_headers() -> Vec<(String, String)> {
    hostcalls::get_map(MapType::HttpRequestHeaders).unwrap_or_default()
}

/// All response headers, in one host call.
pub fn response_headers() -> Vec<(String, String)> {
    hostcalls::get_map(MapType::HttpResponseHeaders).unwrap_or_default()
}

/// One request header.
pub fn request_header(name: &str) -> Option<String> {
    hostcalls::get_map_value(MapType::HttpRequestHeaders, name)
        .ok()
        .flatten()
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

/// Sends one of Palisade's JSON error replies, plus `extra` headers (e.g. security headers).
pub fn send_error(reply: &ErrorResponse, extra: &[(&str, &str)]) {
    let request_id = request_header("x-request-id");
    let body = reply.body(request_id.as_deref());
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

/// Writes response headers through the host (for the core's `HeaderSink`s).
#[derive(Debug, Default)]
pub struct ResponseHeaders;

impl ResponseHeaders {
    pub fn set(&mut self, name: &str, value: &str) {
        let _ = hostcalls::set_map_value(MapType::HttpResponseHeaders, name, Some(value));
    }
    pub fn add(&mut self, name: &str, value: &str) {
        let _ = hostcalls::add_map_value(MapType::HttpResponseHeaders, name, value);
    }
    pub fn remove(&mut self, name: &str) {
        let _ = hostcalls::remove_map_value(MapType::HttpResponseHeaders, name);
    }
}

/// Finds a header in a list fetched with [`request_headers`] / [`response_headers`].
pub fn find<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}
