//! Remote keys shared by every worker VM.
//!
//! Each worker's root context keeps a fetch schedule per provider (the core's `FetchSchedule`).
//! A fetched JWKS document is published in shared data as `[fetched_at_ms: u64 LE][document]`
//! under `palisade.token.jwks.<provider>`; every VM loads a newer document when it sees one (on
//! its tick, or on the request path when it has no keys yet), and adopts its fetch time, so one
//! fetch serves all workers. Who fetches is decided by a short lease in shared data
//! (`palisade.token.lease.<provider>`, `[until_ms: u64 LE]`) taken with compare-and-swap.

use palisade_host as host;

fn doc_key(provider: &str) -> String {
    format!("palisade.token.jwks.{provider}")
}

fn lease_key(provider: &str) -> String {
    format!("palisade.token.lease.{provider}")
}

/// A published document: when it was fetched, and its bytes.
pub struct Published {
    pub fetched_at_ms: u64,
    pub document: Vec<u8>,
    pub cas: u32,
}

/// The published document for a provider, if its version differs from `known_cas`.
pub fn newer(provider: &str, known_cas: Option<u32>) -> Option<Published> {
    let (value, cas) = host::shared_get(&doc_key(provider));
    let (value, cas) = (value?, cas?);
    if Some(cas) == known_cas || value.len() < 8 {
        return None;
    }
    let mut at = [0u8; 8];
    at.copy_from_slice(&value[..8]);
    Some(Published {
        fetched_at_ms: u64::from_le_bytes(at),
        document: value[8..].to_vec(),
        cas,
    })
}

/// Publishes a freshly fetched document; returns its version.
pub fn publish(provider: &str, now_ms: u64, document: &[u8]) -> Option<u32> {
    let mut value = Vec::with_capacity(document.len() + 8);
    value.extend_from_slice(&now_ms.to_le_bytes());
    value.extend_from_slice(document);
    host::shared_set(&doc_key(provider), &value, None).ok()?;
    host::shared_get(&doc_key(provider)).1
}

/// Takes the fetch lease for `lease_ms` if nobody holds it; `true` when this VM may fetch.
pub fn take_lease(provider: &str, now_ms: u64, lease_ms: u64) -> bool {
    let key = lease_key(provider);
    let (value, cas) = host::shared_get(&key);
    if let Some(v) = value.as_deref().filter(|v| v.len() == 8) {
        let mut b = [0u8; 8];
        b.copy_from_slice(v);
        if u64::from_le_bytes(b) > now_ms {
            return false;
        }
    }
    let until = now_ms.saturating_add(lease_ms).to_le_bytes();
    // A missing key has no version: the first writer wins the race to create it.
    host::shared_set(&key, &until, cas).is_ok()
}

/// Gives the lease back (after a fetch finished), so a retry is not held up.
pub fn release_lease(provider: &str) {
    let _ = host::shared_set(&lease_key(provider), &0u64.to_le_bytes(), None);
}
