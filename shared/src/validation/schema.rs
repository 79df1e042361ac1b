//! A focused JSON Schema validator for request bodies, form fields and parameters.
//!
//! # Why not a JSON Schema crate (decision, November 2026)
//!
//! The issue prefers a well-kept crate "if it builds for wasm at a sane size". We measured and
//! read the options (`../shared/reference/feasibility.md` item 2, plus our own check against the
//! target this crate must build for):
//!
//! - `jsonschema` 0.60 (`default-features = false`) builds, but the filter grows by ~2.5 MiB
//!   (0.8 MiB gzipped) against a 1 MiB target, pulls 65 crates (fancy-regex, full `regex`,
//!   num-bigint, ahash, parking_lot, ...) into the core crate every filter depends on (build time
//!   on 2 shared cores), and imports WASI `sched_yield`, which an Envoy whose proxy-wasm host
//!   predates December 2024 refuses to load.
//! - `boon` 0.6.1 is 1.45 MiB, but does not compile for `wasm32-unknown-unknown` (ahash pulls
//!   getrandom 0.3 without a wasm backend), and `shared/` must build and test on that target.
//! - Either way the hard parts of the issue stay ours: duplicate keys and the depth limit need our
//!   own parse pass ([`super::json`]); both crates' error messages quote the offending value, so
//!   the problem document needs our own mapping from error kinds to pointer + rule; and form
//!   fields, query and path parameters and headers are text that must be typed (coerced) by the
//!   same rules before a JSON validator can see them.
//!
//! So the validator here implements exactly the keywords the issue lists, with JSON Schema
//! (2020-12) meaning: `type` (one or a list; `integer` accepts `1.0`), `properties`, `required`,
//! `additionalProperties` (boolean or schema), `minProperties`/`maxProperties`, `items`,
//! `minItems`/`maxItems`, `minLength`/`maxLength` (counted in Unicode code points), `pattern`
//! (unanchored, as in JSON Schema), `format` (asserted: see [`Format`]), `enum`, `const`,
//! `minimum`/`maximum`/`exclusiveMinimum`/`exclusiveMaximum`. Annotations (`$schema`, `$id`,
//! `title`, `description`, `default`, `examples`, `$comment`, `deprecated`, `readOnly`,
//! `writeOnly`) are accepted and ignored. Any other keyword (`$ref`, `oneOf`, ...) is refused when
//! the configuration loads, naming the field, so a schema never silently checks less than it says.
//! The cost of owning it is correctness, which `tests/validation_schema.rs` covers keyword by
//! keyword; the gain is a filter far under 1 MiB with no import Envoy might lack.
//!
//! `pattern` uses `regex-lite` (already the project's regex): Unicode text matches fine, but
//! `\d`, `\w` and `\s` are ASCII-only and `\p{..}` classes are not available; a pattern that does
//! not compile is a configuration error.

use serde::Deserialize;
use serde_json::{Number, Value};
use std::collections::BTreeMap;

use super::format::Format;
use super::problem::{append_index, append_segment, Location, Violations};
use crate::config::{self, ConfigError};
use crate::json::json_equal;

