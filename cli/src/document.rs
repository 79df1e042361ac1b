//! Finding Palisade filter configurations in a file: a plain filter config, an Envoy config (every
//! Wasm HTTP filter whose module or root id is a Palisade filter), or Istio `WasmPlugin`s.

use crate::filter::Filter;
use crate::report::Finding;
use base64ct::{Base64, Encoding};
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;

/// Why a file could not be read as configuration at all.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    #[error("not valid JSON: {0}")]
    Json(serde_json::Error),
    #[error("not valid YAML: {0}")]
    Yaml(serde_norway::Error),
    #[error("holds {0} YAML documents but no Envoy config or WasmPlugin; a filter configuration is one document")]
    Documents(usize),
}

/// What the filter runs with, besides its configuration: only known for Envoy and Istio.
#[derive(Debug, Clone, Default)]
pub struct Host {
    /// The setting that makes the proxy skip the filter when it cannot run (`failure_policy`).
    pub fail_open: Option<FailOpen>,
    /// The VM environment, when the host config says it (`None` for a plain filter config).
    pub env: Option<Vec<EnvVar>>,
    /// What the variables are called in this kind of file (for messages).
    pub env_setting: &'static str,
}

/// A fail-open setting: where it is, what it says, and what to write instead.
#[derive(Debug, Clone)]
pub struct FailOpen {
    pub path: &'static str,
    pub value: &'static str,
    pub instead: &'static str,
}

/// A variable of the VM environment.
#[derive(Debug, Clone)]
pub struct EnvVar {
    pub name: String,
    /// The value is written in the host config itself (Envoy `key_values`, Istio `INLINE`).
    pub inline: bool,
}

/// One Palisade filter configuration found in a file.
#[derive(Debug, Clone)]
pub struct Instance {
    pub filter: Filter,
    /// Where it is in the file: `http filter palisade.token_auth`, `WasmPlugin ns/name`.
    pub location: Option<String>,
    /// The bytes the filter receives as its plugin configuration.
    pub config: Vec<u8>,
    pub host: Host,
    /// Problems with how the filter is wired in, found before its configuration is parsed.
    pub findings: Vec<Finding>,
}

/// What a file holds.
#[derive(Debug)]
pub enum Contents {
    /// One filter's configuration, for `filter` (from `--filter` or inferred), if known.
    Plain {
        filter: Option<Filter>,
        config: Vec<u8>,
    },
    /// An Envoy config or Istio manifests: every Palisade filter found in them, and how many
    /// other Wasm plugins were skipped.
    Host {
        kind: &'static str,
        instances: Vec<Instance>,
        skipped: usize,
    },
}

/// Reads `path` and finds the Palisade configurations in it. `filter` is `--filter`, which names
/// the filter of a plain config.
pub fn load(path: &Path, filter: Option<Filter>) -> Result<Contents, LoadError> {
    let bytes = std::fs::read(path)?;
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let docs: Vec<Value> = if is_json {
        vec![serde_json::from_slice(&bytes).map_err(LoadError::Json)?]
    } else {
        let mut docs = Vec::new();
        for doc in serde_norway::Deserializer::from_slice(&bytes) {
            let value = Value::deserialize(doc).map_err(LoadError::Yaml)?;
            if !value.is_null() {
                docs.push(value);
            }
        }
        docs
    };

    let mut instances = Vec::new();
    let mut skipped = 0;
    let mut kind = None;
    for doc in &docs {
        if let Some(plugin) = wasm_plugin(doc) {
            kind = Some("Istio manifest");
            match plugin {
                Some(instance) => instances.push(instance),
                None => skipped += 1,
            }
            continue;
        }
        let mut found = Vec::new();
        walk_envoy(doc, "", None, &mut found);
        if !found.is_empty() || is_envoy_config(doc) {
            kind = kind.or(Some("Envoy config"));
            for f in found {
                match f {
                    Some(instance) => instances.push(instance),
                    None => skipped += 1,
                }
            }
        }
    }
    if let Some(kind) = kind {
        return Ok(Contents::Host {
            kind,
            instances,
            skipped,
        });
    }

    // A plain filter configuration: the filter gets the JSON as is (a JSON file's own bytes, so
    // that duplicate keys and the like are judged by the filter's parser, not by this tool).
    let config = match docs.as_slice() {
        [] => Vec::new(),
        [_] if is_json => bytes,
        [doc] => to_json(doc),
        [_, ..] => return Err(LoadError::Documents(docs.len())),
    };
    let filter = filter
        .or_else(|| infer_from_file_name(path))
        .or_else(|| docs.first().and_then(infer_from_keys));
    Ok(Contents::Plain { filter, config })
}

fn to_json(value: &Value) -> Vec<u8> {
    // Serializing a `Value` cannot fail (its map keys are strings).
    serde_json::to_vec(value).unwrap_or_default()
}

