#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `palisade schema <filter>` as editors and CI use it: every shipped configuration validates
//! against its filter's schema, the schema refuses what the parser refuses for its shape (unknown
//! fields, wrong types) at the same field, it is a valid draft 2020-12 schema, and its fields are
//! exactly the ones the parser reads.

use palisade::ConfigError;
use palisade_cli::document::{self, Contents};
use palisade_cli::filter::Filter;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn validator(filter: Filter) -> jsonschema::Validator {
    jsonschema::draft202012::new(&filter.schema())
        .unwrap_or_else(|e| panic!("{}: the schema does not compile: {e}", filter.name()))
}

/// What the schema says about `config`: each error, down into every branch of `anyOf`/`oneOf`,
/// as (parser-style path, message). An unknown field's path names it, as the parser's does.
fn schema_errors(filter: Filter, config: &Value) -> Vec<(String, String)> {
    let validator = validator(filter);
    let evaluation = validator.evaluate(config);
    evaluation
        .iter_errors()
        .map(|e| {
            let at = parser_path(e.instance_location.as_str());
            let message = e.error.message().to_owned();
            let path = match e.error.keyword() {
                "additionalProperties" => join(&at, &unexpected(&message).join(",")),
                _ if at.is_empty() => "(root)".to_owned(),
                _ => at,
            };
            (path, message)
        })
        .collect()
}

/// The names in "Additional properties are not allowed ('a', 'b' were unexpected)".
fn unexpected(message: &str) -> Vec<String> {
    let list = message
        .split_once('(')
        .map_or("", |(_, rest)| rest.trim_end_matches(')'));
    list.split('\'')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// `/rules/0/limits/1` → `rules[0].limits[1]`, as the parser writes paths.
fn parser_path(pointer: &str) -> String {
    let mut out = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if segment.bytes().all(|b| b.is_ascii_digit()) && !segment.is_empty() {
            out.push_str(&format!("[{segment}]"));
        } else {
            out = join(&out, &segment);
        }
    }
    out
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

fn parse(filter: Filter, config: &Value) -> Result<(), ConfigError> {
    filter.check(config.to_string().as_bytes())
}

/// A small configuration each parser accepts.
fn minimal(filter: Filter) -> Value {
    match filter {
        Filter::TokenAuth => {
            json!({ "providers": [ { "name": "corp", "hmac_secret_env": "CORP_SECRET" } ] })
        }
        _ => json!({}),
    }
}

/// `minimal(filter)` with `extra` merged over it.
fn with(filter: Filter, extra: Value) -> Value {
    let mut config = minimal(filter);
    palisade::config::merge(&mut config, extra);
    config
}

/// Every Palisade filter configuration in a file, as the filter receives it.
fn configs_in(path: &Path) -> Vec<(Filter, String, Value)> {
    let name = path.display().to_string();
    let contents = document::load(path, None).unwrap_or_else(|e| panic!("{name}: {e}"));
    let found = match contents {
        Contents::Plain {
            filter: Some(filter),
            config,
        } => vec![(filter, name, config)],
        Contents::Plain { filter: None, .. } => Vec::new(),
        Contents::Host { instances, .. } => instances
            .into_iter()
            .map(|i| {
                let at = format!("{name} ({})", i.location.unwrap_or_default());
                (i.filter, at, i.config)
            })
            .collect(),
    };
    found
        .into_iter()
        .filter_map(|(filter, at, bytes)| {
            // Bytes that are not JSON are the parser's to refuse; no schema applies to them.
            let value = palisade::config::parse_json(&bytes).ok()?;
            Some((filter, at, value))
        })
        .collect()
}

fn files_in(dir: &str, extensions: &[&str]) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join(dir))
        .expect("read dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| extensions.contains(&e))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_shipped_config_validates_against_its_filters_schema() {
    let mut files = files_in("envoy-config", &["yaml"]);
    files.retain(|f| !f.ends_with("docker-compose.yaml"));
    files.extend(files_in("envoy-config/istio", &["yaml"]));
    let mut seen = BTreeSet::new();
    let mut checked = 0;
    for file in &files {
        for (filter, at, config) in configs_in(file) {
            assert_eq!(
                parse(filter, &config),
                Ok(()),
                "{at}: the parser refuses it"
            );
            let errors = schema_errors(filter, &config);
            assert!(errors.is_empty(), "{at}: {}: {errors:#?}", filter.name());
            seen.insert(filter.name());
            checked += 1;
        }
    }
    assert_eq!(seen.len(), Filter::ALL.len(), "filters covered: {seen:?}");
    assert!(checked >= 12, "only {checked} shipped configs found");
}

