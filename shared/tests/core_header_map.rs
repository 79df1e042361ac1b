#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Header maps as Envoy serializes them for a wasm filter: decoded without trusting them.

use palisade::header_map::{HeaderList, HeaderMapError};
use wasm_bindgen_test::wasm_bindgen_test;

/// Serializes pairs as Envoy does.
fn serialize(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
    for (k, v) in pairs {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

fn decoded(pairs: &[(&[u8], &[u8])]) -> HeaderList {
    HeaderList::decode(&serialize(pairs)).expect("valid map")
}

#[wasm_bindgen_test(unsupported = test)]
fn decodes_pairs_in_order() {
    let list = decoded(&[
        (b":path", b"/a"),
        (b"x-empty", b""),
        (b"set-cookie", b"a=1"),
    ]);
    assert_eq!(
        list.pairs(),
        &[
            (":path".to_owned(), "/a".to_owned()),
            ("x-empty".to_owned(), String::new()),
            ("set-cookie".to_owned(), "a=1".to_owned()),
        ]
    );
    assert_eq!(list.get("SET-COOKIE"), Some("a=1"));
    assert_eq!(list.raw_value(2), None);
    assert_eq!(HeaderList::decode(&[]), Ok(HeaderList::default()));
    assert_eq!(
        HeaderList::decode(&serialize(&[])).map(|l| l.pairs().len()),
        Ok(0)
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn a_value_that_is_not_utf8_is_text_with_replacements_and_keeps_its_bytes() {
    let list = decoded(&[
        (b"x-a", b"ok"),
        (b"x-note", b"caf\xe9"),
        (b"x-b", b"\xff\xfe"),
    ]);
    assert_eq!(list.get("x-note"), Some("caf\u{fffd}"));
    assert_eq!(list.get("x-b"), Some("\u{fffd}\u{fffd}"));
    assert_eq!(list.raw_value(0), None);
    assert_eq!(list.raw_value(1), Some(&b"caf\xe9"[..]));
    assert_eq!(list.raw_value(2), Some(&b"\xff\xfe"[..]));
}

#[wasm_bindgen_test(unsupported = test)]
fn a_map_shorter_than_it_announces_is_an_error_not_a_panic() {
    let full = serialize(&[(b"x-a", b"one"), (b"x-b", b"two")]);
    for cut in 1..full.len() - 1 {
        assert!(HeaderList::decode(&full[..cut]).is_err(), "cut at {cut}");
    }
    let mut huge = full.clone();
    huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        HeaderList::decode(&huge),
        Err(HeaderMapError::Truncated("pair sizes"))
    );
    let mut long_value = full;
    long_value[8..12].copy_from_slice(&1000u32.to_le_bytes());
    assert_eq!(
        HeaderList::decode(&long_value),
        Err(HeaderMapError::Truncated("values"))
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn removing_a_header_keeps_the_bytes_of_the_others_with_them() {
    let mut list = decoded(&[
        (b"server", b"\xe9"),
        (b"x-a", b"\xe0"),
        (b"server", b"b"),
        (b"x-b", b"ok"),
        (b"x-c", b"\xe1"),
    ]);
    list.remove("Server");
    list.push("x-d", "new");
    let names: Vec<&str> = list.pairs().iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["x-a", "x-b", "x-c", "x-d"]);
    assert_eq!(list.raw_value(0), Some(&b"\xe0"[..]));
    assert_eq!(list.raw_value(1), None);
    assert_eq!(list.raw_value(2), Some(&b"\xe1"[..]));
    assert_eq!(list.raw_value(3), None);
}
