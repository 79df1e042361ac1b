//! The compare-and-swap store that holds limiter state across Envoy worker threads.
//!
//! Envoy runs one Wasm VM per worker thread; the only memory they share is the host's *shared
//! data*: `get(key) -> (bytes, cas)` and `set(key, bytes, cas)`, which fails with a CAS mismatch
//! when another worker wrote the key after our `get`. Every state change in this module is a
//! read-compute-write loop on that primitive, retried a bounded number of times, so two workers
//! can never both spend the last request of a bucket.
//!
//! The filter implements [`CasStore`] over `proxy_wasm::hostcalls::{get,set}_shared_data`
//! (`Status::CasMismatch` → [`StoreError::CasMismatch`]). Tests use [`MemoryStore`], which
//! behaves like the host (a CAS of `None` or `0` writes unconditionally, every write bumps the
//! CAS) and can let a simulated second worker run between any `get` and the `set` after it.
//!
//! One host behaviour matters for exactness: a key that does not exist yet has no CAS, so its
//! first write is unconditional and two workers creating it at once can lose one update. The
//! filter therefore creates every key it will use when the configuration loads
//! ([`ensure_keys`]); from then on every write is a real compare-and-swap.

use std::collections::HashMap;
use std::sync::Mutex;

/// How many times a read-compute-write is retried after CAS mismatches before giving up.
///
/// Each mismatch means another worker completed a write, so the system as a whole made progress;
/// running out takes dozens of writes to one key inside one request's handling.
pub const MAX_ATTEMPTS: u32 = 32;

/// A value read from the store with its version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Versioned {
    /// The bytes, or `None` when the key does not exist (or holds nothing).
    pub value: Option<Vec<u8>>,
    /// The version to pass back to [`CasStore::set`]; `None` when the key does not exist.
    pub cas: Option<u32>,
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Another writer changed the key since it was read.
    #[error("compare-and-swap mismatch")]
    CasMismatch,
    /// The retries ran out under contention.
    #[error("gave up after {0} conflicting writes")]
    Contention(u32),
    /// The host refused the operation.
    #[error("shared data error: {0}")]
    Host(String),
}

/// Shared key-value storage with compare-and-swap (proxy-wasm shared data).
///
/// Implementations must behave like the host: `set` with `cas: Some(c)` (c ≠ 0) fails with
/// [`StoreError::CasMismatch`] unless the key's current version is `c`; `set` with `None` writes
/// unconditionally; every successful write gives the key a new version.
pub trait CasStore {
    fn get(&self, key: &str) -> Result<Versioned, StoreError>;
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError>;
}

impl<S: CasStore + ?Sized> CasStore for &S {
    fn get(&self, key: &str) -> Result<Versioned, StoreError> {
        (**self).get(key)
    }
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        (**self).set(key, value, cas)
    }
}

/// What an update function wants done with the value it was shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update<T> {
    /// Write these bytes (compare-and-swap against what was read) and return `T`.
    Write(Vec<u8>, T),
    /// Leave the key as it is and return `T`.
    Keep(T),
}

/// Reads `key`, lets `f` compute the new value, writes it with compare-and-swap, and retries
/// from the read when another writer got there first, at most [`MAX_ATTEMPTS`] times.
///
/// `f` may be called several times and must derive everything from the value it is given.
pub fn update<S, T, F>(store: &S, key: &str, mut f: F) -> Result<T, StoreError>
where
    S: CasStore + ?Sized,
    F: FnMut(Option<&[u8]>) -> Update<T>,
{
    for _ in 0..MAX_ATTEMPTS {
        let current = store.get(key)?;
        match f(current.value.as_deref()) {
            Update::Keep(out) => return Ok(out),
            Update::Write(bytes, out) => match store.set(key, &bytes, current.cas) {
                Ok(()) => return Ok(out),
                Err(StoreError::CasMismatch) => continue,
                Err(e) => return Err(e),
            },
        }
    }
    Err(StoreError::Contention(MAX_ATTEMPTS))
}

