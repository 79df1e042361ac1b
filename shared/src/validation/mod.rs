//! Input validation: request shape, body schemas, and response scrubbing (issue 5).
//!
//! The config document is a default policy plus route `rules` (see [`crate::rules`]); each rule
//! says only what differs from the default. A policy has these sections, all optional:
//!
//! ```json
//! { "mode": "enforce",
//!   "max_errors": 10,
//!   "methods": ["GET", "POST"],
//!   "path":    { "max_length": 2048, "encoded_slashes": "reject", "template": "/users/{id}",
//!                "params": { "id": { "type": "integer", "minimum": 1 } } },
//!   "query":   { "max_length": 2048, "max_params": 64, "unknown_params": "allow",
//!                "params": { "page": { "type": "integer", "minimum": 1 } } },
//!   "headers": { "max_count": 100, "max_size": 61440, "required": [], "forbidden": [],
//!                "fields": { "x-request-id": { "format": "uuid" } } },
//!   "body":    { "max_size": 1048576, "max_depth": 32, "content_types": ["application/json"],
//!                "schema": { "type": "object", "properties": { } } },
//!   "scrub":   { "fields": ["password", "secret"], "max_body_size": 1048576 },
//!   "rules": [ { "name": "create-user", "match": { "path": { "exact": "/users" } }, "...": "..." } ] }
//! ```
//!
//! `mode: "report"` makes a rule set report-only: the verdict is [`Verdict::Report`] with the
//! problem the request would have got, and the filter logs, counts and lets it pass.
//!
//! # How a filter uses it
//!
//! 1. On configure: [`ValidationConfig::from_slice`]; refuse the config on error.
//! 2. Request headers: pick the policy with [`ValidationConfig::select`] (or the index API of
//!    [`RuleSet`]), build a [`RequestHead`], call [`Policy::check_head`]. Send the problem of a
//!    [`Verdict::Reject`] with [`Problem::status`], [`Problem::headers`] and [`Problem::body`].
//! 3. If the request has a body: [`Policy::body_plan`] gives the limit and how to read it. Stream
//!    chunks into a [`BodyBuffer`] (or check Envoy's running total with
//!    [`BodyBuffer::check_total`]); the moment it reports [`TooLarge`], answer with
//!    [`Policy::body_too_large`]. At end of stream, [`Policy::check_body`].
//! 4. Response: if [`Policy::scrubber`] applies to the response's content type, buffer the body up
//!    to [`Scrubber::max_body_size`] and send what [`Scrubber::scrub`] returns.
//!
//! Counters are named with [`metric_name`]: `rejected`, `reported`, `scrubbed`, `scrub_failed`.

pub mod body;
mod decode;
pub mod form;
pub mod format;
pub mod headers;
pub use crate::json;
pub mod params;
pub mod path;
pub mod problem;
pub mod query;
pub mod schema;
pub mod scrub;

use serde::Deserialize;
use serde_json::Value;

pub use body::{BodyBuffer, BodyKind, TooLarge};
pub use problem::{Location, Problem, Violation, Violations};
pub use schema::Schema;
pub use scrub::{OnFailure, Scrubbed, Scrubber};

use crate::config::{self, ConfigError};
use crate::header_map::HeaderList;
use crate::matcher::Request;
use crate::metrics::counter_name;
use crate::rules::{RuleSet, Selected};

/// The filter's name in metrics and logs.
pub const FILTER_NAME: &str = "input-validation";

/// The full name of one of this filter's counters, e.g. `palisade_input_validation_rejected_total`.
pub fn metric_name(what: &str) -> String {
    counter_name(FILTER_NAME, what)
}

/// The most violations a problem document may list.
pub const MAX_ERRORS_LIMIT: usize = 100;

/// Enforce the rules, or only report what they would reject.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Refuse what the rules refuse (default).
    #[default]
    Enforce,
    /// Let it through, and log and count what would have been refused.
    Report,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub(crate) struct PolicySpec {
    /// `enforce` refuses what the rules refuse; `report` only logs and counts it.
    mode: Mode,
    /// The most violations one problem response lists (1 to 100).
    max_errors: usize,
    /// The HTTP methods allowed (default: any); others get a 405.
    methods: Option<Vec<String>>,
    /// Path checks: length, characters, encoded slashes, a template with typed parameters.
    path: path::PathSpec,
    /// Query string checks: length, parameter count, rules per parameter.
    query: query::QuerySpec,
    /// Request header checks: count, size, required and forbidden headers, value rules.
    headers: headers::HeadersSpec,
    /// Request body checks: content types, size, depth, a JSON Schema.
    body: body::BodySpec,
    /// Response scrubbing: sensitive members removed from JSON responses.
    scrub: scrub::ScrubSpec,
}

