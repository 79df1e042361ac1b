//! The token filter's configuration: providers (who issues tokens and with which keys) and the
//! filter-wide settings. Route requirements are in `requirement.rs`.
//!
//! ```json
//! { "providers": [
//!     { "name": "corp", "issuer": "https://idp.example.com", "audiences": ["api"],
//!       "jwks_uri": { "cluster": "idp", "path": "/keys" },
//!       "claim_to_headers": [ { "claim": "sub", "header": "x-user" } ] } ],
//!   "requires": { "providers": ["corp"] },
//!   "scopes": ["read"],
//!   "rules": [ { "match": { "path": { "prefix": "/health" } }, "requires": { "mode": "none" } } ] }
//! ```

use super::alg::JwsAlgorithm;
use super::claims::{IdentityRules, StringMatchSpec, StringMatcher, TimeRules};
use super::extract::{TokenSource, TokenSourceSpec};
use super::headers::{compile_header_name, ClaimToHeader, ClaimToHeaderSpec};
use super::jwks::{
    parse_jwks, parse_jwks_value, JwksError, JwksPolicy, KeySet, ParsedJwks, MIN_RSA_BITS,
};
use super::outcome::DenyReason;
use super::paseto::{PasetoKey, PasetoRules};
use super::remote::{
    compile_endpoint, discovery_path, EndpointSpec, RefreshSettings, RefreshSpec, RemoteKeys,
};
use super::requirement::Requirement;
use crate::config::{from_value, ConfigError};
use crate::matcher::Request;
use crate::response::ErrorResponse;
use crate::rules::{RuleSet, Selected};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Keys of the config document that are filter-wide (not allowed in a rule).
pub const TOP_LEVEL_KEYS: [&str; 4] = ["providers", "max_token_size", "cache", "realm"];

/// The default largest token accepted, in bytes.
pub const DEFAULT_MAX_TOKEN_SIZE: usize = 8192;

/// A provider as written in the config.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    /// Unique name, as `requires.providers` refers to it.
    pub name: String,
    /// The exact `iss` a token must have (with `discovery`, also where its path comes from).
    #[serde(default)]
    pub issuer: Option<String>,
    /// Accepted audiences: the token's `aud` must name one (empty: not checked).
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Accepted subjects (`sub`): each an `exact`, `prefix`, `suffix` or `regex` (empty: any).
    #[serde(default)]
    pub subjects: Vec<StringMatchSpec>,
    /// An inline JWKS: a JSON object, or a string holding one.
    #[serde(default)]
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::schema::object_or_json_string")
    )]
    pub jwks: Option<Value>,
    /// A JWKS endpoint behind an Envoy cluster, fetched and refreshed.
    #[serde(default)]
    pub jwks_uri: Option<EndpointSpec>,
    /// The issuer's OpenID configuration endpoint; its `jwks_uri` is fetched from the same cluster.
    #[serde(default)]
    pub discovery: Option<EndpointSpec>,
    /// How keys from `jwks_uri` or `discovery` are fetched and refreshed.
    #[serde(default)]
    pub refresh: Option<RefreshSpec>,
    /// The VM environment variable holding an HMAC secret.
    #[serde(default)]
    pub hmac_secret_env: Option<String>,
    /// The algorithm of that secret (default HS256).
    #[serde(default)]
    pub hmac_algorithm: Option<String>,
    /// The algorithm of RSA keys that publish no `alg` (default RS256).
    #[serde(default)]
    pub rsa_default_algorithm: Option<String>,
    /// PASETO v4.public keys and rules.
    #[serde(default)]
    pub paseto: Option<PasetoSpec>,
    /// Where the token is looked for (default: `Authorization: Bearer <token>`).
    #[serde(default)]
    pub sources: Option<Vec<TokenSourceSpec>>,
    /// Keep the token in the request sent upstream (default: it is removed).
    #[serde(default)]
    pub forward: bool,
    /// Allowed clock difference in seconds, both ways (default 60).
    #[serde(default = "default_skew")]
    pub clock_skew_secs: u64,
    /// Refuse a token without `exp` (default true).
    #[serde(default = "default_true")]
    pub require_exp: bool,
    /// The longest lifetime accepted, in seconds: `exp` minus `iat` (or `nbf`).
    #[serde(default)]
    pub max_lifetime_secs: Option<u64>,
    /// Claims copied into headers of the request sent upstream.
    #[serde(default)]
    pub claim_to_headers: Vec<ClaimToHeaderSpec>,
    /// A header that receives the whole payload, base64url-encoded.
    #[serde(default)]
    pub payload_header: Option<String>,
    /// The answer when the provider has no usable keys (default 503 with `Retry-After: 5`).
    #[serde(default)]
    pub keys_unavailable: Option<KeysUnavailableSpec>,
}

