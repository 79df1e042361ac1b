//! The JSON Schema (draft 2020-12) of each filter's configuration, for editors and CI
//! (`palisade schema <filter>`). Only built with the `schema` feature: the filters never carry it.
//!
//! Every part is generated (with `schemars`) from the same types the parsers deserialize into, so
//! the schema and the parser cannot drift apart: doc comments become `description`s,
//! `deny_unknown_fields` becomes `additionalProperties: false`, and the few types with a
//! hand-written `Deserialize` have a hand-written `JsonSchema` beside it. The document around them
//! follows how [`crate::rules`] reads a configuration: the top level is the default policy plus
//! the filter-wide settings, and each entry of `rules` is a `match` plus any policy fields it
//! changes. A rule is merged over the top level object by object ([`crate::config::merge`]), so
//! nothing a rule says is required, down to the fields of the objects it merges into.
//!
//! The schema checks shape and types; values only the parser can judge (a regex that does not
//! compile, a provider name that no provider has, a status out of range, ...) are still for
//! `palisade check`.

use schemars::generate::SchemaSettings;
use schemars::{Schema, SchemaGenerator};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The JSON Schema dialect of every schema here.
pub const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// The name in `$defs` of one entry of `rules`.
const RULE_DEF: &str = "Rule";

/// The schema of the security-headers filter's configuration.
pub fn security_headers() -> Value {
    let mut generator = generator();
    let policy = generator.subschema_for::<crate::security_headers::config::PolicyConfig>();
    Document {
        filter: "security-headers",
        description: "Response security headers (a preset plus overrides), cookie hardening, HTTPS enforcement and request-header stripping. The top level is the default policy; `rules` change it for some routes.",
        filter_wide: None,
        policy,
    }
    .build(generator)
}

/// The schema of the token-auth filter's configuration.
pub fn token_auth() -> Value {
    let mut generator = generator();
    let filter_wide = generator.subschema_for::<crate::token::config::GlobalSpec>();
    let policy = generator.subschema_for::<crate::token::requirement::RequirementSpec>();
    Document {
        filter: "token-auth",
        description: "Token verification (JWT and PASETO v4.public): the providers and their keys, filter-wide settings, and the default token requirement; `rules` change the requirement for some routes.",
        filter_wide: Some(filter_wide),
        policy,
    }
    .build(generator)
}

/// The schema of the rate-limit filter's configuration.
pub fn rate_limit() -> Value {
    let mut generator = generator();
    let filter_wide = generator.subschema_for::<crate::ratelimit::config::FilterWideSpec>();
    let policy = generator.subschema_for::<crate::ratelimit::config::PolicySpec>();
    Document {
        filter: "rate-limit",
        description: "Local (and optionally distributed) rate limits and auth-failure throttling. The top level holds the filter-wide settings and the default policy; every matching rule's limits apply too, and the first matching rule decides the rest.",
        filter_wide: Some(filter_wide),
        policy,
    }
    .build(generator)
}

/// The schema of the input-validation filter's configuration.
pub fn input_validation() -> Value {
    let mut generator = generator();
    let policy = generator.subschema_for::<crate::validation::PolicySpec>();
    Document {
        filter: "input-validation",
        description: "Request validation (method, path, query, headers, body schema) and response scrubbing. The top level is the default policy; `rules` change it for some routes.",
        filter_wide: None,
        policy,
    }
    .build(generator)
}

fn generator() -> SchemaGenerator {
    SchemaSettings::draft2020_12().into_generator()
}

/// One filter's configuration document.
struct Document {
    /// The filter's name, as in `palisade schema <filter>`.
    filter: &'static str,
    description: &'static str,
    /// The settings only the top level may hold (a `$ref` to an object schema), if any.
    filter_wide: Option<Schema>,
    /// A policy: the top level's and, merged, each rule's (a `$ref` to an object schema).
    policy: Schema,
}

