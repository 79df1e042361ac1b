//! Risky but legal settings. These run only on configurations the filter's own parser accepted,
//! and only look at a few settings in the JSON; they never decide whether a config is valid.

use crate::document::Host;
use crate::filter::Filter;
use crate::report::Finding;
use serde_json::Value;

/// The warnings for a configuration `config` (already accepted by `filter`'s parser), run by `host`.
pub fn warnings(filter: Filter, config: &[u8], host: &Host) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(fail_open) = &host.fail_open {
        let consequence = match filter {
            Filter::TokenAuth => "requests reach the upstream unauthenticated",
            Filter::SecurityHeaders => "responses leave without hardening",
            Filter::RateLimit => "requests are not limited",
            Filter::InputValidation => "requests reach the upstream unvalidated",
            Filter::Combined => {
                "requests reach the upstream unauthenticated, unlimited, unvalidated and unhardened"
            }
        };
        out.push(Finding::warning(
            Some(fail_open.path),
            format!(
                "`{}`: when the filter cannot run (a crash, a failed reload) the proxy skips it and {consequence}; use `{}`",
                fail_open.value, fail_open.instead
            ),
        ));
    }
    let doc: Value = match palisade::config::parse_json(config) {
        Ok(doc) => doc,
        Err(_) => return out,
    };
    match filter {
        Filter::TokenAuth => token(&doc, host, &mut out),
        Filter::RateLimit => {
            if str_at(&doc, &["store", "on_error"]) == Some("allow") {
                out.push(Finding::warning(
                    Some("store.on_error"),
                    "`allow`: when the shared-data store fails, requests are let through without any limit",
                ));
            }
        }
        Filter::SecurityHeaders => {
            if str_at(&doc, &["preset"]) == Some("none") && configures_nothing(&doc) {
                out.push(Finding::warning(
                    Some("preset"),
                    "`none` and nothing else configured: the filter adds no security header",
                ));
            }
        }
        Filter::Combined => sections(&doc, host, &mut out),
        Filter::InputValidation => {
            if str_at(&doc, &["mode"]) == Some("report") {
                out.push(Finding::warning(
                    Some("mode"),
                    "`report`: violations are only logged and counted, no request is refused",
                ));
            }
        }
    }
    out
}

/// The combined module: each section's warnings as that policy's own filter gives them, with the
/// section in the path (the fail-open warning is the module's, given once).
fn sections(doc: &Value, host: &Host, out: &mut Vec<Finding>) {
    let inner = Host {
        fail_open: None,
        ..host.clone()
    };
    for filter in Filter::POLICIES {
        let Some(section) = doc.get(filter.ident()).filter(|v| v.is_object()) else {
            continue;
        };
        let bytes = section.to_string().into_bytes();
        for mut finding in warnings(filter, &bytes, &inner) {
            finding.path = Some(match finding.path {
                Some(path) => format!("{}.{path}", filter.ident()),
                None => filter.ident().to_owned(),
            });
            out.push(finding);
        }
    }
}

fn str_at<'a>(doc: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(doc, |v, key| v.get(*key))
        .and_then(Value::as_str)
}

/// A security-headers document that sets nothing but the preset (rules only match, set nothing).
fn configures_nothing(doc: &Value) -> bool {
    let Some(map) = doc.as_object() else {
        return false;
    };
    map.iter().all(|(key, value)| match key.as_str() {
        "preset" => true,
        "rules" => value.as_array().is_some_and(|rules| {
            rules.iter().all(|r| {
                r.as_object()
                    .is_some_and(|r| r.keys().all(|k| k == "name" || k == "match"))
            })
        }),
        _ => false,
    })
}

fn token(doc: &Value, host: &Host, out: &mut Vec<Finding>) {
    let providers = doc.get("providers").and_then(Value::as_array);
    for (i, provider) in providers.into_iter().flatten().enumerate() {
        let name = provider.get("name").and_then(Value::as_str).unwrap_or("?");
        // An inline JWKS with a symmetric key: the HMAC secret is in the configuration.
        let jwks = match provider.get("jwks") {
            Some(Value::String(s)) => serde_json::from_str(s).ok(),
            Some(v) => Some(v.clone()),
            None => None,
        };
        let keys = jwks
            .as_ref()
            .and_then(|j| j.get("keys"))
            .and_then(Value::as_array);
        for (j, key) in keys.into_iter().flatten().enumerate() {
            if key.get("kty").and_then(Value::as_str) == Some("oct") {
                out.push(Finding::warning(
                    Some(&format!("providers[{i}].jwks.keys[{j}]")),
                    format!(
                        "an HMAC secret written inline (kty `oct`): whoever can read this configuration can mint tokens for provider `{name}`; put the secret in the VM environment and use `hmac_secret_env`"
                    ),
                ));
            }
        }
        // The HMAC secret's environment variable must reach the VM, from the host.
        if let (Some(var), Some(env)) = (
            provider.get("hmac_secret_env").and_then(Value::as_str),
            &host.env,
        ) {
            let path = format!("providers[{i}].hmac_secret_env");
            match env.iter().find(|e| e.name == var) {
                None => out.push(Finding::warning(
                    Some(&path),
                    format!(
                        "`{var}` is not passed to the VM ({}): every HS* token of provider `{name}` will be refused",
                        host.env_setting
                    ),
                )),
                Some(e) if e.inline => out.push(Finding::warning(
                    Some(&path),
                    format!(
                        "`{var}` has its value written inline in {}: the HMAC secret is readable by whoever reads this file; take it from the host environment",
                        host.env_setting
                    ),
                )),
                Some(_) => {}
            }
        }
    }
    // Top-level policy (routes inherit it): who gets through without a valid token.
    let rule_requires_token = doc
        .get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|r| r.get("requires").is_some() && str_at(r, &["requires", "mode"]) != Some("none"));
    if str_at(doc, &["requires", "mode"]) == Some("none") && !rule_requires_token {
        out.push(Finding::warning(
            Some("requires.mode"),
            "`none` and no rule requires a token: the filter lets every request through",
        ));
    }
    if doc.get("allow_missing_or_failed").and_then(Value::as_bool) == Some(true) {
        out.push(Finding::warning(
            Some("allow_missing_or_failed"),
            "`true` at the top level: requests with a missing or invalid token reach the upstream",
        ));
    } else if doc.get("allow_missing").and_then(Value::as_bool) == Some(true) {
        out.push(Finding::warning(
            Some("allow_missing"),
            "`true` at the top level: requests without a token reach the upstream",
        ));
    }
}
