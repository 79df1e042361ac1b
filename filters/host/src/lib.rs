//! The proxy-wasm boundary shared by every Palisade filter.
