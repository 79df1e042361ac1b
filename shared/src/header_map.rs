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
use std::fmt;
use thiserror::Error;

/// A header map in Envoy's order: names and values as text, plus the bytes of each value that
/// was not UTF-8.
///
/// Read in place: the names and values stay in one buffer (the host's, when every one of them is
/// UTF-8) and the list holds their positions, so reading a map costs two allocations however many
/// headers it has. One `String` per name and value cost about 2.5 µs per request in Envoy for a
/// browser's twenty-odd request headers (docs/performance.md, session 8).
#[derive(Default, Clone)]
pub struct HeaderList {
    /// Every name and value, at the positions `pairs` gives (anything between them is unused).
    text: String,
    pairs: Vec<Pair>,
    /// `(index in pairs, bytes)` for each value that was not UTF-8, by ascending index.
    raw: Vec<(usize, Vec<u8>)>,
}

/// Where one pair's name and value are in [`HeaderList::text`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pair {
    name: (usize, usize),
    value: (usize, usize),
}

/// Why a serialized header map could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum HeaderMapError {
    #[error("the serialized header map ends before the {0} it announces")]
    Truncated(&'static str),
}

impl HeaderList {
    /// Decodes a serialized map, keeping its buffer when all of it is text. An empty buffer is
    /// an empty map.
    pub fn decode(bytes: Vec<u8>) -> Result<Self, HeaderMapError> {
        if bytes.is_empty() {
            return Ok(HeaderList::default());
        }
        let count = read_u32(&bytes, 0).ok_or(HeaderMapError::Truncated("pair count"))?;
        let sizes_end = count
            .checked_mul(8)
            .and_then(|n| n.checked_add(4))
            .filter(|&end| end <= bytes.len())
            .ok_or(HeaderMapError::Truncated("pair sizes"))?;
        // Where each name and value is in the buffer.
        let mut pairs = Vec::with_capacity(count);
        let mut at = sizes_end;
        for n in 0..count {
            let sizes = 4 + n * 8;
            let (Some(name_len), Some(value_len)) =
                (read_u32(&bytes, sizes), read_u32(&bytes, sizes + 4))
            else {
                return Err(HeaderMapError::Truncated("pair sizes"));
            };
            let name = take(&bytes, &mut at, name_len).ok_or(HeaderMapError::Truncated("names"))?;
            let value =
                take(&bytes, &mut at, value_len).ok_or(HeaderMapError::Truncated("values"))?;
            pairs.push(Pair { name, value });
        }
        // The count and sizes become spaces, so the buffer is text exactly when the names and
        // values are, and it is kept as it is (no copy to drop its head).
        let mut bytes = bytes;
        if let Some(head) = bytes.get_mut(..sizes_end) {
            head.fill(b' ');
        }
        match String::from_utf8(bytes) {
            Ok(text) if pairs.iter().all(|p| on_boundaries(&text, p)) => Ok(HeaderList {
                text,
                pairs,
                raw: Vec::new(),
            }),
            // Some name or value is not UTF-8: text pair by pair, keeping such values' bytes.
            other => {
                let tail = match other {
                    Ok(text) => text.into_bytes(),
                    Err(e) => e.into_bytes(),
                };
                let mut list = HeaderList {
                    pairs: Vec::with_capacity(pairs.len()),
                    ..HeaderList::default()
                };
                for p in pairs {
                    let (Some(name), Some(value)) =
                        (tail.get(p.name.0..p.name.1), tail.get(p.value.0..p.value.1))
                    else {
                        return Err(HeaderMapError::Truncated("values"));
                    };
                    list.push_bytes(name, value);
                }
                Ok(list)
            }
        }
    }

    /// Appends a pair given as bytes (a name that is not UTF-8 is only ever compared as text).
    pub fn push_bytes(&mut self, name: &[u8], value: &[u8]) {
        let name = String::from_utf8_lossy(name);
        match std::str::from_utf8(value) {
            Ok(text) => self.push(&name, text),
            Err(_) => {
                self.raw.push((self.pairs.len(), value.to_vec()));
                self.push(&name, &String::from_utf8_lossy(value));
            }
        }
    }

