//! Palisade token filter.
//!
//! Request: remove inbound copies of the claim headers, pick the route's requirement, verify the
//! token(s) (core: JWT or PASETO, keys bound to algorithms, claims, scopes), then either answer
//! (401/403/503 with the JSON body and `WWW-Authenticate`) or strip the token and pass verified
//! claims upstream as headers. Remote keys (JWKS URI or OpenID discovery) are fetched by the root
//! context and shared by all workers (see `keys`); an unknown `kid` triggers one rate-limited
//! refetch, during which the request waits and is then verified again. On routes with a `peers`
//! allow-list, the client certificate's URI SAN (`connection.uri_san_peer_certificate`, when
//! `connection.mtls` says one was presented) goes to the core with the request.
//!
//! The policy itself is `palisade_stages::token_auth`; this crate is its module: a pipeline of that one
//! stage.

use palisade_host::pipeline::Root;
use proxy_wasm::traits::RootContext;

proxy_wasm::main! {{
    palisade_host::init_logging();
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root::new("token_auth", palisade_stages::token_auth))
    });
}}
