//! Response scrubbing: remove sensitive members from JSON response bodies.
//!
//! ```json
//! "scrub": { "fields": ["password", "secret"], "pointers": ["/data/token", "/users/*/ssn"],
//!            "max_body_size": 1048576, "on_failure": "pass" }
//! ```
//!
//! `fields` removes members with that name at any depth (ASCII case-insensitive, after decoding
//! `\u` escapes, so `"pass\u0077ord"` is caught). `pointers` removes what a JSON pointer names;
//! a `*` segment matches any member or array index. Only responses whose `Content-Type` is JSON
//! (`application/json`, `application/*+json`; or the configured `content_types`) are scrubbed.
//!
//! The scrubber copies the body token by token and leaves out removed members, so everything it
//! keeps is byte-for-byte what the upstream sent (big numbers keep their digits, strings their
//! escapes); only whitespace between tokens is dropped when something was removed. A body larger
//! than `max_body_size`, or one that is not JSON, cannot be scrubbed: `on_failure` says whether
//! it passes unchanged (`pass`, default) or is replaced by a 502 (`block`).

use serde::Deserialize;

use super::body::media_type;
use super::problem::{Location, Problem};
use crate::config::ConfigError;
use crate::json::is_json_number;

/// The deepest nesting the scrubber follows.
const MAX_DEPTH: usize = 128;

/// What happens to a response that cannot be scrubbed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Send it unchanged (and count it).
    #[default]
    Pass,
    /// Replace it with a 502 problem response.
    Block,
}

/// The `scrub` section as written.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct ScrubSpec {
    /// Member names removed at any depth (ASCII case-insensitive).
    pub fields: Vec<String>,
    /// JSON pointers of members removed; a `*` segment matches any member or array index.
    pub pointers: Vec<String>,
    /// The largest response body scrubbed, in bytes; a larger one goes to `on_failure`.
    pub max_body_size: usize,
    /// The response media types scrubbed (default: JSON ones).
    pub content_types: Option<Vec<String>>,
    /// What happens to a response that cannot be scrubbed.
    pub on_failure: OnFailure,
}

impl Default for ScrubSpec {
    fn default() -> Self {
        ScrubSpec {
            fields: Vec::new(),
            pointers: Vec::new(),
            max_body_size: 1024 * 1024,
            content_types: None,
            on_failure: OnFailure::Pass,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pat {
    Any,
    Token(String),
}

/// A compiled scrubbing policy.
#[derive(Debug, Clone)]
pub struct Scrubber {
    fields: Vec<String>,
    pointers: Vec<Vec<Pat>>,
    max_body_size: usize,
    content_types: Option<Vec<String>>,
    on_failure: OnFailure,
}

/// The result of scrubbing one body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scrubbed {
    /// Nothing matched; send the original bytes.
    Unchanged,
    /// Members were removed; send `body` (and drop any `Content-Length`).
    Changed { body: Vec<u8>, removed: usize },
    /// Not JSON (or nested deeper than the scrubber follows): see [`Scrubber::on_failure`].
    NotJson,
}

#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

/// Parses `/a/b~1c` into unescaped tokens.
fn parse_pointer(at: &str, pointer: &str) -> Result<Vec<Pat>, ConfigError> {
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(ConfigError::field(
            at,
            format!("'{pointer}' is not a JSON pointer to a member (it must start with '/')"),
        ));
    };
    Ok(rest
        .split('/')
        .map(|t| {
            if t == "*" {
                Pat::Any
            } else {
                Pat::Token(t.replace("~1", "/").replace("~0", "~"))
            }
        })
        .collect())
}

impl Scrubber {
    /// Compiles a `scrub` section; `None` if it removes nothing.
    pub(crate) fn compile(at: &str, spec: &ScrubSpec) -> Result<Option<Self>, ConfigError> {
        if spec.fields.is_empty() && spec.pointers.is_empty() {
            return Ok(None);
        }
        for (i, f) in spec.fields.iter().enumerate() {
            if f.is_empty() {
                return Err(ConfigError::field(
                    format!("{at}.fields[{i}]"),
                    "cannot be empty",
                ));
            }
        }
        let pointers = spec
            .pointers
            .iter()
            .enumerate()
            .map(|(i, p)| parse_pointer(&format!("{at}.pointers[{i}]"), p))
            .collect::<Result<Vec<_>, _>>()?;
        let content_types = spec
            .content_types
            .as_ref()
            .map(|list| list.iter().map(|t| media_type(t)).collect());
        Ok(Some(Scrubber {
            fields: spec.fields.clone(),
            pointers,
            max_body_size: spec.max_body_size,
            content_types,
            on_failure: spec.on_failure,
        }))
    }