    /// The number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The pairs in order, as text.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.pairs
            .iter()
            .map(|p| (self.slice(p.name), self.slice(p.value)))
    }

    fn slice(&self, (start, end): (usize, usize)) -> &str {
        self.text.get(start..end).unwrap_or_default()
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
        // Most names differ in length, and a name compared is a byte string (ASCII case folding
        // never matches a byte of a multi-byte character): no text slicing until one matches.
        // Envoy hands names over in lower case, as policies ask for them: equal bytes first.
        let text = self.text.as_bytes();
        self.pairs
            .iter()
            .find(|p| {
                p.name.1.wrapping_sub(p.name.0) == name.len()
                    && text.get(p.name.0..p.name.1).is_some_and(|n| {
                        n == name.as_bytes() || n.eq_ignore_ascii_case(name.as_bytes())
                    })
            })
            .map(|p| self.slice(p.value))
    }

    /// Appends a pair written by a policy (always text).
    pub fn push(&mut self, name: &str, value: &str) {
        let name_at = self.text.len();
        self.text.push_str(name);
        let value_at = self.text.len();
        self.text.push_str(value);
        self.pairs.push(Pair {
            name: (name_at, value_at),
            value: (value_at, self.text.len()),
        });
    }

    /// Removes every value of `name`; the bytes kept for the others stay with them.
    pub fn remove(&mut self, name: &str) {
        let text = &self.text;
        let named = |p: &Pair| {
            text.get(p.name.0..p.name.1)
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        };
        if !self.raw.is_empty() {
            let mut removed = 0;
            let mut kept = Vec::with_capacity(self.raw.len());
            let mut raw = std::mem::take(&mut self.raw).into_iter().peekable();
            for (index, p) in self.pairs.iter().enumerate() {
                let own = raw.next_if(|(i, _)| *i == index);
                if named(p) {
                    removed += 1;
                } else if let Some((_, bytes)) = own {
                    kept.push((index - removed, bytes));
                }
            }
            self.raw = kept;
        }
        self.pairs.retain(|p| !named(p));
    }
}

/// A header value read on its own, as text: what [`HeaderList`] decides on for it (each invalid
/// UTF-8 sequence replaced by U+FFFD).
pub fn value_text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Whether a pair's name and value start and end on character boundaries of `text`.
fn on_boundaries(text: &str, p: &Pair) -> bool {
    [p.name.0, p.name.1, p.value.0, p.value.1]
        .into_iter()
        .all(|at| text.is_char_boundary(at))
}

impl HeaderLookup for HeaderList {
    fn header(&self, name: &str) -> Option<&str> {
        self.get(name)
    }
}

/// Equal when the same pairs (and kept bytes) are in the same order, wherever their text is.
impl PartialEq for HeaderList {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter()) && self.raw == other.raw
    }
}

impl Eq for HeaderList {}

impl fmt::Debug for HeaderList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl From<Vec<(String, String)>> for HeaderList {
    /// A list of text pairs (every value UTF-8).
    fn from(pairs: Vec<(String, String)>) -> Self {
        pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
}

impl<'a> FromIterator<(&'a str, &'a str)> for HeaderList {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a str)>>(pairs: I) -> Self {
        let mut list = HeaderList::default();
        for (name, value) in pairs {
            list.push(name, value);
        }
        list
    }
}

fn read_u32(bytes: &[u8], at: usize) -> Option<usize> {
    let field: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(field)).ok()
}

/// Where the `len` bytes at `*at` are, then skips them and the NUL after them.
fn take(bytes: &[u8], at: &mut usize, len: usize) -> Option<(usize, usize)> {
    let start = *at;
    let end = start.checked_add(len)?;
    bytes.get(start..end)?;
    *at = end.checked_add(1)?;
    Some((start, end))
}
