//! Request header checks: count and size (431), required and forbidden headers, value rules.
//!
//! ```json
//! "headers": { "max_count": 100, "max_size": 61440,
//!              "required": ["x-api-key"], "forbidden": ["x-debug", "x-forwarded-host"],
//!              "fields": { "x-request-id": { "format": "uuid" },
//!                          "x-tenant": { "pattern": "^[a-z0-9-]{1,32}$", "required": true } } }
//! ```
//!
//! Names compare case-insensitively. Pseudo-headers (`:path`, `:method`, ...) are not counted
//! and cannot be required or forbidden. `max_size` is the sum of every header's name and value
//! length in bytes. A header that appears several times has each value checked.

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

use super::form::{validate_field, FieldRuleNames};
use super::params::ParamRule;
use super::problem::{append_segment, Location, Violations};
use crate::config::ConfigError;
use crate::header_map::HeaderList;

/// The `headers` section as written.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct HeadersSpec {
    /// The most headers a request may have (pseudo-headers not counted).
    pub max_count: usize,
    /// The most bytes of header names and values, all headers together.
    pub max_size: usize,
    /// Headers every request must have.
    pub required: Vec<String>,
    /// Headers no request may have.
    pub forbidden: Vec<String>,
    /// A rule per header name: JSON Schema keywords for one value, plus `required`.
    #[cfg_attr(
        feature = "schema",
        schemars(with = "BTreeMap<String, super::params::ParamRuleSchema<false>>")
    )]
    pub fields: BTreeMap<String, Value>,
}

impl Default for HeadersSpec {
    fn default() -> Self {
        // Envoy's own defaults: 100 headers, 60 KiB.
        HeadersSpec {
            max_count: 100,
            max_size: 60 * 1024,
            required: Vec::new(),
            forbidden: Vec::new(),
            fields: BTreeMap::new(),
        }
    }
}

/// Compiled header checks.
#[derive(Debug, Clone)]
pub struct HeaderRules {
    max_count: usize,
    max_size: usize,
    required: Vec<String>,
    forbidden: Vec<String>,
    fields: Vec<(String, ParamRule)>,
}

const NAMES: FieldRuleNames = FieldRuleNames {
    unknown: "unknownHeader",
    repeated: "repeated",
};

impl HeaderRules {
    pub(crate) fn compile(at: &str, spec: &HeadersSpec) -> Result<Self, ConfigError> {
        let mut required = Vec::new();
        for (i, name) in spec.required.iter().enumerate() {
            required.push(crate::config::header_name(
                &format!("{at}.required[{i}]"),
                name,
            )?);
        }
        let mut forbidden = Vec::new();
        for (i, name) in spec.forbidden.iter().enumerate() {
            let name = crate::config::header_name(&format!("{at}.forbidden[{i}]"), name)?;
            if required.contains(&name) {
                return Err(ConfigError::field(
                    format!("{at}.forbidden[{i}]"),
                    format!("'{name}' is also required"),
                ));
            }
            forbidden.push(name);
        }
        let mut fields = Vec::new();
        for (name, value) in &spec.fields {
            let field_at = format!("{at}.fields.{name}");
            let lower = crate::config::header_name(&field_at, name)?;
            let rule = ParamRule::compile(&field_at, value.clone(), false)?;
            if rule.required && !required.contains(&lower) {
                required.push(lower.clone());
            }
            fields.push((lower, rule));
        }
        Ok(HeaderRules {
            max_count: spec.max_count,
            max_size: spec.max_size,
            required,
            forbidden,
            fields,
        })
    }

    /// The 431 check: too many headers, or too many bytes. Returns the violation's detail.
    pub(crate) fn too_large(&self, headers: &HeaderList) -> Option<(&'static str, String)> {
        let regular = || headers.iter().filter(|(k, _)| !k.starts_with(':'));
        let count = regular().count();
        if count > self.max_count {
            return Some((
                "maxCount",
                format!("at most {} headers are allowed", self.max_count),
            ));
        }
        let size: usize = regular().map(|(k, v)| k.len() + v.len()).sum();
        if size > self.max_size {
            return Some((
                "maxSize",
                format!("headers may total at most {} bytes", self.max_size),
            ));
        }
        None
    }

    /// Checks presence and values.
    pub(crate) fn check(&self, headers: &HeaderList, out: &mut Violations) {
        let mut pointer = String::new();
        let present = |name: &str| headers.get(name).is_some();
        for name in &self.required {
            if !present(name) {
                pointer.clear();
                append_segment(&mut pointer, name);
                out.push(Location::Header, &pointer, "required", || {
                    "is required".to_owned()
                });
            }
        }
        for name in &self.forbidden {
            if present(name) {
                pointer.clear();
                append_segment(&mut pointer, name);
                out.push(Location::Header, &pointer, "forbidden", || {
                    "is not allowed".to_owned()
                });
            }
        }
        for (name, rule) in &self.fields {
            let values: Vec<&str> = headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
                .collect();
            if values.is_empty() {
                continue;
            }
            pointer.clear();
            append_segment(&mut pointer, name);
            for value in values {
                validate_field(
                    &[value],
                    &rule.schema,
                    Location::Header,
                    &pointer,
                    NAMES,
                    out,
                );
            }
        }
    }
}
