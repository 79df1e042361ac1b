//! Just enough of the protobuf wire format for the messages Palisade exchanges with Envoy:
//! `VerifySignatureArguments` for the `verify_signature` foreign function, and the rate-limit
//! service (RLS) request and response. Encoding writes fields in order; decoding walks fields and
//! skips unknown ones, rejecting anything truncated or malformed.

/// Wire types used here.
const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;
const I32: u8 = 5;

/// Appends a varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends a varint field (skipped when zero, as proto3 does).
pub fn put_uint(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        put_varint(out, u64::from(field) << 3 | u64::from(VARINT));
        put_varint(out, v);
    }
}

/// Appends a length-delimited field (bytes, string or embedded message; skipped when empty).
pub fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    if !bytes.is_empty() {
        put_varint(out, u64::from(field) << 3 | u64::from(LEN));
        put_varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }
}

/// A field's value as read from the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed64(u64),
    Fixed32(u32),
}

/// The message is not valid protobuf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed protobuf message")]
pub struct Malformed;

fn get_varint(buf: &[u8], pos: &mut usize) -> Result<u64, Malformed> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or(Malformed)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(Malformed)
}

fn take<'a>(buf: &'a [u8], pos: &mut usize, n: usize) -> Result<&'a [u8], Malformed> {
    let end = pos.checked_add(n).ok_or(Malformed)?;
    let s = buf.get(*pos..end).ok_or(Malformed)?;
    *pos = end;
    Ok(s)
}

/// Reads every field of a message as `(field number, value)`.
pub fn fields(buf: &[u8]) -> Result<Vec<(u32, Value<'_>)>, Malformed> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let key = get_varint(buf, &mut pos)?;
        let field = u32::try_from(key >> 3).map_err(|_| Malformed)?;
        if field == 0 {
            return Err(Malformed);
        }
        let value = match (key & 7) as u8 {
            VARINT => Value::Varint(get_varint(buf, &mut pos)?),
            LEN => {
                let n = usize::try_from(get_varint(buf, &mut pos)?).map_err(|_| Malformed)?;
                Value::Bytes(take(buf, &mut pos, n)?)
            }
            I64 => {
                let b = take(buf, &mut pos, 8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Value::Fixed64(u64::from_le_bytes(a))
            }
            I32 => {
                let b = take(buf, &mut pos, 4)?;
                let mut a = [0u8; 4];
                a.copy_from_slice(b);
                Value::Fixed32(u32::from_le_bytes(a))
            }
            _ => return Err(Malformed),
        };
        out.push((field, value));
    }
    Ok(out)
}

/// `VerifySignatureArguments` for Envoy's `verify_signature` foreign function
/// (`hash_function` = 1, `public_key` (DER) = 2, `signature` = 3, `text` = 4).
pub fn verify_signature_arguments(
    hash: &str,
    der_key: &[u8],
    signature: &[u8],
    text: &[u8],
) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(hash.len() + der_key.len() + signature.len() + text.len() + 16);
    put_bytes(&mut out, 1, hash.as_bytes());
    put_bytes(&mut out, 2, der_key);
    put_bytes(&mut out, 3, signature);
    put_bytes(&mut out, 4, text);
    out
}

/// Reads `VerifySignatureResult` (`result` = 1): whether the signature verified.
pub fn verify_signature_result(buf: &[u8]) -> Result<bool, Malformed> {
    let mut ok = false;
    for (field, value) in fields(buf)? {
        if let (1, Value::Varint(v)) = (field, value) {
            ok = v != 0;
        }
    }
    Ok(ok)
}
