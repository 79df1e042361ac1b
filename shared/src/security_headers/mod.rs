//! Security-header hardening: what the `security-headers` filter decides.
//!
//! Request side: strip headers clients must not set (by default `x-palisade-*`, which the token
//! filter sets after verification), and enforce HTTPS (redirect or reject, with exempt paths).
//! Response side: add the preset's headers (each overridable, disableable, overwrite or
//! add-if-absent), HSTS only on HTTPS unless forced, CSP optionally only on HTML, remove leaking
//! headers (OWASP's list plus configured names), and harden every `Set-Cookie` separately.

pub mod config;
pub mod cookie;
pub mod preset;

use crate::config::{from_value, is_header_name, ConfigError};
use crate::header_map::HeaderList;
use crate::matcher::RouteMatch;
use crate::response::ErrorResponse;
use crate::rules::RuleSet;
use config::{ClearSiteData, HeaderOverride, HttpsMode, PolicyConfig, Toggle};
use cookie::CookieRules;
use preset::Mode;
use serde_json::{Map, Value};

/// The filter's name in metrics and logs.
pub const FILTER: &str = "security_headers";

/// Headers with their own option, which `headers` may not set.
const DEDICATED: &[(&str, &str)] = &[
    ("strict-transport-security", "use the 'hsts' option"),
    ("content-security-policy", "use the 'csp' option"),
    (
        "content-security-policy-report-only",
        "use 'csp.report_only'",
    ),
    (
        "set-cookie",
        "cookies come from the upstream; use 'cookies' to harden them",
    ),
    (
        "clear-site-data",
        "use the 'clear_site_data' option on the route that needs it",
    ),
];

/// When a header applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    Always,
    HttpsOnly,
    HtmlOnly,
}

#[derive(Debug, Clone)]
struct AddHeader {
    name: String,
    value: String,
    mode: Mode,
    when: When,
}

/// One compiled policy (the default, or a rule's).
#[derive(Debug, Clone)]
pub struct Policy {
    add: Vec<AddHeader>,
    /// Sorted, lower-case.
    remove: Vec<String>,
    cookies: Option<CookiePolicy>,
    strip_names: Vec<String>,
    strip_prefixes: Vec<String>,
    https: HttpsPolicy,
}

#[derive(Debug, Clone)]
struct CookiePolicy {
    rules: CookieRules,
    exceptions: Vec<(String, CookieRules)>,
}

#[derive(Debug, Clone)]
struct HttpsPolicy {
    mode: HttpsMode,
    exempt: Vec<RouteMatch>,
    redirect_status: u32,
    reject_status: u32,
    port: Option<u16>,
    trust_forwarded_proto: bool,
}

/// The whole filter config: a default policy and per-route rules.
#[derive(Debug)]
pub struct SecurityHeaders {
    pub rules: RuleSet<Policy>,
}

impl SecurityHeaders {
    /// Parses and compiles the filter's configuration bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ConfigError> {
        let doc = crate::config::parse_json(bytes)?;
        let Value::Object(map) = doc else {
            return Err(ConfigError::field(
                "",
                "the configuration must be a JSON object",
            ));
        };
        Self::from_document(&map)
    }

    /// Compiles a parsed configuration document.
    pub fn from_document(doc: &Map<String, Value>) -> Result<Self, ConfigError> {
        let rules = RuleSet::from_document(doc, &[], |value| {
            let raw: PolicyConfig = from_value(value)?;
            Policy::compile(&raw)
        })?;
        Ok(SecurityHeaders { rules })
    }
}

/// What the filter does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestAction {
    /// Forward it.
    Continue,
    /// Send a redirect to HTTPS.
    Redirect { status: u32, location: String },
    /// Refuse it.
    Reject(ErrorResponse),
}

/// Where response headers are written (the filter implements it over the host).
pub trait HeaderSink {
    /// Replaces every value of `name` with `value`.
    fn set(&mut self, name: &str, value: &str);
    /// Appends a value of `name` (for `set-cookie`, which must never be merged).
    fn add(&mut self, name: &str, value: &str);
    /// Removes every value of `name`.
    fn remove(&mut self, name: &str);
    /// Appends a value given as bytes: a `Set-Cookie` written back from what the upstream sent,
    /// which need not be UTF-8.
    fn add_bytes(&mut self, name: &str, value: &[u8]);
}

