//! Strict JSON parsing, for request bodies (input validation) and token parts (token filter).
//!
//! `serde_json` alone accepts duplicate object keys (the last one wins, so `{"role":"user",
//! "role":"admin"}` means different things to different parsers) and only stops deep nesting at
//! 128 levels. This parser drives `serde_json`'s tokenizer with its own visitor, which builds the
//! value while rejecting duplicate keys and nesting past a configured depth. Invalid UTF-8 is
//! rejected before parsing, so the error says exactly that. Every failure is a typed error; none
//! panics, whatever the input.

use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::RefCell;
use std::fmt;

use std::fmt::Write as _;

/// The deepest nesting a configuration may allow (serde_json's own limit is 128).
pub const MAX_DEPTH_LIMIT: usize = 100;

/// Why a body is not acceptable JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// The body is empty (or only whitespace).
    #[error("the body is empty")]
    Empty,
    /// The bytes are not UTF-8 (offset of the first bad byte).
    #[error("the body is not valid UTF-8 (at byte {0})")]
    InvalidUtf8(usize),
    /// Not JSON: a syntax error, a lone surrogate escape, a number out of range, trailing data.
    #[error("the body is not valid JSON (line {line}, column {column})")]
    Syntax { line: usize, column: usize },
    /// Objects or arrays nested deeper than allowed; `pointer` is where the limit was passed.
    #[error("nesting deeper than {max} levels at {pointer:?}")]
    TooDeep { max: usize, pointer: String },
    /// An object has the same key twice; `pointer` names the second occurrence.
    #[error("duplicate key at {pointer:?}")]
    DuplicateKey { pointer: String },
}

/// What went wrong inside the visitor, with the pointer built while the error unwinds.
#[derive(Default)]
struct Failure {
    kind: Option<FailureKind>,
    /// Segments from the innermost outwards.
    segments: Vec<Segment>,
}

enum FailureKind {
    TooDeep,
    Duplicate,
}

enum Segment {
    Key(String),
    Index(usize),
}

struct ValueSeed<'s> {
    depth: usize,
    max_depth: usize,
    failure: &'s RefCell<Failure>,
}

impl<'s> ValueSeed<'s> {
    fn child(&self) -> ValueSeed<'s> {
        ValueSeed {
            depth: self.depth + 1,
            max_depth: self.max_depth,
            failure: self.failure,
        }
    }

    fn enter<E: serde::de::Error>(&self) -> Result<(), E> {
        if self.depth >= self.max_depth {
            self.failure.borrow_mut().kind = Some(FailureKind::TooDeep);
            return Err(E::custom("nesting too deep"));
        }
        Ok(())
    }

    fn note(&self, segment: Segment) {
        let mut failure = self.failure.borrow_mut();
        if failure.kind.is_some() {
            failure.segments.push(segment);
        }
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.enter()?;
        let mut items = Vec::new();
        loop {
            match seq.next_element_seed(self.child()) {
                Ok(Some(v)) => items.push(v),
                Ok(None) => break,
                Err(e) => {
                    self.note(Segment::Index(items.len()));
                    return Err(e);
                }
            }
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.enter()?;
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                let mut failure = self.failure.borrow_mut();
                failure.kind = Some(FailureKind::Duplicate);
                failure.segments.push(Segment::Key(key));
                return Err(A::Error::custom("duplicate key"));
            }
            match map.next_value_seed(self.child()) {
                Ok(v) => {
                    object.insert(key, v);
                }
                Err(e) => {
                    self.note(Segment::Key(key));
                    return Err(e);
                }
            }
        }
        Ok(Value::Object(object))
    }
}

/// Parses `bytes` as one JSON document: UTF-8, no duplicate keys, at most `max_depth` levels of
/// objects and arrays (a scalar is depth 0, `{}` depth 1).
pub fn parse_strict(bytes: &[u8], max_depth: usize) -> Result<Value, JsonError> {
    let text = std::str::from_utf8(bytes).map_err(|e| JsonError::InvalidUtf8(e.valid_up_to()))?;
    if text.trim_matches([' ', '\t', '\n', '\r']).is_empty() {
        return Err(JsonError::Empty);
    }
    let max_depth = max_depth.min(MAX_DEPTH_LIMIT);
    let failure = RefCell::new(Failure::default());
    let seed = ValueSeed {
        depth: 0,
        max_depth,
        failure: &failure,
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let result = seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    match result {
        Ok(v) => Ok(v),
        Err(e) => {
            let failure = failure.into_inner();
            let mut pointer = String::new();
            for segment in failure.segments.iter().rev() {
                match segment {
                    Segment::Key(k) => append_segment(&mut pointer, k),
                    Segment::Index(i) => append_index(&mut pointer, *i),
                }
            }
            Err(match failure.kind {
                Some(FailureKind::TooDeep) => JsonError::TooDeep {
                    max: max_depth,
                    pointer,
                },
                Some(FailureKind::Duplicate) => JsonError::DuplicateKey { pointer },
                None => JsonError::Syntax {
                    line: e.line(),
                    column: e.column(),
                },
            })
        }
    }
}

/// Whether `text` is a number in JSON's grammar (`-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`).
pub(crate) fn is_json_number(text: &[u8]) -> bool {
    let mut i = 0;
    let n = text.len();
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < n && text[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    if i < n && text[i] == b'-' {
        i += 1;
    }
    if i < n && text[i] == b'0' {
        i += 1;
    } else if !digits(&mut i) {
        return false;
    }
    if i < n && text[i] == b'.' {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if i < n && (text[i] == b'e' || text[i] == b'E') {
        i += 1;
        if i < n && (text[i] == b'+' || text[i] == b'-') {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == n
}

/// JSON Schema equality: numbers compare by value (`1` equals `1.0`), objects by members.
pub(crate) fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

/// The longest name segment from the request that a pointer carries (in characters).
const MAX_SEGMENT_CHARS: usize = 64;

/// Appends `/segment` to a JSON pointer, escaped per RFC 6901 and cut to a bounded length.
pub(crate) fn append_segment(pointer: &mut String, segment: &str) {
    pointer.push('/');
    for (i, c) in segment.chars().enumerate() {
        if i == MAX_SEGMENT_CHARS {
            pointer.push('…');
            break;
        }
        match c {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            c if c.is_control() => pointer.push('\u{FFFD}'),
            c => pointer.push(c),
        }
    }
}

/// Appends `/index` to a JSON pointer.
pub(crate) fn append_index(pointer: &mut String, index: usize) {
    let _ = write!(pointer, "/{index}");
}
