//! Config parsing with errors that name the exact field.
//!
//! Every filter's configuration is JSON (Envoy passes a `StringValue` through as is, and Istio turns
//! `pluginConfig` into JSON). Parsing goes through `serde_path_to_error`, so a mistake anywhere in
//! the document comes back as `rules[2].match.path: expected a string starting with '/'`, which is
//! what the filter logs when it refuses the configuration.

use serde::de::DeserializeOwned;
use serde_json::Value;
use std::fmt;

/// A configuration the filter refuses, with the path of the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The bytes are not a JSON document.
    #[error("configuration is not valid JSON: {0}")]
    NotJson(String),
    /// A field is missing, unknown, of the wrong type or has a value the filter cannot use.
    #[error("{path}: {reason}")]
    Field { path: String, reason: String },
}

impl ConfigError {
    /// An error about the field at `path` (`""` for the document itself).
    pub fn field(path: impl Into<String>, reason: impl fmt::Display) -> Self {
        let path = path.into();
        ConfigError::Field {
            path: if path.is_empty() {
                "(root)".to_owned()
            } else {
                path
            },
            reason: reason.to_string(),
        }
    }

    /// The same error, as seen from a document that holds this one at `prefix`.
    pub fn within(self, prefix: &str) -> Self {
        match self {
            ConfigError::Field { path, reason } if !prefix.is_empty() => {
                let path = if path == "(root)" {
                    prefix.to_owned()
                } else if path.starts_with('[') {
                    format!("{prefix}{path}")
                } else {
                    format!("{prefix}.{path}")
                };
                ConfigError::Field { path, reason }
            }
            other => other,
        }
    }

    /// The path of the field at fault, if the error is about a field.
    pub fn path(&self) -> Option<&str> {
        match self {
            ConfigError::Field { path, .. } => Some(path),
            ConfigError::NotJson(_) => None,
        }
    }
}

/// Parses raw configuration bytes into a JSON value. Empty configuration means `{}`.
pub fn parse_json(bytes: &[u8]) -> Result<Value, ConfigError> {
    let trimmed = bytes.iter().all(|b| b.is_ascii_whitespace());
    if trimmed {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    serde_json::from_slice(bytes).map_err(|e| ConfigError::NotJson(e.to_string()))
}

/// Deserializes `value` into `T`, naming the field at fault when it fails.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let message = e.into_inner().to_string();
        // A hand-written `Deserialize` that parsed a nested value reports the inner path this way.
        if let Some((inner, reason)) = message
            .strip_prefix(NESTED_MARK)
            .and_then(|rest| rest.split_once(NESTED_MARK))
        {
            return ConfigError::field(inner, reason).within(&path);
        }
        ConfigError::field(path, message)
    })
}

const NESTED_MARK: &str = "\u{1f}";

/// The message a hand-written `Deserialize` returns for an error inside a nested value, so that
/// [`from_value`] can report the full path (`hsts.max_age`, not just `hsts`).
pub fn nested_message(err: &ConfigError) -> String {
    match err {
        ConfigError::Field { path, reason } if path != "(root)" => {
            format!("{NESTED_MARK}{path}{NESTED_MARK}{reason}")
        }
        ConfigError::Field { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

/// Deserializes configuration bytes into `T`.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ConfigError> {
    from_value(parse_json(bytes)?)
}

/// Merges `overlay` over `base`: objects merge key by key (recursively), anything else in the
/// overlay replaces the base value. This is how a route rule inherits the filter's defaults.
pub fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(&key) {
                    Some(slot) => merge(slot, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (slot, value) => *slot = value,
    }
}

/// Whether `name` is an HTTP field name: an RFC 9110 token (any case).
pub fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A header name from the config, lower-cased; the error names the field at `path`.
pub fn header_name(path: &str, name: &str) -> Result<String, ConfigError> {
    if is_header_name(name) {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(ConfigError::field(
            path,
            format!("'{name}' is not a header name"),
        ))
    }
}
