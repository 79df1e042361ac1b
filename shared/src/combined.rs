//! The combined module's configuration: one section per policy, each exactly what that policy's
//! own filter takes.
//!
//! ```json
//! { "security_headers": { "preset": "strict" },
//!   "rate_limit": { ... }, "token_auth": { ... }, "input_validation": { ... } }
//! ```
//!
//! The policies run in that order on the request (the order of the shipped chain) and in reverse
//! on the response, whichever order the sections are written in. A section left out is a policy
//! that does not run; at least one must be given. Errors name the section: `token_auth.providers[0].jwks`.

use crate::config::{self, ConfigError};
use crate::ratelimit::RateLimitConfig;
use crate::security_headers::SecurityHeaders;
use crate::token::TokenConfig;
use crate::validation::ValidationConfig;
use serde::Deserialize;
use serde_json::Value;

/// The sections, in the order the policies run on the request.
pub const SECTIONS: [&str; 4] = [
    "security_headers",
    "rate_limit",
    "token_auth",
    "input_validation",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Sections {
    security_headers: Option<Value>,
    rate_limit: Option<Value>,
    token_auth: Option<Value>,
    input_validation: Option<Value>,
}

/// The four policies' configurations, each compiled by its own parser.
#[derive(Debug)]
pub struct CombinedConfig {
    pub security_headers: Option<SecurityHeaders>,
    pub rate_limit: Option<RateLimitConfig>,
    pub token_auth: Option<TokenConfig>,
    pub input_validation: Option<ValidationConfig>,
}

/// Parses one section with its policy's parser; errors are reported from the document's root.
fn section<T>(
    name: &str,
    value: Option<Value>,
    parse: impl FnOnce(&[u8]) -> Result<T, ConfigError>,
) -> Result<Option<T>, ConfigError> {
    let Some(value) = value else {
        return Ok(None);
    };
    if !value.is_object() {
        return Err(ConfigError::field(
            name,
            "expected an object: this policy's configuration",
        ));
    }
    let bytes = serde_json::to_vec(&value).map_err(|e| ConfigError::field(name, e))?;
    parse(&bytes).map(Some).map_err(|e| e.within(name))
}

impl CombinedConfig {
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ConfigError> {
        let sections: Sections = config::from_value(config::parse_json(bytes)?)?;
        let combined = CombinedConfig {
            security_headers: section(
                "security_headers",
                sections.security_headers,
                SecurityHeaders::from_slice,
            )?,
            rate_limit: section(
                "rate_limit",
                sections.rate_limit,
                RateLimitConfig::from_slice,
            )?,
            token_auth: section("token_auth", sections.token_auth, TokenConfig::parse)?,
            input_validation: section(
                "input_validation",
                sections.input_validation,
                ValidationConfig::from_slice,
            )?,
        };
        if combined.is_empty() {
            return Err(ConfigError::field(
                "",
                format!(
                    "no policy configured: give at least one of {}",
                    SECTIONS.join(", ")
                ),
            ));
        }
        Ok(combined)
    }

    fn is_empty(&self) -> bool {
        self.security_headers.is_none()
            && self.rate_limit.is_none()
            && self.token_auth.is_none()
            && self.input_validation.is_none()
    }
}
