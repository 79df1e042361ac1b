//! The decision for one request: find the tokens, verify them with the right providers, check
//! claims and the route's requirement.

use super::backend::{PureRust, SignatureBackend};
use super::cache::{CachedVerification, TokenCache};
use super::claims::Claims;
use super::config::{Provider, TokenConfig};
use super::error::TokenError;
use super::extract::{is_cors_preflight, TokenLocation, TokenRequest};
use super::jwt::UntrustedJwt;
use super::keys::KeyStore;
use super::outcome::{
    AllowBasis, DenyReason, Failure, FoundToken, Outcome, TokenFormat, VerifiedToken,
};
use super::paseto::{looks_like_paseto, UntrustedPaseto};
use super::peers::{Peer, PeerMode};
use super::requirement::{RequireMode, Requirement};
use std::sync::Arc;

/// Verifies requests against a config and the VM's keys.
pub struct Verifier<'a> {
    config: &'a TokenConfig,
    keys: &'a KeyStore,
    backend: &'a dyn SignatureBackend,
}

enum Parsed<'t> {
    Jwt(UntrustedJwt<'t>),
    Paseto(UntrustedPaseto),
}

/// A signature check that passed, before the provider's claim checks.
struct SignatureOk {
    format: TokenFormat,
    key_id: Option<Arc<str>>,
    claims: Claims,
    payload_b64: Arc<str>,
}

fn keep_furthest(best: &mut Option<Failure>, candidate: Failure) {
    let replace = match best {
        None => true,
        Some(b) => candidate.reason.stage() > b.reason.stage(),
    };
    if replace {
        *best = Some(candidate);
    }
}

impl<'a> Verifier<'a> {
    /// A verifier that checks every signature in pure Rust.
    pub fn new(config: &'a TokenConfig, keys: &'a KeyStore) -> Self {
        Verifier {
            config,
            keys,
            backend: &PureRust,
        }
    }

    /// Uses the host for RSA PKCS#1 v1.5 and ECDSA checks where it can.
    pub fn with_backend(mut self, backend: &'a dyn SignatureBackend) -> Self {
        self.backend = backend;
        self
    }

    /// Decides a request under `requirement` at `now` (unix seconds), for a connection without
    /// a client certificate (a route with `peers` then refuses it unless tokens may do instead).
    pub fn check(
        &self,
        requirement: &Requirement,
        request: &TokenRequest<'_>,
        now: u64,
        cache: Option<&mut TokenCache>,
    ) -> Outcome {
        self.check_with_peer(requirement, request, &Peer::NoCertificate, now, cache)
    }

    /// Decides a request under `requirement` at `now` (unix seconds), with the connection's
    /// client certificate (only looked at when the requirement has `peers`).
    pub fn check_with_peer(
        &self,
        requirement: &Requirement,
        request: &TokenRequest<'_>,
        peer: &Peer<'_>,
        now: u64,
        cache: Option<&mut TokenCache>,
    ) -> Outcome {
        if requirement.bypass_cors_preflight && is_cors_preflight(request) {
            return allow(AllowBasis::CorsPreflight, Vec::new(), Vec::new());
        }
        if let Some(rule) = &requirement.peers {
            match (rule.mode, rule.check(peer)) {
                (PeerMode::Alone | PeerMode::OrToken, Ok(id)) => {
                    return allow(AllowBasis::Peer(id), Vec::new(), Vec::new());
                }
                (PeerMode::Alone | PeerMode::AndToken, Err(denial)) => {
                    return Outcome::Deny {
                        failure: Failure {
                            reason: DenyReason::Peer(denial),
                            provider: None,
                        },
                        found: Vec::new(),
                    };
                }
                // The token requirement decides.
                (PeerMode::AndToken, Ok(_)) | (PeerMode::OrToken, Err(_)) => {}
            }
        }
        self.check_tokens(requirement, request, now, cache)
    }