/// Every configuration among the test fixtures that the parser accepts, the schema accepts too.
#[test]
fn every_fixture_the_parser_accepts_validates() {
    let mut accepted = 0;
    for file in files_in("cli/tests/fixtures", &["json", "yaml"]) {
        if file.ends_with("not-json.json") {
            continue;
        }
        for (filter, at, config) in configs_in(&file) {
            if parse(filter, &config).is_ok() {
                let errors = schema_errors(filter, &config);
                assert!(errors.is_empty(), "{at}: {}: {errors:#?}", filter.name());
                accepted += 1;
            }
        }
    }
    assert!(accepted >= 4, "only {accepted} valid fixtures");
}

/// The fixtures broken in their shape: the schema refuses them at the field the parser names.
#[test]
fn broken_fixtures_are_refused_by_the_schema_at_the_parsers_field() {
    let cases = [
        ("security-headers-unknown-field.json", "hsts"),
        ("rate-limit-bad-period.yaml", "limits[0].per"),
        (
            "input-validation-unsupported-keyword.json",
            "rules[0].body.schema.properties.a.$ref",
        ),
        ("envoy-broken.yaml", "store.on_eror"),
        ("envoy-broken.yaml", "path.max_length"),
        ("istio-broken.yaml", "requires.mode"),
    ];
    for (fixture, field) in cases {
        let path = repo().join("cli/tests/fixtures").join(fixture);
        let refused: Vec<_> = configs_in(&path)
            .into_iter()
            .filter_map(|(filter, at, config)| {
                let parser = parse(filter, &config).err()?;
                Some((filter, at, config, parser))
            })
            .filter(|(_, _, _, parser)| {
                parser
                    .path()
                    .is_some_and(|p| p == field || p.starts_with(&format!("{field}.")))
            })
            .collect();
        assert_eq!(refused.len(), 1, "{fixture}: no parser error at {field}");
        let (filter, at, config, parser) = &refused[0];
        let errors = schema_errors(*filter, config);
        assert!(
            errors.iter().any(|(path, _)| path == field),
            "{at}: the parser says `{parser}`, the schema {errors:#?}"
        );
    }
}

/// Asserts that both the schema and the parser refuse `config`, at `field`.
fn refused_by_both(filter: Filter, config: &Value, field: &str) {
    let parser = parse(filter, config).expect_err("the parser accepts it");
    assert_eq!(
        parser.path(),
        Some(field),
        "{}: {config}: the parser says `{parser}`",
        filter.name()
    );
    let errors = schema_errors(filter, config);
    assert!(
        errors.iter().any(|(path, _)| path == field),
        "{}: {config}: the parser says `{parser}`, the schema {errors:#?}",
        filter.name()
    );
}

#[test]
fn an_unknown_field_is_refused_by_the_schema_and_the_parser_alike() {
    for filter in Filter::POLICIES {
        // At the top level, and in a route rule.
        refused_by_both(filter, &with(filter, json!({ "colour": "red" })), "colour");
        let rule = json!({ "rules": [ { "match": { "path": { "prefix": "/a" } }, "colour": 1 } ] });
        refused_by_both(filter, &with(filter, rule), "rules[0].colour");
        let in_match =
            json!({ "rules": [ { "match": { "paths": { "prefix": "/a" } }, "name": "a" } ] });
        refused_by_both(filter, &with(filter, in_match), "rules[0].match.paths");
    }
    // Deeper: inside a filter's own objects.
    let nested = [
        (
            Filter::SecurityHeaders,
            json!({ "https": { "mode": "redirect", "redirect_code": 301 } }),
            "https.redirect_code",
        ),
        (
            Filter::TokenAuth,
            json!({ "providers": [ { "name": "corp", "hmac_secret_env": "S", "issuers": [] } ] }),
            "providers[0].issuers",
        ),
        (
            Filter::RateLimit,
            json!({ "limits": [ { "name": "a", "requests": 1, "per": "second", "keys": {} } ] }),
            "limits[0].keys",
        ),
        (
            Filter::RateLimit,
            json!({ "store": { "prefix": "x" } }),
            "store.prefix",
        ),
        (
            Filter::InputValidation,
            json!({ "body": { "max_bytes": 10 } }),
            "body.max_bytes",
        ),
    ];
    for (filter, extra, field) in nested {
        refused_by_both(filter, &with(filter, extra), field);
    }
}

