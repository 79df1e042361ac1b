//! Palisade security-headers filter.
//!
//! Request: strip headers clients must not set, enforce HTTPS. Response: add the preset's security
//! headers, remove leaking ones, harden every `Set-Cookie`. All decisions are in
//! `palisade::security_headers`; this crate reads what Envoy gives it and applies the answer.
//!
//! The policy itself is `palisade_stages::security_headers`; this crate is its module: a pipeline of that one
//! stage.

use palisade_host::pipeline::Root;
use proxy_wasm::traits::RootContext;

proxy_wasm::main! {{
    palisade_host::init_logging();
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root::new("security_headers", palisade_stages::security_headers))
    });
}}