/// A schema as written in the configuration (a subset of JSON Schema 2020-12).
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SchemaSpec {
    #[serde(rename = "type", default)]
    #[cfg_attr(feature = "schema", schemars(schema_with = "type_names_schema"))]
    pub type_: Option<Value>,
    #[serde(default)]
    pub properties: BTreeMap<String, SchemaSpec>,
    #[serde(default)]
    pub required: Vec<String>,
    /// `true`, `false` or a schema.
    #[serde(default)]
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "additional_properties_schema")
    )]
    pub additional_properties: Option<Value>,
    #[serde(default)]
    pub min_properties: Option<usize>,
    #[serde(default)]
    pub max_properties: Option<usize>,
    #[serde(default)]
    pub items: Option<Box<SchemaSpec>>,
    #[serde(default)]
    pub min_items: Option<usize>,
    #[serde(default)]
    pub max_items: Option<usize>,
    #[serde(default)]
    pub min_length: Option<usize>,
    #[serde(default)]
    pub max_length: Option<usize>,
    #[serde(default)]
    pub pattern: Option<String>,
    #[serde(default)]
    pub format: Option<String>,
    #[serde(rename = "enum", default)]
    pub enum_: Option<Vec<Value>>,
    #[serde(rename = "const", default, deserialize_with = "present")]
    pub const_: Option<Value>,
    #[serde(default)]
    pub minimum: Option<f64>,
    #[serde(default)]
    pub maximum: Option<f64>,
    #[serde(default)]
    pub exclusive_minimum: Option<f64>,
    #[serde(default)]
    pub exclusive_maximum: Option<f64>,
    // Annotations: accepted, not checked.
    #[serde(rename = "$schema", default)]
    pub schema_uri: Option<Value>,
    #[serde(rename = "$id", default)]
    pub id: Option<Value>,
    #[serde(rename = "$comment", default)]
    pub comment: Option<Value>,
    #[serde(default)]
    pub title: Option<Value>,
    #[serde(default)]
    pub description: Option<Value>,
    #[serde(default)]
    pub default: Option<Value>,
    #[serde(default)]
    pub examples: Option<Value>,
    #[serde(default)]
    pub deprecated: Option<Value>,
    #[serde(default)]
    pub read_only: Option<Value>,
    #[serde(default)]
    pub write_only: Option<Value>,
}

/// The keywords about objects and arrays, which [`Schema::has_structure`] looks for.
#[cfg(feature = "schema")]
pub(crate) const STRUCTURE_KEYWORDS: [&str; 8] = [
    "properties",
    "required",
    "additionalProperties",
    "minProperties",
    "maxProperties",
    "items",
    "minItems",
    "maxItems",
];

/// The JSON Schema of `type` as [`parse_types`] reads it: a type name or a non-empty list of them
/// (`null` is the same as leaving it out).
#[cfg(feature = "schema")]
fn type_names_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let names: Vec<&str> = Types::NAMES.iter().map(|(name, _)| *name).collect();
    crate::schema::to_schema(serde_json::json!({
        "description": "A JSON type name, or a non-empty list of them.",
        "anyOf": [
            { "enum": names },
            { "type": "array", "items": { "enum": names }, "minItems": 1 },
            { "type": "null" },
        ],
    }))
}

/// The JSON Schema of `additionalProperties` as [`Schema::compile`] reads it (`null` is the same
/// as leaving it out).
#[cfg(feature = "schema")]
fn additional_properties_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    crate::schema::to_schema(serde_json::json!({
        "description": "`true` (default), `false`, or a schema for the members not in `properties`.",
        "anyOf": [
            { "type": "boolean" },
            generator.subschema_for::<SchemaSpec>(),
            { "type": "null" },
        ],
    }))
}

/// `"const": null` is a constant, not an absent keyword.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// The JSON types a schema allows, as bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Types(u8);

impl Types {
    pub const NULL: u8 = 1;
    pub const BOOLEAN: u8 = 2;
    pub const INTEGER: u8 = 4;
    pub const NUMBER: u8 = 8;
    pub const STRING: u8 = 16;
    pub const ARRAY: u8 = 32;
    pub const OBJECT: u8 = 64;
    const NAMES: [(&'static str, u8); 7] = [
        ("null", Self::NULL),
        ("boolean", Self::BOOLEAN),
        ("integer", Self::INTEGER),
        ("number", Self::NUMBER),
        ("string", Self::STRING),
        ("array", Self::ARRAY),
        ("object", Self::OBJECT),
    ];

    /// Any type (no `type` keyword).
    pub const ANY: Types = Types(0);

    /// Whether no `type` was given.
    pub fn is_any(self) -> bool {
        self.0 == 0
    }

    /// Whether the type bit `t` is allowed (an unrestricted schema allows everything).
    pub fn allows(self, t: u8) -> bool {
        self.0 == 0 || self.0 & t != 0
    }

    fn names(self) -> Vec<&'static str> {
        Self::NAMES
            .iter()
            .filter(|(_, bit)| self.0 & bit != 0)
            .map(|(name, _)| *name)
            .collect()
    }

