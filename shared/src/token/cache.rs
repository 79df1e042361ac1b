//! A bounded cache of verified tokens, so a hot token costs a hash lookup instead of a signature
//! check.
//!
//! Entries are keyed by the token itself and found by comparing the whole string, so no hash
//! collision can ever stand in for a signature check. The hash only picks a bucket: it reads the
//! token's last bytes (the signature, which differs between tokens) with FNV-1a, which costs far
//! less in wasm than hashing the whole token (a SHA-256 of a 700-byte token took several µs per
//! request). Only verified tokens are inserted, so crafted collisions can at worst make a lookup
//! scan the bounded cache. Entries remember the provider and the generation of its keys (a key
//! change makes them stale), and are never returned at or after the token's `exp` (nor after
//! `max_ttl_secs`). Only the signature check is skipped: time, issuer, audience and route rules
//! are checked on every request.

use super::claims::Claims;
use super::config::{CacheSettings, TokenConfig};
use super::outcome::TokenFormat;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// What a cache entry remembers of a verification.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CachedVerification {
    pub provider: usize,
    pub generation: u64,
    pub format: TokenFormat,
    pub key_id: Option<Arc<str>>,
    pub claims: Claims,
    pub payload_b64: Arc<str>,
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
    entries: HashMap<Box<str>, Entry, BuildHasherDefault<TailHasher>>,
    seq: u64,
    hits: u64,
    misses: u64,
}

/// FNV-1a over the last 32 bytes written (see the module docs for why that is enough).
#[derive(Default)]
struct TailHasher(u64);

impl Hasher for TailHasher {
    fn write(&mut self, bytes: &[u8]) {
        let tail = &bytes[bytes.len().saturating_sub(32)..];
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in tail {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl TokenCache {
    pub fn new(settings: CacheSettings) -> Self {
        TokenCache {
            settings,
            entries: HashMap::default(),
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
        let fresh = self.entries.get(token).map(|e| now < e.expires_at);
        match fresh {
            Some(true) => {
                self.hits += 1;
                self.entries.get(token).map(|e| &e.value)
            }
            Some(false) => {
                self.entries.remove(token);
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
        if !self.entries.contains_key(token) && self.entries.len() >= self.settings.max_entries {
            self.entries.retain(|_, e| now < e.expires_at);
            if self.entries.len() >= self.settings.max_entries {
                if let Some(oldest) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.seq)
                    .map(|(k, _)| k.clone())
                {
                    self.entries.remove(&oldest);
                }
            }
        }
        self.seq += 1;
        self.entries.insert(
            token.into(),
            Entry {
                value,
                expires_at,
                seq: self.seq,
            },
        );
    }
}
