//! Route matching: which rule of a filter's config applies to a request.
//!
//! Envoy's wasm filter has no per-route configuration, so Palisade puts the routes inside the
//! plugin config: each rule has a `match` on hosts (with `*.example.com` wildcards), path (exact,
//! prefix or regex), methods, Envoy route name (`xds.route_name`) and headers. Everything is
//! compiled once when the config loads; matching a request allocates nothing.

use crate::config::ConfigError;
use serde::Deserialize;

/// What a rule's `match` says, as written in the config.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    /// Hosts (`:authority` without port): `api.example.com`, `*.example.com`, `api.*`, or `*`.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// The request path without its query string.
    #[serde(default)]
    pub path: Option<PathSpec>,
    /// HTTP methods, e.g. `["GET", "HEAD"]`.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Envoy route names (the `xds.route_name` attribute).
    #[serde(default)]
    pub route_names: Vec<String>,
    /// Header conditions; all must hold.
    #[serde(default)]
    pub headers: Vec<HeaderSpec>,
}

/// A path condition: exactly one of `exact`, `prefix` or `regex` (a full-path match).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "PathMatch"))]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PathSpec {
    /// The path equals this (it starts with `/`).
    Exact(String),
    /// The path starts with this (it starts with `/`).
    Prefix(String),
    /// A regex the whole path matches.
    Regex(String),
}

/// A header condition: `present` (true or false), `exact`, `prefix` or `regex` on the value.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "HeaderMatch"))]
#[serde(deny_unknown_fields)]
pub struct HeaderSpec {
    /// The header name (any case).
    pub name: String,
    /// `true`: the header is present (the default condition); `false`: it is absent.
    #[serde(default)]
    pub present: Option<bool>,
    /// The value equals this.
    #[serde(default)]
    pub exact: Option<String>,
    /// The value starts with this.
    #[serde(default)]
    pub prefix: Option<String>,
    /// A regex the whole value matches.
    #[serde(default)]
    pub regex: Option<String>,
}

/// Read access to a request's headers by lower-case name.
pub trait HeaderLookup {
    fn header(&self, name: &str) -> Option<&str>;
}

impl HeaderLookup for [(String, String)] {
    fn header(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl HeaderLookup for Vec<(String, String)> {
    fn header(&self, name: &str) -> Option<&str> {
        self.as_slice().header(name)
    }
}

/// No headers at all (for requests built in tests or by filters that match on nothing else).
pub struct NoHeaders;

impl HeaderLookup for NoHeaders {
    fn header(&self, _name: &str) -> Option<&str> {
        None
    }
}

/// The parts of a request that rules can match on.
pub struct Request<'a> {
    /// `:authority` (may carry a port).
    pub authority: &'a str,
    /// `:path` (may carry a query string).
    pub path: &'a str,
    /// `:method`.
    pub method: &'a str,
    /// Envoy's route name, if the filter looked it up (see [`RouteMatch::needs_route_name`]).
    pub route_name: Option<&'a str>,
    /// The request headers.
    pub headers: &'a dyn HeaderLookup,
}

impl<'a> Request<'a> {
    /// A request with no headers and no route name.
    pub fn new(method: &'a str, authority: &'a str, path: &'a str) -> Self {
        Request {
            authority,
            path,
            method,
            route_name: None,
            headers: &NoHeaders,
        }
    }

    /// The path without its query string.
    pub fn path_only(&self) -> &'a str {
        path_without_query(self.path)
    }

    /// The host without its port, as written (compare case-insensitively).
    pub fn host(&self) -> &'a str {
        strip_port(self.authority)
    }
}

/// `/a/b?x=1` → `/a/b`.
pub fn path_without_query(path: &str) -> &str {
    match path.find(['?', '#']) {
        Some(i) => &path[..i],
        None => path,
    }
}

/// `example.com:8080` → `example.com`; `[::1]:80` → `[::1]`.
pub fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => &authority[..=end],
            None => authority,
        };
    }
    match authority.rfind(':') {
        Some(i) if authority[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &authority[..i],
        _ => authority,
    }
}