    fn matches(self, value: &Value) -> bool {
        if self.0 == 0 {
            return true;
        }
        match value {
            Value::Null => self.0 & Self::NULL != 0,
            Value::Bool(_) => self.0 & Self::BOOLEAN != 0,
            Value::Number(n) => {
                self.0 & Self::NUMBER != 0 || (self.0 & Self::INTEGER != 0 && is_integer(n))
            }
            Value::String(_) => self.0 & Self::STRING != 0,
            Value::Array(_) => self.0 & Self::ARRAY != 0,
            Value::Object(_) => self.0 & Self::OBJECT != 0,
        }
    }
}

/// JSON Schema's integer: any number with no fractional part.
pub(crate) fn is_integer(n: &Number) -> bool {
    n.is_i64()
        || n.is_u64()
        || n.as_f64()
            .is_some_and(|f| f.is_finite() && f.fract() == 0.0)
}

/// What an object allows beyond `properties`.
#[derive(Debug, Clone)]
pub enum Additional {
    Allow,
    Deny,
    Schema(Box<Schema>),
}

/// A compiled schema.
#[derive(Debug, Clone)]
pub struct Schema {
    types: Types,
    properties: BTreeMap<String, Schema>,
    required: Vec<String>,
    additional: Additional,
    min_properties: Option<usize>,
    max_properties: Option<usize>,
    items: Option<Box<Schema>>,
    min_items: Option<usize>,
    max_items: Option<usize>,
    min_length: Option<usize>,
    max_length: Option<usize>,
    pattern: Option<(String, regex_lite::Regex)>,
    format: Option<Format>,
    enum_: Option<Vec<Value>>,
    const_: Option<Value>,
    minimum: Option<f64>,
    maximum: Option<f64>,
    exclusive_minimum: Option<f64>,
    exclusive_maximum: Option<f64>,
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_owned()
    } else {
        format!("{at}.{key}")
    }
}

impl Schema {
    /// A schema that accepts anything.
    pub fn any() -> Self {
        Schema {
            types: Types::ANY,
            properties: BTreeMap::new(),
            required: Vec::new(),
            additional: Additional::Allow,
            min_properties: None,
            max_properties: None,
            items: None,
            min_items: None,
            max_items: None,
            min_length: None,
            max_length: None,
            pattern: None,
            format: None,
            enum_: None,
            const_: None,
            minimum: None,
            maximum: None,
            exclusive_minimum: None,
            exclusive_maximum: None,
        }
    }

    /// Parses and compiles a schema document; `at` is its place in the config, for errors.
    pub fn from_value(at: &str, value: Value) -> Result<Self, ConfigError> {
        let spec: SchemaSpec = config::from_value(value).map_err(|e| e.within(at))?;
        Schema::compile(at, &spec)
    }