/// Creates each key that does not exist yet with `initial`, so later writes are all real
/// compare-and-swaps. Call it when the configuration loads; existing keys are left untouched.
pub fn ensure_keys<S, I>(store: &S, keys: I, initial: &[u8]) -> Result<usize, StoreError>
where
    S: CasStore + ?Sized,
    I: IntoIterator<Item = String>,
{
    let mut created = 0;
    for key in keys {
        if store.get(&key)?.cas.is_none() {
            store.set(&key, initial, None)?;
            created += 1;
        }
    }
    Ok(created)
}

/// A hook that runs between a `get` and the next `set` on a [`MemoryStore`], standing in for
/// another worker. It receives the store and the key about to be written.
pub type Interference = Box<dyn FnMut(&MemoryStore, &str) + Send>;

#[derive(Default)]
struct Inner {
    data: HashMap<String, (Vec<u8>, u32)>,
    next_cas: u32,
    gets: u64,
    sets: u64,
    mismatches: u64,
}

/// An in-memory [`CasStore`] with the host's semantics, for tests and native tools.
///
/// It is `Sync`, so native tests can hammer it from several threads; on wasm it is used from one
/// thread. [`MemoryStore::interfere`] installs a hook that runs before every `set`, which lets a
/// test play a second worker that writes between our `get` and our `set`.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    hook: Mutex<Option<Interference>>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("keys", &self.len())
            .finish()
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `hook` before every `set` (not inside it: the hook may use the store freely, and
    /// its own writes do not trigger it again).
    pub fn interfere(&self, hook: Interference) {
        if let Ok(mut slot) = self.hook.lock() {
            *slot = Some(hook);
        }
    }

    /// Removes the interference hook.
    pub fn stop_interfering(&self) {
        if let Ok(mut slot) = self.hook.lock() {
            *slot = None;
        }
    }

    /// How many keys exist.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.data.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys plus values, in bytes: what the host would hold.
    pub fn total_bytes(&self) -> usize {
        self.inner
            .lock()
            .map(|i| i.data.iter().map(|(k, (v, _))| k.len() + v.len()).sum())
            .unwrap_or(0)
    }

    /// All keys, sorted (for tests that look at the layout).
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .inner
            .lock()
            .map(|i| i.data.keys().cloned().collect())
            .unwrap_or_default();
        keys.sort();
        keys
    }

    /// The raw bytes under `key`.
    pub fn raw(&self, key: &str) -> Option<Vec<u8>> {
        self.inner
            .lock()
            .ok()
            .and_then(|i| i.data.get(key).map(|(v, _)| v.clone()))
    }

    /// Writes raw bytes (for tests that plant old or corrupt state).
    pub fn put_raw(&self, key: &str, value: &[u8]) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.next_cas = inner.next_cas.wrapping_add(1).max(1);
            let cas = inner.next_cas;
            inner.data.insert(key.to_owned(), (value.to_vec(), cas));
        }
    }

    /// (gets, sets, CAS mismatches) so far.
    pub fn stats(&self) -> (u64, u64, u64) {
        self.inner
            .lock()
            .map(|i| (i.gets, i.sets, i.mismatches))
            .unwrap_or_default()
    }

    fn run_hook(&self, key: &str) {
        let hook = self.hook.lock().ok().and_then(|mut slot| slot.take());
        if let Some(mut hook) = hook {
            hook(self, key);
            if let Ok(mut slot) = self.hook.lock() {
                if slot.is_none() {
                    *slot = Some(hook);
                }
            }
        }
    }
}

impl CasStore for MemoryStore {
    fn get(&self, key: &str) -> Result<Versioned, StoreError> {
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| StoreError::Host("poisoned".into()))?;
        inner.gets += 1;
        Ok(match inner.data.get(key) {
            Some((value, cas)) => Versioned {
                value: if value.is_empty() {
                    None
                } else {
                    Some(value.clone())
                },
                cas: Some(*cas),
            },
            None => Versioned::default(),
        })
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        self.run_hook(key);
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| StoreError::Host("poisoned".into()))?;
        if let (Some(expected), Some((_, current))) = (cas, inner.data.get(key)) {
            if expected != 0 && expected != *current {
                inner.mismatches += 1;
                return Err(StoreError::CasMismatch);
            }
        }
        inner.sets += 1;
        inner.next_cas = inner.next_cas.wrapping_add(1).max(1);
        let next = inner.next_cas;
        inner.data.insert(key.to_owned(), (value.to_vec(), next));
        Ok(())
    }
}
