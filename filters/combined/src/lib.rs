//! Palisade in one module.
//!
//! The four policies (security headers, rate limit, token checks, input validation) in one VM:
//! the configuration has one section per policy, each exactly what that policy's own filter
//! takes (`palisade::combined`). They run in the chain's order on the request and in reverse on
//! the response, as four chained filters would, but the wasm floor, the request-header read and
//! the V8 instance are paid once instead of four times (`make bench`, group "full chain").

use palisade_host::pipeline::Root;
use proxy_wasm::traits::RootContext;

proxy_wasm::main! {{
    palisade_host::init_logging();
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root::new("combined", palisade_stages::combined))
    });
}}
