//! Request path checks: length, characters, traversal, encoded slashes, typed path parameters.
//!
//! ```json
//! "path": { "max_length": 2048, "encoded_slashes": "reject",
//!           "allowed_characters": "[A-Za-z0-9/._~-]",
//!           "template": "/users/{id}", "params": { "id": { "type": "integer", "minimum": 1 } } }
//! ```
//!
//! Always checked: the raw path uses only RFC 3986 path characters with well-formed `%XX`
//! escapes; it holds no NUL or other control character, raw or percent-encoded; no segment is a
//! dot segment (`.`, `..`, also as `..;jsessionid`), with `\` counted as a separator, raw and after
//! each round of percent-decoding (so `%2e%2e`, `%252e%252e`, `..%5c` are caught); decoded bytes
//! are UTF-8 (no overlong `%c0%ae`). `encoded_slashes` (`reject` by default, or `allow`) decides
//! about `%2F` and `%5C`. `allowed_characters`, if set, is a regex for one character that every
//! character of the decoded path must match. A `template` with `{name}` segments extracts path
//! parameters, each checked by its rule in `params` (see [`super::params`]).

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

use super::decode::percent_decode;
use super::form::{validate_field, FieldRuleNames};
use super::params::ParamRule;
use super::problem::{append_segment, Location, Violations};
use crate::config::ConfigError;
use crate::matcher::{compile_full_regex, path_without_query};

/// How many rounds of percent-decoding are inspected (catches double and triple encoding).
const DECODE_ROUNDS: usize = 3;

/// What to do with `%2F` / `%5C` (an encoded `/` or `\`) in a path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum EncodedSlashes {
    /// Reject the request (default): upstreams disagree on whether `%2F` separates segments.
    #[default]
    Reject,
    /// Let it through (traversal checks still see the decoded path).
    Allow,
}

/// The `path` section as written.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "PathChecks"))]
#[serde(default, deny_unknown_fields)]
pub struct PathSpec {
    /// The longest path accepted, in bytes (without the query string).
    pub max_length: usize,
    /// What to do with `%2F` / `%5C` (an encoded `/` or `\`).
    pub encoded_slashes: EncodedSlashes,
    /// A regex for one character that every character of the decoded path must match.
    pub allowed_characters: Option<String>,
    /// A path template with `{name}` segments, e.g. `/users/{id}`, whose values `params` checks.
    pub template: Option<String>,
    /// A rule per template parameter: JSON Schema keywords for one value.
    #[cfg_attr(
        feature = "schema",
        schemars(with = "BTreeMap<String, super::params::ParamRuleSchema<false>>")
    )]
    pub params: BTreeMap<String, Value>,
}

impl Default for PathSpec {
    fn default() -> Self {
        PathSpec {
            max_length: 2048,
            encoded_slashes: EncodedSlashes::Reject,
            allowed_characters: None,
            template: None,
            params: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone)]
enum Piece {
    Literal(String),
    Param {
        name: String,
        rule: Option<Box<ParamRule>>,
    },
}

/// Compiled path checks.
#[derive(Debug, Clone)]
pub struct PathRules {
    max_length: usize,
    encoded_slashes: EncodedSlashes,
    allowed: Option<regex_lite::Regex>,
    template: Option<(String, Vec<Piece>)>,
}

const NAMES: FieldRuleNames = FieldRuleNames {
    unknown: "additionalProperties",
    repeated: "repeated",
};

impl PathRules {
    pub(crate) fn compile(at: &str, spec: &PathSpec) -> Result<Self, ConfigError> {
        if spec.max_length == 0 {
            return Err(ConfigError::field(
                format!("{at}.max_length"),
                "must be greater than 0",
            ));
        }
        let allowed = match &spec.allowed_characters {
            None => None,
            Some(one) => Some(compile_full_regex(
                &format!("{at}.allowed_characters"),
                &format!("(?:{one})*"),
            )?),
        };
        let template = match &spec.template {
            None => {
                if let Some(name) = spec.params.keys().next() {
                    return Err(ConfigError::field(
                        format!("{at}.params.{name}"),
                        "path parameters need a 'template' such as \"/users/{id}\"",
                    ));
                }
                None
            }
            Some(t) => Some((t.clone(), compile_template(at, t, &spec.params)?)),
        };
        Ok(PathRules {
            max_length: spec.max_length,
            encoded_slashes: spec.encoded_slashes,
            allowed,
            template,
        })
    }

    /// Whether the path (without its query) is longer than allowed (414).
    pub(crate) fn too_long(&self, path: &str) -> bool {
        path_without_query(path).len() > self.max_length
    }