impl Document {
    fn build(self, mut generator: SchemaGenerator) -> Value {
        let match_schema = generator.subschema_for::<crate::matcher::MatchSpec>();
        let mut defs = generator.take_definitions(true);
        defs.values_mut().for_each(drop_null_defaults);
        let policy = object_fields(&defs, self.policy.as_value());
        let filter_wide = self
            .filter_wide
            .map(|s| object_fields(&defs, s.as_value()))
            .unwrap_or_default();
        // Their fields are the document's own: the definitions themselves are not needed.
        for name in [&policy.def, &filter_wide.def].into_iter().flatten() {
            defs.remove(name);
        }

        let mut overrides = Overrides::default();
        let rule = rule_schema(&policy, &filter_wide, match_schema, &mut overrides, &defs);
        defs.extend(overrides.defs);
        defs.insert(RULE_DEF.to_owned(), rule);

        let mut properties = filter_wide.properties.clone();
        properties.extend(policy.properties.clone());
        properties.insert(
            "rules".to_owned(),
            json!({
                "description": "Route rules, in order: each changes the top level's policy for the requests its `match` selects.",
                "type": ["array", "null"],
                "items": { "$ref": format!("#/$defs/{RULE_DEF}") },
            }),
        );
        let required: Vec<String> = filter_wide
            .required
            .into_iter()
            .chain(policy.required)
            .collect();

        let mut root = Map::new();
        root.insert("$schema".to_owned(), DIALECT.into());
        root.insert(
            "title".to_owned(),
            format!("Palisade {} configuration", self.filter).into(),
        );
        root.insert("description".to_owned(), self.description.into());
        root.insert("type".to_owned(), "object".into());
        root.insert("properties".to_owned(), Value::Object(properties));
        if !required.is_empty() {
            root.insert("required".to_owned(), required.into());
        }
        root.insert("additionalProperties".to_owned(), false.into());
        root.insert("$defs".to_owned(), Value::Object(defs));
        let mut root = Value::Object(root);
        drop_null_defaults(&mut root);
        root
    }
}

/// One entry of `rules`: `name`, `match`, and the policy's fields, none required (a rule inherits
/// them from the top level).
fn rule_schema(
    policy: &ObjectFields,
    filter_wide: &ObjectFields,
    match_schema: Schema,
    overrides: &mut Overrides,
    defs: &Map<String, Value>,
) -> Value {
    let mut properties = Map::new();
    properties.insert(
        "name".to_owned(),
        json!({
            "description": "The rule's name in logs and metrics (default `rules[<index>]`).",
            "type": "string",
            "minLength": 1,
        }),
    );
    properties.insert(
        "match".to_owned(),
        with_description(
            match_schema.to_value(),
            "Which requests the rule applies to: every condition that is set must hold.",
        ),
    );
    for (name, schema) in &policy.properties {
        let mut schema = overrides.of(schema, defs);
        // A rule's default is what it inherits.
        if let Value::Object(map) = &mut schema {
            map.remove("default");
        }
        properties.insert(name.clone(), schema);
    }
    let top_level_only = if filter_wide.properties.is_empty() {
        String::new()
    } else {
        format!(
            " The filter-wide settings ({}) can only be set at the top level.",
            filter_wide.names()
        )
    };
    json!({
        "description": format!(
            "A route rule: `match` says which requests it applies to; any other field replaces the top level's for them (objects are merged field by field).{top_level_only}"
        ),
        "type": "object",
        "properties": properties,
        "required": ["match"],
        "additionalProperties": false,
    })
}

/// Removes `"default": null`: schemars writes it for every optional field, where it says nothing
/// (and for a few, such as `csp.policy`, leaving the field out is not the same as `null`).
fn drop_null_defaults(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.get("default") == Some(&Value::Null) {
                map.remove("default");
            }
            map.values_mut().for_each(drop_null_defaults);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_null_defaults),
        _ => {}
    }
}

/// The properties and required names of an object schema (followed through its `$ref`).
#[derive(Debug, Default)]
struct ObjectFields {
    /// The name of its definition, if it was a `$ref`.
    def: Option<String>,
    properties: Map<String, Value>,
    required: Vec<String>,
}

