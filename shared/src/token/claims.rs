//! A verified token's claims, and the rules they must meet.
//!
//! Both token formats end up here: a JWT's time claims are NumericDate numbers, a PASETO's are
//! RFC 3339 strings; either way they become unix seconds once, when the claims are read, and a
//! claim of the wrong type rejects the token (it never reads as "absent").

use super::strict_json::{parse_object, JsonError};
use crate::config::ConfigError;
use crate::matcher::compile_full_regex;
use serde::Deserialize;
use serde_json::{Map, Value};

/// The latest time accepted in a time claim: 9999-12-31T23:59:59Z.
const MAX_TIME: i64 = 253_402_300_799;

/// Why a token's claims were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// A claim has the wrong type (e.g. `exp` as a string in a JWT, `aud` as a number).
    #[error("claim '{0}' has the wrong type or an impossible value")]
    Malformed(&'static str),
    #[error("the token has no 'exp' claim")]
    MissingExp,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet ('nbf')")]
    NotYetValid,
    #[error("the token was issued in the future ('iat')")]
    IssuedInFuture,
    #[error("the token's lifetime is longer than allowed")]
    LifetimeTooLong,
    #[error("the token's issuer is not the provider's")]
    Issuer,
    #[error("the token is not meant for this audience")]
    Audience,
    #[error("the token's subject is not allowed")]
    Subject,
}

/// The format a token's time claims are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeFormat {
    /// JWT NumericDate: seconds since the epoch, a JSON number.
    NumericDate,
    /// PASETO: an RFC 3339 (ISO 8601) date-time string.
    Rfc3339,
}

/// The claims of a token whose signature has been checked.
///
/// Cheap to clone (the map is shared): a cached token's claims are handed to every request that
/// presents it.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    map: std::sync::Arc<Map<String, Value>>,
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
}

impl Claims {
    /// Reads claims from a JSON object, checking the types of the registered claims.
    pub fn from_map(map: Map<String, Value>, format: TimeFormat) -> Result<Self, ClaimError> {
        let exp = time_claim(&map, "exp", format)?;
        let nbf = time_claim(&map, "nbf", format)?;
        let iat = time_claim(&map, "iat", format)?;
        for name in ["iss", "sub", "jti"] {
            if !matches!(map.get(name), None | Some(Value::String(_))) {
                return Err(ClaimError::Malformed(registered_name(name)));
            }
        }
        match map.get("aud") {
            None | Some(Value::String(_)) => {}
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => {}
            Some(_) => return Err(ClaimError::Malformed("aud")),
        }
        Ok(Claims {
            map: std::sync::Arc::new(map),
            exp,
            nbf,
            iat,
        })
    }

    /// Reads claims from JSON bytes (strictly: an object without duplicate names).
    pub fn from_json(bytes: &[u8], format: TimeFormat) -> Result<Self, ClaimsParseError> {
        let map = parse_object(bytes).map_err(ClaimsParseError::Json)?;
        Claims::from_map(map, format).map_err(ClaimsParseError::Claim)
    }

    /// All claims.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.map
    }

    /// A claim by name. A name present at the top level (even with dots, such as
    /// `https://example.com/roles`) wins; otherwise `a.b.c` walks nested objects.
    pub fn get(&self, path: &str) -> Option<&Value> {
        if let Some(v) = self.map.get(path) {
            return Some(v);
        }
        if !path.contains('.') {
            return None;
        }
        let mut parts = path.split('.');
        let first = parts.next()?;
        let mut current = self.map.get(first)?;
        for part in parts {
            current = current.as_object()?.get(part)?;
        }
        Some(current)
    }

    pub fn exp(&self) -> Option<i64> {
        self.exp
    }

    pub fn nbf(&self) -> Option<i64> {
        self.nbf
    }

    pub fn iat(&self) -> Option<i64> {
        self.iat
    }

    pub fn issuer(&self) -> Option<&str> {
        self.map.get("iss").and_then(Value::as_str)
    }

    pub fn subject(&self) -> Option<&str> {
        self.map.get("sub").and_then(Value::as_str)
    }

    /// The audiences (`aud` as a string or an array of strings), without collecting them: this
    /// runs on every request, cache hits included.
    pub fn audiences(&self) -> impl Iterator<Item = &str> + '_ {
        let (one, many): (Option<&str>, &[Value]) = match self.map.get("aud") {
            Some(Value::String(s)) => (Some(s.as_str()), &[]),
            Some(Value::Array(items)) => (None, items.as_slice()),
            _ => (None, &[]),
        };
        one.into_iter().chain(many.iter().filter_map(Value::as_str))
    }

    /// The scopes: `scope` (space-delimited, RFC 8693) and `scp` (an array, or space-delimited).
    pub fn scopes(&self) -> Vec<&str> {
        let mut out = Vec::new();
        for name in ["scope", "scp"] {
            match self.map.get(name) {
                Some(Value::String(s)) => out.extend(s.split(' ').filter(|p| !p.is_empty())),
                Some(Value::Array(items)) => out.extend(items.iter().filter_map(Value::as_str)),
                _ => {}
            }
        }
        out
    }
}

