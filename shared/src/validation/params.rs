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

/// The JSON Schema of a rule as written, for `palisade schema`: what [`ParamRule::compile`]
/// reads. The keywords of [`super::schema::SchemaSpec`] that describe one value, `required`, and
/// where the kind of rule has it (`MAY_REPEAT`, query parameters), `repeated`.
#[cfg(feature = "schema")]
pub(crate) struct ParamRuleSchema<const MAY_REPEAT: bool>;

#[cfg(feature = "schema")]
impl<const MAY_REPEAT: bool> schemars::JsonSchema for ParamRuleSchema<MAY_REPEAT> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        if MAY_REPEAT {
            "QueryParamRule".into()
        } else {
            "ParamRule".into()
        }
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let spec = <super::schema::SchemaSpec as schemars::JsonSchema>::json_schema(generator);
        let mut properties = spec
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for keyword in super::schema::STRUCTURE_KEYWORDS {
            properties.remove(keyword);
        }
        properties.insert(
            "required".to_owned(),
            serde_json::json!({ "description": "The value must be present.", "type": "boolean" }),
        );
        if MAY_REPEAT {
            properties.insert(
                "repeated".to_owned(),
                serde_json::json!({
                    "description": "The parameter may appear more than once; each value is checked.",
                    "type": "boolean",
                }),
            );
        }
        crate::schema::to_schema(serde_json::json!({
            "description": "A rule for one text value: JSON Schema keywords (`type`, `minLength`, `pattern`, `format`, `enum`, `minimum`, ...) and presence flags.",
            "type": "object",
            "properties": properties,
            "additionalProperties": false,
        }))
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