#[test]
fn a_filter_wide_setting_in_a_rule_is_refused_by_both() {
    let cases = [
        (
            Filter::TokenAuth,
            json!({ "realm": "api" }),
            "rules[0].realm",
        ),
        (
            Filter::RateLimit,
            json!({ "store": { "key_prefix": "x" } }),
            "rules[0].store",
        ),
    ];
    for (filter, fields, field) in cases {
        let mut rule = json!({ "match": { "path": { "prefix": "/a" } } });
        palisade::config::merge(&mut rule, fields);
        refused_by_both(filter, &with(filter, json!({ "rules": [rule] })), field);
    }
}

#[test]
fn wrong_types_are_refused_by_the_schema_and_the_parser_alike() {
    let cases = [
        (
            Filter::SecurityHeaders,
            json!({ "preset": "lax" }),
            "preset",
        ),
        (Filter::SecurityHeaders, json!({ "hsts": 5 }), "hsts"),
        (
            Filter::SecurityHeaders,
            json!({ "headers": { "x-frame-options": 1 } }),
            "headers.x-frame-options",
        ),
        (
            Filter::SecurityHeaders,
            json!({ "clear_site_data": ["cache"] }),
            "clear_site_data",
        ),
        (
            Filter::TokenAuth,
            json!({ "max_token_size": "big" }),
            "max_token_size",
        ),
        (
            Filter::TokenAuth,
            json!({ "requires": { "mode": "some" } }),
            "requires.mode",
        ),
        (Filter::TokenAuth, json!({ "scopes": "read" }), "scopes"),
        (
            Filter::RateLimit,
            json!({ "limits": [ { "name": "a", "requests": "ten", "per": "second" } ] }),
            "limits[0].requests",
        ),
        (
            Filter::RateLimit,
            json!({ "limits": [ { "name": "a", "requests": -1, "per": "second" } ] }),
            "limits[0].requests",
        ),
        (Filter::RateLimit, json!({ "rules": {} }), "rules"),
        (
            Filter::InputValidation,
            json!({ "max_errors": true }),
            "max_errors",
        ),
        (
            Filter::InputValidation,
            json!({ "rules": [ { "match": {}, "mode": "warn" } ] }),
            "rules[0].mode",
        ),
    ];
    for (filter, extra, field) in cases {
        refused_by_both(filter, &with(filter, extra), field);
    }
}

#[test]
fn a_rule_needs_only_match_and_inherits_the_rest() {
    // `peers.mode` and `auth_failure.window` are required, but a rule may take them from the top
    // level: it is merged over it object by object.
    let cases = [
        (
            Filter::TokenAuth,
            json!({ "peers": { "trust_domains": ["a.example"], "mode": "alone" },
                    "rules": [ { "match": {}, "peers": { "trust_domains": ["b.example"] } } ] }),
        ),
        (
            Filter::RateLimit,
            json!({ "auth_failure": { "max_failures": 5, "window": 60, "block_for": 600 },
                    "rules": [ { "match": {}, "auth_failure": { "name": "login", "max_failures": 3 } } ] }),
        ),
        (
            Filter::SecurityHeaders,
            json!({ "headers": { "x-custom": { "value": "1" } },
                    "rules": [ { "match": {}, "headers": { "x-custom": { "mode": "add_if_absent" } } } ] }),
        ),
    ];
    for (filter, extra) in cases {
        let config = with(filter, extra);
        assert_eq!(
            parse(filter, &config),
            Ok(()),
            "{}: {config}",
            filter.name()
        );
        let errors = schema_errors(filter, &config);
        assert!(
            errors.is_empty(),
            "{}: {config}: {errors:#?}",
            filter.name()
        );
    }
    // But a rule without `match` is refused by both.
    for filter in Filter::POLICIES {
        refused_by_both(
            filter,
            &with(filter, json!({ "rules": [ { "name": "a" } ] })),
            "rules[0]",
        );
    }
    // And at the top level, the required fields are required.
    refused_by_both(
        Filter::RateLimit,
        &json!({ "auth_failure": { "max_failures": 5, "window": 60 } }),
        "auth_failure",
    );
    refused_by_both(Filter::TokenAuth, &json!({}), "(root)");
    let errors = schema_errors(Filter::TokenAuth, &json!({}));
    assert!(
        errors
            .iter()
            .any(|(_, m)| m.contains("\"providers\" is a required property")),
        "{errors:#?}"
    );
}

