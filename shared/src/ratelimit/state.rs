//! Where limiter state lives in the store, and how it is encoded.
//!
//! # Bounded memory on a store that cannot delete
//!
//! Proxy-wasm shared data has no delete and no expiry, so one store key per client would grow
//! without bound under a flood of distinct keys. Instead each limit owns a fixed **table**:
//! `max_keys / WAYS` *sets* (store keys `<prefix>/<set>`), each holding at most [`WAYS`] entries.
//! A client key is hashed (BLAKE2s, a cryptographic hash, so nobody can aim a key at another
//! client's entry; it costs about 8 k fewer wasm instructions per request than SHA-256) to a set
//! and a 16-byte fingerprint; its entry is looked up by fingerprint inside the set. The whole set
//! is one store value, so finding, inserting and updating an entry is one compare-and-swap and
//! two workers can never create the same key twice.
//!
//! Every entry carries the instant it expires (for a rate limit, the moment its bucket is full
//! again). Expired entries are dropped whenever their set is written, so idle keys free their
//! place by themselves, and the store holds at most `sets` keys of at most
//! `2 + WAYS * (16 + 8 * width)` bytes per limit, whatever the traffic.
//!
//! # When a set is full
//!
//! A new key whose set already holds [`WAYS`] *unexpired* entries of other keys is over budget.
//! [`WhenFull`] says what happens:
//! - `shared` (default): the key is counted in one overflow bucket per limit, shared by every
//!   key that found no place, with the limit's own rate. Keys already tracked keep their exact
//!   limits, and rotating keys does not escape the limit: the flood shares one bucket.
//! - `evict`: the entry closest to expiry is dropped and the new key starts fresh. Nobody is
//!   throttled for others, but the evicted key's history is lost (it gets a fresh bucket later).
//!
//! # Encoding (version 2)
//!
//! `[version = 2][width][entry]*`, each entry `[fingerprint: 16][word: u64 LE] * width`, where
//! `word[0]` is the expiry in nanoseconds. A value with another version, width or length is
//! treated as an empty set and overwritten by the next write (state is a cache of recent
//! traffic; losing it loosens a limit for at most one period, it never breaks the filter).

use super::store::{update, CasStore, StoreError, Update};
use blake2::{Blake2s256, Digest};
use serde::Deserialize;

/// Entries per set.
pub const WAYS: usize = 8;
/// The encoding version written today (2: BLAKE2s fingerprints; sets of version 1 held SHA-256
/// ones and read as empty, as any other version).
pub const FORMAT_VERSION: u8 = 2;
/// The most 64-bit words an entry can carry.
pub const MAX_WORDS: usize = 4;
/// The fingerprint of the shared overflow bucket (a BLAKE2s prefix never equals it in practice,
/// and the overflow bucket lives under its own store key anyway).
pub const OVERFLOW_FINGERPRINT: Fingerprint = [0xff; 16];

/// 16 bytes of BLAKE2s-256 that identify a client key inside a table.
pub type Fingerprint = [u8; 16];

/// What to do with a new key when its set is full of other, active keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Count it in the limit's shared overflow bucket.
    #[default]
    Shared,
    /// Evict the entry that expires first and track the new key.
    Evict,
}

/// Why stored bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("unknown state version {0}")]
    Version(u8),
    #[error("state written with {found} words per entry, expected {expected}")]
    Width { found: u8, expected: u8 },
    #[error("state of {0} bytes is not a whole number of entries")]
    Length(usize),
    #[error("state holds {0} entries, more than a set can")]
    TooMany(usize),
}

/// One tracked key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub fingerprint: Fingerprint,
    /// `words[0]` is the expiry; only the first `width` words are stored.
    pub words: [u64; MAX_WORDS],
}

impl Entry {
    pub fn expires_at(&self) -> u64 {
        self.words[0]
    }
}

/// The decoded content of one set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotSet {
    width: u8,
    pub entries: Vec<Entry>,
}

impl SlotSet {
    /// An empty set whose entries carry `width` words.
    pub fn empty(width: u8) -> Self {
        SlotSet {
            width: width.clamp(1, MAX_WORDS as u8),
            entries: Vec::new(),
        }
    }

