//! Request bodies: `Content-Type` allow-list (415), size limit while streaming (413), JSON and
//! form validation against a schema.
//!
//! ```json
//! "body": { "max_size": 1048576, "max_depth": 32,
//!           "content_types": ["application/json"],
//!           "schema": { "type": "object", "required": ["email"], "properties": { ... } } }
//! ```
//!
//! `content_types` lists media types (`application/json`, `application/*`, `*/*`); parameters
//! such as `charset` are ignored. Without it, any type is accepted, except that with a `schema`
//! only bodies the schema can check are: JSON (`application/json`, `application/*+json`) and
//! `application/x-www-form-urlencoded`. `required` (default: `true` when there is a schema) says
//! a request must have a body.

use serde::Deserialize;

use super::form::{parse_pairs, validate_pairs, FieldRuleNames};
use super::problem::{Location, Violations};
use super::query::{form_detail, form_rule};
use super::schema::{Schema, SchemaSpec};
use crate::config::ConfigError;
use crate::json::{parse_strict, JsonError, MAX_DEPTH_LIMIT};

/// The `body` section as written.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct BodySpec {
    /// The largest body accepted, in bytes (413 beyond it).
    pub max_size: usize,
    /// The deepest nesting of a JSON body.
    pub max_depth: usize,
    /// Accepted media types (`application/json`, `application/*`, `*/*`); others get a 415.
    pub content_types: Option<Vec<String>>,
    /// Whether a request must have a body (default: `true` when there is a `schema`).
    pub required: Option<bool>,
    /// A JSON Schema (2020-12 subset) for JSON and form bodies.
    pub schema: Option<SchemaSpec>,
}

impl Default for BodySpec {
    fn default() -> Self {
        BodySpec {
            max_size: 1024 * 1024,
            max_depth: 32,
            content_types: None,
            required: None,
            schema: None,
        }
    }
}

/// How a body is read, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `application/json` or `application/*+json`.
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// Anything else: only its size is checked.
    Other,
}

/// The media type of a `Content-Type` value, lower-cased, without parameters.
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

