//! Percent-decoding (RFC 3986), for paths, query strings and form bodies.

/// One pass of percent-decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decoded {
    pub bytes: Vec<u8>,
    /// Whether any `%XX` was decoded.
    pub changed: bool,
    /// Whether a `%2F` or `%5C` became `/` or `\`.
    pub slash: bool,
}

/// Why text cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    /// A `%` not followed by two hexadecimal digits.
    #[error("malformed percent-encoding")]
    Malformed,
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` escapes (and `+` as a space when `plus_as_space`, as in forms and queries).
/// With `strict`, a malformed escape is an error; otherwise it is kept as it is.
pub(crate) fn percent_decode(
    input: &[u8],
    plus_as_space: bool,
    strict: bool,
) -> Result<Decoded, DecodeError> {
    let mut bytes = Vec::with_capacity(input.len());
    let mut changed = false;
    let mut slash = false;
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'%' => {
                let pair = input
                    .get(i + 1)
                    .and_then(|h| hex(*h))
                    .zip(input.get(i + 2).and_then(|l| hex(*l)));
                match pair {
                    Some((h, l)) => {
                        let b = h * 16 + l;
                        slash |= b == b'/' || b == b'\\';
                        bytes.push(b);
                        changed = true;
                        i += 3;
                    }
                    None if strict => return Err(DecodeError::Malformed),
                    None => {
                        bytes.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' if plus_as_space => {
                bytes.push(b' ');
                i += 1;
            }
            b => {
                bytes.push(b);
                i += 1;
            }
        }
    }
    Ok(Decoded {
        bytes,
        changed,
        slash,
    })
}
