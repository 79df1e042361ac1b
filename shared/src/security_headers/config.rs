//! The security-headers filter's config, as written by users.

use super::cookie::SameSite;
use super::preset::{Mode, Preset};
use crate::client_ip::ClientIpConfig;
use crate::matcher::PathSpec;
use serde::de::{self, DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::collections::BTreeMap;

/// One policy: the filter's top-level document, or the top level merged with a rule.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// The header set to start from (default `strict`).
    #[serde(default)]
    pub preset: Preset,
    /// Per-header overrides: a value, `{"value": .., "mode": ..}`, or `null` to not send it.
    #[serde(default)]
    pub headers: BTreeMap<String, Option<HeaderOverride>>,
    /// HSTS settings; `false` or `null` turns HSTS off.
    #[serde(default)]
    pub hsts: Toggle<HstsConfig>,
    /// CSP settings.
    #[serde(default)]
    pub csp: Option<CspConfig>,
    /// Response headers to remove.
    #[serde(default)]
    pub remove_response_headers: Option<RemoveConfig>,
    /// `Set-Cookie` hardening; `false` or `null` turns it off.
    #[serde(default)]
    pub cookies: Toggle<CookieConfig>,
    /// Inbound headers clients must not be able to set.
    #[serde(default)]
    pub strip_request_headers: Option<StripConfig>,
    /// HTTP → HTTPS enforcement.
    #[serde(default)]
    pub https: Option<HttpsConfig>,
    /// `Clear-Site-Data` value, or `true` for OWASP's `"cache","cookies","storage"`.
    #[serde(default)]
    pub clear_site_data: Option<ClearSiteData>,
    /// How to find the client address (only used for logs here; shared with other filters).
    #[serde(default)]
    pub client_ip: Option<ClientIpConfig>,
}

/// A setting that can be turned off with `false` or `null`, switched on with its defaults with
/// `true`, or configured with an object.
#[derive(Debug, Clone, Default)]
pub enum Toggle<T> {
    /// Not mentioned: the preset decides.
    #[default]
    Default,
    Off,
    On(T),
}

impl<'de, T: DeserializeOwned + Default> Deserialize<'de> for Toggle<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Null | Value::Bool(false) => Ok(Toggle::Off),
            Value::Bool(true) => Ok(Toggle::On(T::default())),
            obj @ Value::Object(_) => nested::<T, D::Error>(obj).map(Toggle::On),
            _ => Err(D::Error::custom(
                "invalid type: expected an object, true, false or null",
            )),
        }
    }
}

/// What the parser above accepts: `true`, `false`, `null`, or the settings object.
#[cfg(feature = "schema")]
impl<T: schemars::JsonSchema> schemars::JsonSchema for Toggle<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("Toggle_{}", T::schema_name()).into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        crate::schema::one_of(vec![
            crate::schema::described(
                serde_json::json!({ "type": "boolean" }),
                "`true`: on, with the defaults; `false`: off.",
            ),
            crate::schema::described(serde_json::json!({ "type": "null" }), "Off."),
            generator.subschema_for::<T>(),
        ])
    }
}

/// Deserializes a nested value, keeping the path of the field at fault inside it.
fn nested<T: DeserializeOwned, E: de::Error>(value: Value) -> Result<T, E> {
    crate::config::from_value(value).map_err(|e| E::custom(crate::config::nested_message(&e)))
}

/// A header override: a plain value, or a value with a mode.
#[derive(Debug, Clone)]
pub enum HeaderOverride {
    Value(String),
    Full(HeaderSetting),
}

impl<'de> Deserialize<'de> for HeaderOverride {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(HeaderOverride::Value(s)),
            obj @ Value::Object(_) => {
                nested::<HeaderSetting, D::Error>(obj).map(HeaderOverride::Full)
            }
            _ => Err(D::Error::custom(
                "invalid type: expected a string, an object {\"value\", \"mode\"}, or null",
            )),
        }
    }
}

/// What the parser above accepts: the header value, or `{"value", "mode"}`.
#[cfg(feature = "schema")]
impl schemars::JsonSchema for HeaderOverride {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "HeaderOverride".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        crate::schema::one_of(vec![
            crate::schema::described(
                serde_json::json!({ "type": "string" }),
                "The header value (the mode is the preset's, else `overwrite`).",
            ),
            generator.subschema_for::<HeaderSetting>(),
        ])
    }
}

/// A header value and whether it replaces the upstream's.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct HeaderSetting {
    /// The header value.
    pub value: String,
    /// `overwrite` replaces the upstream's value, `add_if_absent` only adds the header when the
    /// upstream sent none (default: the preset's mode for this header, else `overwrite`).
    #[serde(default)]
    pub mode: Option<Mode>,
}

/// `Strict-Transport-Security`, sent on HTTPS responses.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct HstsConfig {
    /// `max-age`, in seconds (default two years).
    #[serde(default = "default_hsts_max_age")]
    pub max_age: u64,
    /// Add `includeSubDomains` (default true).
    #[serde(default = "yes")]
    pub include_subdomains: bool,
    /// Add `preload` (default false).
    #[serde(default)]
    pub preload: bool,
    /// Send HSTS on plain-HTTP responses too (e.g. behind a TLS-terminating proxy that does not
    /// set `x-forwarded-proto`).
    #[serde(default)]
    pub force: bool,
}

impl Default for HstsConfig {
    fn default() -> Self {
        HstsConfig {
            max_age: default_hsts_max_age(),
            include_subdomains: true,
            preload: false,
            force: false,
        }
    }
}