fn default_skew() -> u64 {
    60
}

fn default_true() -> bool {
    true
}

/// PASETO v4.public settings as written in the config.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PasetoSpec {
    /// The public keys (at least one).
    pub keys: Vec<PasetoKeySpec>,
    /// The implicit assertion the tokens are signed with.
    #[serde(default)]
    pub implicit_assertion: Option<String>,
    /// The footer every token must carry, exactly.
    #[serde(default)]
    pub footer: Option<String>,
}

/// One PASETO public key: PASERK `k4.public.…` or 64 hex digits.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PasetoKeySpec {
    /// Matched against the `kid` of a token's JSON footer.
    #[serde(default)]
    pub kid: Option<String>,
    /// The key: PASERK `k4.public.…` or 64 hex digits.
    pub public_key: String,
}

/// The answer when a provider has no usable keys, as written in the config.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct KeysUnavailableSpec {
    /// The status to answer, 400 to 599 (default 503).
    #[serde(default = "default_unavailable_status")]
    pub status: u32,
    /// `Retry-After`, in seconds (default 5).
    #[serde(default = "default_retry_after")]
    pub retry_after_secs: u64,
}

fn default_unavailable_status() -> u32 {
    503
}

fn default_retry_after() -> u64 {
    5
}

/// The answer when a provider has no usable keys at all: the client did nothing wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeysUnavailable {
    /// Default 503.
    pub status: u32,
    /// `Retry-After`, default 5 s.
    pub retry_after_secs: u64,
}

impl Default for KeysUnavailable {
    fn default() -> Self {
        KeysUnavailable {
            status: default_unavailable_status(),
            retry_after_secs: default_retry_after(),
        }
    }
}

/// A provider's PASETO keys and rules.
#[derive(Debug, Clone)]
pub struct PasetoProvider {
    pub keys: Vec<PasetoKey>,
    pub rules: PasetoRules,
}

/// A compiled provider.
#[derive(Debug, Clone)]
pub struct Provider {
    pub name: String,
    pub identity: IdentityRules,
    pub time: TimeRules,
    /// Keys given in the config.
    pub inline_jwks: Option<KeySet>,
    /// Keys to fetch.
    pub remote: Option<RemoteKeys>,
    pub refresh: RefreshSettings,
    /// The environment variable with an HMAC secret, and its algorithm.
    pub hmac_secret_env: Option<(String, JwsAlgorithm)>,
    /// How JWKS documents fetched for this provider are read (never with symmetric keys).
    pub jwks_policy: JwksPolicy,
    pub paseto: Option<PasetoProvider>,
    pub sources: Vec<TokenSource>,
    pub forward: bool,
    pub claim_to_headers: Vec<ClaimToHeader>,
    pub payload_header: Option<String>,
    pub keys_unavailable: KeysUnavailable,
}

impl Provider {
    /// Whether this provider verifies JWTs (it has or will fetch JWT keys).
    pub fn accepts_jwt(&self) -> bool {
        self.inline_jwks.is_some() || self.remote.is_some() || self.hmac_secret_env.is_some()
    }

    /// Whether this provider verifies PASETO v4.public tokens.
    pub fn accepts_paseto(&self) -> bool {
        self.paseto.is_some()
    }

    /// Parses a JWKS document fetched for this provider (size-limited, no symmetric keys).
    pub fn parse_fetched_jwks(&self, bytes: &[u8]) -> Result<ParsedJwks, JwksError> {
        if bytes.len() > self.refresh.max_document_bytes {
            return Err(JwksError::TooLarge(self.refresh.max_document_bytes));
        }
        parse_jwks(bytes, &self.jwks_policy)
    }

