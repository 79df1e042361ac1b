#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The protobuf wire helpers used for Envoy's `verify_signature` and the rate-limit service.

use palisade::proto::{
    fields, put_bytes, put_uint, verify_signature_arguments, verify_signature_result, Malformed,
    Value,
};
use wasm_bindgen_test::wasm_bindgen_test;

#[wasm_bindgen_test(unsupported = test)]
fn encodes_known_bytes() {
    // field 1, varint 150 → 08 96 01 (the protobuf documentation's own example)
    let mut out = Vec::new();
    put_uint(&mut out, 1, 150);
    assert_eq!(out, [0x08, 0x96, 0x01]);
    // field 2, string "testing" → 12 07 74 65 73 74 69 6e 67
    let mut out = Vec::new();
    put_bytes(&mut out, 2, b"testing");
    assert_eq!(out, [0x12, 0x07, b't', b'e', b's', b't', b'i', b'n', b'g']);
    // proto3 leaves zero and empty fields out
    let mut out = Vec::new();
    put_uint(&mut out, 3, 0);
    put_bytes(&mut out, 4, b"");
    assert!(out.is_empty());
}

#[wasm_bindgen_test(unsupported = test)]
fn verify_signature_arguments_round_trip() {
    let args = verify_signature_arguments("sha256", &[1, 2, 3], &[9; 70], b"header.payload");
    let f = fields(&args).unwrap();
    assert_eq!(f[0], (1, Value::Bytes(b"sha256")));
    assert_eq!(f[1], (2, Value::Bytes(&[1, 2, 3])));
    assert_eq!(f[2], (3, Value::Bytes(&[9; 70])));
    assert_eq!(f[3], (4, Value::Bytes(b"header.payload")));
}

#[wasm_bindgen_test(unsupported = test)]
fn reads_verify_signature_result() {
    assert_eq!(verify_signature_result(&[0x08, 0x01]), Ok(true));
    // result=false with error "bad" (field 2)
    assert_eq!(
        verify_signature_result(&[0x12, 0x03, b'b', b'a', b'd']),
        Ok(false)
    );
    assert_eq!(verify_signature_result(&[]), Ok(false));
}

#[wasm_bindgen_test(unsupported = test)]
fn rejects_malformed_messages() {
    assert_eq!(
        fields(&[0x12, 0x05, b'a']),
        Err(Malformed),
        "length past the end"
    );
    assert_eq!(fields(&[0x08]), Err(Malformed), "varint cut short");
    assert_eq!(
        fields(&[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
        Err(Malformed),
        "varint too long"
    );
    assert_eq!(fields(&[0x00, 0x01]), Err(Malformed), "field number 0");
    assert_eq!(fields(&[0x0b]), Err(Malformed), "group wire type");
    assert_eq!(
        fields(&[0x12, 0xff, 0xff, 0xff, 0xff, 0x0f]),
        Err(Malformed),
        "huge length"
    );
    // fixed-width fields are read and can be skipped
    let f = fields(&[0x0d, 1, 0, 0, 0, 0x11, 2, 0, 0, 0, 0, 0, 0, 0]).unwrap();
    assert_eq!(f, vec![(1, Value::Fixed32(1)), (2, Value::Fixed64(2))]);
}
