//! The four Palisade policies as stages of a proxy-wasm pipeline (`palisade_host::pipeline`).
//!
//! Each policy module reads what Envoy gives it, asks the core (`palisade`) and acts on the
//! answer. A filter module builds a pipeline of its one policy ([`security_headers`],
//! [`rate_limit`], [`token_auth`], [`input_validation`]); the combined module builds all the
//! configured ones in one VM ([`combined`]).

pub mod input_validation;
pub mod rate_limit;
pub mod security_headers;
pub mod token_auth;

use palisade::combined::CombinedConfig;
use palisade::ratelimit::RateLimitConfig;
use palisade::security_headers::SecurityHeaders;
use palisade::token::TokenConfig;
use palisade::validation::ValidationConfig;
use palisade_host::pipeline::StageRoot;

/// The stages a module runs, or why its configuration is refused.
pub type Stages = Result<Vec<Box<dyn StageRoot>>, String>;

/// The security-headers filter's pipeline.
pub fn security_headers(config: &[u8]) -> Stages {
    let config = SecurityHeaders::from_slice(config).map_err(|e| e.to_string())?;
    Ok(vec![Box::new(security_headers::Root::new(config))])
}

/// The rate-limit filter's pipeline.
pub fn rate_limit(config: &[u8]) -> Stages {
    let config = RateLimitConfig::from_slice(config).map_err(|e| e.to_string())?;
    Ok(vec![Box::new(rate_limit::Root::new(config)?)])
}

/// The token filter's pipeline.
pub fn token_auth(config: &[u8]) -> Stages {
    let config = TokenConfig::parse(config).map_err(|e| e.to_string())?;
    Ok(vec![Box::new(token_auth::Root::new(config))])
}

/// The input-validation filter's pipeline.
pub fn input_validation(config: &[u8]) -> Stages {
    let config = ValidationConfig::from_slice(config).map_err(|e| e.to_string())?;
    Ok(vec![Box::new(input_validation::Root::new(config))])
}

/// The combined module's pipeline: every configured policy, in the chain's order.
pub fn combined(config: &[u8]) -> Stages {
    let config = CombinedConfig::from_slice(config).map_err(|e| e.to_string())?;
    let mut stages: Vec<Box<dyn StageRoot>> = Vec::new();
    if let Some(c) = config.security_headers {
        stages.push(Box::new(security_headers::Root::new(c)));
    }
    if let Some(c) = config.rate_limit {
        stages.push(Box::new(rate_limit::Root::new(c)?));
    }
    if let Some(c) = config.token_auth {
        stages.push(Box::new(token_auth::Root::new(c)));
    }
    if let Some(c) = config.input_validation {
        stages.push(Box::new(input_validation::Root::new(c)));
    }
    Ok(stages)
}
