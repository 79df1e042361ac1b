//! Remote keys: where they are fetched from, when, and how a discovery document is read.
//!
//! The filter does the fetching (an HTTP call to an Envoy cluster from the root context) and
//! shares the result with the worker VMs; this module holds the parsed settings, the schedule
//! (refresh interval, exponential backoff after failures, a rate-limited refetch when a token
//! names an unknown `kid`) and the parsing of OpenID discovery documents. Times are injected in
//! milliseconds.

use crate::config::ConfigError;
use serde::Deserialize;
use serde_json::Value;

/// A JWKS or discovery endpoint behind an Envoy cluster, as written in the config.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    /// The Envoy cluster that serves it.
    pub cluster: String,
    /// The request path (with its query, if any). For `discovery` it defaults to the issuer's
    /// path + `/.well-known/openid-configuration`.
    #[serde(default)]
    pub path: Option<String>,
    /// The `:authority` to send; defaults to the issuer's host, else the cluster name.
    #[serde(default)]
    pub authority: Option<String>,
}

/// A compiled endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub cluster: String,
    pub path: String,
    pub authority: String,
}

/// How remote keys are refreshed, as written in the config (`refresh`).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RefreshSpec {
    /// Time between successful fetches, in seconds (default 600).
    #[serde(default = "default_interval")]
    pub interval_secs: u64,
    /// Timeout of one fetch, in milliseconds (default 5000).
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// First retry delay after a failure, in milliseconds (default 1000), doubled per failure.
    #[serde(default = "default_retry_base")]
    pub retry_base_ms: u64,
    /// The longest retry delay, in milliseconds (default 10000).
    #[serde(default = "default_retry_max")]
    pub retry_max_ms: u64,
    /// Least time between two refetches caused by unknown `kid`s, in seconds (default 30).
    #[serde(default = "default_kid_refetch")]
    pub unknown_kid_refetch_secs: u64,
    /// Largest JWKS or discovery document accepted, in bytes (default 64 KiB).
    #[serde(default = "default_max_bytes")]
    pub max_document_bytes: usize,
}

fn default_interval() -> u64 {
    600
}
fn default_timeout() -> u64 {
    5000
}
fn default_retry_base() -> u64 {
    1000
}
fn default_retry_max() -> u64 {
    10_000
}
fn default_kid_refetch() -> u64 {
    30
}
fn default_max_bytes() -> usize {
    65_536
}

impl Default for RefreshSpec {
    fn default() -> Self {
        RefreshSpec {
            interval_secs: default_interval(),
            timeout_ms: default_timeout(),
            retry_base_ms: default_retry_base(),
            retry_max_ms: default_retry_max(),
            unknown_kid_refetch_secs: default_kid_refetch(),
            max_document_bytes: default_max_bytes(),
        }
    }
}

/// Compiled refresh settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshSettings {
    /// Time between successful fetches (default 10 minutes, as Envoy's `cache_duration`).
    pub interval_ms: u64,
    /// Timeout of one fetch (default 5 s).
    pub timeout_ms: u64,
    /// First retry delay after a failure (default 1 s), doubled per failure...
    pub retry_base_ms: u64,
    /// ...up to this (default 10 s).
    pub retry_max_ms: u64,
    /// Least time between two refetches caused by unknown `kid`s (default 30 s).
    pub unknown_kid_refetch_ms: u64,
    /// Largest JWKS or discovery document accepted (default 64 KiB).
    pub max_document_bytes: usize,
}

