//! Rules for one text value: a path parameter, a query parameter or a header.
//!
//! A rule is the scalar part of a JSON Schema plus two presence flags:
//!
//! ```json
//! { "type": "integer", "minimum": 1, "required": true }
//! { "type": "string", "pattern": "^[a-z]+$", "repeated": true }
//! { "format": "uuid" }
//! ```
//!
//! `required` says the value must be present; `repeated` (query parameters only) lets it appear
//! more than once, each occurrence checked. The schema keywords are those of [`super::schema`]
//! that describe one value (`type`, `minLength`, `pattern`, `format`, `enum`, `minimum`, ...).

use serde_json::{Map, Value};

use super::schema::{Schema, Types};
use crate::config::ConfigError;

/// A compiled rule for a text value.
#[derive(Debug, Clone)]
pub struct ParamRule {
    pub(crate) schema: Schema,
    pub(crate) required: bool,
    pub(crate) repeated: bool,
}

fn take_bool(map: &mut Map<String, Value>, key: &str, at: &str) -> Result<bool, ConfigError> {
    match map.remove(key) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(b),
        Some(_) => Err(ConfigError::field(
            format!("{at}.{key}"),
            "expected true or false",
        )),
    }
}

impl ParamRule {
    /// Compiles a rule; `at` is its place in the config. `may_repeat` says whether `repeated` is
    /// a field of this kind of rule.
    pub(crate) fn compile(at: &str, value: Value, may_repeat: bool) -> Result<Self, ConfigError> {
        let Value::Object(mut map) = value else {
            return Err(ConfigError::field(
                at,
                "expected an object of rules, e.g. {\"type\": \"integer\", \"minimum\": 1}",
            ));
        };
        let required = take_bool(&mut map, "required", at)?;
        let repeated = if may_repeat {
            take_bool(&mut map, "repeated", at)?
        } else {
            false
        };
        let schema = Schema::from_value(at, Value::Object(map))?;
        if schema.has_structure()
            || schema.types().allows(Types::OBJECT) && !schema.types().is_any()
            || schema.types().allows(Types::ARRAY) && !schema.types().is_any()
        {
            return Err(ConfigError::field(
                at,
                "a parameter rule describes one text value: object and array keywords do not apply (use \"repeated\": true for a parameter that may repeat)",
            ));
        }
        Ok(ParamRule {
            schema,
            required,
            repeated,
        })
    }

    /// The rule's schema for one value.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Whether the value must be present.
    pub fn required(&self) -> bool {
        self.required
    }

    /// Whether the value may appear more than once.
    pub fn repeated(&self) -> bool {
        self.repeated
    }
}