    /// Decodes a stored value; a missing or empty value is an empty set.
    pub fn decode(bytes: Option<&[u8]>, width: u8) -> Result<Self, StateError> {
        let width = width.clamp(1, MAX_WORDS as u8);
        let bytes = match bytes {
            None | Some([]) => return Ok(SlotSet::empty(width)),
            Some(b) => b,
        };
        let (&version, rest) = bytes.split_first().ok_or(StateError::Length(0))?;
        if version != FORMAT_VERSION {
            return Err(StateError::Version(version));
        }
        let (&found, body) = rest.split_first().ok_or(StateError::Length(bytes.len()))?;
        if found != width {
            return Err(StateError::Width {
                found,
                expected: width,
            });
        }
        let entry_len = 16 + 8 * usize::from(width);
        if body.len() % entry_len != 0 {
            return Err(StateError::Length(bytes.len()));
        }
        let count = body.len() / entry_len;
        if count > WAYS {
            return Err(StateError::TooMany(count));
        }
        let mut entries = Vec::with_capacity(count);
        for chunk in body.chunks_exact(entry_len) {
            let mut fingerprint = [0u8; 16];
            fingerprint.copy_from_slice(&chunk[..16]);
            let mut words = [0u64; MAX_WORDS];
            for (word, raw) in words.iter_mut().zip(chunk[16..].chunks_exact(8)) {
                let mut le = [0u8; 8];
                le.copy_from_slice(raw);
                *word = u64::from_le_bytes(le);
            }
            entries.push(Entry { fingerprint, words });
        }
        Ok(SlotSet { width, entries })
    }

    /// Encodes the set.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.start_encoding(self.entries.len());
        for entry in &self.entries {
            self.push_entry(&mut out, &entry.fingerprint, &entry.words);
        }
        out
    }

    /// A buffer for `entries` entries of this set's width, holding the version and width.
    fn start_encoding(&self, entries: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + entries * (16 + 8 * usize::from(self.width)));
        out.push(FORMAT_VERSION);
        out.push(self.width);
        out
    }

    /// Appends one encoded entry: its fingerprint, then its first `width` words.
    fn push_entry(&self, out: &mut Vec<u8>, fingerprint: &Fingerprint, words: &[u64; MAX_WORDS]) {
        out.extend_from_slice(fingerprint);
        for word in &words[..usize::from(self.width)] {
            out.extend_from_slice(&word.to_le_bytes());
        }
    }

    pub fn width(&self) -> u8 {
        self.width
    }

    pub fn find(&self, fingerprint: &Fingerprint) -> Option<usize> {
        self.entries
            .iter()
            .position(|e| &e.fingerprint == fingerprint)
    }
}

/// A limit's (or a throttle's) fixed region of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    prefix: String,
    sets: u32,
    width: u8,
    when_full: WhenFull,
}

/// Where a key's entry was found (or will go), as read from the store.
#[derive(Debug, Clone)]
pub struct Slot {
    /// The store key that was read and must be written back.
    pub store_key: String,
    /// The version that was read.
    pub cas: Option<u32>,
    /// The entry's words if the key is tracked and has not expired.
    pub current: Option<[u64; MAX_WORDS]>,
    /// Whether the key did not fit and was sent to the shared overflow bucket.
    pub overflow: bool,
    /// Whether an entry of another key will be evicted to make room.
    pub evicts: bool,
    /// Whether the stored bytes were unreadable and will be replaced.
    pub reset_corrupt: bool,
    set: SlotSet,
    fingerprint: Fingerprint,
    evict: Option<usize>,
}

impl Slot {
    /// The stored value after setting this key's words to `words` at `now`: expired entries are
    /// dropped (this one too, if `words[0] <= now`), an evicted entry is removed, a new key goes
    /// last. Written straight from the set read, without a copy of it (this runs for every
    /// request the store sees).
    pub fn encode_with(&self, words: [u64; MAX_WORDS], now: u64) -> Vec<u8> {
        let set = &self.set;
        let mut out = set.start_encoding(set.entries.len() + 1);
        let mut push = |fingerprint: &Fingerprint, words: &[u64; MAX_WORDS]| {
            if words[0] > now {
                set.push_entry(&mut out, fingerprint, words);
            }
        };
        let mut found = false;
        for (i, entry) in self.set.entries.iter().enumerate() {
            if Some(i) == self.evict {
                continue;
            }
            if !found && entry.fingerprint == self.fingerprint {
                found = true;
                push(&entry.fingerprint, &words);
            } else {
                push(&entry.fingerprint, &entry.words);
            }
        }
        if !found {
            push(&self.fingerprint, &words);
        }
        out
    }
}

impl Table {
    /// A table under `prefix` (e.g. `palisade.rl/per-ip`) for about `max_keys` keys whose
    /// entries carry `width` words.
    pub fn new(prefix: String, max_keys: u32, width: u8, when_full: WhenFull) -> Self {
        let sets = max_keys.div_ceil(WAYS as u32).max(1);
        Table {
            prefix,
            sets,
            width: width.clamp(1, MAX_WORDS as u8),
            when_full,
        }
    }

    /// The number of sets (store keys besides the overflow bucket).
    pub fn sets(&self) -> u32 {
        self.sets
    }