/// Why a token's payload could not be read as claims.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsParseError {
    #[error("payload: {0}")]
    Json(JsonError),
    #[error("{0}")]
    Claim(ClaimError),
}

fn registered_name(name: &str) -> &'static str {
    match name {
        "iss" => "iss",
        "sub" => "sub",
        "jti" => "jti",
        "exp" => "exp",
        "nbf" => "nbf",
        _ => "iat",
    }
}

fn time_claim(
    map: &Map<String, Value>,
    name: &'static str,
    format: TimeFormat,
) -> Result<Option<i64>, ClaimError> {
    let Some(value) = map.get(name) else {
        return Ok(None);
    };
    let secs = match (format, value) {
        (TimeFormat::NumericDate, Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                i
            } else {
                let f = n.as_f64().ok_or(ClaimError::Malformed(name))?;
                if !f.is_finite() || f < 0.0 || f > MAX_TIME as f64 {
                    return Err(ClaimError::Malformed(name));
                }
                // Round towards the safe side: a token expires and matures no later than it says.
                let rounded = if name == "exp" { f.floor() } else { f.ceil() };
                rounded as i64
            }
        }
        (TimeFormat::Rfc3339, Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .map_err(|_| ClaimError::Malformed(name))?
            .timestamp(),
        _ => return Err(ClaimError::Malformed(name)),
    };
    if !(0..=MAX_TIME).contains(&secs) {
        return Err(ClaimError::Malformed(name));
    }
    Ok(Some(secs))
}

/// The time rules of a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRules {
    /// Allowed clock difference in seconds, both ways (default 60).
    pub clock_skew_secs: u64,
    /// Whether a token without `exp` is refused (default true).
    pub require_exp: bool,
    /// The longest allowed lifetime (`exp` minus `iat`, else `nbf`, else now), if limited.
    pub max_lifetime_secs: Option<u64>,
}

impl Default for TimeRules {
    fn default() -> Self {
        TimeRules {
            clock_skew_secs: 60,
            require_exp: true,
            max_lifetime_secs: None,
        }
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl TimeRules {
    /// Checks `exp`, `nbf`, `iat` and the lifetime against `now` (unix seconds).
    pub fn check(&self, claims: &Claims, now: u64) -> Result<(), ClaimError> {
        let now = to_i64(now);
        let skew = to_i64(self.clock_skew_secs);
        match claims.exp {
            None if self.require_exp || self.max_lifetime_secs.is_some() => {
                return Err(ClaimError::MissingExp)
            }
            Some(exp) if now >= exp.saturating_add(skew) => return Err(ClaimError::Expired),
            _ => {}
        }
        if let Some(nbf) = claims.nbf {
            if now.saturating_add(skew) < nbf {
                return Err(ClaimError::NotYetValid);
            }
        }
        if let Some(iat) = claims.iat {
            if iat > now.saturating_add(skew) {
                return Err(ClaimError::IssuedInFuture);
            }
        }
        if let (Some(max), Some(exp)) = (self.max_lifetime_secs, claims.exp) {
            let start = claims.iat.or(claims.nbf).unwrap_or(now);
            if exp.saturating_sub(start) > to_i64(max) {
                return Err(ClaimError::LifetimeTooLong);
            }
        }
        Ok(())
    }
}

/// A string condition, as written in the config: exactly one of `exact`, `prefix`, `suffix`,
/// `regex` (a full match).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum StringMatchSpec {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Regex(String),
}

/// A compiled string condition.
#[derive(Debug, Clone)]
pub enum StringMatcher {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Regex(regex_lite::Regex),
}

impl StringMatcher {
    pub fn compile(path: &str, spec: &StringMatchSpec) -> Result<Self, ConfigError> {
        Ok(match spec {
            StringMatchSpec::Exact(s) => StringMatcher::Exact(s.clone()),
            StringMatchSpec::Prefix(s) => StringMatcher::Prefix(s.clone()),
            StringMatchSpec::Suffix(s) => StringMatcher::Suffix(s.clone()),
            StringMatchSpec::Regex(r) => {
                StringMatcher::Regex(compile_full_regex(&format!("{path}.regex"), r)?)
            }
        })
    }