/// What hardening a response did (for metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hardened {
    pub headers_set: u32,
    pub headers_removed: u32,
    pub cookies_hardened: u32,
}

/// The facts about a request the policy needs.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// `:scheme`.
    pub scheme: Option<&'a str>,
    /// `x-forwarded-proto`.
    pub forwarded_proto: Option<&'a str>,
    pub authority: &'a str,
    /// `:path`, with the query.
    pub path: &'a str,
    pub method: &'a str,
}

impl Policy {
    fn compile(raw: &PolicyConfig) -> Result<Self, ConfigError> {
        let hardens = preset::hardens_by_default(raw.preset);
        let mut add: Vec<AddHeader> = preset::headers(raw.preset)
            .iter()
            .map(|(name, value, mode)| AddHeader {
                name: (*name).to_owned(),
                value: (*value).to_owned(),
                mode: *mode,
                when: When::Always,
            })
            .collect();

        for (name, setting) in &raw.headers {
            let at = format!("headers.{name}");
            let lname = name.to_ascii_lowercase();
            if !is_header_name(&lname) {
                return Err(ConfigError::field(at, "is not a valid header name"));
            }
            if let Some((_, hint)) = DEDICATED.iter().find(|(n, _)| *n == lname) {
                return Err(ConfigError::field(
                    at,
                    format!("cannot be set here: {hint}"),
                ));
            }
            add.retain(|h| h.name != lname);
            let Some(setting) = setting else { continue };
            let (value, mode) = match setting {
                HeaderOverride::Value(v) => (v.clone(), None),
                HeaderOverride::Full(s) => (s.value.clone(), s.mode),
            };
            check_value(&at, &value)?;
            let mode = mode.unwrap_or_else(|| {
                preset::headers(raw.preset)
                    .iter()
                    .find(|(n, _, _)| *n == lname)
                    .map(|(_, _, m)| *m)
                    .unwrap_or_default()
            });
            add.push(AddHeader {
                name: lname,
                value,
                mode,
                when: When::Always,
            });
        }

        // HSTS.
        let hsts = match &raw.hsts {
            Toggle::Off => None,
            Toggle::On(h) => Some(h.clone()),
            Toggle::Default => hardens.then(config::HstsConfig::default),
        };
        if let Some(h) = hsts {
            if h.preload && (h.max_age < 31_536_000 || !h.include_subdomains) {
                return Err(ConfigError::field(
                    "hsts.preload",
                    "preload needs max_age of at least 31536000 and include_subdomains: true",
                ));
            }
            let mut value = format!("max-age={}", h.max_age);
            if h.include_subdomains {
                value.push_str("; includeSubDomains");
            }
            if h.preload {
                value.push_str("; preload");
            }
            add.push(AddHeader {
                name: "strict-transport-security".into(),
                value,
                mode: Mode::Overwrite,
                when: if h.force {
                    When::Always
                } else {
                    When::HttpsOnly
                },
            });
        }

        // CSP.
        let csp = raw.csp.clone().unwrap_or_default();
        let when = if csp.html_only {
            When::HtmlOnly
        } else {
            When::Always
        };
        let mode = csp.mode.unwrap_or_default();
        let policy = match &csp.policy {
            Some(p) => p.clone(),
            None => preset::csp(raw.preset).map(str::to_owned),
        };
        if let Some(p) = policy {
            check_value("csp.policy", &p)?;
            add.push(AddHeader {
                name: "content-security-policy".into(),
                value: p,
                mode,
                when,
            });
        }
        if let Some(p) = &csp.report_only {
            check_value("csp.report_only", p)?;
            add.push(AddHeader {
                name: "content-security-policy-report-only".into(),
                value: p.clone(),
                mode,
                when,
            });
        }

        // Clear-Site-Data, only where configured.
        let clear = match &raw.clear_site_data {
            None | Some(ClearSiteData::All(false)) => None,
            Some(ClearSiteData::All(true)) => Some(preset::CLEAR_SITE_DATA_ALL.to_owned()),
            Some(ClearSiteData::Value(v)) => {
                check_value("clear_site_data", v)?;
                Some(v.clone())
            }
        };
        if let Some(value) = clear {
            add.push(AddHeader {
                name: "clear-site-data".into(),
                value,
                mode: Mode::Overwrite,
                when: When::Always,
            });
        }

        // Removal.
        let removal = raw.remove_response_headers.clone().unwrap_or_default();
        let mut remove: Vec<String> = Vec::new();
        if removal.defaults.unwrap_or(hardens) {
            remove.extend(preset::OWASP_REMOVE.iter().map(|s| (*s).to_owned()));
        }
        for (i, name) in removal.names.iter().enumerate() {
            let lname = name.to_ascii_lowercase();
            if !is_header_name(&lname) {
                return Err(ConfigError::field(
                    format!("remove_response_headers.names[{i}]"),
                    "is not a valid header name",
                ));
            }
            if lname.starts_with(':') || lname == "content-type" || lname == "content-length" {
                return Err(ConfigError::field(
                    format!("remove_response_headers.names[{i}]"),
                    format!("'{lname}' cannot be removed"),
                ));
            }
            remove.push(lname);
        }
        // A header the policy adds is not also removed.
        remove.retain(|r| !add.iter().any(|a| &a.name == r));
        remove.sort();
        remove.dedup();

        // Cookies.
        let cookie_cfg = match &raw.cookies {
            Toggle::Off => None,
            Toggle::On(c) => Some(c.clone()),
            Toggle::Default => hardens.then(config::CookieConfig::default),
        };
        let cookies = cookie_cfg.map(|c| {
            let rules = CookieRules {
                secure: c.secure,
                http_only: c.http_only,
                same_site: c.same_site,
            };
            let exceptions = c
                .exceptions
                .iter()
                .map(|e| {
                    let only_name =
                        e.secure.is_none() && e.http_only.is_none() && e.same_site.is_none();
                    let r = if only_name {
                        CookieRules {
                            secure: false,
                            http_only: false,
                            same_site: None,
                        }
                    } else {
                        CookieRules {
                            secure: e.secure.unwrap_or(rules.secure),
                            http_only: e.http_only.unwrap_or(rules.http_only),
                            same_site: match e.same_site {
                                Some(s) => s,
                                None => rules.same_site,
                            },
                        }
                    };
                    (e.name.clone(), r)
                })
                .collect();
            CookiePolicy { rules, exceptions }
        });

        // Request-side stripping.
        let strip = raw.strip_request_headers.clone().unwrap_or_default();
        let strip_names: Vec<String> = strip.names.iter().map(|n| n.to_ascii_lowercase()).collect();
        let strip_prefixes: Vec<String> = strip
            .prefixes
            .unwrap_or_else(|| vec!["x-palisade-".to_owned()])
            .iter()
            .map(|p| p.to_ascii_lowercase())
            .collect();
        for (i, n) in strip_names.iter().enumerate() {
            if n.starts_with(':') || n == "host" || !is_header_name(n) {
                return Err(ConfigError::field(
                    format!("strip_request_headers.names[{i}]"),
                    format!("'{n}' cannot be stripped"),
                ));
            }
        }
        for (i, p) in strip_prefixes.iter().enumerate() {
            if p.is_empty() || p.starts_with(':') {
                return Err(ConfigError::field(
                    format!("strip_request_headers.prefixes[{i}]"),
                    "a prefix cannot be empty or a pseudo-header",
                ));
            }
        }

        // HTTPS enforcement.
        let https_raw = raw.https.clone().unwrap_or_default();
        let redirect_status = https_raw.redirect_status.unwrap_or(308);
        if ![301, 302, 307, 308].contains(&redirect_status) {
            return Err(ConfigError::field(
                "https.redirect_status",
                format!("expected 301, 302, 307 or 308, got {redirect_status}"),
            ));
        }
        let reject_status = https_raw.reject_status.unwrap_or(403);
        if !(400..=599).contains(&reject_status) {
            return Err(ConfigError::field(
                "https.reject_status",
                format!("expected a 4xx or 5xx status, got {reject_status}"),
            ));
        }
        let exempt = https_raw
            .exempt
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let spec = crate::matcher::MatchSpec {
                    path: Some(p.clone()),
                    ..Default::default()
                };
                RouteMatch::compile(&format!("https.exempt[{i}]"), &spec).map_err(|e| {
                    // The matcher names `.path.<kind>`; the user wrote `exempt[i].<kind>`.
                    match e {
                        ConfigError::Field { path, reason } => ConfigError::Field {
                            path: path.replace(".path.", "."),
                            reason,
                        },
                        other => other,
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let https = HttpsPolicy {
            mode: https_raw.mode,
            exempt,
            redirect_status,
            reject_status,
            port: https_raw.port,
            trust_forwarded_proto: https_raw.trust_forwarded_proto.unwrap_or(true),
        };

        Ok(Policy {
            add,
            remove,
            cookies,
            strip_names,
            strip_prefixes,
            https,
        })
    }

    /// Whether the request arrived over HTTPS.
    pub fn is_https(&self, facts: &RequestFacts<'_>) -> bool {
        let scheme = facts
            .scheme
            .is_some_and(|s| s.eq_ignore_ascii_case("https"));
        let forwarded = self.https.trust_forwarded_proto
            && facts.forwarded_proto.is_some_and(|p| {
                // With several proxies the header can be a list; the first is the client's.
                p.split(',')
                    .next()
                    .is_some_and(|first| first.trim().eq_ignore_ascii_case("https"))
            });
        scheme || forwarded
    }

    /// Decides what to do with a request (HTTPS enforcement).
    pub fn check_request(&self, facts: &RequestFacts<'_>) -> RequestAction {
        if self.https.mode == HttpsMode::Off || self.is_https(facts) {
            return RequestAction::Continue;
        }
        let req = crate::matcher::Request::new(facts.method, facts.authority, facts.path);
        if self.https.exempt.iter().any(|m| m.matches(&req)) {
            return RequestAction::Continue;
        }
        match self.https.mode {
            HttpsMode::Off => RequestAction::Continue,
            HttpsMode::Reject => RequestAction::Reject(ErrorResponse::new(
                self.https.reject_status,
                "https_required",
                "this endpoint is only served over HTTPS",
            )),
            HttpsMode::Redirect => {
                let host = crate::matcher::strip_port(facts.authority);
                if host.is_empty() || !is_safe_host(host) {
                    return RequestAction::Reject(ErrorResponse::new(
                        400,
                        "bad_request",
                        "the request has no valid host to redirect to",
                    ));
                }
                let port = match self.https.port {
                    Some(443) | None => String::new(),
                    Some(p) => format!(":{p}"),
                };
                let path = if facts.path.starts_with('/') {
                    facts.path
                } else {
                    "/"
                };
                RequestAction::Redirect {
                    status: self.https.redirect_status,
                    location: format!("https://{host}{port}{path}"),
                }
            }
        }
    }

    /// The request headers to remove before the upstream sees them.
    pub fn headers_to_strip<'a>(
        &'a self,
        headers: &'a HeaderList,
    ) -> impl Iterator<Item = &'a str> + 'a {
        headers.iter().filter_map(move |(name, _)| {
            let strip = self
                .strip_names
                .iter()
                .any(|n| name.eq_ignore_ascii_case(n))
                || self
                    .strip_prefixes
                    .iter()
                    .any(|p| starts_with_ignore_case(name, p));
            strip.then_some(name)
        })
    }

    /// Hardens a response: `headers` are the response headers as the upstream sent them.
    pub fn harden_response(
        &self,
        list: &HeaderList,
        https: bool,
        sink: &mut impl HeaderSink,
    ) -> Hardened {
        let mut done = Hardened::default();
        let html = list.get("content-type").is_some_and(is_html);

        // Remove leaking headers, each name once.
        let mut last_removed: Option<&str> = None;
        for (lname, _) in list.iter() {
            if last_removed == Some(lname) {
                continue;
            }
            if self
                .remove
                .binary_search_by(|r| r.as_str().cmp(lname))
                .is_ok()
                || (lname.bytes().any(|b| b.is_ascii_uppercase())
                    && self.remove.iter().any(|r| r.eq_ignore_ascii_case(lname)))
            {
                sink.remove(lname);
                done.headers_removed += 1;
                last_removed = Some(lname);
            }
        }

        for h in &self.add {
            let applies = match h.when {
                When::Always => true,
                When::HttpsOnly => https,
                When::HtmlOnly => html,
            };
            if !applies {
                continue;
            }
            let present = list.get(&h.name).is_some();
            if h.mode == Mode::AddIfAbsent && present {
                continue;
            }
            // A header the response does not carry is added: the host then has nothing to look
            // up and replace (`compile` keeps one entry per name, so nothing is added twice).
            if present {
                sink.set(&h.name, &h.value);
            } else {
                sink.add(&h.name, &h.value);
            }
            done.headers_set += 1;
        }

        if let Some(cookies) = &self.cookies {
            done.cookies_hardened = harden_cookies(cookies, list, sink);
        }
        done
    }

    /// The headers to put on a response this filter (or another) generates locally, where there
    /// is no upstream response to inspect.
    pub fn local_reply_headers(&self, https: bool) -> Vec<(&str, &str)> {
        self.add
            .iter()
            .filter(|h| match h.when {
                When::Always => true,
                When::HttpsOnly => https,
                When::HtmlOnly => false,
            })
            .map(|h| (h.name.as_str(), h.value.as_str()))
            .collect()
    }
}

fn harden_cookies(policy: &CookiePolicy, headers: &HeaderList, sink: &mut impl HeaderSink) -> u32 {
    let cookies: Vec<(usize, &str)> = (headers.iter().enumerate())
        .filter(|(_, (k, _))| k.eq_ignore_ascii_case("set-cookie"))
        .map(|(i, (_, v))| (i, v))
        .collect();
    if cookies.is_empty() {
        return 0;
    }
    let hardened: Vec<Option<String>> = cookies
        .iter()
        .map(|(_, c)| {
            let name = cookie::cookie_name(c);
            let rules = policy
                .exceptions
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, r)| r)
                .unwrap_or(&policy.rules);
            cookie::harden(c, rules)
        })
        .collect();
    let changed = hardened.iter().filter(|h| h.is_some()).count() as u32;
    if changed == 0 {
        return 0;
    }
    // Rewrite them all, in order, one header each (never merged into one line), from the bytes
    // the upstream sent: a value that is not UTF-8 keeps them, and gets only the attributes added.
    sink.remove("set-cookie");
    for ((index, text), new) in cookies.iter().zip(&hardened) {
        match (headers.raw_value(*index), new) {
            (sent, None) => sink.add_bytes("set-cookie", sent.unwrap_or(text.as_bytes())),
            (None, Some(new)) => sink.add_bytes("set-cookie", new.as_bytes()),
            (Some(sent), Some(new)) => {
                sink.add_bytes("set-cookie", &rehardened(sent, text, new));
            }
        }
    }
    changed
}

/// `sent` (the bytes of the `Set-Cookie` value whose text is `text`) hardened as `text` was into
/// `new`: hardening keeps [`cookie::kept_part`] and appends attributes. What it trims off the end
/// (whitespace, `;`) is the same bytes in the text and in `sent`: a replacement character is
/// neither.
fn rehardened(sent: &[u8], text: &str, new: &str) -> Vec<u8> {
    let kept = cookie::kept_part(text).len();
    let sent_kept = &sent[..sent.len().saturating_sub(text.len() - kept)];
    [sent_kept, new.as_bytes().get(kept..).unwrap_or_default()].concat()
}

fn is_html(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or("").trim();
    media.eq_ignore_ascii_case("text/html") || media.eq_ignore_ascii_case("application/xhtml+xml")
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

fn check_value(path: &str, value: &str) -> Result<(), ConfigError> {
    if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(ConfigError::field(
            path,
            "a header value cannot contain control characters",
        ));
    }
    Ok(())
}

/// A host we may put in a `Location` header: no characters that could break out of it.
fn is_safe_host(host: &str) -> bool {
    host.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'[' | b']' | b':'))
}