#[derive(Debug, Clone)]
enum HostMatch {
    Any,
    Exact(String),
    /// `*.example.com` → `.example.com`: any subdomain, not the apex.
    Suffix(String),
    /// `api.*` → `api.`
    Prefix(String),
}

impl HostMatch {
    fn compile(path: &str, pattern: &str) -> Result<Self, ConfigError> {
        let p = pattern.trim().to_ascii_lowercase();
        if p.is_empty() {
            return Err(ConfigError::field(path, "a host pattern cannot be empty"));
        }
        if p == "*" {
            return Ok(HostMatch::Any);
        }
        if let Some(rest) = p.strip_prefix("*.") {
            if rest.is_empty() || rest.contains('*') {
                return Err(ConfigError::field(path, format!("invalid host pattern '{pattern}': a wildcard may only stand alone at the start ('*.example.com') or the end ('api.*')")));
            }
            return Ok(HostMatch::Suffix(format!(".{rest}")));
        }
        if let Some(rest) = p.strip_suffix(".*") {
            if rest.is_empty() || rest.contains('*') {
                return Err(ConfigError::field(path, format!("invalid host pattern '{pattern}': a wildcard may only stand alone at the start ('*.example.com') or the end ('api.*')")));
            }
            return Ok(HostMatch::Prefix(format!("{rest}.")));
        }
        if p.contains('*') {
            return Err(ConfigError::field(path, format!("invalid host pattern '{pattern}': a wildcard may only stand alone at the start ('*.example.com') or the end ('api.*')")));
        }
        Ok(HostMatch::Exact(p))
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            HostMatch::Any => true,
            HostMatch::Exact(h) => host.eq_ignore_ascii_case(h),
            HostMatch::Suffix(s) => host.len() > s.len() && ends_with_ignore_case(host, s),
            HostMatch::Prefix(p) => {
                host.len() > p.len()
                    && host.is_char_boundary(p.len())
                    && host[..p.len()].eq_ignore_ascii_case(p)
            }
        }
    }
}

fn ends_with_ignore_case(s: &str, suffix: &str) -> bool {
    let start = s.len() - suffix.len();
    s.is_char_boundary(start) && s[start..].eq_ignore_ascii_case(suffix)
}

#[derive(Debug, Clone)]
enum PathMatch {
    Exact(String),
    Prefix(String),
    Regex(regex_lite::Regex),
}

fn check_path(path: &str, value: &str) -> Result<(), ConfigError> {
    if value.starts_with('/') {
        Ok(())
    } else {
        Err(ConfigError::field(
            path,
            format!("expected a string starting with '/', got '{value}'"),
        ))
    }
}

/// Compiles a regular expression that must match the whole input.
pub fn compile_full_regex(path: &str, pattern: &str) -> Result<regex_lite::Regex, ConfigError> {
    regex_lite::Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| ConfigError::field(path, format!("invalid regex '{pattern}': {e}")))
}

#[derive(Debug, Clone)]
enum ValueMatch {
    Present(bool),
    Exact(String),
    Prefix(String),
    Regex(regex_lite::Regex),
}

#[derive(Debug, Clone)]
struct HeaderMatch {
    name: String,
    value: ValueMatch,
}

/// A compiled `match`: every condition that is set must hold.
#[derive(Debug, Clone, Default)]
pub struct RouteMatch {
    hosts: Vec<HostMatch>,
    path: Option<PathMatch>,
    methods: Vec<String>,
    route_names: Vec<String>,
    headers: Vec<HeaderMatch>,
}

