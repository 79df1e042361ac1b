//! Security headers as a pipeline stage.
//!
//! Request: strip headers clients must not set, enforce HTTPS. Response: add the preset's security
//! headers, remove leaking ones, harden every `Set-Cookie`. All decisions are in
//! `palisade::security_headers`; this stage reads what Envoy gives it and applies the answer.

use palisade::metrics::Counter;
use palisade::security_headers::{
    HeaderSink, Policy, RequestAction, RequestFacts, SecurityHeaders, FILTER,
};
use palisade_host::pipeline::{Flow, Request, Response, Stage, StageRoot};
use palisade_host::{self as host, HostCounter};
use std::rc::Rc;

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

/// The per-VM half: the compiled config and its metrics.
pub struct Root {
    state: Rc<(SecurityHeaders, Metrics)>,
}

impl Root {
    pub fn new(config: SecurityHeaders) -> Self {
        Root {
            state: Rc::new((config, Metrics::define())),
        }
    }
}

impl StageRoot for Root {
    fn create(&self) -> Box<dyn Stage> {
        Box::new(Headers {
            state: Rc::clone(&self.state),
            rule: None,
            https: false,
        })
    }
}

struct Headers {
    state: Rc<(SecurityHeaders, Metrics)>,
    /// The rule chosen for this request (`None`: the default policy).
    rule: Option<usize>,
    https: bool,
}

impl Headers {
    fn policy(&self) -> &Policy {
        self.state.0.rules.policy_at(self.rule)
    }
}

impl Stage for Headers {
    fn on_request_headers(&mut self, req: &mut Request, _end_of_stream: bool) -> Flow {
        let state = Rc::clone(&self.state);
        let (config, metrics) = (&state.0, &state.1);
        req.read(true, config.rules.needs_route_name());
        self.rule = config.rules.select_index(&req.request());
        let policy = config.rules.policy_at(self.rule);

        let strip: Vec<String> = policy
            .headers_to_strip(req.headers())
            .map(str::to_owned)
            .collect();
        for name in &strip {
            req.remove(name);
            metrics.request_headers_stripped.inc();
        }

        let facts = RequestFacts {
            scheme: req.get(":scheme"),
            forwarded_proto: req.get("x-forwarded-proto"),
            authority: req.get(":authority").unwrap_or(""),
            path: req.get(":path").unwrap_or("/"),
            method: req.get(":method").unwrap_or(""),
        };
        self.https = policy.is_https(&facts);
        match policy.check_request(&facts) {
            RequestAction::Continue => Flow::Continue,
            RequestAction::Redirect { status, location } => {
                let mut reply = policy.local_reply_headers(self.https);
                reply.push(("location", &location));
                host::send_response(status, reply, None);
                metrics.https_redirects.inc();
                Flow::Answered
            }
            RequestAction::Reject(error) => {
                req.send_error(&error, &policy.local_reply_headers(self.https));
                metrics.https_rejected.inc();
                Flow::Answered
            }
        }
    }

    fn on_response_headers(&mut self, resp: &mut Response, _end_of_stream: bool) -> Flow {
        // One read of the header map (host calls that return data cost ~1 µs each), then edits
        // header by header (calls that only pass data in are nearly free; measured in
        // `make bench`, group "host operations").
        let headers = resp.take_headers();
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
        Flow::Continue
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
    fn add_bytes(&mut self, name: &str, value: &[u8]) {
        host::add_response_header_bytes(name, value);
    }
}