#[test]
fn each_schema_is_a_valid_draft_2020_12_schema_with_a_title_and_no_id() {
    for filter in Filter::POLICIES {
        let schema = filter.schema();
        if let Err(e) = jsonschema::meta::validate(&schema) {
            panic!("{}: not a valid JSON Schema: {e}", filter.name());
        }
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert_eq!(
            schema["title"],
            format!("Palisade {} configuration", filter.name())
        );
        assert!(schema.get("$id").is_none());
        assert_eq!(schema["additionalProperties"], false);
        // Every reference points into `$defs`, and every definition is used.
        let mut refs = BTreeSet::new();
        collect_refs(&schema, &mut refs);
        let defs = schema["$defs"].as_object().expect("$defs");
        for r in &refs {
            let name = r.strip_prefix("#/$defs/").unwrap_or_else(|| panic!("{r}"));
            assert!(
                defs.contains_key(name),
                "{}: {r} is not defined",
                filter.name()
            );
        }
        for name in defs.keys() {
            assert!(
                refs.contains(&format!("#/$defs/{name}")),
                "{}: $defs/{name} is not used",
                filter.name()
            );
        }
        validator(filter);
    }
}

fn collect_refs(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.insert(r.clone());
            }
            map.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// The fields serde lists in its "unknown field `x`, expected one of `a`, `b`" message.
fn expected_fields(error: &ConfigError) -> BTreeSet<String> {
    let text = error.to_string();
    let (_, list) = text
        .split_once("expected one of ")
        .or_else(|| text.split_once("expected "))
        .unwrap_or_else(|| panic!("not an unknown-field error: {text}"));
    list.split(", ")
        .map(|f| f.trim_matches('`').to_owned())
        .collect()
}

