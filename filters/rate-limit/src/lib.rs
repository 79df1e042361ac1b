//! Palisade rate-limit filter.
//!
//! Request: plan which limits apply (core), refuse clients blocked for auth failures, ask the core
//! for an exact verdict over proxy-wasm shared data (one state for all Envoy workers), then refuse
//! (429 + headers), mark (shadow mode) or pass. Response: add the RateLimit headers to admitted
//! responses when configured, and feed the status to the auth-failure throttles.
//!
//! Distributed mode (`distributed` in the config): instead of the local limits, the request is
//! paused while the RLS backend is asked over gRPC (`ShouldRateLimit`); its answer, or its failure
//! read through `failure_mode` (core: [`rls::decide`]), gives the verdict acted on as above.
//!
//! The policy itself is `palisade_stages::rate_limit`; this crate is its module: a pipeline of that one
//! stage.

use palisade_host::pipeline::Root;
use proxy_wasm::traits::RootContext;

proxy_wasm::main! {{
    palisade_host::init_logging();
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root::new("rate_limit", palisade_stages::rate_limit))
    });
}}
