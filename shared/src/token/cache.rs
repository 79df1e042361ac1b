//! A bounded cache of verified tokens, so a hot token costs a hash lookup instead of a signature
//! check.
//!
//! Entries are keyed by the SHA-256 of the token (the token itself is not kept), remember the
//! provider and the generation of its keys (a key change makes them stale), and are never
//! returned at or after the token's `exp` (nor after `max_ttl_secs`). Only the signature check is
//! skipped: time, issuer, audience and route rules are checked on every request.

use super::claims::Claims;
use super::config::{CacheSettings, TokenConfig};
use super::outcome::TokenFormat;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// What a cache entry remembers of a verification.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CachedVerification {
    pub provider: usize,
    pub generation: u64,
    pub format: TokenFormat,
    pub key_id: Option<String>,
    pub claims: Claims,
    pub payload_b64: String,
}

#[derive(Debug)]
struct Entry {
    value: CachedVerification,
    /// Unix seconds at which the entry stops being returned.
    expires_at: u64,
    /// Insertion order, for evicting the oldest entry.
    seq: u64,
}

/// A per-VM cache of verified tokens.
#[derive(Debug)]
pub struct TokenCache {
    settings: CacheSettings,
    entries: BTreeMap<[u8; 32], Entry>,
    seq: u64,
    hits: u64,
    misses: u64,
}

fn key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl TokenCache {
    pub fn new(settings: CacheSettings) -> Self {
        TokenCache {
            settings,
            entries: BTreeMap::new(),
            seq: 0,
            hits: 0,
            misses: 0,
        }
    }

    /// A cache sized by the config's `cache` settings.
    pub fn from_config(config: &TokenConfig) -> Self {
        Self::new(config.cache_settings())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Lookups that found a usable entry.
    pub fn hits(&self) -> u64 {
        self.hits
    }

    /// Lookups that did not.
    pub fn misses(&self) -> u64 {
        self.misses
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub(crate) fn get(&mut self, token: &str, now: u64) -> Option<&CachedVerification> {
        if self.settings.max_entries == 0 {
            return None;
        }
        let k = key(token);
        let fresh = self.entries.get(&k).map(|e| now < e.expires_at);
        match fresh {
            Some(true) => {
                self.hits += 1;
                self.entries.get(&k).map(|e| &e.value)
            }
            Some(false) => {
                self.entries.remove(&k);
                self.misses += 1;
                None
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    pub(crate) fn insert(&mut self, token: &str, value: CachedVerification, now: u64) {
        if self.settings.max_entries == 0 {
            return;
        }
        let ttl_end = now.saturating_add(self.settings.max_ttl_secs);
        let expires_at = match value.claims.exp() {
            Some(exp) => u64::try_from(exp).unwrap_or(0).min(ttl_end),
            None => ttl_end,
        };
        if expires_at <= now {
            return;
        }
        let k = key(token);
        if !self.entries.contains_key(&k) && self.entries.len() >= self.settings.max_entries {
            self.entries.retain(|_, e| now < e.expires_at);
            if self.entries.len() >= self.settings.max_entries {
                if let Some(oldest) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.seq)
                    .map(|(k, _)| *k)
                {
                    self.entries.remove(&oldest);
                }
            }
        }
        self.seq += 1;
        self.entries.insert(
            k,
            Entry {
                value,
                expires_at,
                seq: self.seq,
            },
        );
    }
}