    /// Compiles a parsed schema; `at` is its place in the config, for errors.
    pub fn compile(at: &str, spec: &SchemaSpec) -> Result<Self, ConfigError> {
        let types = match &spec.type_ {
            None => Types::ANY,
            Some(v) => parse_types(&join(at, "type"), v)?,
        };
        let mut properties = BTreeMap::new();
        for (name, prop) in &spec.properties {
            let prop_at = join(&join(at, "properties"), name);
            properties.insert(name.clone(), Schema::compile(&prop_at, prop)?);
        }
        let additional = match &spec.additional_properties {
            None | Some(Value::Bool(true)) => Additional::Allow,
            Some(Value::Bool(false)) => Additional::Deny,
            Some(v @ Value::Object(_)) => Additional::Schema(Box::new(Schema::from_value(
                &join(at, "additionalProperties"),
                v.clone(),
            )?)),
            Some(_) => {
                return Err(ConfigError::field(
                    join(at, "additionalProperties"),
                    "expected true, false or a schema object",
                ))
            }
        };
        let items = match &spec.items {
            None => None,
            Some(items) => Some(Box::new(Schema::compile(&join(at, "items"), items)?)),
        };
        let pattern = match &spec.pattern {
            None => None,
            Some(p) => Some((
                p.clone(),
                regex_lite::Regex::new(p).map_err(|e| {
                    ConfigError::field(join(at, "pattern"), format!("invalid regex '{p}': {e}"))
                })?,
            )),
        };
        let format = match &spec.format {
            None => None,
            Some(name) => Some(Format::from_name(name).ok_or_else(|| {
                ConfigError::field(
                    join(at, "format"),
                    format!(
                        "unsupported format '{name}'; supported: {}",
                        Format::NAMES.join(", ")
                    ),
                )
            })?),
        };
        for (key, value) in [
            ("minimum", spec.minimum),
            ("maximum", spec.maximum),
            ("exclusiveMinimum", spec.exclusive_minimum),
            ("exclusiveMaximum", spec.exclusive_maximum),
        ] {
            if value.is_some_and(|v| !v.is_finite()) {
                return Err(ConfigError::field(join(at, key), "must be a finite number"));
            }
        }
        for (lo_key, lo, hi_key, hi) in [
            ("minLength", spec.min_length, "maxLength", spec.max_length),
            ("minItems", spec.min_items, "maxItems", spec.max_items),
            (
                "minProperties",
                spec.min_properties,
                "maxProperties",
                spec.max_properties,
            ),
        ] {
            if let (Some(lo), Some(hi)) = (lo, hi) {
                if lo > hi {
                    return Err(ConfigError::field(
                        join(at, lo_key),
                        format!("is greater than {hi_key} ({lo} > {hi})"),
                    ));
                }
            }
        }
        if let (Some(lo), Some(hi)) = (spec.minimum, spec.maximum) {
            if lo > hi {
                return Err(ConfigError::field(
                    join(at, "minimum"),
                    format!("is greater than maximum ({lo} > {hi})"),
                ));
            }
        }
        if let Some(values) = &spec.enum_ {
            if values.is_empty() {
                return Err(ConfigError::field(
                    join(at, "enum"),
                    "must list at least one value",
                ));
            }
        }
        Ok(Schema {
            types,
            properties,
            required: spec.required.clone(),
            additional,
            min_properties: spec.min_properties,
            max_properties: spec.max_properties,
            items,
            min_items: spec.min_items,
            max_items: spec.max_items,
            min_length: spec.min_length,
            max_length: spec.max_length,
            pattern,
            format,
            enum_: spec.enum_.clone(),
            const_: spec.const_.clone(),
            minimum: spec.minimum,
            maximum: spec.maximum,
            exclusive_minimum: spec.exclusive_minimum,
            exclusive_maximum: spec.exclusive_maximum,
        })
    }

    /// The types this schema allows.
    pub fn types(&self) -> Types {
        self.types
    }

    /// Whether the schema says anything about objects or arrays (parameter rules may not).
    /// Whether the schema says anything about objects or arrays (a rule for a text value may not):
    /// the keywords of `STRUCTURE_KEYWORDS`.
    pub(crate) fn has_structure(&self) -> bool {
        !self.properties.is_empty()
            || !self.required.is_empty()
            || !matches!(self.additional, Additional::Allow)
            || self.items.is_some()
            || self.min_items.is_some()
            || self.max_items.is_some()
            || self.min_properties.is_some()
            || self.max_properties.is_some()
    }

    pub(crate) fn properties(&self) -> &BTreeMap<String, Schema> {
        &self.properties
    }

    pub(crate) fn required(&self) -> &[String] {
        &self.required
    }

    pub(crate) fn additional(&self) -> &Additional {
        &self.additional
    }

    pub(crate) fn items(&self) -> Option<&Schema> {
        self.items.as_deref()
    }

    /// An array schema whose items follow `item` (for repeated parameters).
    pub(crate) fn array_of(item: Schema) -> Schema {
        Schema {
            types: Types(Types::ARRAY),
            items: Some(Box::new(item)),
            ..Schema::any()
        }
    }

