//! The error responses every Palisade filter sends.
//!
//! One shape for all filters: `{"error": "<code>", "message": "<text>", "status": <status>}` with
//! `content-type: application/json`, and the request id when Envoy gave one. Nothing from the
//! request is echoed, so a body never reflects attacker input.

use crate::decimal;

/// An error response a filter sends instead of forwarding the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorResponse {
    pub status: u32,
    /// A short, stable code such as `unauthorized` or `rate_limited`.
    pub error: &'static str,
    /// A human-readable explanation (never raw request input).
    pub message: String,
    /// Extra headers (e.g. `www-authenticate`, `retry-after`).
    pub headers: Vec<(&'static str, String)>,
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
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The JSON body, with the request id if there is one. Written directly: a flood of refusals
    /// answers every request with one.
    pub fn body(&self, request_id: Option<&str>) -> Vec<u8> {
        // The fixed parts, the status and the request id fit without growing.
        let id_len = request_id.map_or(0, str::len);
        let mut out = Vec::with_capacity(128 + self.error.len() + self.message.len() + id_len);
        out.extend_from_slice(b"{\"error\":");
        push_json_string(&mut out, self.error);
        out.extend_from_slice(b",\"message\":");
        push_json_string(&mut out, &self.message);
        out.extend_from_slice(b",\"status\":");
        out.extend_from_slice(decimal::decimal(self.status.into(), &mut [0; 20]).as_bytes());
        if let Some(id) = request_id.filter(|id| is_safe_request_id(id)) {
            out.extend_from_slice(b",\"request_id\":");
            push_json_string(&mut out, id);
        }
        out.push(b'}');
        out
    }

    /// All response headers: `content-type` first, then the extra ones.
    pub fn all_headers(&self) -> Vec<(&str, &str)> {
        let mut headers = Vec::with_capacity(self.headers.len() + 2);
        headers.push(("content-type", "application/json"));
        headers.push(("cache-control", "no-store"));
        headers.extend(self.headers.iter().map(|(k, v)| (*k, v.as_str())));
        headers
    }
}

/// A request id goes into the body only if it looks like one (no control characters, bounded).
fn is_safe_request_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic())
}

/// Appends `text` as a JSON string: as is when nothing in it needs escaping (the usual case),
/// otherwise escaped by `serde_json`.
fn push_json_string(out: &mut Vec<u8>, text: &str) {
    if !needs_escape(text.as_bytes()) {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else if serde_json::to_writer(&mut *out, text).is_err() {
        out.extend_from_slice(b"\"\"");
    }
}

/// Whether a JSON string of `bytes` needs escaping: a control character (below 0x20), `"` or
/// `\`. Eight bytes at a time (a refusal's body is written on the hot path of a flood); the
/// word tests are exact, so a string is never taken as safe when it is not.
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = ONES * 0x80;
    // Whether any byte of `w` is below `n` (`n` <= 0x80).
    let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGHS != 0;
    let holds = |w: u64, b: u8| below(w ^ (ONES * u64::from(b)), 1);
    let mut words = bytes.chunks_exact(8);
    for chunk in &mut words {
        let mut le = [0u8; 8];
        le.copy_from_slice(chunk);
        let w = u64::from_le_bytes(le);
        if below(w, 0x20) || holds(w, b'"') || holds(w, b'\\') {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}