fn property_names(schema: &Value) -> BTreeSet<String> {
    schema["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .cloned()
        .collect()
}

/// The schema's top-level fields are the ones the parser reads: its policy's fields (as serde
/// lists them when it refuses an unknown one), the filter-wide settings, and `rules`. And a rule's
/// fields are the same policy fields, `match` and `name`.
#[test]
fn the_schema_has_exactly_the_fields_the_parser_reads() {
    for filter in Filter::POLICIES {
        let schema = filter.schema();
        let top_level_only: &[&str] = match filter {
            Filter::TokenAuth => &palisade::token::config::TOP_LEVEL_KEYS,
            Filter::RateLimit => palisade::ratelimit::config::TOP_LEVEL_ONLY,
            Filter::SecurityHeaders | Filter::InputValidation | Filter::Combined => &[],
        };
        let unknown = parse(filter, &with(filter, json!({ "zzz": 1 }))).expect_err("zzz");
        let policy = expected_fields(&unknown);
        let mut parser: BTreeSet<String> = policy.clone();
        parser.extend(top_level_only.iter().map(|k| (*k).to_owned()));
        parser.insert("rules".to_owned());
        assert_eq!(property_names(&schema), parser, "{}", filter.name());

        let rule = json!({ "rules": [ { "match": {}, "zzz": 1 } ] });
        let unknown = parse(filter, &with(filter, rule)).expect_err("zzz in a rule");
        let mut rule_fields = expected_fields(&unknown);
        assert_eq!(rule_fields, policy, "{}", filter.name());
        rule_fields.extend(["match".to_owned(), "name".to_owned()]);
        assert_eq!(
            property_names(&schema["$defs"]["Rule"]),
            rule_fields,
            "{}",
            filter.name()
        );

        // And each filter-wide setting is known to the parser: none is refused as unknown.
        for key in top_level_only {
            if let Err(e) = parse(filter, &with(filter, json!({ *key: null }))) {
                assert!(!e.to_string().contains("unknown field"), "{key}: {e}");
            }
        }
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn palisade(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .output()
        .expect("run palisade");
    Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn palisade_schema_prints_the_schema_for_any_name_of_the_filter() {
    for filter in Filter::ALL {
        let names = [
            filter.name().to_owned(),
            filter.ident().to_owned(),
            format!("palisade_{}", filter.ident()),
        ];
        for name in names {
            let run = palisade(&["schema", &name]);
            assert_eq!(run.code, 0, "{name}: {}", run.stderr);
            assert!(run.stderr.is_empty(), "{name}: {}", run.stderr);
            let printed: Value = serde_json::from_str(&run.stdout).expect("JSON on stdout");
            assert_eq!(printed, filter.schema(), "{name}");
            // Pretty-printed, for people and diffs, with the dialect and title first.
            assert!(
                run.stdout
                    .starts_with("{\n  \"$schema\": \"https://json-schema.org/draft/2020-12/schema\",\n  \"title\": "),
                "{name}: {}",
                &run.stdout[..200]
            );
            assert!(run.stdout.ends_with("\n}\n"), "{name}");
        }
    }
}

#[test]
fn palisade_schema_refuses_an_unknown_or_missing_filter_with_exit_2() {
    for args in [
        &["schema", "jwt"][..],
        &["schema"][..],
        &["schema", "token-auth", "rate-limit"][..],
    ] {
        let run = palisade(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stdout);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
        assert!(
            run.stderr.starts_with("palisade: "),
            "{args:?}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains("usage: palisade check"),
            "{args:?}: {}",
            run.stderr
        );
    }
    let run = palisade(&["schema", "jwt"]);
    assert!(
        run.stderr.contains(
            "unknown filter `jwt`: use one of security-headers, rate-limit, token-auth, input-validation"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn the_help_text_names_the_schema_command() {
    for args in [&["--help"][..], &["schema", "--help"][..]] {
        let run = palisade(args);
        assert_eq!(run.code, 0, "{args:?}");
        assert!(
            run.stdout.contains("palisade schema <filter>"),
            "{}",
            run.stdout
        );
    }
}

/// The combined module's schema is the four policies' schemas, one per section: the same
/// mistakes are refused at the same paths, with the section in front.
#[test]
fn the_combined_schema_is_the_four_schemas_by_section() {
    let schema = Filter::Combined.schema();
    if let Err(e) = jsonschema::meta::validate(&schema) {
        panic!("combined: not a valid JSON Schema: {e}");
    }
    for filter in Filter::POLICIES {
        let section = filter.ident();
        let embedded = &schema["properties"][section]["anyOf"][0];
        let mut own = filter.schema();
        if let Some(own) = own.as_object_mut() {
            own.remove("$schema");
        }
        let mut embedded = embedded.clone();
        if let Some(embedded) = embedded.as_object_mut() {
            embedded.remove("$id");
        }
        assert_eq!(embedded, own, "{section}: the policy's own schema");
        // A mistake inside a section, refused by both at the section's path.
        let inside = json!({ section: with(filter, json!({ "colour": "red" })) });
        refused_by_both(Filter::Combined, &inside, &format!("{section}.colour"));
        let rule = json!({ section: with(filter, json!({ "rules": [ { "name": "a" } ] })) });
        refused_by_both(Filter::Combined, &rule, &format!("{section}.rules[0]"));
    }
    refused_by_both(
        Filter::Combined,
        &json!({ "security_headers": {}, "rate_limits": {} }),
        "rate_limits",
    );
    refused_by_both(
        Filter::Combined,
        &json!({ "security_headers": "strict" }),
        "security_headers",
    );
    // Nothing at all: refused by both (the schema at the root).
    assert!(parse(Filter::Combined, &json!({})).is_err());
    assert!(!schema_errors(Filter::Combined, &json!({})).is_empty());
    assert!(schema_errors(
        Filter::Combined,
        &json!({ "input_validation": {}, "token_auth": null })
    )
    .is_empty());
}