    /// An object schema from named field schemas (for query parameters).
    pub(crate) fn object_of(
        properties: BTreeMap<String, Schema>,
        required: Vec<String>,
        additional: Additional,
    ) -> Schema {
        Schema {
            types: Types(Types::OBJECT),
            properties,
            required,
            additional,
            ..Schema::any()
        }
    }

    /// Validates `value`, recording violations at `pointer` inside `location`.
    pub fn validate(&self, value: &Value, location: Location, out: &mut Violations) {
        let mut cx = Cx {
            out,
            location,
            pointer: String::new(),
        };
        self.check(value, &mut cx);
    }

    /// Validates `value` at an existing pointer (e.g. a parameter's `/name`).
    pub(crate) fn validate_at(
        &self,
        value: &Value,
        location: Location,
        pointer: &str,
        out: &mut Violations,
    ) {
        let mut cx = Cx {
            out,
            location,
            pointer: pointer.to_owned(),
        };
        self.check(value, &mut cx);
    }

    fn check(&self, value: &Value, cx: &mut Cx<'_>) {
        if !self.types.matches(value) {
            let names = self.types.names();
            cx.fail("type", || match names.as_slice() {
                [one] => format!("must be {} {one}", article(one)),
                many => format!("must be one of these types: {}", many.join(", ")),
            });
            // The other keywords describe a different type; one error says enough.
            return;
        }
        if let Some(c) = &self.const_ {
            if !json_equal(c, value) {
                cx.fail("const", || {
                    "must be the configured constant value".to_owned()
                });
            }
        }
        if let Some(values) = &self.enum_ {
            if !values.iter().any(|v| json_equal(v, value)) {
                cx.fail("enum", || describe_enum(values));
            }
        }
        match value {
            Value::String(s) => self.check_string(s, cx),
            Value::Number(n) => self.check_number(n, cx),
            Value::Array(items) => self.check_array(items, cx),
            Value::Object(members) => self.check_object(members, cx),
            Value::Null | Value::Bool(_) => {}
        }
    }

    fn check_string(&self, s: &str, cx: &mut Cx<'_>) {
        if self.min_length.is_some() || self.max_length.is_some() {
            let chars = s.chars().count();
            if let Some(min) = self.min_length {
                if chars < min {
                    cx.fail("minLength", || {
                        format!("must be at least {min} character{} long", plural(min))
                    });
                }
            }
            if let Some(max) = self.max_length {
                if chars > max {
                    cx.fail("maxLength", || {
                        format!("must be at most {max} character{} long", plural(max))
                    });
                }
            }
        }
        if let Some((source, re)) = &self.pattern {
            if !re.is_match(s) {
                cx.fail("pattern", || format!("must match the pattern {source}"));
            }
        }
        if let Some(format) = self.format {
            if !format.check(s) {
                cx.fail("format", || format.describe().to_owned());
            }
        }
    }

    fn check_number(&self, n: &Number, cx: &mut Cx<'_>) {
        let Some(v) = n.as_f64() else { return };
        if let Some(min) = self.minimum {
            if !ge(n, v, min) {
                cx.fail("minimum", || format!("must be at least {min}"));
            }
        }
        if let Some(max) = self.maximum {
            if !le(n, v, max) {
                cx.fail("maximum", || format!("must be at most {max}"));
            }
        }
        if let Some(min) = self.exclusive_minimum {
            if le(n, v, min) {
                cx.fail("exclusiveMinimum", || format!("must be greater than {min}"));
            }
        }
        if let Some(max) = self.exclusive_maximum {
            if ge(n, v, max) {
                cx.fail("exclusiveMaximum", || format!("must be less than {max}"));
            }
        }
    }

    fn check_array(&self, items: &[Value], cx: &mut Cx<'_>) {
        if let Some(min) = self.min_items {
            if items.len() < min {
                cx.fail("minItems", || {
                    format!("must have at least {min} item{}", plural(min))
                });
            }
        }
        if let Some(max) = self.max_items {
            if items.len() > max {
                cx.fail("maxItems", || {
                    format!("must have at most {max} item{}", plural(max))
                });
            }
        }
        if let Some(schema) = &self.items {
            for (i, item) in items.iter().enumerate() {
                let len = cx.pointer.len();
                append_index(&mut cx.pointer, i);
                schema.check(item, cx);
                cx.pointer.truncate(len);
            }
        }
    }