    /// The most keys tracked at once.
    pub fn capacity(&self) -> usize {
        self.sets as usize * WAYS
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn when_full(&self) -> WhenFull {
        self.when_full
    }

    /// The store key of the shared overflow bucket.
    pub fn overflow_key(&self) -> String {
        format!("{}/overflow", self.prefix)
    }

    /// Every store key this table can use (to create them when the config loads).
    pub fn store_keys(&self) -> impl Iterator<Item = String> + '_ {
        (0..self.sets)
            .map(|i| self.set_key(i))
            .chain(std::iter::once(self.overflow_key()))
    }

    /// The store key of set `index` (`<prefix>/<index>`), written without the formatting
    /// machinery: [`Table::read`] needs one for every request the store sees.
    fn set_key(&self, index: u32) -> String {
        let mut key = String::with_capacity(self.prefix.len() + 11);
        key.push_str(&self.prefix);
        key.push('/');
        crate::decimal::push(&mut key, u64::from(index));
        key
    }

    /// The value new keys are created with.
    pub fn empty_value(&self) -> Vec<u8> {
        SlotSet::empty(self.width).encode()
    }

    /// The set index and fingerprint of a client key.
    pub fn locate(&self, key: &[u8]) -> (u32, Fingerprint) {
        let mut hasher = Blake2s256::new();
        hasher.update((self.prefix.len() as u32).to_le_bytes());
        hasher.update(self.prefix.as_bytes());
        hasher.update(key);
        let digest = hasher.finalize();
        let mut fingerprint = [0u8; 16];
        fingerprint.copy_from_slice(&digest[..16]);
        let mut index = [0u8; 8];
        index.copy_from_slice(&digest[16..24]);
        let set = (u64::from_le_bytes(index) % u64::from(self.sets)) as u32;
        (set, fingerprint)
    }

    /// Changes the entry a previous [`Table::read`] found or placed, if it is still there, with a
    /// compare-and-swap loop. Returns whether the entry was found.
    pub fn modify<S, F>(&self, store: &S, slot: &Slot, now: u64, f: F) -> Result<bool, StoreError>
    where
        S: CasStore + ?Sized,
        F: Fn([u64; MAX_WORDS]) -> [u64; MAX_WORDS],
    {
        let width = self.width;
        let fingerprint = slot.fingerprint;
        update(store, &slot.store_key, |bytes| {
            let Ok(mut set) = SlotSet::decode(bytes, width) else {
                return Update::Keep(false);
            };
            let Some(entry) = set.find(&fingerprint).and_then(|i| set.entries.get_mut(i)) else {
                return Update::Keep(false);
            };
            entry.words = f(entry.words);
            set.entries.retain(|e| e.expires_at() > now);
            Update::Write(set.encode(), true)
        })
    }

    /// Reads the entry for `key` at `now`, choosing where it goes if it is not tracked yet.
    pub fn read<S: CasStore + ?Sized>(
        &self,
        store: &S,
        key: &[u8],
        now: u64,
    ) -> Result<Slot, StoreError> {
        let (set_index, fingerprint) = self.locate(key);
        let store_key = self.set_key(set_index);
        let stored = store.get(&store_key)?;
        let (set, reset_corrupt) = match SlotSet::decode(stored.value.as_deref(), self.width) {
            Ok(set) => (set, false),
            Err(_) => (SlotSet::empty(self.width), true),
        };
        let mut slot = Slot {
            store_key,
            cas: stored.cas,
            current: None,
            overflow: false,
            evicts: false,
            reset_corrupt,
            set,
            fingerprint,
            evict: None,
        };
        if let Some(i) = slot.set.find(&fingerprint) {
            slot.current = slot
                .set
                .entries
                .get(i)
                .filter(|e| e.expires_at() > now)
                .map(|e| e.words);
            return Ok(slot);
        }
        let active = slot
            .set
            .entries
            .iter()
            .filter(|e| e.expires_at() > now)
            .count();
        if active < WAYS {
            return Ok(slot);
        }
        match self.when_full {
            WhenFull::Evict => {
                slot.evict = slot
                    .set
                    .entries
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, e)| e.expires_at())
                    .map(|(i, _)| i);
                slot.evicts = true;
                Ok(slot)
            }
            WhenFull::Shared => {
                let store_key = self.overflow_key();
                let stored = store.get(&store_key)?;
                let (set, reset_corrupt) =
                    match SlotSet::decode(stored.value.as_deref(), self.width) {
                        Ok(set) => (set, false),
                        Err(_) => (SlotSet::empty(self.width), true),
                    };
                let current = set
                    .find(&OVERFLOW_FINGERPRINT)
                    .and_then(|i| set.entries.get(i))
                    .filter(|e| e.expires_at() > now)
                    .map(|e| e.words);
                Ok(Slot {
                    store_key,
                    cas: stored.cas,
                    current,
                    overflow: true,
                    evicts: false,
                    reset_corrupt,
                    set,
                    fingerprint: OVERFLOW_FINGERPRINT,
                    evict: None,
                })
            }
        }
    }
}
