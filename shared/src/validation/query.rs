//! Query string checks: length, parameter count, per-parameter rules, unknown parameters.
//!
//! ```json
//! "query": { "max_length": 2048, "max_params": 64, "unknown_params": "reject",
//!            "params": { "page": { "type": "integer", "minimum": 1 },
//!                        "sort": { "enum": ["name", "created"] },
//!                        "tag":  { "pattern": "^[a-z]+$", "repeated": true },
//!                        "q":    { "required": true, "maxLength": 100 } } }
//! ```
//!
//! The query is read like a form (`+` is a space, `%XX` escapes must be well-formed and decode to
//! UTF-8 without control characters). A parameter may appear once unless its rule says
//! `"repeated": true`.

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

use super::form::{parse_pairs, validate_pairs, FieldRuleNames, FormError};
use super::params::ParamRule;
use super::problem::{Location, Violations};
use super::schema::{Additional, Schema};
use crate::config::ConfigError;

/// Whether parameters without a rule are accepted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum UnknownParams {
    /// Accept them (default).
    #[default]
    Allow,
    /// Refuse the request.
    Reject,
}

/// The `query` section as written.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct QuerySpec {
    /// The longest query string accepted, in bytes.
    pub max_length: usize,
    /// The most parameters a query may have.
    pub max_params: usize,
    /// Whether parameters without a rule in `params` are accepted (`allow`) or refused (`reject`).
    pub unknown_params: UnknownParams,
    /// A rule per parameter name: JSON Schema keywords for one value, plus `required` and
    /// `repeated` (the parameter may appear more than once, each value checked).
    #[cfg_attr(
        feature = "schema",
        schemars(with = "BTreeMap<String, super::params::ParamRuleSchema<true>>")
    )]
    pub params: BTreeMap<String, Value>,
}

impl Default for QuerySpec {
    fn default() -> Self {
        QuerySpec {
            max_length: 2048,
            max_params: 64,
            unknown_params: UnknownParams::Allow,
            params: BTreeMap::new(),
        }
    }
}

/// Compiled query checks.
#[derive(Debug, Clone)]
pub struct QueryRules {
    max_length: usize,
    max_params: usize,
    /// The parameters as an object schema (repeated ones as arrays), so query strings and form
    /// bodies share one validation path.
    object: Schema,
}

const NAMES: FieldRuleNames = FieldRuleNames {
    unknown: "unknownParameter",
    repeated: "repeated",
};

/// The query string of a `:path` (without `?`, and without any `#fragment`).
pub fn query_of(path: &str) -> &str {
    match path.find('?') {
        Some(i) => {
            let q = &path[i + 1..];
            match q.find('#') {
                Some(j) => &q[..j],
                None => q,
            }
        }
        None => "",
    }
}

impl QueryRules {
    pub(crate) fn compile(at: &str, spec: &QuerySpec) -> Result<Self, ConfigError> {
        let mut properties = BTreeMap::new();
        let mut required = Vec::new();
        for (name, value) in &spec.params {
            let rule = ParamRule::compile(&format!("{at}.params.{name}"), value.clone(), true)?;
            if rule.required {
                required.push(name.clone());
            }
            let schema = if rule.repeated {
                Schema::array_of(rule.schema)
            } else {
                rule.schema
            };
            properties.insert(name.clone(), schema);
        }
        let additional = match spec.unknown_params {
            UnknownParams::Allow => Additional::Allow,
            UnknownParams::Reject => Additional::Deny,
        };
        Ok(QueryRules {
            max_length: spec.max_length,
            max_params: spec.max_params,
            object: Schema::object_of(properties, required, additional),
        })
    }

    /// Whether the query string is longer than allowed (414).
    pub(crate) fn too_long(&self, path: &str) -> bool {
        query_of(path).len() > self.max_length
    }

    /// The longest query string allowed.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Checks the query string of `path`.
    pub(crate) fn check(&self, path: &str, out: &mut Violations) {
        let query = query_of(path).as_bytes();
        let count = super::form::count_pairs(query);
        if count > self.max_params {
            let max = self.max_params;
            out.push(Location::Query, "", "maxParams", || {
                format!("must have at most {max} parameters")
            });
            return;
        }
        match parse_pairs(query) {
            Ok(pairs) => validate_pairs(&pairs, &self.object, Location::Query, NAMES, out),
            Err(e) => out.push(Location::Query, "", form_rule(e), || form_detail(e)),
        }
    }
}

/// The rule name for unreadable urlencoded text.
pub(crate) fn form_rule(e: FormError) -> &'static str {
    match e {
        FormError::Malformed => "percentEncoding",
        FormError::InvalidUtf8 => "encoding",
        FormError::Control => "controlCharacter",
    }
}

pub(crate) fn form_detail(e: FormError) -> String {
    match e {
        FormError::Malformed => "holds a '%' not followed by two hexadecimal digits",
        FormError::InvalidUtf8 => "must be UTF-8 once percent-decoded",
        FormError::Control => "must not hold NUL or other control characters",
    }
    .to_owned()
}
