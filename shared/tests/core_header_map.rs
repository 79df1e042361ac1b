#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Header maps as Envoy serializes them for a wasm filter: decoded without trusting them.

use palisade::header_map::{value_text, HeaderList, HeaderMapError};
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
    HeaderList::decode(serialize(pairs)).expect("valid map")
}

#[wasm_bindgen_test(unsupported = test)]
fn decodes_pairs_in_order() {
    let list = decoded(&[
        (b":path", b"/a"),
        (b"x-empty", b""),
        (b"set-cookie", b"a=1"),
    ]);
    assert_eq!(
        list.iter().collect::<Vec<_>>(),
        [(":path", "/a"), ("x-empty", ""), ("set-cookie", "a=1")]
    );
    assert_eq!(list.len(), 3);
    assert_eq!(list.get("SET-COOKIE"), Some("a=1"));
    assert_eq!(list.raw_value(2), None);
    assert_eq!(HeaderList::decode(Vec::new()), Ok(HeaderList::default()));
    assert_eq!(HeaderList::decode(serialize(&[])).map(|l| l.len()), Ok(0));
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
    // A value read on its own is the same text.
    assert_eq!(value_text(b"caf\xe9".to_vec()), "caf\u{fffd}");
    assert_eq!(value_text(b"ok".to_vec()), "ok");
}

#[wasm_bindgen_test(unsupported = test)]
fn a_map_shorter_than_it_announces_is_an_error_not_a_panic() {
    let full = serialize(&[(b"x-a", b"one"), (b"x-b", b"two")]);
    for cut in 1..full.len() - 1 {
        assert!(
            HeaderList::decode(full[..cut].to_vec()).is_err(),
            "cut at {cut}"
        );
    }
    let mut huge = full.clone();
    huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        HeaderList::decode(huge),
        Err(HeaderMapError::Truncated("pair sizes"))
    );
    let mut long_value = full;
    long_value[8..12].copy_from_slice(&1000u32.to_le_bytes());
    assert_eq!(
        HeaderList::decode(long_value),
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
    let names: Vec<&str> = list.iter().map(|(k, _)| k).collect();
    assert_eq!(names, ["x-a", "x-b", "x-c", "x-d"]);
    assert_eq!(list.raw_value(0), Some(&b"\xe0"[..]));
    assert_eq!(list.raw_value(1), None);
    assert_eq!(list.raw_value(2), Some(&b"\xe1"[..]));
    assert_eq!(list.raw_value(3), None);
}

#[wasm_bindgen_test(unsupported = test)]
fn a_decoded_map_reads_and_edits_like_a_list_of_pairs() {
    // Decoded in place (one buffer), then edited: what it holds is the same as a list built
    // pair by pair, whatever the text's layout.
    let mut list = decoded(&[
        (b":authority", b"api.example"),
        (b"Authorization", b"Bearer abc"),
        (b"x-multi", b"\xc3\xa9t\xc3\xa9"),
        (b"authorization", b"second"),
    ]);
    assert_eq!(list.get("authorization"), Some("Bearer abc"));
    assert_eq!(list.get("x-multi"), Some("\u{e9}t\u{e9}"));
    list.remove("AUTHORIZATION");
    list.push("x-user", "alice");
    let built: HeaderList = [
        (":authority", "api.example"),
        ("x-multi", "\u{e9}t\u{e9}"),
        ("x-user", "alice"),
    ]
    .into_iter()
    .collect();
    assert_eq!(list, built);
    assert_eq!(list.get("authorization"), None);
    assert_ne!(list, decoded(&[(b":authority", b"api.example")]));
}

#[wasm_bindgen_test(unsupported = test)]
fn sizes_that_split_a_character_are_read_as_text_with_replacements() {
    // The buffer "x\xc3\xa9y" is text ("x\u{e9}y"), but sizes that end the name inside the
    // character are not: the pair is decoded on its own, never sliced through the character.
    let mut map = 1u32.to_le_bytes().to_vec();
    map.extend_from_slice(&2u32.to_le_bytes());
    map.extend_from_slice(&1u32.to_le_bytes());
    map.extend_from_slice(b"x\xc3\xa9y\0");
    let list = HeaderList::decode(map).expect("valid map");
    assert_eq!(list.iter().collect::<Vec<_>>(), [("x\u{fffd}", "y")]);
    assert_eq!(list.raw_value(0), None);
}

#[wasm_bindgen_test(unsupported = test)]
fn any_bytes_decode_to_a_map_or_an_error_never_a_panic() {
    // Maps as the host could hand them, with sizes and bytes chosen at random (a fixed-seed
    // generator, so a failure repeats): every decoded pair reads back as the bytes it came from.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let alphabet: &[u8] = b"ab:-\0\xc3\xa9\xe9\xff ";
    for _ in 0..2000 {
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = (0..next() % 5)
            .map(|_| {
                let (k, v) = (next() % 6, next() % 6);
                let mut field = |n: u64| -> Vec<u8> {
                    (0..n)
                        .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                        .collect()
                };
                (field(k), field(v))
            })
            .collect();
        let borrowed: Vec<(&[u8], &[u8])> = pairs
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect();
        let mut map = serialize(&borrowed);
        let list = HeaderList::decode(map.clone()).expect("a well-formed map");
        assert_eq!(list.len(), pairs.len());
        for (i, ((k, v), (name, value))) in pairs.iter().zip(list.iter()).enumerate() {
            assert_eq!(name, String::from_utf8_lossy(k));
            assert_eq!(value, String::from_utf8_lossy(v));
            let raw = std::str::from_utf8(v).is_err().then_some(v.as_slice());
            assert_eq!(list.raw_value(i), raw);
        }
        // The same map with random sizes or a random cut: an error or a map, never a panic.
        if map.len() > 4 {
            let at = 4 + (next() as usize) % (map.len() - 4);
            map[at] = next() as u8;
            let _ = HeaderList::decode(map.clone());
            map.truncate((next() as usize) % map.len());
            let _ = HeaderList::decode(map);
        }
    }
}