impl Default for PolicySpec {
    fn default() -> Self {
        PolicySpec {
            mode: Mode::Enforce,
            max_errors: 10,
            methods: None,
            path: path::PathSpec::default(),
            query: query::QuerySpec::default(),
            headers: headers::HeadersSpec::default(),
            body: body::BodySpec::default(),
            scrub: scrub::ScrubSpec::default(),
        }
    }
}

/// The compiled policy of one rule (or the default).
#[derive(Debug, Clone)]
pub struct Policy {
    mode: Mode,
    max_errors: usize,
    methods: Option<Vec<String>>,
    path: path::PathRules,
    query: query::QueryRules,
    headers: headers::HeaderRules,
    body: body::BodyRules,
    scrub: Option<Scrubber>,
}

/// What the filter knows when request headers arrive.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    /// `:method`.
    pub method: &'a str,
    /// `:path`, with its query string.
    pub path: &'a str,
    /// The request headers as the host gives them (pseudo-headers may be included).
    pub headers: &'a HeaderList,
    /// Whether a body follows (in proxy-wasm: `!end_of_stream` in the headers callback).
    pub has_body: bool,
}

impl RequestHead<'_> {
    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }
}

/// The outcome of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to object to.
    Allow,
    /// Send this problem instead of forwarding the request.
    Reject(Problem),
    /// Report-only mode: log and count this problem, and forward the request.
    Report(Problem),
}

impl Verdict {
    /// The problem found, whether enforced or only reported.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Verdict::Allow => None,
            Verdict::Reject(p) | Verdict::Report(p) => Some(p),
        }
    }

    /// Whether the request must be stopped.
    pub fn is_reject(&self) -> bool {
        matches!(self, Verdict::Reject(_))
    }
}

/// What to do with a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyPlan {
    /// The most bytes the body may have.
    pub limit: usize,
    /// How the body is read.
    pub kind: BodyKind,
    /// Whether the filter must buffer the body and call [`Policy::check_body`] at its end
    /// (otherwise it only counts bytes against `limit`).
    pub validate: bool,
}

