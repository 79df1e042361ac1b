//! `Set-Cookie` hardening: add `Secure`, `HttpOnly` and `SameSite` where the upstream left them out.

use serde::Deserialize;

/// The `SameSite` value to add.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum SameSite {
    Lax,
    Strict,
    None,
}

impl SameSite {
    fn as_str(self) -> &'static str {
        match self {
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
            SameSite::None => "None",
        }
    }
}

/// What to add to each cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieRules {
    pub secure: bool,
    pub http_only: bool,
    pub same_site: Option<SameSite>,
}

/// Returns the hardened `Set-Cookie` value, or `None` when nothing needs adding.
///
/// Attributes already present are kept as the upstream wrote them (a `SameSite=Strict` is not
/// weakened to `Lax`). `SameSite=None` cookies always get `Secure`, which browsers require.
pub fn harden(set_cookie: &str, rules: &CookieRules) -> Option<String> {
    let mut has_secure = false;
    let mut has_http_only = false;
    let mut same_site: Option<&str> = None;
    for attr in set_cookie.split(';').skip(1) {
        let attr = attr.trim();
        let (name, value) = match attr.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (attr, None),
        };
        if name.eq_ignore_ascii_case("secure") {
            has_secure = true;
        } else if name.eq_ignore_ascii_case("httponly") {
            has_http_only = true;
        } else if name.eq_ignore_ascii_case("samesite") {
            same_site = value;
        }
    }
    let add_same_site = match (same_site, rules.same_site) {
        (None, Some(s)) => Some(s),
        _ => None,
    };
    let effective_none = match same_site {
        Some(v) => v.eq_ignore_ascii_case("none"),
        None => add_same_site == Some(SameSite::None),
    };
    let add_secure = !has_secure && (rules.secure || effective_none);
    let add_http_only = !has_http_only && rules.http_only;
    if !add_secure && !add_http_only && add_same_site.is_none() {
        return None;
    }
    let mut out = String::with_capacity(set_cookie.len() + 40);
    out.push_str(kept_part(set_cookie));
    if add_secure {
        out.push_str("; Secure");
    }
    if add_http_only {
        out.push_str("; HttpOnly");
    }
    if let Some(s) = add_same_site {
        out.push_str("; SameSite=");
        out.push_str(s.as_str());
    }
    Some(out)
}

/// What hardening keeps of a `Set-Cookie` value before the attributes it adds: the value without
/// trailing whitespace and semicolons.
pub fn kept_part(set_cookie: &str) -> &str {
    set_cookie.trim_end().trim_end_matches(';')
}

/// The cookie name of a `Set-Cookie` value (`id=abc; Path=/` → `id`).
pub fn cookie_name(set_cookie: &str) -> &str {
    let first = set_cookie.split(';').next().unwrap_or("");
    first.split('=').next().unwrap_or("").trim()
}