fn is_envoy_config(doc: &Value) -> bool {
    const ENVOY_KEYS: [&str; 5] = [
        "static_resources",
        "dynamic_resources",
        "admin",
        "layered_runtime",
        "bootstrap_extensions",
    ];
    doc.as_object()
        .is_some_and(|o| ENVOY_KEYS.iter().any(|k| o.contains_key(*k)))
}

/// `Some(Some(instance))` for a Palisade `WasmPlugin`, `Some(None)` for another plugin, `None`
/// if `doc` is not a `WasmPlugin`.
fn wasm_plugin(doc: &Value) -> Option<Option<Instance>> {
    if doc.get("kind").and_then(Value::as_str) != Some("WasmPlugin") {
        return None;
    }
    let meta = doc.get("metadata");
    let name = meta.and_then(|m| m.get("name")).and_then(Value::as_str);
    let namespace = meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str);
    let location = match (namespace, name) {
        (Some(ns), Some(n)) => format!("WasmPlugin {ns}/{n}"),
        (None, Some(n)) => format!("WasmPlugin {n}"),
        _ => "WasmPlugin".to_owned(),
    };
    let spec = doc.get("spec").unwrap_or(&Value::Null);
    let plugin_name = spec.get("pluginName").and_then(Value::as_str);
    let url = spec.get("url").and_then(Value::as_str);
    let mut findings = Vec::new();
    let filter = match (
        plugin_name.and_then(Filter::from_name),
        url.and_then(Filter::from_module),
    ) {
        (Some(by_name), Some(by_url)) if by_name != by_url => {
            findings.push(Finding::warning(
                Some("spec.pluginName"),
                format!(
                    "names {} but the image `{}` looks like {}",
                    by_name.name(),
                    url.unwrap_or_default(),
                    by_url.name()
                ),
            ));
            by_name
        }
        (Some(filter), _) => filter,
        (None, Some(filter)) if plugin_name.is_none() => {
            findings.push(Finding::error(
                Some("spec.pluginName"),
                format!(
                    "missing: Istio then uses the image's default root id, set it to palisade_{}",
                    filter.ident()
                ),
            ));
            filter
        }
        _ => return Some(None),
    };
    let config = match spec.get("pluginConfig") {
        None | Some(Value::Null) => Vec::new(),
        Some(value) => to_json(value),
    };
    let fail_open = match spec.get("failStrategy").and_then(Value::as_str) {
        Some("FAIL_OPEN") => Some(FailOpen {
            path: "spec.failStrategy",
            value: "FAIL_OPEN",
            instead: "FAIL_CLOSE",
        }),
        _ => None,
    };
    let env = spec
        .get("vmConfig")
        .and_then(|v| v.get("env"))
        .and_then(Value::as_array)
        .map(|vars| {
            vars.iter()
                .filter_map(|v| {
                    Some(EnvVar {
                        name: v.get("name")?.as_str()?.to_owned(),
                        inline: v.get("valueFrom").and_then(Value::as_str) != Some("HOST"),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Some(Some(Instance {
        filter,
        location: Some(location),
        config,
        host: Host {
            fail_open,
            env: Some(env),
            env_setting: "spec.vmConfig.env",
        },
        findings,
    }))
}

/// Finds every Wasm HTTP filter in an Envoy config (listeners, ECDS resources, anywhere).
fn walk_envoy(value: &Value, path: &str, name: Option<&str>, out: &mut Vec<Option<Instance>>) {
    match value {
        Value::Object(map) => {
            let is_wasm = map.get("@type").and_then(Value::as_str).is_some_and(|t| {
                t.ends_with("envoy.extensions.filters.http.wasm.v3.Wasm")
                    || t.ends_with("envoy.extensions.filters.network.wasm.v3.Wasm")
            });
            if is_wasm {
                let config = map.get("config").unwrap_or(&Value::Null);
                out.push(envoy_instance(config, path, name));
                return;
            }
            let own_name = map.get("name").and_then(Value::as_str);
            for (key, child) in map {
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                walk_envoy(child, &child_path, own_name.or(name), out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                walk_envoy(child, &format!("{path}[{i}]"), None, out);
            }
        }
        _ => {}
    }
}

/// A Wasm filter's `PluginConfig`, if its module or root id is a Palisade filter.
fn envoy_instance(config: &Value, path: &str, name: Option<&str>) -> Option<Instance> {
    let code = config.get("vm_config").and_then(|v| v.get("code"));
    let module = code
        .and_then(|c| c.get("local"))
        .and_then(|l| l.get("filename"))
        .or_else(|| {
            code.and_then(|c| c.get("remote"))
                .and_then(|r| r.get("http_uri"))
                .and_then(|h| h.get("uri"))
        })
        .and_then(Value::as_str);
    let root_id = config.get("root_id").and_then(Value::as_str);
    let by_module = module.and_then(Filter::from_module);
    let by_root = root_id.and_then(Filter::from_name);
    let mut findings = Vec::new();
    let filter = match (by_module, by_root) {
        (Some(m), Some(r)) if m != r => {
            findings.push(Finding::warning(
                Some("root_id"),
                format!(
                    "`{}` names {} but the module `{}` is {}; checked as {}",
                    root_id.unwrap_or_default(),
                    r.name(),
                    module.unwrap_or_default(),
                    m.name(),
                    m.name()
                ),
            ));
            m
        }
        (Some(f), _) | (None, Some(f)) => f,
        (None, None) => return None,
    };
    let location = match name {
        Some(name) => format!("http filter {name}"),
        None => path.to_owned(),
    };
    let configuration = config.get("configuration").unwrap_or(&Value::Null);
    let bytes = match plugin_configuration(configuration) {
        Ok(bytes) => bytes,
        Err(reason) => {
            findings.push(Finding::error(Some("configuration"), reason));
            Vec::new()
        }
    };
    let fail_open = match config.get("failure_policy").and_then(Value::as_str) {
        Some("FAIL_OPEN") => Some(FailOpen {
            path: "failure_policy",
            value: "FAIL_OPEN",
            instead: "failure_policy: FAIL_CLOSED",
        }),
        _ if config.get("fail_open").and_then(Value::as_bool) == Some(true) => Some(FailOpen {
            path: "fail_open",
            value: "true",
            instead: "failure_policy: FAIL_CLOSED",
        }),
        _ => None,
    };
    let vars = config
        .get("vm_config")
        .and_then(|v| v.get("environment_variables"));
    let mut env: Vec<EnvVar> = vars
        .and_then(|v| v.get("host_env_keys"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|name| EnvVar {
            name: name.to_owned(),
            inline: false,
        })
        .collect();
    env.extend(
        vars.and_then(|v| v.get("key_values"))
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(name, _)| EnvVar {
                name: name.clone(),
                inline: true,
            }),
    );
    Some(Instance {
        filter,
        location: Some(location),
        config: bytes,
        host: Host {
            fail_open,
            env: Some(env),
            env_setting: "vm_config.environment_variables",
        },
        findings,
    })
}

/// The bytes Envoy hands the plugin for `PluginConfig.configuration` (an `Any`): a `StringValue`
/// or `BytesValue` as is, a `Struct` serialized as JSON, nothing if unset.
fn plugin_configuration(configuration: &Value) -> Result<Vec<u8>, String> {
    if configuration.is_null() {
        return Ok(Vec::new());
    }
    let type_url = configuration
        .get("@type")
        .and_then(Value::as_str)
        .ok_or("has no `@type`")?;
    let value = configuration.get("value").unwrap_or(&Value::Null);
    let ty = type_url.rsplit('/').next().unwrap_or(type_url);
    match (ty, value) {
        ("google.protobuf.StringValue", Value::String(s)) => Ok(s.as_bytes().to_vec()),
        ("google.protobuf.StringValue" | "google.protobuf.BytesValue", Value::Null) => {
            Ok(Vec::new())
        }
        ("google.protobuf.BytesValue", Value::String(s)) => Base64::decode_vec(s)
            .map_err(|_| "value: a BytesValue holds base64, this is not base64".to_owned()),
        ("google.protobuf.Struct", Value::Object(_)) => Ok(to_json(value)),
        ("google.protobuf.Struct", Value::Null) => Ok(b"{}".to_vec()),
        ("google.protobuf.StringValue" | "google.protobuf.BytesValue" | "google.protobuf.Struct", _) => {
            Err(format!("value: has the wrong type for a {ty}"))
        }
        _ => Err(format!(
            "`{type_url}` is not a configuration a Palisade filter reads (use google.protobuf.StringValue or Struct)"
        )),
    }
}

/// `…/security-headers-bad.json` → security-headers: the one filter whose name is in the file name.
fn infer_from_file_name(path: &Path) -> Option<Filter> {
    let stem = path
        .file_stem()?
        .to_str()?
        .to_ascii_lowercase()
        .replace('-', "_");
    let mut found = Filter::ALL.into_iter().filter(|f| stem.contains(f.ident()));
    match (found.next(), found.next()) {
        (Some(f), None) => Some(f),
        _ => None,
    }
}

/// The one filter whose distinctive top-level fields the document uses.
fn infer_from_keys(doc: &Value) -> Option<Filter> {
    let keys = doc.as_object()?;
    let hints: [(Filter, &[&str]); 5] = [
        (
            Filter::SecurityHeaders,
            &[
                "preset",
                "hsts",
                "csp",
                "cookies",
                "https",
                "remove_response_headers",
                "strip_request_headers",
                "clear_site_data",
            ],
        ),
        (Filter::TokenAuth, &["providers"]),
        (
            Filter::RateLimit,
            &["limits", "store", "distributed", "auth_failure"],
        ),
        (Filter::InputValidation, &["body", "scrub", "query", "path"]),
        (
            Filter::Combined,
            &[
                "security_headers",
                "rate_limit",
                "token_auth",
                "input_validation",
            ],
        ),
    ];
    let mut found = hints
        .iter()
        .filter(|(_, names)| names.iter().any(|n| keys.contains_key(*n)))
        .map(|(f, _)| *f);
    match (found.next(), found.next()) {
        (Some(f), None) => Some(f),
        _ => None,
    }
}