impl ObjectFields {
    fn names(&self) -> String {
        self.properties
            .keys()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn object_fields(defs: &Map<String, Value>, schema: &Value) -> ObjectFields {
    let def = schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(def_name)
        .map(str::to_owned);
    let schema = resolve(defs, schema);
    ObjectFields {
        def,
        properties: schema
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        required: schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
    }
}

/// The definition a `#/$defs/...` reference points to (the schema itself if it is no reference).
fn resolve<'a>(defs: &'a Map<String, Value>, schema: &'a Value) -> &'a Value {
    schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(def_name)
        .and_then(|name| defs.get(name))
        .unwrap_or(schema)
}

fn def_name(reference: &str) -> Option<&str> {
    reference.strip_prefix("#/$defs/")
}

/// The schemas of what a rule may write for a policy field: the same, except that objects (which
/// the rule's value is merged into) require nothing. Definitions that change get a copy named
/// `<name>InRule`.
#[derive(Debug, Default)]
struct Overrides {
    /// Definition name → the name of its copy for rules, or `None` where it needs none.
    seen: BTreeMap<String, Option<String>>,
    defs: Map<String, Value>,
}

impl Overrides {
    fn of(&mut self, schema: &Value, defs: &Map<String, Value>) -> Value {
        let Value::Object(map) = schema else {
            return schema.clone();
        };
        let mut out = map.clone();
        if let Some(name) = map.get("$ref").and_then(Value::as_str).and_then(def_name) {
            if let Some(copy) = self.copy_of(name, defs) {
                out.insert("$ref".to_owned(), format!("#/$defs/{copy}").into());
            }
        }
        out.remove("required");
        if let Some(Value::Object(props)) = out.get_mut("properties") {
            for value in props.values_mut() {
                *value = self.of(value, defs);
            }
        }
        if let Some(additional @ Value::Object(_)) = out.get_mut("additionalProperties") {
            *additional = self.of(additional, defs);
        }
        for key in ["anyOf", "oneOf", "allOf"] {
            if let Some(Value::Array(branches)) = out.get_mut(key) {
                for branch in branches.iter_mut() {
                    *branch = self.of(branch, defs);
                }
            }
        }
        Value::Object(out)
    }

    fn copy_of(&mut self, name: &str, defs: &Map<String, Value>) -> Option<String> {
        if let Some(known) = self.seen.get(name) {
            return known.clone();
        }
        let def = defs.get(name)?;
        // Recursive definitions refer to the original until the copy is known to differ.
        self.seen.insert(name.to_owned(), None);
        let changed = self.of(def, defs);
        if changed == *def {
            return None;
        }
        let copy = format!("{name}InRule");
        self.seen.insert(name.to_owned(), Some(copy.clone()));
        // Fill in again, so that references back to `name` inside it reach the copy.
        let changed = self.of(def, defs);
        self.defs.insert(copy.clone(), changed);
        Some(copy)
    }
}

/// `schema` with `description` set, unless it has one.
fn with_description(schema: Value, description: &str) -> Value {
    match schema {
        Value::Object(mut map) => {
            map.entry("description").or_insert(description.into());
            Value::Object(map)
        }
        other => other,
    }
}

/// A schema from a JSON object literal, with a description (for hand-written `JsonSchema`s).
pub(crate) fn described(schema: Value, description: &str) -> Schema {
    to_schema(with_description(schema, description))
}

/// Exactly one of `branches` (for hand-written `JsonSchema`s of values of several shapes).
pub(crate) fn one_of(branches: Vec<Schema>) -> Schema {
    let branches: Vec<Value> = branches.into_iter().map(Schema::to_value).collect();
    to_schema(json!({ "oneOf": branches }))
}

/// A [`Schema`] from a JSON object or boolean (anything else accepts everything).
pub(crate) fn to_schema(value: Value) -> Schema {
    match value {
        Value::Object(map) => Schema::from(map),
        Value::Bool(b) => Schema::from(b),
        _ => Schema::default(),
    }
}

/// For `#[schemars(schema_with = ...)]` on a field the parser reads as a JSON object or a string
/// holding one (an inline JWKS).
pub(crate) fn object_or_json_string(_: &mut SchemaGenerator) -> Schema {
    to_schema(json!({
        "type": ["object", "string"],
    }))
}

/// The schema of the combined module's configuration: one section per policy, each exactly that
/// policy's schema (embedded as its own resource, so its `$defs` stay its own), or `null`.
pub fn combined() -> Value {
    let sections = [
        ("security_headers", "security-headers", security_headers()),
        ("rate_limit", "rate-limit", rate_limit()),
        ("token_auth", "token-auth", token_auth()),
        ("input_validation", "input-validation", input_validation()),
    ];
    let mut properties = Map::new();
    for (section, filter, mut schema) in sections {
        if let Some(schema) = schema.as_object_mut() {
            schema.remove("$schema");
            schema.insert(
                "$id".to_owned(),
                Value::String(format!("urn:palisade:schema:{filter}")),
            );
        }
        properties.insert(
            section.to_owned(),
            json!({ "anyOf": [ schema, { "type": "null" } ] }),
        );
    }
    json!({
        "$schema": DIALECT,
        "title": "Palisade combined configuration",
        "description": "The four policies in one module: each section is exactly that policy's own filter configuration; a section left out (or null) is a policy that does not run. At least one is required.",
        "type": "object",
        "properties": properties,
        "additionalProperties": false,
        "minProperties": 1,
    })
}