    /// A scrubber for tests and tools, from field names and pointers.
    pub fn new(fields: &[&str], pointers: &[&str]) -> Result<Self, ConfigError> {
        let spec = ScrubSpec {
            fields: fields.iter().map(|s| (*s).to_owned()).collect(),
            pointers: pointers.iter().map(|s| (*s).to_owned()).collect(),
            ..ScrubSpec::default()
        };
        Scrubber::compile("scrub", &spec)?
            .ok_or_else(|| ConfigError::field("scrub", "nothing to scrub"))
    }

    /// Whether a response with this `Content-Type` is scrubbed.
    pub fn applies_to(&self, content_type: Option<&str>) -> bool {
        let Some(ct) = content_type else { return false };
        let media = media_type(ct);
        match &self.content_types {
            Some(list) => list.contains(&media),
            None => {
                media == "application/json"
                    || (media.starts_with("application/") && media.ends_with("+json"))
            }
        }
    }

    /// The largest response body scrubbed, in bytes.
    pub fn max_body_size(&self) -> usize {
        self.max_body_size
    }

    /// What to do with a body that cannot be scrubbed (too large or not JSON).
    pub fn on_failure(&self) -> OnFailure {
        self.on_failure
    }

    /// The 502 sent instead of a response that cannot be scrubbed, with `on_failure: block`.
    pub fn failure_problem(&self) -> Problem {
        Problem::single(
            502,
            Location::Body,
            "",
            "scrub",
            "the upstream response could not be checked for sensitive fields",
        )
    }

    /// Removes the configured members from a JSON body.
    pub fn scrub(&self, body: &[u8]) -> Scrubbed {
        if std::str::from_utf8(body).is_err() {
            return Scrubbed::NotJson;
        }
        let mut cursor = Cursor {
            src: body,
            pos: 0,
            removed: 0,
            scrubber: self,
        };
        let mut out = Vec::with_capacity(body.len());
        let mut path = Vec::new();
        let ok = cursor
            .value(&mut path, Some(&mut out), 0)
            .and_then(|()| {
                cursor.skip_ws();
                if cursor.pos == body.len() {
                    Ok(())
                } else {
                    Err(Malformed)
                }
            })
            .is_ok();
        match (ok, cursor.removed) {
            (false, _) => Scrubbed::NotJson,
            (true, 0) => Scrubbed::Unchanged,
            (true, removed) => Scrubbed::Changed { body: out, removed },
        }
    }

    fn removes(&self, path: &[Seg]) -> bool {
        if let Some(Seg::Key(name)) = path.last() {
            if self.fields.iter().any(|f| f.eq_ignore_ascii_case(name)) {
                return true;
            }
        }
        self.pointers.iter().any(|pattern| {
            pattern.len() == path.len()
                && pattern.iter().zip(path).all(|(p, s)| match (p, s) {
                    (Pat::Any, _) => true,
                    (Pat::Token(t), Seg::Key(k)) => t == k,
                    (Pat::Token(t), Seg::Index(i)) => t.parse::<usize>().ok() == Some(*i),
                })
        })
    }
}

struct Malformed;

struct Cursor<'a> {
    src: &'a [u8],
    pos: usize,
    removed: usize,
    scrubber: &'a Scrubber,
}