fn default_hsts_max_age() -> u64 {
    super::preset::HSTS_MAX_AGE
}

fn yes() -> bool {
    true
}

/// `Content-Security-Policy` settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CspConfig {
    /// The enforced policy; `null` sends none. Absent: the preset's.
    #[serde(default, deserialize_with = "double_option")]
    pub policy: Option<Option<String>>,
    /// A `Content-Security-Policy-Report-Only` policy.
    #[serde(default)]
    pub report_only: Option<String>,
    /// Send CSP headers only on `text/html` responses.
    #[serde(default)]
    pub html_only: bool,
    /// `overwrite` replaces the upstream's CSP headers, `add_if_absent` only adds them when the
    /// upstream sent none.
    #[serde(default)]
    pub mode: Option<Mode>,
}

/// Distinguishes a field set to `null` (`Some(None)`) from an absent one (`None`).
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Response headers to remove, because they leak implementation details.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RemoveConfig {
    /// Remove the OWASP list of leaking headers (default: on, except with preset `none`).
    #[serde(default)]
    pub defaults: Option<bool>,
    /// More header names to remove.
    #[serde(default)]
    pub names: Vec<String>,
}

/// The attributes added to every `Set-Cookie` that lacks them.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CookieConfig {
    /// Add `Secure` (default true).
    #[serde(default = "yes")]
    pub secure: bool,
    /// Add `HttpOnly` (default true).
    #[serde(default = "yes")]
    pub http_only: bool,
    /// `Lax` (default), `Strict`, `None`, or `null` to leave SameSite alone.
    #[serde(default = "default_same_site")]
    pub same_site: Option<SameSite>,
    /// Cookies treated differently, by name.
    #[serde(default)]
    pub exceptions: Vec<CookieException>,
}

fn default_same_site() -> Option<SameSite> {
    Some(SameSite::Lax)
}

impl Default for CookieConfig {
    fn default() -> Self {
        CookieConfig {
            secure: true,
            http_only: true,
            same_site: default_same_site(),
            exceptions: Vec::new(),
        }
    }
}

/// A cookie that keeps some of its attributes as the upstream set them: each field set to `false`
/// (or `same_site: null`) is not added to this cookie. With only `name`, the cookie is left alone.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CookieException {
    /// The cookie's name.
    pub name: String,
    /// `false`: do not add `Secure` to this cookie.
    #[serde(default)]
    pub secure: Option<bool>,
    /// `false`: do not add `HttpOnly` to this cookie.
    #[serde(default)]
    pub http_only: Option<bool>,
    /// `null`: do not add `SameSite` to this cookie; or the value to add instead.
    #[serde(default, deserialize_with = "double_option")]
    pub same_site: Option<Option<SameSite>>,
}

/// Request headers removed before the upstream sees them: clients must not be able to set them.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct StripConfig {
    /// Exact header names to remove from requests.
    #[serde(default)]
    pub names: Vec<String>,
    /// Name prefixes to remove from requests (default `["x-palisade-"]`).
    #[serde(default)]
    pub prefixes: Option<Vec<String>>,
}

/// What happens to a plain-HTTP request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum HttpsMode {
    /// Nothing: it is served (default).
    #[default]
    Off,
    /// Redirect it to the HTTPS URL.
    Redirect,
    /// Refuse it (`reject_status`).
    Reject,
}

/// HTTP → HTTPS enforcement.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct HttpsConfig {
    /// `off` (default), `redirect` or `reject`.
    #[serde(default)]
    pub mode: HttpsMode,
    /// Paths that stay reachable over plain HTTP (health checks): `{"exact": ..}` / `{"prefix": ..}`.
    #[serde(default)]
    pub exempt: Vec<PathSpec>,
    /// 301, 302, 307 or 308 (default 308, which keeps the method and body).
    #[serde(default)]
    pub redirect_status: Option<u32>,
    /// The HTTPS port to redirect to, when it is not 443.
    #[serde(default)]
    pub port: Option<u16>,
    /// Status for `mode: reject` (default 403).
    #[serde(default)]
    pub reject_status: Option<u32>,
    /// Treat `x-forwarded-proto: https` as HTTPS (default true; Envoy sanitises this header at
    /// the edge when `use_remote_address` is on).
    #[serde(default)]
    pub trust_forwarded_proto: Option<bool>,
}

/// `Clear-Site-Data`: `true` for OWASP's value, or the header value itself.
#[derive(Debug, Clone)]
pub enum ClearSiteData {
    All(bool),
    Value(String),
}

impl<'de> Deserialize<'de> for ClearSiteData {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Bool(b) => Ok(ClearSiteData::All(b)),
            Value::String(s) => Ok(ClearSiteData::Value(s)),
            _ => Err(D::Error::custom(
                "invalid type: expected true, false or a header value",
            )),
        }
    }
}

/// What the parser above accepts: a boolean or the header value.
#[cfg(feature = "schema")]
impl schemars::JsonSchema for ClearSiteData {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ClearSiteData".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        crate::schema::one_of(vec![
            crate::schema::described(
                serde_json::json!({ "type": "boolean" }),
                "`true`: OWASP's `\"cache\",\"cookies\",\"storage\"`; `false`: none.",
            ),
            crate::schema::described(
                serde_json::json!({ "type": "string" }),
                "The `Clear-Site-Data` header value.",
            ),
        ])
    }
}
