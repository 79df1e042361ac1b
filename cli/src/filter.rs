//! The Palisade filters and the one parser each of them runs.

use palisade::ConfigError;
use serde_json::Value;

/// A Palisade filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    SecurityHeaders,
    TokenAuth,
    RateLimit,
    InputValidation,
    /// The four policies in one module, one section each (`palisade::combined`).
    Combined,
}

impl Filter {
    /// The single-policy filters, in the order of the chain.
    pub const POLICIES: [Filter; 4] = [
        Filter::SecurityHeaders,
        Filter::RateLimit,
        Filter::TokenAuth,
        Filter::InputValidation,
    ];

    /// Every module: the single-policy filters, then the combined one.
    pub const ALL: [Filter; 5] = [
        Filter::SecurityHeaders,
        Filter::RateLimit,
        Filter::TokenAuth,
        Filter::InputValidation,
        Filter::Combined,
    ];

    /// The filter's name as users write it (`security-headers`): its directory under `filters/`.
    pub fn name(self) -> &'static str {
        match self {
            Filter::SecurityHeaders => "security-headers",
            Filter::TokenAuth => "token-auth",
            Filter::RateLimit => "rate-limit",
            Filter::InputValidation => "input-validation",
            Filter::Combined => "combined",
        }
    }

    /// `security_headers`: the part of the module file name and root id after `palisade_`.
    pub fn ident(self) -> &'static str {
        match self {
            Filter::SecurityHeaders => "security_headers",
            Filter::TokenAuth => "token_auth",
            Filter::RateLimit => "rate_limit",
            Filter::InputValidation => "input_validation",
            Filter::Combined => "combined",
        }
    }

    /// A filter by any of its names: `token-auth`, `token_auth`, `palisade_token_auth`.
    pub fn from_name(name: &str) -> Option<Filter> {
        let name = name.trim().to_ascii_lowercase().replace('-', "_");
        let name = name.strip_prefix("palisade_").unwrap_or(&name);
        Filter::ALL.into_iter().find(|f| f.ident() == name)
    }

    /// The filter a module reference names: a file name (`…/palisade_token_auth.wasm`), an HTTP
    /// URL, or an OCI reference (`oci://registry/palisade/token-auth:0.1.0`, `…@sha256:…`).
    pub fn from_module(reference: &str) -> Option<Filter> {
        let reference = reference.split(['?', '#']).next().unwrap_or(reference);
        let reference = reference.split('@').next().unwrap_or(reference);
        let last = reference.rsplit('/').next().unwrap_or(reference);
        let last = last.split(':').next().unwrap_or(last);
        let last = last.strip_suffix(".wasm").unwrap_or(last);
        Filter::from_name(last)
    }

    /// Parses `config` (the bytes the filter receives from Envoy or Istio) with the filter's own
    /// parser from the `palisade` core crate, exactly as the filter does in `on_configure`.
    pub fn check(self, config: &[u8]) -> Result<(), ConfigError> {
        match self {
            Filter::SecurityHeaders => {
                palisade::security_headers::SecurityHeaders::from_slice(config).map(drop)
            }
            Filter::TokenAuth => palisade::token::TokenConfig::parse(config).map(drop),
            Filter::RateLimit => palisade::ratelimit::RateLimitConfig::from_slice(config).map(drop),
            Filter::InputValidation => {
                palisade::validation::ValidationConfig::from_slice(config).map(drop)
            }
            Filter::Combined => palisade::combined::CombinedConfig::from_slice(config).map(drop),
        }
    }

    /// The JSON Schema (draft 2020-12) of the filter's configuration, generated from the types
    /// its parser deserializes into (see `palisade::schema`). [`crate::schema_text`] prints it.
    pub fn schema(self) -> Value {
        match self {
            Filter::SecurityHeaders => palisade::schema::security_headers(),
            Filter::TokenAuth => palisade::schema::token_auth(),
            Filter::RateLimit => palisade::schema::rate_limit(),
            Filter::InputValidation => palisade::schema::input_validation(),
            Filter::Combined => palisade::schema::combined(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_module_references() {
        assert_eq!(Filter::from_name("token-auth"), Some(Filter::TokenAuth));
        assert_eq!(
            Filter::from_name("palisade_rate_limit"),
            Some(Filter::RateLimit)
        );
        assert_eq!(Filter::from_name("jwt"), None);
        assert_eq!(
            Filter::from_module("target/wasm32-wasip1/release/palisade_security_headers.wasm"),
            Some(Filter::SecurityHeaders)
        );
        assert_eq!(
            Filter::from_module("oci://registry.example.com/palisade/input-validation:0.1.0"),
            Some(Filter::InputValidation)
        );
        assert_eq!(
            Filter::from_module("http://127.0.0.1:8000/palisade_token_auth.wasm?x=1"),
            Some(Filter::TokenAuth)
        );
        assert_eq!(
            Filter::from_module("oci://registry.example.com/palisade/combined@sha256:00"),
            Some(Filter::Combined)
        );
        assert_eq!(Filter::from_module("/etc/envoy/plugin.wasm"), None);
    }
}