    /// The token side of a decision.
    fn check_tokens(
        &self,
        requirement: &Requirement,
        request: &TokenRequest<'_>,
        now: u64,
        mut cache: Option<&mut TokenCache>,
    ) -> Outcome {
        if requirement.mode == RequireMode::None {
            return allow(AllowBasis::NotRequired, Vec::new(), Vec::new());
        }
        let found = self.find_tokens(&requirement.providers, request);
        if found.is_empty() {
            return missing(requirement, None, found);
        }
        match requirement.mode {
            RequireMode::All => {
                let mut tokens = Vec::with_capacity(requirement.providers.len());
                for &p in &requirement.providers {
                    let Some(f) = found.iter().find(|f| f.providers.contains(&p)) else {
                        let failure = Failure {
                            reason: DenyReason::Missing,
                            provider: Some(p),
                        };
                        return failed(requirement, failure, found);
                    };
                    let checked = self
                        .verify_token(&f.token, &[p], &f.location, now, cache.as_deref_mut())
                        .and_then(|t| check_requirement(requirement, t));
                    match checked {
                        Ok(t) => tokens.push(t),
                        Err(failure) => return failed(requirement, failure, found),
                    }
                }
                allow(AllowBasis::Verified, tokens, found)
            }
            _ => {
                let mut best = None;
                for f in &found {
                    let checked = self
                        .verify_token(
                            &f.token,
                            &f.providers,
                            &f.location,
                            now,
                            cache.as_deref_mut(),
                        )
                        .and_then(|t| check_requirement(requirement, t));
                    match checked {
                        Ok(t) => return allow(AllowBasis::Verified, vec![t], found),
                        Err(failure) => keep_furthest(&mut best, failure),
                    }
                }
                let failure = best.unwrap_or(Failure {
                    reason: DenyReason::Missing,
                    provider: None,
                });
                failed(requirement, failure, found)
            }
        }
    }

    /// The tokens the given providers find in the request (one per provider: its first source
    /// that holds one), grouped by token and place.
    pub fn find_tokens(&self, providers: &[usize], request: &TokenRequest<'_>) -> Vec<FoundToken> {
        let mut found: Vec<FoundToken> = Vec::new();
        for &p in providers {
            let Some(provider) = self.config.providers().get(p) else {
                continue;
            };
            let hit = provider.sources.iter().find_map(|s| s.extract(request));
            let Some((token, location)) = hit else {
                continue;
            };
            match found
                .iter_mut()
                .find(|f| f.location == location && f.token == token)
            {
                Some(f) => f.providers.push(p),
                None => found.push(FoundToken {
                    token,
                    location,
                    providers: vec![p],
                }),
            }
        }
        found
    }

    /// Verifies one token for the first of `candidates` (provider indices) that accepts it:
    /// signature with the provider's keys, then its time and identity rules.
    pub fn verify_token(
        &self,
        token: &str,
        candidates: &[usize],
        location: &TokenLocation,
        now: u64,
        mut cache: Option<&mut TokenCache>,
    ) -> Result<VerifiedToken, Failure> {
        let providers = self.config.providers();
        let single = if candidates.len() == 1 {
            candidates.first().copied()
        } else {
            None
        };
        if let Some(c) = cache.as_deref_mut() {
            let hit = c.get(token, now).and_then(|v| {
                let current = candidates.contains(&v.provider)
                    && self.keys.generation(v.provider) == v.generation;
                current.then(|| v.clone())
            });
            if let Some(v) = hit {
                if let Some(p) = providers.get(v.provider) {
                    let sig = SignatureOk {
                        format: v.format,
                        key_id: v.key_id,
                        claims: v.claims,
                        payload_b64: v.payload_b64,
                    };
                    return finish(p, v.provider, sig, location, now);
                }
            }
        }
        let max = self.config.max_token_size();
        let parsed = if looks_like_paseto(token) {
            UntrustedPaseto::parse(token, max).map(Parsed::Paseto)
        } else {
            UntrustedJwt::parse(token, max).map(Parsed::Jwt)
        };
        let parsed = parsed.map_err(|e| Failure {
            reason: e.into(),
            provider: single,
        })?;
        let issuer = match &parsed {
            Parsed::Jwt(j) => j.untrusted_issuer(),
            Parsed::Paseto(t) => t.untrusted_issuer(),
        };
        let by_format: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&i| {
                providers.get(i).is_some_and(|p| match &parsed {
                    Parsed::Jwt(_) => p.accepts_jwt(),
                    Parsed::Paseto(_) => p.accepts_paseto(),
                })
            })
            .collect();
        if by_format.is_empty() {
            return Err(Failure {
                reason: DenyReason::AlgorithmNotAllowed,
                provider: single,
            });
        }
        let by_issuer: Vec<usize> = by_format
            .iter()
            .copied()
            .filter(|&i| {
                providers.get(i).is_some_and(|p| match &p.identity.issuer {
                    None => true,
                    Some(want) => issuer == Some(want.as_str()),
                })
            })
            .collect();
        if by_issuer.is_empty() {
            return Err(Failure {
                reason: DenyReason::Issuer,
                provider: single,
            });
        }
        let mut best = None;
        for i in by_issuer {
            let Some(p) = providers.get(i) else {
                continue;
            };
            match self.check_signature(&parsed, i, p) {
                Ok(sig) => {
                    if let Some(c) = cache.as_deref_mut() {
                        c.insert(
                            token,
                            CachedVerification {
                                provider: i,
                                generation: self.keys.generation(i),
                                format: sig.format,
                                key_id: sig.key_id.clone(),
                                claims: sig.claims.clone(),
                                payload_b64: sig.payload_b64.clone(),
                            },
                            now,
                        );
                    }
                    match finish(p, i, sig, location, now) {
                        Ok(t) => return Ok(t),
                        Err(f) => keep_furthest(&mut best, f),
                    }
                }
                Err(reason) => keep_furthest(
                    &mut best,
                    Failure {
                        reason,
                        provider: Some(i),
                    },
                ),
            }
        }
        Err(best.unwrap_or(Failure {
            reason: DenyReason::BadSignature,
            provider: single,
        }))
    }

    fn check_signature(
        &self,
        parsed: &Parsed<'_>,
        index: usize,
        provider: &Provider,
    ) -> Result<SignatureOk, DenyReason> {
        match parsed {
            Parsed::Jwt(jwt) => {
                let keys = match self.keys.jwt_keys(index) {
                    Some(k) if !k.is_empty() => k,
                    _ => return Err(DenyReason::KeysUnavailable(provider.keys_unavailable)),
                };
                let v = jwt.verify(keys, self.backend).map_err(DenyReason::from)?;
                Ok(SignatureOk {
                    format: TokenFormat::Jwt(v.algorithm),
                    key_id: v.key_id.map(Arc::from),
                    claims: v.claims,
                    payload_b64: v.payload_b64.into(),
                })
            }
            Parsed::Paseto(token) => {
                let Some(paseto) = &provider.paseto else {
                    return Err(TokenError::AlgorithmNotAllowed.into());
                };
                let v = token
                    .verify(&paseto.keys, &paseto.rules)
                    .map_err(DenyReason::from)?;
                Ok(SignatureOk {
                    format: TokenFormat::PasetoV4Public,
                    key_id: v.key_id.map(Arc::from),
                    claims: v.claims,
                    payload_b64: v.payload_b64.into(),
                })
            }
        }
    }
}

