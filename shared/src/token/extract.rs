//! Where tokens are found in a request, and how they are removed before the upstream.
//!
//! Sources, in the order a provider lists them: a header with a prefix (default
//! `Authorization: Bearer <token>`, the scheme compared case-insensitively), a query parameter,
//! or a cookie. The first source that holds a token is the provider's token.

use crate::config::ConfigError;
use crate::matcher::HeaderLookup;
use serde::Deserialize;
use std::sync::Arc;

/// The parts of a request the token filter looks at.
pub struct TokenRequest<'a> {
    /// `:method`.
    pub method: &'a str,
    /// `:path`, with its query string.
    pub path: &'a str,
    /// Request headers by lower-case name.
    pub headers: &'a dyn HeaderLookup,
}

/// A token source as written in the config: exactly one of `header` (with an optional `prefix`),
/// `query` or `cookie`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TokenSourceSpec {
    /// A request header that holds the token.
    #[serde(default)]
    pub header: Option<String>,
    /// What the header value starts with before the token, e.g. `Bearer ` (any case).
    #[serde(default)]
    pub prefix: Option<String>,
    /// A query parameter that holds the token.
    #[serde(default)]
    pub query: Option<String>,
    /// A cookie that holds the token.
    #[serde(default)]
    pub cookie: Option<String>,
}

/// Where a provider looks for its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// A header (lower-case name); the value must start with `prefix` (case-insensitive), if any.
    Header {
        name: Arc<str>,
        prefix: Option<String>,
    },
    /// A query parameter.
    Query(Arc<str>),
    /// A cookie.
    Cookie(Arc<str>),
}

/// Where a token was found, so the filter can remove it. The name is shared with the config
/// (one verification makes no copy of it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TokenLocation {
    Header(Arc<str>),
    Query(Arc<str>),
    Cookie(Arc<str>),
}

impl TokenSource {
    /// `Authorization: Bearer <token>`.
    pub fn bearer() -> Self {
        TokenSource::Header {
            name: Arc::from("authorization"),
            prefix: Some("Bearer ".to_owned()),
        }
    }

    pub fn compile(path: &str, spec: &TokenSourceSpec) -> Result<Self, ConfigError> {
        let nonempty = |field: &str, v: &str| {
            if v.is_empty() {
                Err(ConfigError::field(
                    format!("{path}.{field}"),
                    "cannot be empty",
                ))
            } else {
                Ok(())
            }
        };
        if spec.header.is_none() && spec.prefix.is_some() {
            return Err(ConfigError::field(
                format!("{path}.prefix"),
                "only a 'header' source has a prefix",
            ));
        }
        match (&spec.header, &spec.query, &spec.cookie) {
            (Some(h), None, None) => {
                nonempty("header", h)?;
                let name = crate::config::header_name(&format!("{path}.header"), h)?;
                Ok(TokenSource::Header {
                    name: name.into(),
                    prefix: spec.prefix.clone().filter(|p| !p.is_empty()),
                })
            }
            (None, Some(q), None) => {
                nonempty("query", q)?;
                Ok(TokenSource::Query(q.as_str().into()))
            }
            (None, None, Some(c)) => {
                nonempty("cookie", c)?;
                Ok(TokenSource::Cookie(c.as_str().into()))
            }
            _ => Err(ConfigError::field(
                path,
                "set exactly one of 'header', 'query' or 'cookie'",
            )),
        }
    }

    /// The token this source holds in the request, if any.
    pub fn extract(&self, request: &TokenRequest<'_>) -> Option<(String, TokenLocation)> {
        match self {
            TokenSource::Header { name, prefix } => {
                let value = request.headers.header(name)?.trim();
                let token = match prefix {
                    None => value,
                    Some(p) => {
                        let head = value.get(..p.len())?;
                        if !head.eq_ignore_ascii_case(p) {
                            return None;
                        }
                        value.get(p.len()..)?.trim()
                    }
                };
                nonempty_token(token).map(|t| (t, TokenLocation::Header(name.clone())))
            }
            TokenSource::Query(name) => {
                let query = request.path.split_once('?')?.1;
                let query = query.split('#').next().unwrap_or("");
                query
                    .split('&')
                    .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
                    .find(|(k, _)| percent_decode(k).as_deref() == Some(&**name))
                    .and_then(|(_, v)| percent_decode(v))
                    .and_then(|v| nonempty_token(&v))
                    .map(|t| (t, TokenLocation::Query(name.clone())))
            }
            TokenSource::Cookie(name) => {
                let header = request.headers.header("cookie")?;
                header
                    .split(';')
                    .filter_map(|c| c.trim().split_once('='))
                    .find(|(k, _)| k.trim() == &**name)
                    .map(|(_, v)| v.trim().trim_matches('"'))
                    .and_then(nonempty_token)
                    .map(|t| (t, TokenLocation::Cookie(name.clone())))
            }
        }
    }
}

fn nonempty_token(t: &str) -> Option<String> {
    if t.is_empty() {
        None
    } else {
        Some(t.to_owned())
    }
}

/// Decodes `%XX` escapes and `+` (as a space); `None` if an escape is invalid or not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The path with every `name=` query parameter removed (for a token found in the query).
pub fn strip_query_param(path: &str, name: &str) -> String {
    let Some((base, rest)) = path.split_once('?') else {
        return path.to_owned();
    };
    let (query, fragment) = match rest.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (rest, None),
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let key = pair.split_once('=').map_or(*pair, |(k, _)| k);
            !pair.is_empty() && percent_decode(key).as_deref() != Some(name)
        })
        .collect();
    let mut out = base.to_owned();
    if !kept.is_empty() {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// The `Cookie` header without the named cookie; `None` when no cookie is left.
pub fn strip_cookie(cookie_header: &str, name: &str) -> Option<String> {
    let kept: Vec<&str> = cookie_header
        .split(';')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .filter(|c| c.split_once('=').map_or(*c, |(k, _)| k).trim() != name)
        .collect();
    if kept.is_empty() {
        None
    } else {
        Some(kept.join("; "))
    }
}

/// Whether the request is a CORS preflight (`OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`).
pub fn is_cors_preflight(request: &TokenRequest<'_>) -> bool {
    request.method.eq_ignore_ascii_case("OPTIONS")
        && request.headers.header("origin").is_some()
        && request
            .headers
            .header("access-control-request-method")
            .is_some()
}
