//! Claims to upstream headers.
//!
//! A claim becomes a header value as is when it is a string, as its JSON text when it is a number
//! or a boolean, and JSON-encoded when it is an array or an object (which Envoy's `jwt_authn`
//! cannot do). A value with control characters is never set (no header injection); a missing or
//! `null` claim sets nothing. The filter removes every configured claim header from the incoming
//! request first, so a client cannot send its own.

use super::claims::Claims;
use crate::config::ConfigError;
use serde::Deserialize;
use serde_json::Value;

/// A mapping as written in the config.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ClaimToHeaderSpec {
    /// The claim; `a.b.c` for nested claims.
    pub claim: String,
    /// The upstream request header.
    pub header: String,
}

/// A compiled mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimToHeader {
    pub claim: String,
    /// Lower-case header name.
    pub header: String,
}

/// Headers a claim may never be written to.
const RESERVED: [&str; 7] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "cookie",
];

/// Checks a header name from the config and returns it in lower case.
pub fn compile_header_name(path: &str, name: &str) -> Result<String, ConfigError> {
    let lower = crate::config::header_name(path, name)?;
    if RESERVED.contains(&lower.as_str()) || lower == "authorization" {
        return Err(ConfigError::field(
            path,
            format!("'{name}' cannot carry claims"),
        ));
    }
    Ok(lower)
}

impl ClaimToHeader {
    pub fn compile(path: &str, spec: &ClaimToHeaderSpec) -> Result<Self, ConfigError> {
        if spec.claim.is_empty() {
            return Err(ConfigError::field(
                format!("{path}.claim"),
                "cannot be empty",
            ));
        }
        Ok(ClaimToHeader {
            claim: spec.claim.clone(),
            header: compile_header_name(&format!("{path}.header"), &spec.header)?,
        })
    }
}

/// The header value for a claim value, or `None` when nothing should be set.
pub fn header_value(value: &Value) -> Option<String> {
    let text = match value {
        Value::Null => return None,
        Value::String(s) => s.clone(),
        Value::Bool(_) | Value::Number(_) | Value::Array(_) | Value::Object(_) => value.to_string(),
    };
    if text.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return None;
    }
    Some(text)
}

/// The upstream headers for `claims` under `mappings`, in mapping order.
pub fn claims_to_headers(claims: &Claims, mappings: &[ClaimToHeader]) -> Vec<(String, String)> {
    mappings
        .iter()
        .filter_map(|m| {
            let value = header_value(claims.get(&m.claim)?)?;
            Some((m.header.clone(), value))
        })
        .collect()
}
