//! Palisade security-headers filter.
//!
//! Request: strip headers clients must not set, enforce HTTPS. Response: add the preset's security
//! headers, remove leaking ones, harden every `Set-Cookie`. All decisions are in
//! `palisade::security_headers`; this crate reads what Envoy gives it and applies the answer.

use palisade::metrics::Counter;
use palisade::security_headers::{
    HeaderSink, Policy, RequestAction, RequestFacts, SecurityHeaders, FILTER,
};
use palisade_host::{self as host, HostCounter};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};
use std::rc::Rc;

proxy_wasm::main! {{
    host::init_logging();
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// Counters, defined once per VM.
struct Metrics {
    responses_hardened: HostCounter,
    headers_removed: HostCounter,
    cookies_hardened: HostCounter,
    https_redirects: HostCounter,
    https_rejected: HostCounter,
    request_headers_stripped: HostCounter,
}

impl Metrics {
    fn define() -> Self {
        Metrics {
            responses_hardened: HostCounter::define(FILTER, "responses_hardened"),
            headers_removed: HostCounter::define(FILTER, "headers_removed"),
            cookies_hardened: HostCounter::define(FILTER, "cookies_hardened"),
            https_redirects: HostCounter::define(FILTER, "https_redirects"),
            https_rejected: HostCounter::define(FILTER, "https_rejected"),
            request_headers_stripped: HostCounter::define(FILTER, "request_headers_stripped"),
        }
    }
}

#[derive(Default)]
struct Root {
    state: Option<Rc<(SecurityHeaders, Metrics)>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(config) = host::load_config(FILTER, SecurityHeaders::from_slice) else {
            return false;
        };
        let metrics = match &self.state {
            // A config update keeps the metric ids of this VM.
            Some(old) => copy_metrics(&old.1),
            None => Metrics::define(),
        };
        self.state = Some(Rc::new((config, metrics)));
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let state = self.state.clone()?;
        Some(Box::new(Filter {
            state,
            rule: None,
            https: false,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

fn copy_metrics(m: &Metrics) -> Metrics {
    Metrics {
        responses_hardened: m.responses_hardened,
        headers_removed: m.headers_removed,
        cookies_hardened: m.cookies_hardened,
        https_redirects: m.https_redirects,
        https_rejected: m.https_rejected,
        request_headers_stripped: m.request_headers_stripped,
    }
}

struct Filter {
    state: Rc<(SecurityHeaders, Metrics)>,
    /// The rule chosen for this request (`None`: the default policy).
    rule: Option<usize>,
    https: bool,
}

impl Filter {
    fn policy(&self) -> &Policy {
        self.state.0.rules.policy_at(self.rule)
    }
}

impl Context for Filter {}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let rules = &self.state.0.rules;
        let req = host::RequestHeaders::read(true, rules.needs_route_name());
        let facts = RequestFacts {
            scheme: req.get(":scheme"),
            forwarded_proto: req.get("x-forwarded-proto"),
            authority: req.get(":authority").unwrap_or(""),
            path: req.get(":path").unwrap_or("/"),
            method: req.get(":method").unwrap_or(""),
        };
        let request = req.request();
        self.rule = rules.select_index(&request);
        let policy = rules.policy_at(self.rule);
        self.https = policy.is_https(&facts);
        let metrics = &self.state.1;

        for name in policy.headers_to_strip(&req.headers) {
            host::remove_request_header(name);
            metrics.request_headers_stripped.inc();
        }

        match policy.check_request(&facts) {
            RequestAction::Continue => Action::Continue,
            RequestAction::Redirect { status, location } => {
                let mut reply = policy.local_reply_headers(self.https);
                reply.push(("location", &location));
                host::send_response(status, reply, None);
                metrics.https_redirects.inc();
                Action::Pause
            }
            RequestAction::Reject(error) => {
                host::send_error(&error, &policy.local_reply_headers(self.https));
                metrics.https_rejected.inc();
                Action::Pause
            }
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        // One read of the header map (host calls that return data cost ~1 µs each), then edits
        // header by header (calls that only pass data in are nearly free; measured in
        // `make bench`, group "host operations").
        let headers = host::response_headers();
        let done = self
            .policy()
            .harden_response(&headers, self.https, &mut HostResponseHeaders);
        let metrics = &self.state.1;
        metrics.responses_hardened.inc();
        if done.headers_removed > 0 {
            metrics.headers_removed.add(done.headers_removed.into());
        }
        if done.cookies_hardened > 0 {
            metrics.cookies_hardened.add(done.cookies_hardened.into());
        }
        Action::Continue
    }
}

/// The core's header sink, written through the host one header at a time.
struct HostResponseHeaders;

impl HeaderSink for HostResponseHeaders {
    fn set(&mut self, name: &str, value: &str) {
        host::set_response_header(name, value);
    }
    fn add(&mut self, name: &str, value: &str) {
        host::add_response_header(name, value);
    }
    fn remove(&mut self, name: &str) {
        host::remove_response_header(name);
    }
}