/// The provider's time and identity checks on a token whose signature passed.
fn finish(
    provider: &Provider,
    index: usize,
    sig: SignatureOk,
    location: &TokenLocation,
    now: u64,
) -> Result<VerifiedToken, Failure> {
    let fail = |e: super::claims::ClaimError| Failure {
        reason: e.into(),
        provider: Some(index),
    };
    provider.time.check(&sig.claims, now).map_err(fail)?;
    provider.identity.check(&sig.claims).map_err(fail)?;
    Ok(VerifiedToken {
        provider: index,
        format: sig.format,
        key_id: sig.key_id,
        claims: sig.claims,
        payload_b64: sig.payload_b64,
        location: location.clone(),
    })
}

fn check_requirement(
    requirement: &Requirement,
    token: VerifiedToken,
) -> Result<VerifiedToken, Failure> {
    let fail = |reason| Failure {
        reason,
        provider: Some(token.provider),
    };
    if !requirement.scopes.check(&token.claims) {
        return Err(fail(DenyReason::InsufficientScope {
            required: requirement.scopes.describe(),
        }));
    }
    if !requirement.claims.iter().all(|r| r.check(&token.claims)) {
        return Err(fail(DenyReason::ClaimsNotMet));
    }
    Ok(token)
}

fn allow(basis: AllowBasis, tokens: Vec<VerifiedToken>, found: Vec<FoundToken>) -> Outcome {
    Outcome::Allow {
        basis,
        tokens,
        found,
    }
}

fn missing(requirement: &Requirement, provider: Option<usize>, found: Vec<FoundToken>) -> Outcome {
    if requirement.allow_missing || requirement.allow_missing_or_failed {
        allow(AllowBasis::MissingAllowed, Vec::new(), found)
    } else {
        Outcome::Deny {
            failure: Failure {
                reason: DenyReason::Missing,
                provider,
            },
            found,
        }
    }
}

fn failed(requirement: &Requirement, failure: Failure, found: Vec<FoundToken>) -> Outcome {
    if requirement.allow_missing_or_failed {
        allow(AllowBasis::FailureAllowed(failure), Vec::new(), found)
    } else {
        Outcome::Deny { failure, found }
    }
}
