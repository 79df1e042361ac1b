//! A bounded cache of verified tokens, so a hot token costs a hash lookup instead of a signature
//! check.
//!
//! Entries are found by a 64-bit key and confirmed by comparing the whole token, so no hash
//! collision can ever stand in for a signature check. The key is FNV-1a over the token's length
//! and last bytes (the signature, which differs between tokens), which costs far less in wasm than
//! hashing the whole token (a SHA-256 of a 700-byte token took several µs per request). Two
//! verified tokens with the same key share one slot: the later one replaces the earlier, which
//! then costs a signature check again. Only verified tokens are inserted, so crafted collisions
//! can at worst evict entries. A lookup hashes and compares the token once: wasm's `memcmp`
//! compares byte by byte, a few µs for a 500-byte token, so the comparison here reads eight bytes
//! at a time and never stops early (a cached token is a credential: how long a comparison takes
//! says nothing about where two tokens differ). Entries remember the provider and the generation
//! of its keys (a key change makes them stale), and are never returned at or after the token's
//! `exp` (nor after `max_ttl_secs`). Only the signature check is skipped: time, issuer, audience
//! and route rules are checked on every request.

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
    token: Box<str>,
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
    entries: HashMap<u64, Entry, BuildHasherDefault<KeyHasher>>,
    seq: u64,
    hits: u64,
    misses: u64,
}

/// A token's cache key: FNV-1a over its length and its last 32 bytes.
fn token_key(token: &str) -> u64 {
    let bytes = token.as_bytes();
    let tail = &bytes[bytes.len().saturating_sub(32)..];
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ bytes.len() as u64;
    for b in tail {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Whether two tokens are the same: eight bytes at a time, without stopping at a difference.
fn same_token(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let word = |c: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        u64::from_ne_bytes(w)
    };
    let (mut x, mut y) = (a.chunks_exact(8), b.chunks_exact(8));
    let mut diff = x
        .by_ref()
        .zip(y.by_ref())
        .fold(0u64, |d, (p, q)| d | (word(p) ^ word(q)));
    for (p, q) in x.remainder().iter().zip(y.remainder()) {
        diff |= u64::from(p ^ q);
    }
    diff == 0
}

/// The map's hasher: keys already are hashes.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
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
        let key = token_key(token);
        let fresh = self
            .entries
            .get(&key)
            .filter(|e| same_token(&e.token, token))
            .map(|e| now < e.expires_at);
        match fresh {
            Some(true) => {
                self.hits += 1;
                self.entries.get(&key).map(|e| &e.value)
            }
            Some(false) => {
                self.entries.remove(&key);
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
        let key = token_key(token);
        if !self.entries.contains_key(&key) && self.entries.len() >= self.settings.max_entries {
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
            key,
            Entry {
                token: token.into(),
                value,
                expires_at,
                seq: self.seq,
            },
        );
    }
}
