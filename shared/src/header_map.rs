//! Header maps as Envoy hands them to a wasm filter, decoded without trusting them.
//!
//! The proxy-wasm ABI serializes a map as a little-endian `u32` count, then each pair's name and
//! value lengths (`u32` each), then the names and values themselves, each followed by a NUL.
//!
//! Header values are bytes, not text: HTTP/1 allows `obs-text` (bytes 0x80–0xFF) and Envoy
//! passes it on. Policies decide on text, so a value that is not UTF-8 is decided on with each
//! invalid sequence replaced by U+FFFD (which no pattern written for valid text matches); its
//! bytes are kept, so that a value written back (a hardened `Set-Cookie`) is the one the upstream
//! sent, not a rewritten one.

use crate::matcher::HeaderLookup;
use thiserror::Error;

/// A header map in Envoy's order: names and values as text, plus the bytes of each value that
/// was not UTF-8.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HeaderList {
    pairs: Vec<(String, String)>,
    /// `(index in pairs, bytes)` for each value that was not UTF-8, by ascending index.
    raw: Vec<(usize, Vec<u8>)>,
}

/// Why a serialized header map could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum HeaderMapError {
    #[error("the serialized header map ends before the {0} it announces")]
    Truncated(&'static str),
}

impl HeaderList {
    /// Decodes a serialized map. An empty buffer is an empty map.
    pub fn decode(bytes: &[u8]) -> Result<Self, HeaderMapError> {
        let mut list = HeaderList::default();
        if bytes.is_empty() {
            return Ok(list);
        }
        let count = read_u32(bytes, 0).ok_or(HeaderMapError::Truncated("pair count"))?;
        let sizes_end = count
            .checked_mul(8)
            .and_then(|n| n.checked_add(4))
            .filter(|&end| end <= bytes.len())
            .ok_or(HeaderMapError::Truncated("pair sizes"))?;
        list.pairs.reserve(count);
        let mut at = sizes_end;
        for n in 0..count {
            let sizes = 4 + n * 8;
            let (Some(name_len), Some(value_len)) =
                (read_u32(bytes, sizes), read_u32(bytes, sizes + 4))
            else {
                return Err(HeaderMapError::Truncated("pair sizes"));
            };
            let name = take(bytes, &mut at, name_len).ok_or(HeaderMapError::Truncated("names"))?;
            let value =
                take(bytes, &mut at, value_len).ok_or(HeaderMapError::Truncated("values"))?;
            list.push_bytes(name, value);
        }
        Ok(list)
    }

    /// Appends a pair given as bytes (a name that is not UTF-8 is only ever compared as text).
    pub fn push_bytes(&mut self, name: &[u8], value: &[u8]) {
        let name = String::from_utf8_lossy(name).into_owned();
        let value = match std::str::from_utf8(value) {
            Ok(text) => text.to_owned(),
            Err(_) => {
                self.raw.push((self.pairs.len(), value.to_vec()));
                String::from_utf8_lossy(value).into_owned()
            }
        };
        self.pairs.push((name, value));
    }

    /// The pairs, as text.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The pairs, as text (for callers that only read them).
    pub fn into_pairs(self) -> Vec<(String, String)> {
        self.pairs
    }

    /// The bytes of the pair at `index` when its value was not UTF-8 (`None` when the text is the
    /// value).
    pub fn raw_value(&self, index: usize) -> Option<&[u8]> {
        self.raw
            .binary_search_by_key(&index, |(i, _)| *i)
            .ok()
            .map(|at| self.raw[at].1.as_slice())
    }

    /// The first value of `name` (ASCII case-insensitive), as text.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.header(name)
    }

    /// Appends a pair written by a policy (always text).
    pub fn push(&mut self, name: &str, value: &str) {
        self.pairs.push((name.to_owned(), value.to_owned()));
    }

    /// Removes every value of `name`; the bytes kept for the others stay with them.
    pub fn remove(&mut self, name: &str) {
        if !self.raw.is_empty() {
            let mut removed = 0;
            let mut kept = Vec::with_capacity(self.raw.len());
            let mut raw = std::mem::take(&mut self.raw).into_iter().peekable();
            for (index, (k, _)) in self.pairs.iter().enumerate() {
                let own = raw.next_if(|(i, _)| *i == index);
                if k.eq_ignore_ascii_case(name) {
                    removed += 1;
                } else if let Some((_, bytes)) = own {
                    kept.push((index - removed, bytes));
                }
            }
            self.raw = kept;
        }
        self.pairs.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    }
}

impl From<Vec<(String, String)>> for HeaderList {
    /// A list of text pairs (every value UTF-8).
    fn from(pairs: Vec<(String, String)>) -> Self {
        HeaderList {
            pairs,
            raw: Vec::new(),
        }
    }
}

fn read_u32(bytes: &[u8], at: usize) -> Option<usize> {
    let field: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(field)).ok()
}

/// The `len` bytes at `*at`, then skips them and the NUL after them.
fn take<'a>(bytes: &'a [u8], at: &mut usize, len: usize) -> Option<&'a [u8]> {
    let end = at.checked_add(len)?;
    let field = bytes.get(*at..end)?;
    *at = end.checked_add(1)?;
    Some(field)
}
