//! The error responses every Palisade filter sends.
//!
//! One shape for all filters: `{"error": "<code>", "message": "<text>", "status": <status>}` with
//! `content-type: application/json`, and the request id when Envoy gave one. Nothing from the
//! request is echoed, so a body never reflects attacker input.

use serde::Serialize;

/// An error response a filter sends instead of forwarding the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorResponse {
    pub status: u32,
    /// A short, stable code such as `unauthorized` or `rate_limited`.
    pub error: &'static str,
    /// A human-readable explanation (never raw request input).
    pub message: String,
    /// Extra headers (e.g. `www-authenticate`, `retry-after`).
    pub headers: Vec<(String, String)>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: &'a str,
    status: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

impl ErrorResponse {
    pub fn new(status: u32, error: &'static str, message: impl Into<String>) -> Self {
        ErrorResponse {
            status,
            error,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// The JSON body, with the request id if there is one.
    pub fn body(&self, request_id: Option<&str>) -> Vec<u8> {
        let body = Body {
            error: self.error,
            message: &self.message,
            status: self.status,
            request_id: request_id.filter(|id| is_safe_request_id(id)),
        };
        serde_json::to_vec(&body).unwrap_or_else(|_| b"{\"error\":\"internal\"}".to_vec())
    }

    /// All response headers: `content-type` first, then the extra ones.
    pub fn all_headers(&self) -> Vec<(&str, &str)> {
        let mut headers = Vec::with_capacity(self.headers.len() + 2);
        headers.push(("content-type", "application/json"));
        headers.push(("cache-control", "no-store"));
        headers.extend(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        headers
    }
}

/// A request id goes into the body only if it looks like one (no control characters, bounded).
fn is_safe_request_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic())
}
