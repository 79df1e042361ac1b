//! Which bucket a request counts against: key descriptors and their values.
//!
//! A limit's `key` names the request facts that identify a client; every fact that is set is part
//! of the key, so `{"client_ip": {}, "header": "x-tenant"}` counts each tenant from each address
//! separately:
//!
//! | field | value taken from the request |
//! |---|---|
//! | `client_ip: {ipv4_prefix, ipv6_prefix}` | the client address (trusted `X-Forwarded-For` hops, see [`crate::client_ip`]), masked to the prefix: `/32` and `/64` by default, since one IPv6 host usually owns a whole /64 |
//! | `header: "x-api-key"` | that request header |
//! | `query: "api_key"` | that query parameter (percent-decoded, first occurrence) |
//! | `cookie: "session"` | that cookie |
//! | `claim: "sub"` | the verified claim header the token filter sets, `x-palisade-claim-sub` |
//! | `path: true` | the request path without query string |
//! | `route: true` | Envoy's route name (`xds.route_name`) |
//! | `constant: "all"` | nothing: one bucket for every request (a global limit) |
//!
//! An input that is absent (or empty) makes the key *missing*; the limit's `missing` setting
//! says whether such requests skip the limit or share one "missing" bucket. Sharing is the
//! default, so leaving a header out is never a way around a limit.

use crate::client_ip::{client_ip, ClientIpConfig};
use crate::config::ConfigError;
use crate::matcher::Request;
use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// The request header carrying a verified claim: `x-palisade-claim-<claim>`.
pub const CLAIM_HEADER_PREFIX: &str = "x-palisade-claim-";

/// A key as written in the config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// The client address, masked to a prefix.
    #[serde(default)]
    pub client_ip: Option<IpPrefixSpec>,
    /// A request header's value.
    #[serde(default)]
    pub header: Option<String>,
    /// A query parameter's value (percent-decoded, first occurrence).
    #[serde(default)]
    pub query: Option<String>,
    /// A cookie's value.
    #[serde(default)]
    pub cookie: Option<String>,
    /// A verified claim, from the header the token filter sets (`x-palisade-claim-<claim>`).
    #[serde(default)]
    pub claim: Option<String>,
    /// The request path without its query string.
    #[serde(default)]
    pub path: bool,
    /// Envoy's route name (`xds.route_name`).
    #[serde(default)]
    pub route: bool,
    /// A constant: one bucket for every request (a global limit).
    #[serde(default)]
    pub constant: Option<String>,
}

impl KeySpec {
    /// The default key: the client address.
    pub fn client_ip() -> Self {
        KeySpec {
            client_ip: Some(IpPrefixSpec::default()),
            ..KeySpec::default()
        }
    }
}

/// How much of the client address identifies a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct IpPrefixSpec {
    /// The IPv4 prefix length that identifies a client (default 32).
    #[serde(default = "default_v4_prefix")]
    pub ipv4_prefix: u8,
    /// The IPv6 prefix length that identifies a client (default 64, one host's usual share).
    #[serde(default = "default_v6_prefix")]
    pub ipv6_prefix: u8,
}

fn default_v4_prefix() -> u8 {
    32
}

fn default_v6_prefix() -> u8 {
    64
}

impl Default for IpPrefixSpec {
    fn default() -> Self {
        IpPrefixSpec {
            ipv4_prefix: default_v4_prefix(),
            ipv6_prefix: default_v6_prefix(),
        }
    }
}

/// What a request without the key's input does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum MissingKey {
    /// All such requests share one bucket.
    #[default]
    Shared,
    /// The limit does not apply to the request.
    Skip,
}

/// One fact of a compiled key, with the name its entries carry (shared, not copied, by every
/// request's key value).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Part {
    name: Arc<str>,
    source: Source,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    ClientIp { v4: u8, v6: u8 },
    Header(String),
    Query(String),
    Cookie(String),
    Claim { header: String },
    Path,
    Route,
    Constant(Arc<str>),
}

impl Part {
    fn new(name: impl Into<Arc<str>>, source: Source) -> Self {
        Part {
            name: name.into(),
            source,
        }
    }
}

/// A compiled key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    parts: Vec<Part>,
}

/// What the filter must read from the host for a request. Each read that returns data costs
/// about a microsecond of host-call overhead in Envoy, so reads nothing needs are skipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reads {
    /// The request headers (pseudo-headers included: path, method, authority).
    pub headers: bool,
    /// The downstream peer address (`source.address`).
    pub peer: bool,
}