impl RouteMatch {
    /// Compiles a `match`; `path` is where it sits in the config, for errors.
    pub fn compile(path: &str, spec: &MatchSpec) -> Result<Self, ConfigError> {
        let hosts = spec
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| HostMatch::compile(&format!("{path}.hosts[{i}]"), h))
            .collect::<Result<Vec<_>, _>>()?;
        let path_match = match &spec.path {
            None => None,
            Some(PathSpec::Exact(p)) => {
                check_path(&format!("{path}.path.exact"), p)?;
                Some(PathMatch::Exact(p.clone()))
            }
            Some(PathSpec::Prefix(p)) => {
                check_path(&format!("{path}.path.prefix"), p)?;
                Some(PathMatch::Prefix(p.clone()))
            }
            Some(PathSpec::Regex(r)) => Some(PathMatch::Regex(compile_full_regex(
                &format!("{path}.path.regex"),
                r,
            )?)),
        };
        let mut methods = Vec::with_capacity(spec.methods.len());
        for (i, m) in spec.methods.iter().enumerate() {
            let valid = !m.is_empty() && m.bytes().all(|b| b.is_ascii_alphabetic());
            if !valid {
                return Err(ConfigError::field(
                    format!("{path}.methods[{i}]"),
                    format!("'{m}' is not an HTTP method"),
                ));
            }
            methods.push(m.to_ascii_uppercase());
        }
        let mut headers = Vec::with_capacity(spec.headers.len());
        for (i, h) in spec.headers.iter().enumerate() {
            let at = format!("{path}.headers[{i}]");
            if h.name.is_empty() {
                return Err(ConfigError::field(format!("{at}.name"), "cannot be empty"));
            }
            let set = [
                h.present.is_some(),
                h.exact.is_some(),
                h.prefix.is_some(),
                h.regex.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if set > 1 {
                return Err(ConfigError::field(
                    at,
                    "set only one of 'present', 'exact', 'prefix' or 'regex'",
                ));
            }
            let value = if let Some(v) = &h.exact {
                ValueMatch::Exact(v.clone())
            } else if let Some(v) = &h.prefix {
                ValueMatch::Prefix(v.clone())
            } else if let Some(r) = &h.regex {
                ValueMatch::Regex(compile_full_regex(&format!("{at}.regex"), r)?)
            } else {
                ValueMatch::Present(h.present.unwrap_or(true))
            };
            headers.push(HeaderMatch {
                name: h.name.to_ascii_lowercase(),
                value,
            });
        }
        Ok(RouteMatch {
            hosts,
            path: path_match,
            methods,
            route_names: spec.route_names.clone(),
            headers,
        })
    }

    /// Whether matching needs Envoy's route name (so filters fetch it only when it is used).
    pub fn needs_route_name(&self) -> bool {
        !self.route_names.is_empty()
    }

    /// Whether this matches the request.
    pub fn matches(&self, req: &Request<'_>) -> bool {
        if !self.methods.is_empty()
            && !self
                .methods
                .iter()
                .any(|m| m.eq_ignore_ascii_case(req.method))
        {
            return false;
        }
        if !self.hosts.is_empty() {
            let host = req.host();
            if !self.hosts.iter().any(|h| h.matches(host)) {
                return false;
            }
        }
        if let Some(p) = &self.path {
            let path = req.path_only();
            let ok = match p {
                PathMatch::Exact(e) => path == e,
                PathMatch::Prefix(pre) => path.starts_with(pre.as_str()),
                PathMatch::Regex(r) => r.is_match(path),
            };
            if !ok {
                return false;
            }
        }
        if !self.route_names.is_empty() {
            match req.route_name {
                Some(name) if self.route_names.iter().any(|r| r == name) => {}
                _ => return false,
            }
        }
        self.headers.iter().all(|h| {
            let value = req.headers.header(&h.name);
            match (&h.value, value) {
                (ValueMatch::Present(want), v) => v.is_some() == *want,
                (_, None) => false,
                (ValueMatch::Exact(e), Some(v)) => v == e,
                (ValueMatch::Prefix(p), Some(v)) => v.starts_with(p.as_str()),
                (ValueMatch::Regex(r), Some(v)) => r.is_match(v),
            }
        })
    }
}