impl Cursor<'_> {
    fn skip_ws(&mut self) {
        while self
            .src
            .get(self.pos)
            .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn expect(&mut self, b: u8) -> Result<(), Malformed> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Malformed)
        }
    }

    /// Reads one value; copies it into `out` when there is one.
    fn value(
        &mut self,
        path: &mut Vec<Seg>,
        out: Option<&mut Vec<u8>>,
        depth: usize,
    ) -> Result<(), Malformed> {
        self.skip_ws();
        let start = self.pos;
        match self.peek().ok_or(Malformed)? {
            b'{' => return self.container(path, out, depth + 1, b'{'),
            b'[' => return self.container(path, out, depth + 1, b'['),
            b'"' => {
                self.string()?;
            }
            b't' => self.literal(b"true")?,
            b'f' => self.literal(b"false")?,
            b'n' => self.literal(b"null")?,
            b'-' | b'0'..=b'9' => {
                while self.peek().is_some_and(|b| {
                    b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E')
                }) {
                    self.pos += 1;
                }
                if !is_json_number(&self.src[start..self.pos]) {
                    return Err(Malformed);
                }
            }
            _ => return Err(Malformed),
        }
        if let Some(out) = out {
            out.extend_from_slice(&self.src[start..self.pos]);
        }
        Ok(())
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Malformed> {
        if self.src[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(Malformed)
        }
    }

    /// Skips a string token; returns its raw bytes (with quotes).
    fn string(&mut self) -> Result<&[u8], Malformed> {
        let start = self.pos;
        self.expect(b'"')?;
        loop {
            match self.peek().ok_or(Malformed)? {
                b'"' => {
                    self.pos += 1;
                    return Ok(&self.src[start..self.pos]);
                }
                b'\\' => match self.src.get(self.pos + 1).ok_or(Malformed)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.pos += 2,
                    b'u' => {
                        let hex = self.src.get(self.pos + 2..self.pos + 6).ok_or(Malformed)?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return Err(Malformed);
                        }
                        self.pos += 6;
                    }
                    _ => return Err(Malformed),
                },
                b if b < 0x20 => return Err(Malformed),
                _ => self.pos += 1,
            }
        }
    }

    /// An object or an array (`open` is `{` or `[`): each member is written to `out`, or
    /// skipped when the scrubber removes its path.
    fn container(
        &mut self,
        path: &mut Vec<Seg>,
        mut out: Option<&mut Vec<u8>>,
        depth: usize,
        open: u8,
    ) -> Result<(), Malformed> {
        if depth > MAX_DEPTH {
            return Err(Malformed);
        }
        let object = open == b'{';
        let close = if object { b'}' } else { b']' };
        self.expect(open)?;
        if let Some(o) = out.as_deref_mut() {
            o.push(open);
        }
        self.skip_ws();
        if self.peek() == Some(close) {
            self.pos += 1;
        } else {
            let mut written = false;
            let mut index = 0;
            loop {
                self.skip_ws();
                // The member's name as written (a slice of the input, copied only to `out`).
                let raw_key: Option<&[u8]> = if object {
                    let src = self.src;
                    let start = self.pos;
                    self.string()?;
                    let raw_key = &src[start..self.pos];
                    // The decoded name, so escapes cannot hide a field (serde_json handles
                    // surrogates).
                    let key: String = serde_json::from_slice(raw_key).map_err(|_| Malformed)?;
                    self.skip_ws();
                    self.expect(b':')?;
                    path.push(Seg::Key(key));
                    Some(raw_key)
                } else {
                    path.push(Seg::Index(index));
                    None
                };
                match out.as_deref_mut() {
                    _ if self.scrubber.removes(path) => {
                        self.removed += 1;
                        self.value(path, None, depth)?;
                    }
                    Some(o) => {
                        if written {
                            o.push(b',');
                        }
                        if let Some(k) = raw_key {
                            o.extend_from_slice(k);
                            o.push(b':');
                        }
                        self.value(path, Some(o), depth)?;
                        written = true;
                    }
                    None => self.value(path, None, depth)?,
                }
                path.pop();
                index += 1;
                self.skip_ws();
                match self.peek().ok_or(Malformed)? {
                    b',' => self.pos += 1,
                    c if c == close => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(Malformed),
                }
            }
        }
        if let Some(o) = out {
            o.push(close);
        }
        Ok(())
    }
}
