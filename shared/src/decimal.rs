//! Unsigned integers in decimal without the formatting machinery: refusal responses (status,
//! `Retry-After`, RateLimit figures) are written on the hot path of a flood, where `format!` and
//! `to_string` cost more than the rest of the answer.

/// Room for the longest `u64` (20 digits).
pub type Buf = [u8; 20];

/// `n` in decimal, written at the end of `buf`.
pub fn decimal(n: u64, buf: &mut Buf) -> &str {
    let mut at = buf.len();
    let mut rest = n;
    loop {
        at -= 1;
        buf[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&buf[at..]).unwrap_or("0")
}

/// Appends `n` in decimal to `out`.
pub fn push(out: &mut String, n: u64) {
    out.push_str(decimal(n, &mut [0; 20]));
}

/// `n` in decimal, as a new string.
pub fn string(n: u64) -> String {
    decimal(n, &mut [0; 20]).to_owned()
}
