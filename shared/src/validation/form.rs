//! `application/x-www-form-urlencoded` text (form bodies and query strings) and the field rules
//! that apply to it.
//!
//! Form fields and query parameters are text; a rule typed `integer`, `number` or `boolean`
//! first reads the text as that type (`age=42` is the integer 42, `age=42.5` is not an integer),
//! then the same schema keywords as for JSON apply. A field whose schema is an array may repeat
//! (`tag=a&tag=b` is `["a", "b"]`); any other field may appear once.

use serde_json::Value;
use std::collections::BTreeMap;

use super::decode::{percent_decode, DecodeError};
use super::problem::{append_segment, Location, Violations};
use super::schema::{Additional, Schema, Types};
use crate::json::is_json_number;

/// Why urlencoded text cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// A `%` not followed by two hexadecimal digits.
    #[error("malformed percent-encoding")]
    Malformed,
    /// A name or value is not UTF-8 once decoded.
    #[error("a name or value is not valid UTF-8")]
    InvalidUtf8,
    /// A name or value holds a NUL or another control character once decoded.
    #[error("a name or value holds a control character")]
    Control,
}

fn decode_text(raw: &[u8]) -> Result<String, FormError> {
    let decoded =
        percent_decode(raw, true, true).map_err(|DecodeError::Malformed| FormError::Malformed)?;
    let text = String::from_utf8(decoded.bytes).map_err(|_| FormError::InvalidUtf8)?;
    // Tabs and line breaks are legitimate in a form's text areas; other controls are not.
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(FormError::Control);
    }
    Ok(text)
}

/// How many `name=value` pairs the text holds (empty pieces between `&`s are not pairs).
pub fn count_pairs(raw: &[u8]) -> usize {
    raw.split(|b| *b == b'&').filter(|p| !p.is_empty()).count()
}

/// Reads `a=1&b=x+y&c` into decoded pairs, in order (`c` has the value `""`).
pub fn parse_pairs(raw: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    raw.split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = match pair.iter().position(|b| *b == b'=') {
                Some(eq) => (&pair[..eq], &pair[eq + 1..]),
                None => (pair, &b""[..]),
            };
            Ok((decode_text(name)?, decode_text(value)?))
        })
        .collect()
}

/// Reads text as the type `schema` asks for, where it can; otherwise keeps it a string, which the
/// schema's `type` then rejects.
pub(crate) fn coerce(text: &str, schema: &Schema) -> Value {
    let types = schema.types();
    if types.is_any() || types.allows(Types::STRING) {
        return Value::String(text.to_owned());
    }
    if (types.allows(Types::INTEGER) || types.allows(Types::NUMBER))
        && is_json_number(text.as_bytes())
    {
        if let Ok(i) = text.parse::<i64>() {
            return Value::Number(i.into());
        }
        if let Ok(u) = text.parse::<u64>() {
            return Value::Number(u.into());
        }
        if let Some(n) = text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
        {
            return Value::Number(n);
        }
    }
    if types.allows(Types::BOOLEAN) {
        match text {
            "true" => return Value::Bool(true),
            "false" => return Value::Bool(false),
            _ => {}
        }
    }
    if types.allows(Types::NULL) && (text.is_empty() || text == "null") {
        return Value::Null;
    }
    Value::String(text.to_owned())
}

/// Rule names used when fields break an object schema's shape.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FieldRuleNames {
    /// A field the schema does not list, when unknown fields are refused.
    pub unknown: &'static str,
    /// A second occurrence of a field that is not an array.
    pub repeated: &'static str,
}

/// Validates decoded `pairs` against an object schema: `required`, `properties` (each value
/// coerced to its schema's type), `additionalProperties`, repetition.
pub(crate) fn validate_pairs(
    pairs: &[(String, String)],
    object: &Schema,
    location: Location,
    names: FieldRuleNames,
    out: &mut Violations,
) {
    let mut grouped: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, value) in pairs {
        grouped
            .entry(name.as_str())
            .or_default()
            .push(value.as_str());
    }
    let mut pointer = String::new();
    for name in object.required() {
        if !grouped.contains_key(name.as_str()) {
            pointer.clear();
            append_segment(&mut pointer, name);
            out.push(location, &pointer, "required", || "is required".to_owned());
        }
    }
    for (name, values) in &grouped {
        pointer.clear();
        append_segment(&mut pointer, name);
        let schema = match (object.properties().get(*name), object.additional()) {
            (Some(schema), _) => schema,
            (None, Additional::Allow) => continue,
            (None, Additional::Deny) => {
                out.push(location, &pointer, names.unknown, || {
                    "is not an allowed field".to_owned()
                });
                continue;
            }
            (None, Additional::Schema(schema)) => schema,
        };
        validate_field(values, schema, location, &pointer, names, out);
    }
}

/// Validates the values of one field (one or more occurrences) against its schema.
pub(crate) fn validate_field(
    values: &[&str],
    schema: &Schema,
    location: Location,
    pointer: &str,
    names: FieldRuleNames,
    out: &mut Violations,
) {
    let types = schema.types();
    if !types.is_any() && types.allows(Types::ARRAY) {
        let any = Schema::any();
        let item_schema = schema.items().unwrap_or(&any);
        let items: Vec<Value> = values.iter().map(|v| coerce(v, item_schema)).collect();
        schema.validate_at(&Value::Array(items), location, pointer, out);
        return;
    }
    if values.len() > 1 {
        out.push(location, pointer, names.repeated, || {
            "may appear only once".to_owned()
        });
        return;
    }
    if let Some(first) = values.first() {
        schema.validate_at(&coerce(first, schema), location, pointer, out);
    }
}