    pub fn matches(&self, value: &str) -> bool {
        match self {
            StringMatcher::Exact(s) => value == s,
            StringMatcher::Prefix(s) => value.starts_with(s.as_str()),
            StringMatcher::Suffix(s) => value.ends_with(s.as_str()),
            StringMatcher::Regex(r) => r.is_match(value),
        }
    }
}

/// Who may issue and receive a provider's tokens.
#[derive(Debug, Clone, Default)]
pub struct IdentityRules {
    /// The exact `iss`, if the provider has one.
    pub issuer: Option<String>,
    /// Accepted audiences; the token's `aud` must name at least one (empty: not checked).
    pub audiences: Vec<String>,
    /// Accepted subjects; `sub` must match one (empty: not checked).
    pub subjects: Vec<StringMatcher>,
}

impl IdentityRules {
    pub fn check(&self, claims: &Claims) -> Result<(), ClaimError> {
        if let Some(issuer) = &self.issuer {
            if claims.issuer() != Some(issuer.as_str()) {
                return Err(ClaimError::Issuer);
            }
        }
        if !self.audiences.is_empty()
            && !claims
                .audiences()
                .any(|a| self.audiences.iter().any(|want| want == a))
        {
            return Err(ClaimError::Audience);
        }
        if !self.subjects.is_empty() {
            let ok = claims
                .subject()
                .is_some_and(|sub| self.subjects.iter().any(|m| m.matches(sub)));
            if !ok {
                return Err(ClaimError::Subject);
            }
        }
        Ok(())
    }
}

/// A required claim, as written in the config: `claim` and exactly one of `equals`, `one_of`,
/// `contains`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ClaimRuleSpec {
    /// The claim name; `a.b.c` for nested claims.
    pub claim: String,
    /// The claim equals this JSON value.
    #[serde(default)]
    pub equals: Option<Value>,
    /// The claim equals one of these values.
    #[serde(default)]
    pub one_of: Option<Vec<Value>>,
    /// The claim is an array holding this value, or a space-delimited string holding this word.
    #[serde(default)]
    pub contains: Option<Value>,
}

/// A compiled required claim.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimRule {
    pub claim: String,
    pub condition: ClaimCondition,
}

/// What a required claim must be.
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimCondition {
    /// The claim equals this JSON value.
    Equals(Value),
    /// The claim equals one of these values.
    OneOf(Vec<Value>),
    /// The claim is an array holding this value, or a space-delimited string holding this word.
    Contains(Value),
}

impl ClaimRule {
    pub fn compile(path: &str, spec: &ClaimRuleSpec) -> Result<Self, ConfigError> {
        if spec.claim.is_empty() {
            return Err(ConfigError::field(
                format!("{path}.claim"),
                "cannot be empty",
            ));
        }
        let condition = match (&spec.equals, &spec.one_of, &spec.contains) {
            (Some(v), None, None) => ClaimCondition::Equals(v.clone()),
            (None, Some(vs), None) => {
                if vs.is_empty() {
                    return Err(ConfigError::field(
                        format!("{path}.one_of"),
                        "cannot be empty",
                    ));
                }
                ClaimCondition::OneOf(vs.clone())
            }
            (None, None, Some(v)) => ClaimCondition::Contains(v.clone()),
            _ => {
                return Err(ConfigError::field(
                    path,
                    "set exactly one of 'equals', 'one_of' or 'contains'",
                ))
            }
        };
        Ok(ClaimRule {
            claim: spec.claim.clone(),
            condition,
        })
    }

    /// Whether the claims meet this rule (a missing claim never does).
    pub fn check(&self, claims: &Claims) -> bool {
        let Some(value) = claims.get(&self.claim) else {
            return false;
        };
        match &self.condition {
            ClaimCondition::Equals(want) => value == want,
            ClaimCondition::OneOf(options) => options.iter().any(|o| o == value),
            ClaimCondition::Contains(want) => match value {
                Value::Array(items) => items.iter().any(|i| i == want),
                Value::String(s) => want
                    .as_str()
                    .is_some_and(|w| s.split(' ').any(|word| word == w)),
                _ => false,
            },
        }
    }
}

/// Required scopes: all of `all_of` and at least one of `any_of` (when set).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeRule {
    pub all_of: Vec<String>,
    pub any_of: Vec<String>,
}

impl ScopeRule {
    pub fn is_empty(&self) -> bool {
        self.all_of.is_empty() && self.any_of.is_empty()
    }

    pub fn check(&self, claims: &Claims) -> bool {
        if self.is_empty() {
            return true;
        }
        let have = claims.scopes();
        self.all_of.iter().all(|s| have.contains(&s.as_str()))
            && (self.any_of.is_empty() || self.any_of.iter().any(|s| have.contains(&s.as_str())))
    }

    /// The scopes to name in a `WWW-Authenticate` `scope` attribute.
    pub fn describe(&self) -> String {
        let mut all: Vec<&str> = self.all_of.iter().map(String::as_str).collect();
        all.extend(self.any_of.iter().map(String::as_str));
        all.join(" ")
    }
}