    /// The longest path allowed.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Checks the shape of `path` (with or without its query).
    pub(crate) fn check(&self, path: &str, out: &mut Violations) {
        let raw = path_without_query(path).as_bytes();
        if raw.is_empty() {
            // No `:path` at all (an HTTP/2 CONNECT): nothing to check.
            return;
        }
        let mut fail = |rule: &'static str, detail: &str| {
            let detail = detail.to_owned();
            out.push(Location::Path, "", rule, || detail);
        };
        let mut control = raw.iter().any(|b| *b < 0x20 || *b == 0x7f);
        if !raw.starts_with(b"/") && raw != b"*" {
            fail("characters", "must start with '/'");
        }
        if raw.iter().any(|b| !is_path_char(*b)) {
            fail(
                "characters",
                "must use only URI path characters (RFC 3986), with other bytes percent-encoded",
            );
        }
        let mut traversal = has_dot_segment(raw);
        let mut encoded_slash = false;
        let mut first_decoded: Option<Vec<u8>> = None;
        let mut level = raw.to_vec();
        for round in 0..DECODE_ROUNDS {
            let Ok(decoded) = percent_decode(&level, false, round == 0) else {
                fail(
                    "percentEncoding",
                    "holds a '%' not followed by two hexadecimal digits",
                );
                break;
            };
            if !decoded.changed {
                break;
            }
            encoded_slash |= decoded.slash;
            control |= decoded.bytes.iter().any(|b| *b < 0x20 || *b == 0x7f);
            traversal |= has_dot_segment(&decoded.bytes);
            if round == 0 {
                if std::str::from_utf8(&decoded.bytes).is_err() {
                    fail("encoding", "must be UTF-8 once percent-decoded");
                }
                first_decoded = Some(decoded.bytes.clone());
            }
            level = decoded.bytes;
        }
        if control {
            fail(
                "controlCharacter",
                "must not hold NUL or other control characters",
            );
        }
        if traversal {
            fail(
                "traversal",
                "must not hold '.' or '..' segments (also percent-encoded, with '\\' or ';')",
            );
        }
        if encoded_slash && self.encoded_slashes == EncodedSlashes::Reject {
            fail(
                "encodedSlash",
                "must not hold an encoded '/' or '\\' (%2F, %5C)",
            );
        }
        if let Some(allowed) = &self.allowed {
            let decoded = first_decoded.as_deref().unwrap_or(raw);
            if let Ok(text) = std::str::from_utf8(decoded) {
                if !allowed.is_match(text) {
                    fail("characters", "holds a character that is not allowed");
                }
            }
        }
        if let Some((template, pieces)) = &self.template {
            check_template(raw, template, pieces, out);
        }
    }
}

/// RFC 3986 `pchar`, `/` and `%` (escapes are checked separately).
fn is_path_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/%".contains(&b)
}

/// Whether any segment (split on `/` and `\`) is `.` or `..`, ignoring `;params`.
fn has_dot_segment(path: &[u8]) -> bool {
    path.split(|b| *b == b'/' || *b == b'\\').any(|segment| {
        let name = match segment.iter().position(|b| *b == b';') {
            Some(i) => &segment[..i],
            None => segment,
        };
        name == b"." || name == b".."
    })
}

fn compile_template(
    at: &str,
    template: &str,
    params: &BTreeMap<String, Value>,
) -> Result<Vec<Piece>, ConfigError> {
    let t_at = format!("{at}.template");
    let Some(rest) = template.strip_prefix('/') else {
        return Err(ConfigError::field(t_at, "must start with '/'"));
    };
    let mut pieces = Vec::new();
    for segment in rest.split('/') {
        if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let valid = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid {
                return Err(ConfigError::field(
                    t_at,
                    format!("invalid parameter name '{{{name}}}'"),
                ));
            }
            if pieces
                .iter()
                .any(|p| matches!(p, Piece::Param { name: n, .. } if n == name))
            {
                return Err(ConfigError::field(
                    t_at,
                    format!("parameter '{name}' appears twice"),
                ));
            }
            let rule = match params.get(name) {
                None => None,
                Some(v) => Some(Box::new(ParamRule::compile(
                    &format!("{at}.params.{name}"),
                    v.clone(),
                    false,
                )?)),
            };
            pieces.push(Piece::Param {
                name: name.to_owned(),
                rule,
            });
        } else if segment.contains(['{', '}']) {
            return Err(ConfigError::field(
                t_at,
                format!("a parameter must be a whole segment, like '/{{id}}', not '{segment}'"),
            ));
        } else {
            pieces.push(Piece::Literal(segment.to_owned()));
        }
    }
    for name in params.keys() {
        let known = pieces
            .iter()
            .any(|p| matches!(p, Piece::Param { name: n, .. } if n == name));
        if !known {
            return Err(ConfigError::field(
                format!("{at}.params.{name}"),
                format!("'{name}' is not a parameter of the template '{template}'"),
            ));
        }
    }
    Ok(pieces)
}

fn check_template(raw: &[u8], template: &str, pieces: &[Piece], out: &mut Violations) {
    let mismatch = |out: &mut Violations| {
        let detail = format!("must match the template {template}");
        out.push(Location::Path, "", "template", || detail);
    };
    let Some(rest) = raw.strip_prefix(b"/") else {
        return mismatch(out);
    };
    let segments: Vec<&[u8]> = rest.split(|b| *b == b'/').collect();
    if segments.len() != pieces.len() {
        return mismatch(out);
    }
    let mut values = Vec::new();
    for (segment, piece) in segments.iter().zip(pieces) {
        match piece {
            Piece::Literal(lit) => {
                if *segment != lit.as_bytes() {
                    return mismatch(out);
                }
            }
            Piece::Param { name, rule } => {
                if segment.is_empty() {
                    return mismatch(out);
                }
                values.push((name, rule, *segment));
            }
        }
    }
    let mut pointer = String::new();
    for (name, rule, segment) in values {
        pointer.clear();
        append_segment(&mut pointer, name);
        let Some(rule) = rule else { continue };
        let text = percent_decode(segment, false, true)
            .ok()
            .and_then(|d| String::from_utf8(d.bytes).ok());
        // Undecodable segments are already reported by the shape checks.
        if let Some(text) = text {
            validate_field(&[&text], &rule.schema, Location::Path, &pointer, NAMES, out);
        }
    }
}
