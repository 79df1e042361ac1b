//! The JSON Schema `format` values the validator checks: `email`, `uuid`, `date-time`, `date`,
//! `uri`, `ipv4` and `ipv6`.
//!
//! Each check is about shape, so legitimate values pass: an email may have `+` tags, quotes-free
//! `O'Brien`-style local parts and internationalised (UTF-8) names and domains; a UUID may be of
//! any version and either case; a date-time follows RFC 3339 with real calendar ranges.

use std::net::{Ipv4Addr, Ipv6Addr};

/// A `format` keyword the validator asserts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Email,
    Uuid,
    DateTime,
    Date,
    Uri,
    Ipv4,
    Ipv6,
}

impl Format {
    /// The supported formats, as written in a schema.
    pub const NAMES: &'static [&'static str] =
        &["email", "uuid", "date-time", "date", "uri", "ipv4", "ipv6"];

    /// Parses a `format` value; `None` if it is not supported.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "email" => Format::Email,
            "uuid" => Format::Uuid,
            "date-time" => Format::DateTime,
            "date" => Format::Date,
            "uri" => Format::Uri,
            "ipv4" => Format::Ipv4,
            "ipv6" => Format::Ipv6,
            _ => return None,
        })
    }

    /// What a value must be, for the problem's `detail`.
    pub fn describe(self) -> &'static str {
        match self {
            Format::Email => "must be a valid email address",
            Format::Uuid => "must be a UUID",
            Format::DateTime => "must be an RFC 3339 date-time",
            Format::Date => "must be an RFC 3339 date (YYYY-MM-DD)",
            Format::Uri => "must be an absolute URI",
            Format::Ipv4 => "must be an IPv4 address",
            Format::Ipv6 => "must be an IPv6 address",
        }
    }

    /// Whether `value` has this format.
    pub fn check(self, value: &str) -> bool {
        match self {
            Format::Email => is_email(value),
            Format::Uuid => is_uuid(value),
            Format::DateTime => is_date_time(value),
            Format::Date => is_date(value.as_bytes()),
            Format::Uri => is_uri(value),
            Format::Ipv4 => value.parse::<Ipv4Addr>().is_ok(),
            Format::Ipv6 => value.parse::<Ipv6Addr>().is_ok(),
        }
    }
}

/// `local@domain` (RFC 5321 shape, UTF-8 allowed as in RFC 6531): a dot-atom local part of at
/// most 64 bytes, and a domain of dot-separated labels or an IP literal in brackets.
fn is_email(value: &str) -> bool {
    if value.len() > 254 {
        return false;
    }
    let Some((local, domain)) = value.rsplit_once('@') else {
        return false;
    };
    if local.is_empty() || local.len() > 64 {
        return false;
    }
    let atext = |c: char| {
        c.is_ascii_alphanumeric()
            || "!#$%&'*+-/=?^_`{|}~".contains(c)
            || (!c.is_ascii() && !c.is_control() && !c.is_whitespace())
    };
    if !local
        .split('.')
        .all(|part| !part.is_empty() && part.chars().all(atext))
    {
        return false;
    }
    if let Some(literal) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        return literal.parse::<Ipv4Addr>().is_ok()
            || literal
                .strip_prefix("IPv6:")
                .is_some_and(|v6| v6.parse::<Ipv6Addr>().is_ok());
    }
    is_hostname(domain)
}

/// Dot-separated labels of letters, digits and inner hyphens (UTF-8 letters allowed), each at most
/// 63 bytes, the whole at most 253.
fn is_hostname(host: &str) -> bool {
    if host.is_empty() || host.len() > 253 {
        return false;
    }
    host.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| {
                c.is_ascii_alphanumeric() || c == '-' || (!c.is_ascii() && c.is_alphanumeric())
            })
    })
}

/// `8-4-4-4-12` hexadecimal digits.
fn is_uuid(value: &str) -> bool {
    let b = value.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn two_digits(b: &[u8]) -> Option<u32> {
    match b {
        [a, c] if a.is_ascii_digit() && c.is_ascii_digit() => {
            Some(u32::from(a - b'0') * 10 + u32::from(c - b'0'))
        }
        _ => None,
    }
}

/// `YYYY-MM-DD` with a real day of that month (leap years included).
fn is_date(b: &[u8]) -> bool {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' || !b[..4].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let year = b[..4]
        .iter()
        .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
    let (Some(month), Some(day)) = (two_digits(&b[5..7]), two_digits(&b[8..10])) else {
        return false;
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// RFC 3339 `date-time`: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`, `T` and `Z` in either case.
fn is_date_time(value: &str) -> bool {
    let b = value.as_bytes();
    if b.len() < 20 || !is_date(&b[..10]) || !matches!(b[10], b'T' | b't') {
        return false;
    }
    let time = &b[11..];
    if time.len() < 9 || time[2] != b':' || time[5] != b':' {
        return false;
    }
    let (Some(h), Some(m), Some(s)) = (
        two_digits(&time[0..2]),
        two_digits(&time[3..5]),
        two_digits(&time[6..8]),
    ) else {
        return false;
    };
    // 60 allows a leap second.
    if h > 23 || m > 59 || s > 60 {
        return false;
    }
    let mut rest = &time[8..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    match rest {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', offset @ ..] => {
            offset.len() == 5
                && offset[2] == b':'
                && two_digits(&offset[0..2]).is_some_and(|h| h <= 23)
                && two_digits(&offset[3..5]).is_some_and(|m| m <= 59)
        }
        _ => false,
    }
}

/// An absolute URI (RFC 3986): a scheme, `:`, then only URI characters with well-formed
/// percent-escapes. No spaces, controls or raw non-ASCII (that would be an IRI).
fn is_uri(value: &str) -> bool {
    let Some((scheme, rest)) = value.split_once(':') else {
        return false;
    };
    let mut scheme_chars = scheme.chars();
    let scheme_ok = scheme_chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme_chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return false;
    }
    let b = rest.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            match (b.get(i + 1), b.get(i + 2)) {
                (Some(x), Some(y)) if x.is_ascii_hexdigit() && y.is_ascii_hexdigit() => i += 3,
                _ => return false,
            }
            continue;
        }
        let allowed = c.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=".contains(&c);
        if !allowed {
            return false;
        }
        i += 1;
    }
    // `//authority` needs a non-empty-or-valid host part only in the sense of characters above;
    // a `[` must open an IP literal that closes.
    if let Some(authority) = rest.strip_prefix("//") {
        let end = authority.find(['/', '?', '#']).unwrap_or(authority.len());
        let authority = &authority[..end];
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        if host.contains('[') || host.contains(']') {
            let Some(inner) = host.strip_prefix('[').and_then(|h| h.split_once(']')) else {
                return false;
            };
            if inner.0.parse::<Ipv6Addr>().is_err() && !inner.0.starts_with('v') {
                return false;
            }
        }
    }
    true
}
