//! Violations and the RFC 9457 `application/problem+json` response that lists them.
//!
//! A rejected request gets one problem document:
//!
//! ```json
//! { "type": "about:blank", "title": "Bad Request", "status": 400,
//!   "detail": "The request has 2 validation errors.",
//!   "errors": [ { "in": "body", "pointer": "/age", "rule": "minimum", "detail": "must be at least 13" },
//!               { "in": "body", "pointer": "/email", "rule": "format", "detail": "must be a valid email address" } ] }
//! ```
//!
//! Each error names where it is (`in`: `method`, `path`, `query`, `header` or `body`), a JSON
//! pointer inside that place (RFC 6901), the rule that failed (JSON Schema keyword names where one
//! exists) and a fixed explanation built from the configuration only. Request values never appear;
//! names taken from the request (an unknown field, parameter or header) appear only inside the
//! pointer, JSON-escaped, HTML-significant characters escaped too, and cut to a bounded length.

use serde::Serialize;
use std::fmt::Write as _;

/// Where in the request a violation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Location {
    Method,
    Path,
    Query,
    Header,
    Body,
}

impl Location {
    /// The name used in the problem document (`in`).
    pub fn as_str(self) -> &'static str {
        match self {
            Location::Method => "method",
            Location::Path => "path",
            Location::Query => "query",
            Location::Header => "header",
            Location::Body => "body",
        }
    }
}

/// One failed rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    #[serde(rename = "in")]
    pub location: Location,
    /// A JSON pointer inside `location` (`""` for the whole of it).
    pub pointer: String,
    /// The rule that failed, e.g. `minLength`, `required`, `traversal`.
    pub rule: &'static str,
    /// What the rule asks for, built from the configuration only.
    pub detail: String,
}

pub(crate) use crate::json::{append_index, append_segment};

/// Collects violations up to a cap, counting the ones past it.
#[derive(Debug, Clone)]
pub struct Violations {
    list: Vec<Violation>,
    total: usize,
    cap: usize,
}

impl Violations {
    /// An empty collection keeping at most `cap` violations (at least one).
    pub fn new(cap: usize) -> Self {
        Violations {
            list: Vec::new(),
            total: 0,
            cap: cap.max(1),
        }
    }

    /// Records a violation; the detail is only built while under the cap.
    pub fn push(
        &mut self,
        location: Location,
        pointer: &str,
        rule: &'static str,
        detail: impl FnOnce() -> String,
    ) {
        self.total += 1;
        if self.list.len() < self.cap {
            self.list.push(Violation {
                location,
                pointer: pointer.to_owned(),
                rule,
                detail: detail(),
            });
        }
    }

    /// Whether nothing failed.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// How many violations were found, including those past the cap.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The violations kept.
    pub fn list(&self) -> &[Violation] {
        &self.list
    }

    /// The problem for these violations (`None` if there are none).
    pub fn into_problem(self, status: u32) -> Option<Problem> {
        if self.total == 0 {
            return None;
        }
        Some(Problem {
            status,
            errors: self.list,
            total: self.total,
            allow: None,
        })
    }
}

/// The response for a rejected request (or for one that report-only mode lets through).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    status: u32,
    errors: Vec<Violation>,
    total: usize,
    /// The `Allow` header value for a 405.
    allow: Option<String>,
}

#[derive(Serialize)]
struct Document<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u32,
    detail: String,
    errors: &'a [Violation],
}

impl Problem {
    /// A problem with a single violation.
    pub fn single(
        status: u32,
        location: Location,
        pointer: &str,
        rule: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Problem {
            status,
            errors: vec![Violation {
                location,
                pointer: pointer.to_owned(),
                rule,
                detail: detail.into(),
            }],
            total: 1,
            allow: None,
        }
    }

    /// A 405 with the `Allow` header listing `allowed`.
    pub fn method_not_allowed(allowed: &[String]) -> Self {
        let list = allowed.join(", ");
        let mut problem = Problem::single(
            405,
            Location::Method,
            "",
            "methods",
            format!("the method must be one of: {list}"),
        );
        problem.allow = Some(list);
        problem
    }

    /// The HTTP status to send.
    pub fn status(&self) -> u32 {
        self.status
    }

    /// The violations listed in the response (at most the configured cap).
    pub fn violations(&self) -> &[Violation] {
        &self.errors
    }

    /// How many violations were found, including those not listed.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The standard reason phrase for the status (RFC 9110), used as the problem's `title`.
    pub fn title(&self) -> &'static str {
        match self.status {
            400 => "Bad Request",
            405 => "Method Not Allowed",
            413 => "Content Too Large",
            414 => "URI Too Long",
            415 => "Unsupported Media Type",
            431 => "Request Header Fields Too Large",
            502 => "Bad Gateway",
            _ => "Error",
        }
    }

    /// A short label for metrics and logs: where the first violation is.
    pub fn category(&self) -> &'static str {
        match self.status {
            405 => "method",
            413 => "body_size",
            414 => "uri_length",
            415 => "content_type",
            431 => "header_size",
            502 => "response",
            _ => self
                .errors
                .first()
                .map(|v| v.location.as_str())
                .unwrap_or("request"),
        }
    }

    /// One line for the filter's log: status and each violation's place and rule (no values).
    pub fn summary(&self) -> String {
        let mut line = format!("{} ({} violation(s))", self.status, self.total);
        for v in &self.errors {
            let _ = write!(line, "; {} {:?} {}", v.location.as_str(), v.pointer, v.rule);
        }
        line
    }

    /// The response headers: content type, no caching, and `Allow` for a 405.
    pub fn headers(&self) -> Vec<(&'static str, &str)> {
        let mut headers = vec![
            ("content-type", "application/problem+json"),
            ("cache-control", "no-store"),
        ];
        if let Some(allow) = &self.allow {
            headers.push(("allow", allow.as_str()));
        }
        headers
    }

    /// The `application/problem+json` body.
    pub fn body(&self) -> Vec<u8> {
        let detail = if self.total > self.errors.len() {
            format!(
                "The request has {} validation errors; the first {} are listed.",
                self.total,
                self.errors.len()
            )
        } else if self.total == 1 {
            "The request has 1 validation error.".to_owned()
        } else {
            format!("The request has {} validation errors.", self.total)
        };
        let doc = Document {
            kind: "about:blank",
            title: self.title(),
            status: self.status,
            detail,
            errors: &self.errors,
        };
        match serde_json::to_string(&doc) {
            Ok(json) => html_safe(&json).into_bytes(),
            Err(_) => format!(
                "{{\"type\":\"about:blank\",\"title\":\"{}\",\"status\":{}}}",
                self.title(),
                self.status
            )
            .into_bytes(),
        }
    }
}

/// Escapes `<`, `>`, `&` and `'` as `\u` sequences. They only occur inside JSON strings in our
/// output, so the document means the same, and nothing in it can be read as markup if a client
/// renders it.
fn html_safe(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\'' => out.push_str("\\u0027"),
            c => out.push(c),
        }
    }
    out
}