impl std::ops::BitOr for Reads {
    type Output = Reads;
    fn bitor(self, other: Reads) -> Reads {
        Reads {
            headers: self.headers || other.headers,
            peer: self.peer || other.peer,
        }
    }
}

/// One fact of a key's value, named as Envoy rate-limit descriptors name them
/// (`remote_address`, `generic_key`, ...) so an RLS backend's config reads naturally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    pub name: Arc<str>,
    pub value: Arc<str>,
}

/// The value of a key for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyValue {
    Present(Vec<KeyEntry>),
    /// An input was absent; the request counts in the limit's "missing" bucket.
    Missing,
}

impl KeyValue {
    /// Unambiguous bytes for hashing (length-prefixed fields, a distinct tag for "missing").
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_bytes(&mut out);
        out
    }

    /// Appends [`KeyValue::to_bytes`] to `out`.
    pub fn write_bytes(&self, out: &mut Vec<u8>) {
        match self {
            KeyValue::Missing => out.push(0),
            KeyValue::Present(entries) => {
                out.push(1);
                for e in entries {
                    for field in [&*e.name, &*e.value] {
                        out.extend_from_slice(&(field.len() as u32).to_le_bytes());
                        out.extend_from_slice(field.as_bytes());
                    }
                }
            }
        }
    }

    /// `name=value` pairs joined by `,` (for logs in tests; never logged by the filter).
    pub fn describe(&self) -> String {
        match self {
            KeyValue::Missing => "(missing)".to_owned(),
            KeyValue::Present(entries) => entries
                .iter()
                .map(|e| format!("{}={}", e.name, e.value))
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

/// The request facts a key can read.
pub struct RequestFacts<'a> {
    pub request: &'a Request<'a>,
    /// The downstream peer address (`source.address`), e.g. `203.0.113.7:51234`.
    pub downstream: Option<&'a str>,
    /// How many `X-Forwarded-For` hops are trusted.
    pub client_ip: &'a ClientIpConfig,
}

fn check_non_empty(path: &str, value: &str) -> Result<String, ConfigError> {
    if value.is_empty() {
        Err(ConfigError::field(path, "cannot be empty"))
    } else {
        Ok(value.to_owned())
    }
}

impl Key {
    /// Compiles a key; `path` is where it sits in the config.
    pub fn compile(path: &str, spec: &KeySpec) -> Result<Self, ConfigError> {
        let mut parts = Vec::new();
        if let Some(ip) = spec.client_ip {
            if ip.ipv4_prefix > 32 {
                return Err(ConfigError::field(
                    format!("{path}.client_ip.ipv4_prefix"),
                    format!("{} is not an IPv4 prefix length (0-32)", ip.ipv4_prefix),
                ));
            }
            if ip.ipv6_prefix > 128 {
                return Err(ConfigError::field(
                    format!("{path}.client_ip.ipv6_prefix"),
                    format!("{} is not an IPv6 prefix length (0-128)", ip.ipv6_prefix),
                ));
            }
            parts.push(Part::new(
                "remote_address",
                Source::ClientIp {
                    v4: ip.ipv4_prefix,
                    v6: ip.ipv6_prefix,
                },
            ));
        }
        if let Some(h) = &spec.header {
            let header = crate::config::header_name(&format!("{path}.header"), h)?;
            parts.push(Part::new(
                Arc::<str>::from(header.as_str()),
                Source::Header(header),
            ));
        }
        if let Some(q) = &spec.query {
            let query = check_non_empty(&format!("{path}.query"), q)?;
            parts.push(Part::new(format!("query.{query}"), Source::Query(query)));
        }
        if let Some(c) = &spec.cookie {
            let cookie = check_non_empty(&format!("{path}.cookie"), c)?;
            parts.push(Part::new(
                format!("cookie.{cookie}"),
                Source::Cookie(cookie),
            ));
        }
        if let Some(c) = &spec.claim {
            let at = format!("{path}.claim");
            let claim = check_non_empty(&at, c)?;
            let header = crate::config::header_name(&at, &format!("{CLAIM_HEADER_PREFIX}{claim}"))?;
            parts.push(Part::new(
                format!("claim.{claim}"),
                Source::Claim { header },
            ));
        }
        if spec.path {
            parts.push(Part::new("path", Source::Path));
        }
        if spec.route {
            parts.push(Part::new("route", Source::Route));
        }
        if let Some(c) = &spec.constant {
            let constant = check_non_empty(&format!("{path}.constant"), c)?;
            parts.push(Part::new("generic_key", Source::Constant(constant.into())));
        }
        if parts.is_empty() {
            return Err(ConfigError::field(
                path,
                "set at least one of 'client_ip', 'header', 'query', 'cookie', 'claim', 'path', 'route' or 'constant'",
            ));
        }
        Ok(Key { parts })
    }

    /// Whether the key reads Envoy's route name.
    pub fn needs_route_name(&self) -> bool {
        self.parts.iter().any(|p| p.source == Source::Route)
    }

    /// What extracting this key reads from the request.
    pub fn reads(&self, client_ip: &ClientIpConfig) -> Reads {
        self.parts.iter().fold(Reads::default(), |r, part| {
            r | match &part.source {
                Source::ClientIp { .. } => Reads {
                    headers: client_ip.trusted_hops > 0,
                    peer: true,
                },
                Source::Header(_)
                | Source::Query(_)
                | Source::Cookie(_)
                | Source::Claim { .. }
                | Source::Path => Reads {
                    headers: true,
                    peer: false,
                },
                Source::Route | Source::Constant(_) => Reads::default(),
            }
        })
    }

    /// Whether the key is the same for every request (`constant` alone).
    pub fn is_constant(&self) -> bool {
        (self.parts.iter()).all(|part| matches!(part.source, Source::Constant(_)))
    }

    /// The key's value for a request (names shared with the compiled key; one allocation per
    /// value read from the request).
    pub fn extract(&self, facts: &RequestFacts<'_>) -> KeyValue {
        let mut entries = Vec::with_capacity(self.parts.len());
        let headers = facts.request.headers;
        for part in &self.parts {
            let value: Option<Arc<str>> = match &part.source {
                Source::ClientIp { v4, v6 } => {
                    let xff = headers.header("x-forwarded-for");
                    client_ip(facts.client_ip, xff, facts.downstream).map(|ip| mask(ip, *v4, *v6))
                }
                Source::Header(name) => headers.header(name).map(Arc::from),
                Source::Query(name) => query_param(facts.request.path, name).map(Arc::from),
                Source::Cookie(name) => headers
                    .header("cookie")
                    .and_then(|c| cookie(c, name))
                    .map(Arc::from),
                Source::Claim { header } => headers.header(header).map(Arc::from),
                Source::Path => Some(Arc::from(facts.request.path_only())),
                Source::Route => facts.request.route_name.map(Arc::from),
                Source::Constant(c) => Some(Arc::clone(c)),
            };
            match value {
                Some(value) if !value.is_empty() => entries.push(KeyEntry {
                    name: Arc::clone(&part.name),
                    value,
                }),
                _ => return KeyValue::Missing,
            }
        }
        KeyValue::Present(entries)
    }
}

/// `ip` masked to its prefix, written `address/prefix` (IPv4-mapped IPv6 counts as IPv4).
pub fn mask(ip: IpAddr, v4_prefix: u8, v6_prefix: u8) -> Arc<str> {
    use std::io::Write;
    // Written on the stack (the longest, a full IPv6 address and `/128`, is 43 bytes): a key
    // value is built for every request.
    let mut out = std::io::Cursor::new([0u8; 64]);
    let written = match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let prefix = u32::from(v4_prefix.min(32));
            let masked = if prefix == 0 {
                0
            } else {
                bits & (u32::MAX << (32 - prefix))
            };
            write!(out, "{}/{prefix}", Ipv4Addr::from(masked))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let prefix = u32::from(v6_prefix.min(128));
            let masked = if prefix == 0 {
                0
            } else {
                bits & (u128::MAX << (128 - prefix))
            };
            write!(out, "{}/{prefix}", Ipv6Addr::from(masked))
        }
    };
    let len = usize::try_from(out.position()).unwrap_or(0);
    let text = out
        .get_ref()
        .get(..len)
        .filter(|_| written.is_ok())
        .and_then(|b| std::str::from_utf8(b).ok())
        .unwrap_or_default();
    Arc::from(text)
}

/// The first value of query parameter `name` in `path`, percent-decoded (`+` is a space).
pub fn query_param(path: &str, name: &str) -> Option<String> {
    let without_fragment = path.split('#').next().unwrap_or(path);
    let query = without_fragment.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == name).then(|| percent_decode(v))
    })
}

/// The value of cookie `name` in a `Cookie` header (names are case-sensitive).
pub fn cookie<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k.trim() == name).then(|| v.trim())
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = match (bytes.get(i + 1), bytes.get(i + 2)) {
                    (Some(&hi), Some(&lo)) => {
                        hex_value(hi).zip(hex_value(lo)).map(|(h, l)| h * 16 + l)
                    }
                    _ => None,
                };
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}