    pub fn compile(path: &str, spec: ProviderSpec) -> Result<Self, ConfigError> {
        let at = |field: &str| format!("{path}.{field}");
        if spec.name.is_empty() {
            return Err(ConfigError::field(at("name"), "cannot be empty"));
        }
        if let Some(issuer) = &spec.issuer {
            if issuer.is_empty() {
                return Err(ConfigError::field(at("issuer"), "cannot be empty"));
            }
        }
        let subjects = spec
            .subjects
            .iter()
            .enumerate()
            .map(|(i, s)| StringMatcher::compile(&format!("{path}.subjects[{i}]"), s))
            .collect::<Result<Vec<_>, _>>()?;
        let rsa_default_alg = match &spec.rsa_default_algorithm {
            None => JwsAlgorithm::Rs256,
            Some(name) => JwsAlgorithm::from_name(name)
                .filter(|a| a.is_rsa())
                .ok_or_else(|| {
                    ConfigError::field(
                        at("rsa_default_algorithm"),
                        format!("'{name}' is not an RSA algorithm (RS256/384/512, PS256/384/512)"),
                    )
                })?,
        };
        let fetched_policy = JwksPolicy {
            rsa_default_alg,
            allow_symmetric: false,
            min_rsa_bits: MIN_RSA_BITS,
        };
        let key_sources = [
            spec.jwks.is_some(),
            spec.jwks_uri.is_some(),
            spec.discovery.is_some(),
        ];
        if key_sources.iter().filter(|b| **b).count() > 1 {
            return Err(ConfigError::field(
                path,
                "set at most one of 'jwks', 'jwks_uri' or 'discovery'",
            ));
        }
        let inline_jwks = match &spec.jwks {
            None => None,
            Some(value) => {
                let doc = match value {
                    Value::String(s) => serde_json::from_str::<Value>(s)
                        .map_err(|_| ConfigError::field(at("jwks"), "is not a JSON key set"))?,
                    other => other.clone(),
                };
                let policy = JwksPolicy {
                    allow_symmetric: true,
                    ..fetched_policy
                };
                let parsed = parse_jwks_value(&doc, &policy)
                    .map_err(|e| ConfigError::field(at("jwks"), e))?;
                if let Some(skipped) = parsed.skipped.first() {
                    // An inline key we cannot use is a mistake in the config: say so now.
                    return Err(ConfigError::field(at("jwks"), skipped));
                }
                Some(parsed.keys)
            }
        };
        let refresh = match &spec.refresh {
            Some(r) => RefreshSettings::compile(&at("refresh"), r)?,
            None => RefreshSettings::default(),
        };
        let remote = if let Some(e) = &spec.jwks_uri {
            Some(RemoteKeys::Jwks(compile_endpoint(
                &at("jwks_uri"),
                e,
                spec.issuer.as_deref(),
                None,
            )?))
        } else if let Some(e) = &spec.discovery {
            let issuer = spec
                .issuer
                .as_deref()
                .ok_or_else(|| ConfigError::field(at("issuer"), "is required with 'discovery'"))?;
            let default_path = discovery_path(issuer);
            if e.path.is_none() && default_path.is_none() {
                return Err(ConfigError::field(
                    at("issuer"),
                    "must be an http(s) URL to derive the discovery path; or set discovery.path",
                ));
            }
            Some(RemoteKeys::Discovery(compile_endpoint(
                &at("discovery"),
                e,
                Some(issuer),
                default_path,
            )?))
        } else {
            None
        };
        if spec.refresh.is_some() && remote.is_none() {
            return Err(ConfigError::field(
                at("refresh"),
                "only applies with 'jwks_uri' or 'discovery'",
            ));
        }
        let hmac_alg = match &spec.hmac_algorithm {
            None => JwsAlgorithm::Hs256,
            Some(name) => JwsAlgorithm::from_name(name)
                .filter(|a| a.is_hmac())
                .ok_or_else(|| {
                    ConfigError::field(
                        at("hmac_algorithm"),
                        format!("'{name}' is not HS256, HS384 or HS512"),
                    )
                })?,
        };
        let hmac_secret_env = match &spec.hmac_secret_env {
            None => {
                if spec.hmac_algorithm.is_some() {
                    return Err(ConfigError::field(
                        at("hmac_algorithm"),
                        "only applies with 'hmac_secret_env'",
                    ));
                }
                None
            }
            Some(var) if var.is_empty() => {
                return Err(ConfigError::field(at("hmac_secret_env"), "cannot be empty"))
            }
            Some(var) => Some((var.clone(), hmac_alg)),
        };
        let paseto = match &spec.paseto {
            None => None,
            Some(p) => {
                if p.keys.is_empty() {
                    return Err(ConfigError::field(at("paseto.keys"), "cannot be empty"));
                }
                let keys = p
                    .keys
                    .iter()
                    .enumerate()
                    .map(|(i, k)| {
                        PasetoKey::parse(&k.public_key, k.kid.clone()).map_err(|e| {
                            ConfigError::field(format!("{path}.paseto.keys[{i}].public_key"), e)
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Some(PasetoProvider {
                    keys,
                    rules: PasetoRules {
                        implicit_assertion: p
                            .implicit_assertion
                            .as_ref()
                            .map(|s| s.as_bytes().to_vec()),
                        expected_footer: p.footer.as_ref().map(|s| s.as_bytes().to_vec()),
                    },
                })
            }
        };
        if inline_jwks.is_none()
            && remote.is_none()
            && hmac_secret_env.is_none()
            && paseto.is_none()
        {
            return Err(ConfigError::field(
                path,
                "a provider needs keys: 'jwks', 'jwks_uri', 'discovery', 'hmac_secret_env' or 'paseto'",
            ));
        }
        let sources = match &spec.sources {
            None => vec![TokenSource::bearer()],
            Some(list) if list.is_empty() => {
                return Err(ConfigError::field(at("sources"), "cannot be empty"))
            }
            Some(list) => list
                .iter()
                .enumerate()
                .map(|(i, s)| TokenSource::compile(&format!("{path}.sources[{i}]"), s))
                .collect::<Result<Vec<_>, _>>()?,
        };
        let claim_to_headers = spec
            .claim_to_headers
            .iter()
            .enumerate()
            .map(|(i, m)| ClaimToHeader::compile(&format!("{path}.claim_to_headers[{i}]"), m))
            .collect::<Result<Vec<_>, _>>()?;
        let payload_header = spec
            .payload_header
            .as_deref()
            .map(|h| compile_header_name(&at("payload_header"), h))
            .transpose()?;
        let keys_unavailable = match &spec.keys_unavailable {
            None => KeysUnavailable::default(),
            Some(k) => {
                if !(400..=599).contains(&k.status) {
                    return Err(ConfigError::field(
                        at("keys_unavailable.status"),
                        "must be an HTTP error status (400-599)",
                    ));
                }
                KeysUnavailable {
                    status: k.status,
                    retry_after_secs: k.retry_after_secs,
                }
            }
        };
        if spec.max_lifetime_secs == Some(0) {
            return Err(ConfigError::field(
                at("max_lifetime_secs"),
                "must be greater than 0",
            ));
        }
        Ok(Provider {
            name: spec.name,
            identity: IdentityRules {
                issuer: spec.issuer,
                audiences: spec.audiences,
                subjects,
            },
            time: TimeRules {
                clock_skew_secs: spec.clock_skew_secs,
                require_exp: spec.require_exp,
                max_lifetime_secs: spec.max_lifetime_secs,
            },
            inline_jwks,
            remote,
            refresh,
            hmac_secret_env,
            jwks_policy: fetched_policy,
            paseto,
            sources,
            forward: spec.forward,
            claim_to_headers,
            payload_header,
            keys_unavailable,
        })
    }
}

/// The verified-token cache settings as written in the config.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CacheSpec {
    /// The most verified tokens kept (`0` turns the cache off).
    #[serde(default = "default_cache_entries")]
    pub max_entries: usize,
    /// The longest a verified token is kept, in seconds.
    #[serde(default = "default_cache_ttl")]
    pub max_ttl_secs: u64,
}

fn default_cache_entries() -> usize {
    100
}

fn default_cache_ttl() -> u64 {
    300
}

/// Verified-token cache settings (`max_entries: 0` turns it off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    pub max_entries: usize,
    pub max_ttl_secs: u64,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct GlobalSpec {
    /// Who issues tokens and with which keys: at least one provider.
    providers: Vec<ProviderSpec>,
    /// The largest token accepted, in bytes.
    #[serde(default = "default_max_token_size")]
    max_token_size: usize,
    /// The cache of verified tokens.
    #[serde(default)]
    cache: Option<CacheSpec>,
    /// The `realm` of `WWW-Authenticate` challenges.
    #[serde(default)]
    realm: Option<String>,
}

fn default_max_token_size() -> usize {
    DEFAULT_MAX_TOKEN_SIZE
}

/// The whole token filter configuration.
#[derive(Debug)]
pub struct TokenConfig {
    providers: Vec<Provider>,
    rules: RuleSet<Requirement>,
    max_token_size: usize,
    cache: CacheSettings,
    realm: Option<String>,
    /// The answer to a request without a token, written once: the same for every such request
    /// (a flood of them is the commonest unauthenticated traffic).
    missing_reply: ErrorResponse,
}

impl TokenConfig {
    /// Parses the plugin configuration bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        Self::from_value(crate::config::parse_json(bytes)?)
    }

    /// Compiles a configuration document.
    pub fn from_value(value: Value) -> Result<Self, ConfigError> {
        let Value::Object(doc) = value else {
            return Err(ConfigError::field("", "invalid type: expected an object"));
        };
        let global_doc: Map<String, Value> = doc
            .iter()
            .filter(|(k, _)| TOP_LEVEL_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let global: GlobalSpec = from_value(Value::Object(global_doc))?;
        if global.providers.is_empty() {
            return Err(ConfigError::field(
                "providers",
                "at least one provider is required",
            ));
        }
        let mut providers: Vec<Provider> = Vec::with_capacity(global.providers.len());
        for (i, spec) in global.providers.into_iter().enumerate() {
            let path = format!("providers[{i}]");
            if providers.iter().any(|p| p.name == spec.name) {
                return Err(ConfigError::field(
                    format!("{path}.name"),
                    format!("provider '{}' is defined twice", spec.name),
                ));
            }
            providers.push(Provider::compile(&path, spec)?);
        }
        if global.max_token_size == 0 {
            return Err(ConfigError::field(
                "max_token_size",
                "must be greater than 0",
            ));
        }
        if let Some(realm) = &global.realm {
            if realm
                .bytes()
                .any(|b| b == b'"' || b == b'\\' || b < 0x20 || b == 0x7f)
            {
                return Err(ConfigError::field(
                    "realm",
                    "cannot hold quotes, backslashes or control characters",
                ));
            }
        }
        let cache = match global.cache {
            None => CacheSettings {
                max_entries: default_cache_entries(),
                max_ttl_secs: default_cache_ttl(),
            },
            Some(c) => CacheSettings {
                max_entries: c.max_entries,
                max_ttl_secs: c.max_ttl_secs,
            },
        };
        let rules = RuleSet::from_document(&doc, &TOP_LEVEL_KEYS, |policy| {
            Requirement::compile(policy, &providers)
        })?;
        let missing_reply = DenyReason::Missing.response(global.realm.as_deref());
        Ok(TokenConfig {
            providers,
            rules,
            max_token_size: global.max_token_size,
            cache,
            realm: global.realm,
            missing_reply,
        })
    }

    pub fn providers(&self) -> &[Provider] {
        &self.providers
    }

    /// The index of the provider with this name.
    pub fn provider_index(&self, name: &str) -> Option<usize> {
        self.providers.iter().position(|p| p.name == name)
    }

    /// The route rules.
    pub fn rules(&self) -> &RuleSet<Requirement> {
        &self.rules
    }

    /// The requirement for a request (first matching rule, else the default).
    pub fn select(&self, request: &Request<'_>) -> Selected<'_, Requirement> {
        self.rules.select(request)
    }

    pub fn max_token_size(&self) -> usize {
        self.max_token_size
    }

    pub fn cache_settings(&self) -> CacheSettings {
        self.cache
    }

    /// The `realm` for `WWW-Authenticate`, if configured.
    pub fn realm(&self) -> Option<&str> {
        self.realm.as_deref()
    }

    /// The answer to a request without a token ([`DenyReason::Missing`]).
    pub fn missing_reply(&self) -> &ErrorResponse {
        &self.missing_reply
    }

    /// Every header the filter writes claims or payloads to: remove them from incoming requests.
    pub fn claim_header_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for p in &self.providers {
            for h in p
                .claim_to_headers
                .iter()
                .map(|m| m.header.as_str())
                .chain(p.payload_header.as_deref())
            {
                if !names.contains(&h) {
                    names.push(h);
                }
            }
        }
        names
    }
}