    fn check_object(&self, members: &serde_json::Map<String, Value>, cx: &mut Cx<'_>) {
        if let Some(min) = self.min_properties {
            if members.len() < min {
                cx.fail("minProperties", || {
                    format!("must have at least {min} member{}", plural(min))
                });
            }
        }
        if let Some(max) = self.max_properties {
            if members.len() > max {
                cx.fail("maxProperties", || {
                    format!("must have at most {max} member{}", plural(max))
                });
            }
        }
        for name in &self.required {
            if !members.contains_key(name) {
                let len = cx.pointer.len();
                append_segment(&mut cx.pointer, name);
                cx.fail("required", || "is required".to_owned());
                cx.pointer.truncate(len);
            }
        }
        for (name, value) in members {
            let len = cx.pointer.len();
            append_segment(&mut cx.pointer, name);
            match (self.properties.get(name), &self.additional) {
                (Some(schema), _) => schema.check(value, cx),
                (None, Additional::Allow) => {}
                (None, Additional::Deny) => cx.fail("additionalProperties", || {
                    "is not an allowed member".to_owned()
                }),
                (None, Additional::Schema(schema)) => schema.check(value, cx),
            }
            cx.pointer.truncate(len);
        }
    }
}

/// Where validation is, and where violations go.
struct Cx<'a> {
    out: &'a mut Violations,
    location: Location,
    pointer: String,
}

impl Cx<'_> {
    fn fail(&mut self, rule: &'static str, detail: impl FnOnce() -> String) {
        self.out.push(self.location, &self.pointer, rule, detail);
    }
}

fn parse_types(at: &str, value: &Value) -> Result<Types, ConfigError> {
    let names: Vec<&str> = match value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(list) if !list.is_empty() => list
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| ConfigError::field(at, "expected a type name or a list of them"))
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(ConfigError::field(
                at,
                "expected a type name or a non-empty list of them",
            ))
        }
    };
    let mut bits = 0u8;
    for name in names {
        let Some((_, bit)) = Types::NAMES.iter().find(|(n, _)| *n == name) else {
            return Err(ConfigError::field(
                at,
                format!(
                    "unknown type '{name}'; expected one of: null, boolean, integer, number, string, array, object"
                ),
            ));
        };
        bits |= bit;
    }
    Ok(Types(bits))
}

/// An integer value as i128, when the comparison can be exact (integral bound).
fn exact(n: &Number, bound: f64) -> Option<(i128, i128)> {
    if bound.fract() != 0.0 {
        return None;
    }
    let v = n
        .as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))?;
    // `as` saturates, and bounds beyond i128 are beyond every i64/u64 anyway.
    Some((v, bound as i128))
}

/// `v >= bound`, exact for integers that f64 cannot hold.
fn ge(n: &Number, v: f64, bound: f64) -> bool {
    match exact(n, bound) {
        Some((i, b)) => i >= b,
        None => v >= bound,
    }
}

/// `v <= bound`, exact for integers that f64 cannot hold.
fn le(n: &Number, v: f64, bound: f64) -> bool {
    match exact(n, bound) {
        Some((i, b)) => i <= b,
        None => v <= bound,
    }
}

fn article(type_name: &str) -> &'static str {
    if type_name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// `must be one of: "a", "b"` for short lists of short values from the config; otherwise a
/// generic sentence, so a big enum does not bloat every response.
fn describe_enum(values: &[Value]) -> String {
    let rendered: Vec<String> = values.iter().map(|v| v.to_string()).collect();
    let total: usize = rendered.iter().map(String::len).sum();
    if values.len() <= 10 && total <= 200 {
        format!("must be one of: {}", rendered.join(", "))
    } else {
        "must be one of the allowed values".to_owned()
    }
}
