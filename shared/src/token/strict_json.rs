//! JSON objects from a token, parsed strictly.
//!
//! `serde_json` keeps the last of two equal member names; a token that says `"sub": "alice"` and
//! then `"sub": "admin"` could then mean different things to us and to the upstream. RFC 7519 §4
//! lets a parser reject such tokens, so we do, at every depth.

use serde_json::{Map, Value};

/// Why a token's JSON part was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Not UTF-8 JSON at all (or trailing bytes after the document).
    #[error("not valid JSON")]
    NotJson,
    /// Valid JSON, but not an object.
    #[error("not a JSON object")]
    NotObject,
    /// The same member name twice in one object.
    #[error("duplicate member name")]
    DuplicateName,
}

/// Parses `bytes` as a JSON object, refusing duplicate member names anywhere in it (and nesting
/// deeper than [`crate::json::MAX_DEPTH_LIMIT`]). The parser is the one request bodies use.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, JsonError> {
    match crate::json::parse_strict(bytes, crate::json::MAX_DEPTH_LIMIT) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(JsonError::NotObject),
        Err(crate::json::JsonError::DuplicateKey { .. }) => Err(JsonError::DuplicateName),
        Err(_) => Err(JsonError::NotJson),
    }
}