impl RefreshSettings {
    pub fn compile(path: &str, spec: &RefreshSpec) -> Result<Self, ConfigError> {
        let positive = |field: &str, v: u64| {
            if v == 0 {
                Err(ConfigError::field(
                    format!("{path}.{field}"),
                    "must be greater than 0",
                ))
            } else {
                Ok(v)
            }
        };
        let retry_base_ms = positive("retry_base_ms", spec.retry_base_ms)?;
        let retry_max_ms = positive("retry_max_ms", spec.retry_max_ms)?;
        if retry_max_ms < retry_base_ms {
            return Err(ConfigError::field(
                format!("{path}.retry_max_ms"),
                "must be at least retry_base_ms",
            ));
        }
        if spec.max_document_bytes == 0 {
            return Err(ConfigError::field(
                format!("{path}.max_document_bytes"),
                "must be greater than 0",
            ));
        }
        Ok(RefreshSettings {
            interval_ms: positive("interval_secs", spec.interval_secs)?.saturating_mul(1000),
            timeout_ms: positive("timeout_ms", spec.timeout_ms)?,
            retry_base_ms,
            retry_max_ms,
            unknown_kid_refetch_ms: spec.unknown_kid_refetch_secs.saturating_mul(1000),
            max_document_bytes: spec.max_document_bytes,
        })
    }
}

impl Default for RefreshSettings {
    fn default() -> Self {
        let spec = RefreshSpec::default();
        RefreshSettings {
            interval_ms: spec.interval_secs * 1000,
            timeout_ms: spec.timeout_ms,
            retry_base_ms: spec.retry_base_ms,
            retry_max_ms: spec.retry_max_ms,
            unknown_kid_refetch_ms: spec.unknown_kid_refetch_secs * 1000,
            max_document_bytes: spec.max_document_bytes,
        }
    }
}

/// Where a provider's keys come from when they are not inline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteKeys {
    /// A JWKS document at a known endpoint.
    Jwks(Endpoint),
    /// The issuer's OpenID configuration, whose `jwks_uri` is then fetched from the same cluster.
    Discovery(Endpoint),
}

/// The host and path of an `http(s)://` URL.
pub fn split_url(url: &str) -> Option<(&str, &str)> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    Some((authority, path))
}

/// Compiles an endpoint. `default_path` is used when `path` is missing.
pub fn compile_endpoint(
    path: &str,
    spec: &EndpointSpec,
    issuer: Option<&str>,
    default_path: Option<String>,
) -> Result<Endpoint, ConfigError> {
    if spec.cluster.is_empty() {
        return Err(ConfigError::field(
            format!("{path}.cluster"),
            "cannot be empty",
        ));
    }
    let req_path = match (&spec.path, default_path) {
        (Some(p), _) => p.clone(),
        (None, Some(d)) => d,
        (None, None) => return Err(ConfigError::field(path, "missing field `path`")),
    };
    if !req_path.starts_with('/') {
        return Err(ConfigError::field(
            format!("{path}.path"),
            format!("expected a string starting with '/', got '{req_path}'"),
        ));
    }
    let authority = spec
        .authority
        .clone()
        .or_else(|| issuer.and_then(split_url).map(|(a, _)| a.to_owned()))
        .unwrap_or_else(|| spec.cluster.clone());
    Ok(Endpoint {
        cluster: spec.cluster.clone(),
        path: req_path,
        authority,
    })
}

/// The default discovery path for an issuer: its path + `/.well-known/openid-configuration`.
pub fn discovery_path(issuer: &str) -> Option<String> {
    let (_, path) = split_url(issuer)?;
    let path = path.split('?').next().unwrap_or("");
    Some(format!(
        "{}/.well-known/openid-configuration",
        path.trim_end_matches('/')
    ))
}

/// Why a discovery document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    #[error("the discovery document is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the discovery document is not a JSON object")]
    NotJson,
    #[error("the discovery document's issuer is '{found}', not the configured '{expected}'")]
    IssuerMismatch { expected: String, found: String },
    #[error("the discovery document has no usable 'jwks_uri'")]
    NoJwksUri,
}

