//! Palisade input-validation filter.
//!
//! Request headers: check method, path, query and headers (core) and refuse with an RFC 9457
//! problem. Request body: enforce the size limit while it streams (buffering only what must be
//! validated), then validate the whole body (core). Response: scrub configured fields from JSON
//! bodies. In report-only mode, problems are logged and counted and the request passes.
//!
//! The policy itself is `palisade_stages::input_validation`; this crate is its module: a pipeline of that one
//! stage.

use palisade_host::pipeline::Root;
use proxy_wasm::traits::RootContext;

proxy_wasm::main! {{
    palisade_host::init_logging();
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root::new("input_validation", palisade_stages::input_validation))
    });
}}