impl BodyKind {
    /// The kind of a `Content-Type` value (`None`: no header).
    pub fn of(content_type: Option<&str>) -> Self {
        match content_type.map(media_type).as_deref() {
            Some("application/json") => BodyKind::Json,
            Some("application/x-www-form-urlencoded") => BodyKind::Form,
            Some(m) if m.starts_with("application/") && m.ends_with("+json") => BodyKind::Json,
            _ => BodyKind::Other,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum MediaRange {
    Any,
    Type(String),
    Exact(String),
}

impl MediaRange {
    fn parse(at: &str, text: &str) -> Result<Self, ConfigError> {
        let m = media_type(text);
        let Some((ty, sub)) = m.split_once('/') else {
            return Err(ConfigError::field(
                at,
                format!("'{text}' is not a media type such as 'application/json'"),
            ));
        };
        let token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+*".contains(&b))
        };
        if !token(ty) || !token(sub) || (ty == "*" && sub != "*") {
            return Err(ConfigError::field(
                at,
                format!("'{text}' is not a media type such as 'application/json'"),
            ));
        }
        Ok(if ty == "*" {
            MediaRange::Any
        } else if sub == "*" {
            MediaRange::Type(format!("{ty}/"))
        } else {
            MediaRange::Exact(m)
        })
    }

    fn matches(&self, media: &str) -> bool {
        match self {
            MediaRange::Any => true,
            MediaRange::Type(prefix) => media.starts_with(prefix.as_str()),
            MediaRange::Exact(m) => media == m,
        }
    }

    /// Whether every type in this range is one a schema can check.
    fn validatable(&self) -> bool {
        match self {
            MediaRange::Exact(m) => BodyKind::of(Some(m)) != BodyKind::Other,
            _ => false,
        }
    }
}

/// Compiled body checks.
#[derive(Debug, Clone)]
pub struct BodyRules {
    max_size: usize,
    max_depth: usize,
    content_types: Option<Vec<MediaRange>>,
    required: bool,
    schema: Option<Schema>,
}

const NAMES: FieldRuleNames = FieldRuleNames {
    unknown: "additionalProperties",
    repeated: "repeated",
};

impl BodyRules {
    pub(crate) fn compile(at: &str, spec: &BodySpec) -> Result<Self, ConfigError> {
        if spec.max_depth == 0 || spec.max_depth > MAX_DEPTH_LIMIT {
            return Err(ConfigError::field(
                format!("{at}.max_depth"),
                format!("must be between 1 and {MAX_DEPTH_LIMIT}"),
            ));
        }
        let schema = match &spec.schema {
            None => None,
            Some(s) => Some(Schema::compile(&format!("{at}.schema"), s)?),
        };
        let content_types = match &spec.content_types {
            None => None,
            Some(list) => {
                let mut ranges = Vec::with_capacity(list.len());
                for (i, text) in list.iter().enumerate() {
                    let item_at = format!("{at}.content_types[{i}]");
                    let range = MediaRange::parse(&item_at, text)?;
                    if schema.is_some() && !range.validatable() {
                        return Err(ConfigError::field(
                            item_at,
                            format!(
                                "the body schema can only check JSON and form bodies, not '{text}'"
                            ),
                        ));
                    }
                    ranges.push(range);
                }
                Some(ranges)
            }
        };
        Ok(BodyRules {
            max_size: spec.max_size,
            max_depth: spec.max_depth,
            content_types,
            required: spec.required.unwrap_or(spec.schema.is_some()),
            schema,
        })
    }

    /// The largest body allowed, in bytes.
    pub fn max_size(&self) -> usize {
        self.max_size
    }

    /// Whether a request must have a body.
    pub fn required(&self) -> bool {
        self.required
    }

    /// Whether the body of this kind is checked beyond its size.
    pub fn validates(&self, kind: BodyKind) -> bool {
        match kind {
            BodyKind::Json => true,
            BodyKind::Form => self.schema.is_some(),
            BodyKind::Other => false,
        }
    }

    /// The 415 check: `None` if the content type is acceptable, else the detail.
    pub(crate) fn unsupported(&self, content_type: Option<&str>) -> Option<String> {
        let media = content_type.map(media_type).filter(|m| !m.is_empty());
        match (&self.content_types, media) {
            (Some(list), Some(m)) if list.iter().any(|r| r.matches(&m)) => None,
            (None, Some(m))
                if self.schema.is_none() || BodyKind::of(Some(&m)) != BodyKind::Other =>
            {
                None
            }
            (None, None) if self.schema.is_none() => None,
            _ => Some(self.describe_types()),
        }
    }

    fn describe_types(&self) -> String {
        match &self.content_types {
            Some(list) => {
                let names: Vec<String> = list
                    .iter()
                    .map(|r| match r {
                        MediaRange::Any => "*/*".to_owned(),
                        MediaRange::Type(p) => format!("{p}*"),
                        MediaRange::Exact(m) => m.clone(),
                    })
                    .collect();
                format!("the Content-Type must be one of: {}", names.join(", "))
            }
            None => {
                "the Content-Type must be application/json or application/x-www-form-urlencoded"
                    .to_owned()
            }
        }
    }

    /// Validates a complete body of `kind`.
    pub(crate) fn check(&self, kind: BodyKind, body: &[u8], out: &mut Violations) {
        let blank = body
            .iter()
            .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
        if blank {
            if self.required {
                out.push(Location::Body, "", "required", || {
                    "a body is required".to_owned()
                });
            }
            return;
        }
        match kind {
            BodyKind::Json => match parse_strict(body, self.max_depth) {
                Ok(value) => {
                    if let Some(schema) = &self.schema {
                        schema.validate(&value, Location::Body, out);
                    }
                }
                Err(e) => report_json_error(&e, out),
            },
            BodyKind::Form => match parse_pairs(body) {
                Ok(pairs) => {
                    if let Some(schema) = &self.schema {
                        validate_pairs(&pairs, schema, Location::Body, NAMES, out);
                    }
                }
                Err(e) => out.push(Location::Body, "", form_rule(e), || form_detail(e)),
            },
            BodyKind::Other => {}
        }
    }
}

fn report_json_error(e: &JsonError, out: &mut Violations) {
    match e {
        JsonError::Empty => out.push(Location::Body, "", "required", || {
            "a body is required".to_owned()
        }),
        JsonError::InvalidUtf8(_) => out.push(Location::Body, "", "encoding", || {
            "must be UTF-8".to_owned()
        }),
        JsonError::Syntax { line, column } => out.push(Location::Body, "", "json", || {
            format!("must be valid JSON (error at line {line}, column {column})")
        }),
        JsonError::TooDeep { max, pointer } => {
            out.push(Location::Body, pointer, "maxDepth", || {
                format!("must not nest objects and arrays more than {max} levels deep")
            })
        }
        JsonError::DuplicateKey { pointer } => {
            out.push(Location::Body, pointer, "duplicateKey", || {
                "must not repeat a member name".to_owned()
            })
        }
    }
}

/// The body exceeded its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the body is larger than {limit} bytes")]
pub struct TooLarge {
    pub limit: usize,
}

/// Collects a streamed body up to a limit, and says "too large" as soon as the total passes it,
/// without ever holding more than the limit.
#[derive(Debug, Clone)]
pub struct BodyBuffer {
    data: Vec<u8>,
    limit: usize,
    seen: u64,
}

impl BodyBuffer {
    /// An empty buffer for at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        BodyBuffer {
            data: Vec::new(),
            limit,
            seen: 0,
        }
    }

    /// Adds a chunk. Once the total passes the limit this fails, and keeps failing, and the
    /// buffer stops growing.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), TooLarge> {
        self.seen = self.seen.saturating_add(chunk.len() as u64);
        if self.seen > self.limit as u64 {
            self.data = Vec::new();
            return Err(TooLarge { limit: self.limit });
        }
        self.data.extend_from_slice(chunk);
        Ok(())
    }

    /// Checks a running total reported by the host (Envoy's buffered body size) without copying.
    pub fn check_total(limit: usize, total: usize) -> Result<(), TooLarge> {
        if total > limit {
            Err(TooLarge { limit })
        } else {
            Ok(())
        }
    }

    /// The bytes collected so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// The total size pushed so far, including any bytes past the limit.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.limit
    }
}
