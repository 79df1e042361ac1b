#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The JSON Schema keywords the validator supports, one by one, its formats, and the
//! configuration errors for schemas it cannot check.

use palisade::validation::format::Format;
use palisade::validation::{Location, Schema, Violations};
use serde_json::{json, Value};
use wasm_bindgen_test::wasm_bindgen_test;

fn schema(doc: Value) -> Schema {
    Schema::from_value("body.schema", doc).expect("the schema compiles")
}

/// `(pointer, rule)` for each violation of `value` against `doc`.
fn errors(doc: Value, value: Value) -> Vec<(String, &'static str)> {
    let mut out = Violations::new(100);
    schema(doc).validate(&value, Location::Body, &mut out);
    out.list()
        .iter()
        .map(|v| (v.pointer.clone(), v.rule))
        .collect()
}

fn ok(doc: Value, value: Value) {
    assert_eq!(
        errors(doc.clone(), value.clone()),
        vec![],
        "{value} against {doc}"
    );
}

fn fails(doc: Value, value: Value, pointer: &str, rule: &str) {
    assert_eq!(
        errors(doc.clone(), value.clone()),
        vec![(pointer.to_owned(), rule)],
        "{value} against {doc}"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn type_accepts_one_or_several_and_integer_means_no_fraction() {
    ok(json!({"type": "string"}), json!("x"));
    fails(json!({"type": "string"}), json!(1), "", "type");
    ok(json!({"type": "integer"}), json!(-4));
    ok(json!({"type": "integer"}), json!(4.0));
    fails(json!({"type": "integer"}), json!(4.5), "", "type");
    ok(json!({"type": "number"}), json!(4.5));
    fails(json!({"type": "number"}), json!("4.5"), "", "type");
    ok(json!({"type": ["string", "null"]}), json!(null));
    fails(
        json!({"type": ["string", "null"]}),
        json!(false),
        "",
        "type",
    );
    ok(json!({"type": "boolean"}), json!(true));
    fails(json!({"type": "boolean"}), json!("true"), "", "type");
    ok(json!({"type": "array"}), json!([]));
    ok(json!({"type": "object"}), json!({}));
    fails(json!({"type": "object"}), json!([]), "", "type");
    // No type: anything goes.
    ok(json!({}), json!({"a": [1, "b", null]}));
}

#[wasm_bindgen_test(unsupported = test)]
fn type_errors_say_what_is_expected() {
    let mut out = Violations::new(10);
    schema(json!({"type": "integer"})).validate(&json!("x"), Location::Body, &mut out);
    assert_eq!(out.list()[0].detail, "must be an integer");
    let mut out = Violations::new(10);
    schema(json!({"type": ["string", "null"]})).validate(&json!(1), Location::Body, &mut out);
    assert_eq!(
        out.list()[0].detail,
        "must be one of these types: null, string"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn objects_required_properties_and_additional_properties() {
    let doc = json!({
        "type": "object",
        "required": ["a"],
        "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}
    });
    ok(doc.clone(), json!({"a": "x"}));
    ok(doc.clone(), json!({"a": "x", "c": [1]}));
    fails(doc.clone(), json!({"b": 1}), "/a", "required");
    fails(doc.clone(), json!({"a": "x", "b": "1"}), "/b", "type");

    let closed = json!({"properties": {"a": {}}, "additionalProperties": false});
    ok(closed.clone(), json!({"a": 1}));
    fails(
        closed,
        json!({"a": 1, "z": 2}),
        "/z",
        "additionalProperties",
    );

    let typed_extra = json!({"properties": {"a": {}}, "additionalProperties": {"type": "integer"}});
    ok(typed_extra.clone(), json!({"a": "s", "z": 2}));
    fails(typed_extra, json!({"z": "2"}), "/z", "type");

    let counted = json!({"minProperties": 1, "maxProperties": 2});
    fails(counted.clone(), json!({}), "", "minProperties");
    ok(counted.clone(), json!({"a": 1, "b": 2}));
    fails(
        counted,
        json!({"a": 1, "b": 2, "c": 3}),
        "",
        "maxProperties",
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn nested_objects_and_arrays_give_exact_pointers() {
    let doc = json!({
        "type": "object",
        "properties": {
            "address": {
                "type": "object",
                "required": ["city"],
                "properties": {"zip": {"type": "string", "pattern": "^[0-9]{5}$"}}
            },
            "tags": {"type": "array", "minItems": 1, "maxItems": 3, "items": {"type": "string", "maxLength": 4}},
            "a/b~c": {"type": "integer"}
        }
    });
    fails(
        doc.clone(),
        json!({"address": {"city": "X", "zip": "1234"}}),
        "/address/zip",
        "pattern",
    );
    fails(
        doc.clone(),
        json!({"address": {}}),
        "/address/city",
        "required",
    );
    fails(
        doc.clone(),
        json!({"tags": ["ok", "toolong"]}),
        "/tags/1",
        "maxLength",
    );
    fails(doc.clone(), json!({"tags": []}), "/tags", "minItems");
    fails(
        doc.clone(),
        json!({"tags": ["a", "b", "c", "d"]}),
        "/tags",
        "maxItems",
    );
    // RFC 6901 escaping of `/` and `~` in member names.
    fails(doc.clone(), json!({"a/b~c": "x"}), "/a~1b~0c", "type");
    ok(
        doc,
        json!({"address": {"city": "Zürich", "zip": "80331"}, "tags": ["a"]}),
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn string_lengths_count_unicode_code_points() {
    let doc = json!({"type": "string", "minLength": 2, "maxLength": 3});
    ok(doc.clone(), json!("日本"));
    ok(doc.clone(), json!("Zoë"));
    fails(doc.clone(), json!("日"), "", "minLength");
    fails(doc.clone(), json!("Zoë!"), "", "maxLength");
    // Four emoji are four characters (16 bytes, 8 UTF-16 units).
    fails(doc, json!("😀😀😀😀"), "", "maxLength");
}

#[wasm_bindgen_test(unsupported = test)]
fn pattern_is_unanchored_like_json_schema_and_works_on_unicode() {
    ok(json!({"pattern": "b"}), json!("abc"));
    fails(json!({"pattern": "^b"}), json!("abc"), "", "pattern");
    ok(json!({"pattern": "^[^<>]+$"}), json!("O'Brien Zoë 日本"));
    fails(json!({"pattern": "^[^<>]+$"}), json!("<b>"), "", "pattern");
    // Non-strings are not checked by string keywords.
    ok(json!({"pattern": "^a$", "minLength": 5}), json!(12));
}

#[wasm_bindgen_test(unsupported = test)]
fn enum_and_const_compare_json_values() {
    let doc = json!({"enum": ["red", "green", 1, null]});
    ok(doc.clone(), json!("red"));
    ok(doc.clone(), json!(1.0));
    ok(doc.clone(), json!(null));
    fails(doc.clone(), json!("Red"), "", "enum");
    fails(doc, json!(2), "", "enum");
    ok(json!({"const": {"a": [1, 2]}}), json!({"a": [1.0, 2]}));
    fails(
        json!({"const": {"a": [1, 2]}}),
        json!({"a": [2, 1]}),
        "",
        "const",
    );
    // `"const": null` is a constraint, not an absent keyword.
    fails(json!({"const": null}), json!(0), "", "const");
}

#[wasm_bindgen_test(unsupported = test)]
fn numeric_ranges_inclusive_and_exclusive() {
    let doc = json!({"minimum": 1, "maximum": 10});
    ok(doc.clone(), json!(1));
    ok(doc.clone(), json!(10));
    ok(doc.clone(), json!(5.5));
    fails(doc.clone(), json!(0.999), "", "minimum");
    fails(doc, json!(10.001), "", "maximum");
    let doc = json!({"exclusiveMinimum": 0, "exclusiveMaximum": 1});
    ok(doc.clone(), json!(0.5));
    fails(doc.clone(), json!(0), "", "exclusiveMinimum");
    fails(doc, json!(1), "", "exclusiveMaximum");
    // Integers beyond f64's exact range still compare exactly against integer bounds.
    fails(
        json!({"maximum": 9007199254740992_u64}),
        json!(9007199254740993_u64),
        "",
        "maximum",
    );
    ok(json!({"minimum": -5}), json!(u64::MAX));
    fails(json!({"maximum": -1}), json!(u64::MAX), "", "maximum");
    fails(json!({"minimum": 0}), json!(i64::MIN), "", "minimum");
}

#[wasm_bindgen_test(unsupported = test)]
fn only_the_first_error_of_a_wrong_type_is_reported() {
    let mut out = Violations::new(100);
    schema(json!({"type": "string", "minLength": 3, "enum": ["abc"]})).validate(
        &json!(5),
        Location::Body,
        &mut out,
    );
    assert_eq!(out.total(), 1);
}

#[wasm_bindgen_test(unsupported = test)]
fn violations_are_capped_but_counted() {
    let doc = json!({"items": {"type": "string"}});
    let mut out = Violations::new(3);
    schema(doc).validate(&json!([1, 2, 3, 4, 5, 6, 7]), Location::Body, &mut out);
    assert_eq!(out.list().len(), 3);
    assert_eq!(out.total(), 7);
    let problem = out.into_problem(400).unwrap();
    let body: Value = serde_json::from_slice(&problem.body()).unwrap();
    assert_eq!(body["errors"].as_array().unwrap().len(), 3);
    assert_eq!(
        body["detail"],
        "The request has 7 validation errors; the first 3 are listed."
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn email_format_accepts_real_addresses() {
    for good in [
        "a@b.co",
        "first.last+tag@example.com",
        "o'brien@example.ie",
        "user@localhost",
        "zoë@exämple.de",
        "用户@例子.广告",
        "x@[192.0.2.1]",
        "x@[IPv6:2001:db8::1]",
        "very_long-name.with+plus=equals@sub.domain.example.org",
    ] {
        assert!(Format::Email.check(good), "{good}");
    }
    for bad in [
        "",
        "plain",
        "@example.com",
        "a@",
        "a@@b.co",
        "a b@example.com",
        "a@exa mple.com",
        ".a@b.co",
        "a.@b.co",
        "a..b@b.co",
        "a@-b.co",
        "a@b..co",
        "a@b.co\n",
        "<a>@b.co",
    ] {
        assert!(!Format::Email.check(bad), "{bad:?}");
    }
    let long_local = format!("{}@b.co", "a".repeat(65));
    assert!(!Format::Email.check(&long_local));
}

#[wasm_bindgen_test(unsupported = test)]
fn uuid_format() {
    assert!(Format::Uuid.check("123e4567-e89b-12d3-a456-426614174000"));
    assert!(Format::Uuid.check("123E4567-E89B-12D3-A456-426614174000"));
    assert!(Format::Uuid.check("00000000-0000-0000-0000-000000000000"));
    for bad in [
        "123e4567e89b12d3a456426614174000",
        "123e4567-e89b-12d3-a456-42661417400",
        "123e4567-e89b-12d3-a456-4266141740000",
        "g23e4567-e89b-12d3-a456-426614174000",
        "{123e4567-e89b-12d3-a456-426614174000}",
    ] {
        assert!(!Format::Uuid.check(bad), "{bad}");
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn date_time_and_date_formats() {
    for good in [
        "2026-11-05T10:20:30Z",
        "2026-11-05t10:20:30z",
        "2026-11-05T10:20:30.123456+01:00",
        "2024-02-29T00:00:00-23:59",
        "1998-12-31T23:59:60Z",
    ] {
        assert!(Format::DateTime.check(good), "{good}");
    }
    for bad in [
        "2026-11-05",
        "2026-11-05T10:20:30",
        "2026-11-05 10:20:30Z",
        "2026-13-05T10:20:30Z",
        "2025-02-29T10:20:30Z",
        "2026-11-31T10:20:30Z",
        "2026-11-05T24:00:00Z",
        "2026-11-05T10:60:00Z",
        "2026-11-05T10:20:30.Z",
        "2026-11-05T10:20:30+0100",
        "2026-11-05T10:20:30+24:00",
        "٢٠٢٦-11-05T10:20:30Z",
    ] {
        assert!(!Format::DateTime.check(bad), "{bad}");
    }
    assert!(Format::Date.check("2000-02-29"));
    assert!(!Format::Date.check("1900-02-29"));
    assert!(!Format::Date.check("2026-1-05"));
}

#[wasm_bindgen_test(unsupported = test)]
fn uri_format() {
    for good in [
        "https://example.com",
        "https://user@example.com:8443/a/b?x=1&y=%20#frag",
        "urn:isbn:0451450523",
        "mailto:o'brien@example.ie",
        "http://[2001:db8::1]:80/",
        "ftp://ftp.example.com/file.txt",
    ] {
        assert!(Format::Uri.check(good), "{good}");
    }
    for bad in [
        "/relative/path",
        "example.com",
        "https://exa mple.com",
        "https://example.com/%zz",
        "https://example.com/ä",
        "1http://example.com",
        "http://[not-an-ip]/",
        "https://example.com/<script>",
    ] {
        assert!(!Format::Uri.check(bad), "{bad}");
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn ip_formats() {
    assert!(Format::Ipv4.check("192.0.2.1"));
    assert!(Format::Ipv4.check("255.255.255.255"));
    for bad in ["256.0.0.1", "1.2.3", "01.2.3.4", "1.2.3.4 ", "::1"] {
        assert!(!Format::Ipv4.check(bad), "{bad}");
    }
    for good in [
        "::1",
        "2001:db8::8a2e:370:7334",
        "::ffff:192.0.2.1",
        "fe80::1",
    ] {
        assert!(Format::Ipv6.check(good), "{good}");
    }
    for bad in ["192.0.2.1", "2001:db8:::1", "fe80::1%eth0", "12345::1", ":"] {
        assert!(!Format::Ipv6.check(bad), "{bad}");
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn format_applies_only_to_strings_through_a_schema() {
    let doc = json!({"type": "object", "properties": {"ip": {"format": "ipv4"}, "id": {"format": "uuid"}}});
    fails(doc.clone(), json!({"ip": "999.1.1.1"}), "/ip", "format");
    fails(doc.clone(), json!({"id": "nope"}), "/id", "format");
    ok(doc, json!({"ip": 12}));
}

fn config_error(doc: Value) -> String {
    match Schema::from_value("body.schema", doc) {
        Ok(_) => panic!("the schema should be refused"),
        Err(e) => e.to_string(),
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn unsupported_or_broken_schemas_are_refused_with_the_field_named() {
    let e = config_error(json!({"oneOf": [{"type": "string"}]}));
    assert!(
        e.starts_with("body.schema.oneOf: unknown field `oneOf`"),
        "{e}"
    );
    let e = config_error(json!({"properties": {"a": {"$ref": "#/x"}}}));
    assert!(
        e.starts_with("body.schema.properties.a.$ref: unknown field `$ref`"),
        "{e}"
    );
    let e = config_error(json!({"properties": {"a": {"format": "hostname"}}}));
    assert!(
        e.starts_with("body.schema.properties.a.format: unsupported format 'hostname'"),
        "{e}"
    );
    let e = config_error(json!({"type": "strng"}));
    assert!(
        e.starts_with("body.schema.type: unknown type 'strng'"),
        "{e}"
    );
    let e = config_error(json!({"pattern": "(unclosed"}));
    assert!(e.starts_with("body.schema.pattern: invalid regex"), "{e}");
    let e = config_error(json!({"minLength": 5, "maxLength": 2}));
    assert!(
        e.starts_with("body.schema.minLength: is greater than maxLength"),
        "{e}"
    );
    let e = config_error(json!({"minimum": 5, "maximum": 2}));
    assert!(e.starts_with("body.schema.minimum"), "{e}");
    let e = config_error(json!({"additionalProperties": {"tpye": "string"}}));
    assert!(
        e.starts_with("body.schema.additionalProperties.tpye: unknown field `tpye`"),
        "{e}"
    );
    let e = config_error(json!({"additionalProperties": "no"}));
    assert!(e.starts_with("body.schema.additionalProperties"), "{e}");
    let e = config_error(json!({"minLength": -1}));
    assert!(e.starts_with("body.schema.minLength"), "{e}");
    let e = config_error(json!({"enum": []}));
    assert!(e.starts_with("body.schema.enum"), "{e}");
    // regex-lite has no Unicode classes: the config load says so.
    let e = config_error(json!({"pattern": "\\p{L}+"}));
    assert!(e.starts_with("body.schema.pattern: invalid regex"), "{e}");
}

#[wasm_bindgen_test(unsupported = test)]
fn annotations_are_accepted() {
    ok(
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://example.com/user",
            "title": "User", "description": "A user", "$comment": "c",
            "type": "object",
            "properties": {"n": {"type": "string", "default": "x", "examples": ["y"], "deprecated": false, "readOnly": true, "writeOnly": false}}
        }),
        json!({"n": "z"}),
    );
}