/// Reads an OpenID discovery document: its `issuer` must be the configured one exactly (OpenID
/// Connect Discovery §4.3), and its `jwks_uri` gives the path (and authority) of the key set.
pub fn parse_discovery(
    bytes: &[u8],
    expected_issuer: &str,
    max_bytes: usize,
) -> Result<DiscoveredJwks, DiscoveryError> {
    if bytes.len() > max_bytes {
        return Err(DiscoveryError::TooLarge(max_bytes));
    }
    let doc: Value = serde_json::from_slice(bytes).map_err(|_| DiscoveryError::NotJson)?;
    let obj = doc.as_object().ok_or(DiscoveryError::NotJson)?;
    let issuer = obj.get("issuer").and_then(Value::as_str).unwrap_or("");
    if issuer != expected_issuer {
        return Err(DiscoveryError::IssuerMismatch {
            expected: expected_issuer.to_owned(),
            found: issuer.to_owned(),
        });
    }
    let uri = obj
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or(DiscoveryError::NoJwksUri)?;
    let (authority, path) = split_url(uri).ok_or(DiscoveryError::NoJwksUri)?;
    Ok(DiscoveredJwks {
        uri: uri.to_owned(),
        authority: authority.to_owned(),
        path: path.to_owned(),
    })
}

/// The key set location a discovery document gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredJwks {
    pub uri: String,
    pub authority: String,
    pub path: String,
}

/// When to fetch a provider's remote keys. Times are unix milliseconds.
#[derive(Debug, Clone)]
pub struct FetchSchedule {
    settings: RefreshSettings,
    next_attempt_ms: u64,
    consecutive_failures: u32,
    last_success_ms: Option<u64>,
    last_kid_refetch_ms: Option<u64>,
    in_flight: bool,
}

impl FetchSchedule {
    /// A schedule whose first fetch is due now.
    pub fn new(settings: RefreshSettings, now_ms: u64) -> Self {
        FetchSchedule {
            settings,
            next_attempt_ms: now_ms,
            consecutive_failures: 0,
            last_success_ms: None,
            last_kid_refetch_ms: None,
            in_flight: false,
        }
    }

    /// Whether a fetch should start now (none is in flight and one is due).
    pub fn due(&self, now_ms: u64) -> bool {
        !self.in_flight && now_ms >= self.next_attempt_ms
    }

    /// Call when a fetch starts.
    pub fn started(&mut self) {
        self.in_flight = true;
    }

    /// Call when a fetch gave a usable key set.
    pub fn succeeded(&mut self, now_ms: u64) {
        self.in_flight = false;
        self.consecutive_failures = 0;
        self.last_success_ms = Some(now_ms);
        self.next_attempt_ms = now_ms.saturating_add(self.settings.interval_ms);
    }

    /// Call when a fetch failed (no answer, bad status, unusable document): the next try comes
    /// after `retry_base_ms`, doubling per failure up to `retry_max_ms`. Keys already loaded stay.
    pub fn failed(&mut self, now_ms: u64) {
        self.in_flight = false;
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let shift = (self.consecutive_failures - 1).min(20);
        let delay = self
            .settings
            .retry_base_ms
            .saturating_mul(1u64 << shift)
            .min(self.settings.retry_max_ms);
        self.next_attempt_ms = now_ms.saturating_add(delay);
    }

    /// A token named a `kid` the keys lack: makes a fetch due now unless one was asked for this
    /// way less than `unknown_kid_refetch_ms` ago. Returns whether it did.
    pub fn unknown_kid(&mut self, now_ms: u64) -> bool {
        if let Some(last) = self.last_kid_refetch_ms {
            if now_ms.saturating_sub(last) < self.settings.unknown_kid_refetch_ms {
                return false;
            }
        }
        self.last_kid_refetch_ms = Some(now_ms);
        self.next_attempt_ms = self.next_attempt_ms.min(now_ms);
        true
    }

    /// When the next fetch is due.
    pub fn next_attempt_ms(&self) -> u64 {
        self.next_attempt_ms
    }

    /// Failures since the last success.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// When the last successful fetch ended, if any.
    pub fn last_success_ms(&self) -> Option<u64> {
        self.last_success_ms
    }
}
