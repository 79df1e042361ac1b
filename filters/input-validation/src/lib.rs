//! Palisade input-validation filter.
//!
//! Request headers: check method, path, query and headers (core) and refuse with an RFC 9457
//! problem. Request body: enforce the size limit while it streams (buffering only what must be
//! validated), then validate the whole body (core). Response: scrub configured fields from JSON
//! bodies. In report-only mode, problems are logged and counted and the request passes.

use log::{info, warn};
use palisade::metrics::Counter;
use palisade::validation::{
    BodyBuffer, BodyKind, OnFailure, Policy, RequestHead, Scrubbed, ValidationConfig, Verdict,
    FILTER_NAME,
};
use palisade_host::{self as host, HostCounter};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};
use std::rc::Rc;

proxy_wasm::main! {{
    host::init_logging();
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

#[derive(Clone, Copy)]
struct Metrics {
    checked: HostCounter,
    rejected: HostCounter,
    reported: HostCounter,
    scrubbed: HostCounter,
    scrub_failed: HostCounter,
}

impl Metrics {
    fn define() -> Self {
        let c = |what| HostCounter::define(FILTER_NAME, what);
        Metrics {
            checked: c("checked"),
            rejected: c("rejected"),
            reported: c("reported"),
            scrubbed: c("scrubbed"),
            scrub_failed: c("scrub_failed"),
        }
    }
}

#[derive(Default)]
struct Root {
    config: Option<Rc<ValidationConfig>>,
    metrics: Option<Metrics>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(config) = host::load_config(FILTER_NAME, ValidationConfig::from_slice) else {
            return false;
        };
        self.metrics.get_or_insert_with(Metrics::define);
        self.config = Some(Rc::new(config));
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Filter {
            config: self.config.clone()?,
            metrics: self.metrics?,
            rule: None,
            body: BodyState::None,
            scrub: false,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// What happens to the request body.
enum BodyState {
    /// No body, or nothing to do with it.
    None,
    /// Count bytes against the limit as they stream through.
    Count { limit: usize, seen: usize },
    /// Buffer (Envoy holds the bytes) up to the limit, validate at the end.
    Validate { limit: usize, kind: BodyKind },
    /// Already answered.
    Done,
}

struct Filter {
    config: Rc<ValidationConfig>,
    metrics: Metrics,
    rule: Option<usize>,
    body: BodyState,
    scrub: bool,
}

impl Filter {
    fn policy(&self) -> &Policy {
        self.config.rules().policy_at(self.rule)
    }

    /// Acts on a verdict: `true` when the request was answered and must stop here.
    fn act(&mut self, verdict: &Verdict, stage: &str) -> bool {
        let (problem, enforced) = match verdict {
            Verdict::Allow => return false,
            Verdict::Report(problem) => (problem, false),
            Verdict::Reject(problem) => (problem, true),
        };
        info!(
            "palisade {FILTER_NAME}: {} ({stage}, {}, rule {}): {} violation(s)",
            if enforced { "rejected" } else { "would reject" },
            problem.category(),
            self.config
                .rules()
                .rule_name(self.rule)
                .unwrap_or("default"),
            problem.total()
        );
        if !enforced {
            self.metrics.reported.inc();
            return false;
        }
        self.metrics.rejected.inc();
        host::send_response(problem.status(), problem.headers(), Some(&problem.body()));
        self.body = BodyState::Done;
        true
    }
}

impl Context for Filter {}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        self.metrics.checked.inc();
        let config = Rc::clone(&self.config);
        let req = host::RequestHeaders::read(true, config.rules().needs_route_name());
        self.rule = config.rules().select_index(&req.request());
        let head = RequestHead {
            method: req.get(":method").unwrap_or(""),
            path: req.get(":path").unwrap_or("/"),
            headers: &req.headers,
            has_body: !end_of_stream,
        };
        let policy = config.rules().policy_at(self.rule);
        if self.act(&policy.check_head(&head), "head") {
            return Action::Pause;
        }
        if !end_of_stream {
            let plan = policy.body_plan(&head);
            self.body = if plan.validate {
                BodyState::Validate {
                    limit: plan.limit,
                    kind: plan.kind,
                }
            } else {
                BodyState::Count {
                    limit: plan.limit,
                    seen: 0,
                }
            };
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        match self.body {
            BodyState::None | BodyState::Done => Action::Continue,
            BodyState::Count { limit, seen } => {
                // Streaming: each call sees only the new chunk.
                let seen = seen.saturating_add(body_size);
                self.body = BodyState::Count { limit, seen };
                if BodyBuffer::check_total(limit, seen).is_err() {
                    let verdict = self.policy().body_too_large();
                    if self.act(&verdict, "body") {
                        return Action::Pause;
                    }
                    self.body = BodyState::None;
                }
                Action::Continue
            }
            BodyState::Validate { limit, kind } => {
                // Buffering: Envoy keeps the chunks, `body_size` is the total so far.
                if BodyBuffer::check_total(limit, body_size).is_err() {
                    let verdict = self.policy().body_too_large();
                    if self.act(&verdict, "body") {
                        return Action::Pause;
                    }
                    self.body = BodyState::None;
                    return Action::Continue;
                }
                if !end_of_stream {
                    return Action::Pause;
                }
                let body = host::request_body(0, body_size).unwrap_or_default();
                let verdict = self.policy().check_body(kind, &body);
                self.body = BodyState::None;
                if self.act(&verdict, "body") {
                    return Action::Pause;
                }
                Action::Continue
            }
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if end_of_stream || matches!(self.body, BodyState::Done) {
            return Action::Continue;
        }
        let content_type = host::response_header("content-type");
        if let Some(scrubber) = self.policy().scrubber() {
            if scrubber.applies_to(content_type.as_deref()) {
                // The body may shrink: its length is no longer known up front.
                host::remove_response_header("content-length");
                self.scrub = true;
            }
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.scrub {
            return Action::Continue;
        }
        let config = Rc::clone(&self.config);
        let Some(scrubber) = config.rules().policy_at(self.rule).scrubber() else {
            return Action::Continue;
        };
        if body_size > scrubber.max_body_size() {
            self.scrub = false;
            self.metrics.scrub_failed.inc();
            warn!(
                "palisade {FILTER_NAME}: response body over {} bytes, not scrubbed",
                scrubber.max_body_size()
            );
            if scrubber.on_failure() == OnFailure::Block {
                host::replace_response_body(body_size, &scrubber.failure_problem().body());
            }
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.scrub = false;
        let body = host::response_body(0, body_size).unwrap_or_default();
        match scrubber.scrub(&body) {
            Scrubbed::Unchanged => {}
            Scrubbed::Changed { body: clean, .. } => {
                self.metrics.scrubbed.inc();
                host::replace_response_body(body_size, &clean);
            }
            Scrubbed::NotJson => {
                self.metrics.scrub_failed.inc();
                if scrubber.on_failure() == OnFailure::Block {
                    host::replace_response_body(body_size, &scrubber.failure_problem().body());
                }
            }
        }
        Action::Continue
    }
}
