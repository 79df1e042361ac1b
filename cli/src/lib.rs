//! `palisade`: checks Palisade filter configurations before they reach a proxy.
//!
//! Every configuration is parsed by the filter's own parser from the `palisade` core crate (the
//! code the filter runs in `on_configure`), so the tool and the filter never disagree about what
//! is valid. On top of that, a few risky but legal settings are reported as warnings.

pub mod document;
pub mod filter;
pub mod report;
pub mod warn;

use document::{Contents, Host, LoadError};
use filter::Filter;
use report::{Checked, Finding};
use serde_json::Value;
use std::path::Path;

/// The filter's configuration schema as `palisade schema` prints it: pretty JSON, with what a
/// person looks for first (`$schema`, `title`, `description`, ...) at the top and `$defs` last.
pub fn schema_text(filter: Filter) -> Result<String, serde_json::Error> {
    const FIRST: [&str; 7] = [
        "$schema",
        "title",
        "description",
        "type",
        "required",
        "properties",
        "additionalProperties",
    ];
    let Value::Object(schema) = filter.schema() else {
        return serde_json::to_string_pretty(&filter.schema());
    };
    let mut keys: Vec<&String> = schema.keys().collect();
    keys.sort_by_key(|k| FIRST.iter().position(|f| f == k).unwrap_or(FIRST.len()));
    let mut members = Vec::with_capacity(keys.len());
    for key in keys {
        let value = serde_json::to_string_pretty(&schema[key.as_str()])?;
        // One level deeper than serde_json put it (every newline is layout: strings escape theirs).
        let value = value.replace('\n', "\n  ");
        members.push(format!("  {}: {value}", serde_json::to_string(key)?));
    }
    Ok(format!("{{\n{}\n}}", members.join(",\n")))
}

/// The result of checking one file.
#[derive(Debug)]
pub enum FileResult {
    /// The file could not be read.
    Unreadable(LoadError),
    /// The file is not JSON / YAML, or not one configuration.
    Invalid(LoadError),
    /// A plain filter configuration whose filter is not known (no `--filter`, none inferred).
    UnknownFilter,
    /// A host config (Envoy, Istio) in which no Palisade filter was found.
    NoFilters { kind: &'static str, skipped: usize },
    /// Every Palisade configuration in the file, checked.
    Checked {
        kind: &'static str,
        configs: Vec<Checked>,
    },
}

/// Checks every Palisade filter configuration in `path`; `filter` (from `--filter`) names the
/// filter of a plain configuration.
pub fn check_file(path: &Path, filter: Option<Filter>) -> FileResult {
    match document::load(path, filter) {
        Err(e @ LoadError::Io(_)) => FileResult::Unreadable(e),
        Err(e) => FileResult::Invalid(e),
        Ok(Contents::Plain { filter: None, .. }) => FileResult::UnknownFilter,
        Ok(Contents::Plain {
            filter: Some(filter),
            config,
        }) => FileResult::Checked {
            kind: "filter config",
            configs: vec![check_one(
                filter,
                None,
                &config,
                &Host::default(),
                Vec::new(),
            )],
        },
        Ok(Contents::Host {
            kind,
            instances,
            skipped,
        }) => {
            if instances.is_empty() {
                return FileResult::NoFilters { kind, skipped };
            }
            let configs = instances
                .into_iter()
                .map(|i| check_one(i.filter, i.location, &i.config, &i.host, i.findings))
                .collect();
            FileResult::Checked { kind, configs }
        }
    }
}

fn check_one(
    filter: Filter,
    location: Option<String>,
    config: &[u8],
    host: &Host,
    mut findings: Vec<Finding>,
) -> Checked {
    let wiring_ok = findings
        .iter()
        .all(|f| f.severity == report::Severity::Warning);
    if wiring_ok {
        match filter.check(config) {
            Ok(()) => findings.extend(warn::warnings(filter, config, host)),
            Err(e) => findings.push(Finding::error(e.path(), reason(&e))),
        }
    }
    Checked {
        filter: Some(filter),
        location,
        findings,
    }
}

/// The reason alone: the path is printed separately.
fn reason(e: &palisade::ConfigError) -> String {
    match e {
        palisade::ConfigError::Field { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}