impl Policy {
    /// Compiles one policy document (the defaults merged with a rule's fields).
    pub fn compile(value: Value) -> Result<Self, ConfigError> {
        let spec: PolicySpec = config::from_value(value)?;
        if spec.max_errors == 0 || spec.max_errors > MAX_ERRORS_LIMIT {
            return Err(ConfigError::field(
                "max_errors",
                format!("must be between 1 and {MAX_ERRORS_LIMIT}"),
            ));
        }
        let methods = match &spec.methods {
            None => None,
            Some(list) => {
                if list.is_empty() {
                    return Err(ConfigError::field(
                        "methods",
                        "must list at least one method (leave it out to allow all)",
                    ));
                }
                let mut methods = Vec::with_capacity(list.len());
                for (i, m) in list.iter().enumerate() {
                    if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
                        return Err(ConfigError::field(
                            format!("methods[{i}]"),
                            format!("'{m}' is not an HTTP method"),
                        ));
                    }
                    let upper = m.to_ascii_uppercase();
                    if !methods.contains(&upper) {
                        methods.push(upper);
                    }
                }
                Some(methods)
            }
        };
        Ok(Policy {
            mode: spec.mode,
            max_errors: spec.max_errors,
            methods,
            path: path::PathRules::compile("path", &spec.path)?,
            query: query::QueryRules::compile("query", &spec.query)?,
            headers: headers::HeaderRules::compile("headers", &spec.headers)?,
            body: body::BodyRules::compile("body", &spec.body)?,
            scrub: Scrubber::compile("scrub", &spec.scrub)?,
        })
    }

    /// Enforce or report.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The body rules (size limit, required).
    pub fn body(&self) -> &body::BodyRules {
        &self.body
    }

    /// The response scrubber, if this policy scrubs.
    pub fn scrubber(&self) -> Option<&Scrubber> {
        self.scrub.as_ref()
    }

    fn verdict(&self, problem: Option<Problem>) -> Verdict {
        match (problem, self.mode) {
            (None, _) => Verdict::Allow,
            (Some(p), Mode::Enforce) => Verdict::Reject(p),
            (Some(p), Mode::Report) => Verdict::Report(p),
        }
    }

    fn single(
        &self,
        status: u32,
        location: Location,
        rule: &'static str,
        detail: String,
    ) -> Verdict {
        self.verdict(Some(Problem::single(status, location, "", rule, detail)))
    }

    /// Checks everything known when the request headers arrive: method (405), path and query
    /// length (414), header count and size (431), content type (415), declared length (413),
    /// then path shape and parameters, query parameters, header rules and body presence (400).
    pub fn check_head(&self, head: &RequestHead<'_>) -> Verdict {
        if let Some(methods) = &self.methods {
            if !methods.iter().any(|m| m == head.method) {
                return self.verdict(Some(Problem::method_not_allowed(methods)));
            }
        }
        if self.path.too_long(head.path) {
            let max = self.path.max_length();
            return self.single(
                414,
                Location::Path,
                "maxLength",
                format!("the path must be at most {max} bytes long"),
            );
        }
        if self.query.too_long(head.path) {
            let max = self.query.max_length();
            return self.single(
                414,
                Location::Query,
                "maxLength",
                format!("the query string must be at most {max} bytes long"),
            );
        }
        if let Some((rule, detail)) = self.headers.too_large(head.headers) {
            return self.single(431, Location::Header, rule, detail);
        }
        if head.has_body {
            if let Some(detail) = self.body.unsupported(head.header("content-type")) {
                return self.verdict(Some(Problem::single(
                    415,
                    Location::Header,
                    "/content-type",
                    "contentType",
                    detail,
                )));
            }
            let declared = head
                .header("content-length")
                .and_then(|v| v.trim().parse::<u64>().ok());
            if declared.is_some_and(|n| n > self.body.max_size() as u64) {
                return self.body_too_large();
            }
        }
        let mut out = Violations::new(self.max_errors);
        self.path.check(head.path, &mut out);
        self.query.check(head.path, &mut out);
        self.headers.check(head.headers, &mut out);
        if !head.has_body && self.body.required() {
            out.push(Location::Body, "", "required", || {
                "a body is required".to_owned()
            });
        }
        self.verdict(out.into_problem(400))
    }

    /// How to handle the body of a request that passed [`Policy::check_head`].
    pub fn body_plan(&self, head: &RequestHead<'_>) -> BodyPlan {
        let kind = BodyKind::of(head.header("content-type"));
        BodyPlan {
            limit: self.body.max_size(),
            kind,
            validate: self.body.validates(kind) || self.body.required(),
        }
    }

    /// The verdict for a body past its limit (413).
    pub fn body_too_large(&self) -> Verdict {
        let max = self.body.max_size();
        self.single(
            413,
            Location::Body,
            "maxSize",
            format!("the body must be at most {max} bytes"),
        )
    }

    /// Validates a complete body of `kind` (see [`BodyPlan::kind`]).
    pub fn check_body(&self, kind: BodyKind, body: &[u8]) -> Verdict {
        if body.len() > self.body.max_size() {
            return self.body_too_large();
        }
        let mut out = Violations::new(self.max_errors);
        self.body.check(kind, body, &mut out);
        self.verdict(out.into_problem(400))
    }
}

/// The filter's whole configuration: a default policy and route rules.
#[derive(Debug)]
pub struct ValidationConfig {
    rules: RuleSet<Policy>,
}

impl ValidationConfig {
    /// Parses and compiles configuration bytes (JSON).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ConfigError> {
        Self::from_value(config::parse_json(bytes)?)
    }

    /// Compiles a configuration document.
    pub fn from_value(value: Value) -> Result<Self, ConfigError> {
        let Value::Object(doc) = value else {
            return Err(ConfigError::field("", "expected a JSON object"));
        };
        let rules = RuleSet::from_document(&doc, &[], Policy::compile)?;
        Ok(ValidationConfig { rules })
    }

    /// The policy for a request (first matching rule, else the default).
    pub fn select(&self, req: &Request<'_>) -> Selected<'_, Policy> {
        self.rules.select(req)
    }

    /// The rule set, for index-based selection kept across callbacks.
    pub fn rules(&self) -> &RuleSet<Policy> {
        &self.rules
    }
}
