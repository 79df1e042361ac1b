//! Input validation as a pipeline stage.
//!
//! Request headers: check method, path, query and headers (core) and refuse with an RFC 9457
//! problem. Request body: enforce the size limit while it streams (buffering only what must be
//! validated), then validate the whole body (core). Response: scrub configured fields from JSON
//! bodies. In report-only mode, problems are logged and counted and the request passes.

use log::warn;
use palisade::metrics::Counter;
use palisade::validation::{
    BodyBuffer, BodyKind, OnFailure, Policy, RequestHead, Scrubbed, ValidationConfig, Verdict,
    FILTER_NAME,
};
use palisade_host::pipeline::{Body, Flow, Request, Response, Stage, StageRoot};
use palisade_host::{self as host, HostCounter};
use std::rc::Rc;

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

/// The per-VM half: the compiled config and its metrics.
pub struct Root {
    config: Rc<ValidationConfig>,
    metrics: Metrics,
}

impl Root {
    pub fn new(config: ValidationConfig) -> Self {
        Root {
            config: Rc::new(config),
            metrics: Metrics::define(),
        }
    }
}

impl StageRoot for Root {
    fn create(&self) -> Box<dyn Stage> {
        Box::new(Validate {
            config: Rc::clone(&self.config),
            metrics: self.metrics,
            rule: None,
            body: BodyState::None,
            scrub: false,
        })
    }
}

/// What happens to the request body.
enum BodyState {
    /// No body, or nothing to do with it.
    None,
    /// Count bytes against the limit as they stream through.
    Count { limit: usize },
    /// Buffer (Envoy holds the bytes) up to the limit, validate at the end.
    Validate { limit: usize, kind: BodyKind },
    /// Already answered.
    Done,
}

struct Validate {
    config: Rc<ValidationConfig>,
    metrics: Metrics,
    rule: Option<usize>,
    body: BodyState,
    scrub: bool,
}

impl Validate {
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
        // Report mode exists to be read; an enforced rejection is counted, and logged at debug
        // as Envoy's own filters do (a line per request would make a flood write the log).
        let level = if enforced {
            log::Level::Debug
        } else {
            log::Level::Info
        };
        log::log!(
            level,
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

impl Stage for Validate {
    fn on_request_headers(&mut self, req: &mut Request, end_of_stream: bool) -> Flow {
        self.metrics.checked.inc();
        let config = Rc::clone(&self.config);
        req.read(true, config.rules().needs_route_name());
        self.rule = config.rules().select_index(&req.request());
        let head = RequestHead {
            method: req.get(":method").unwrap_or(""),
            path: req.get(":path").unwrap_or("/"),
            headers: req.headers(),
            has_body: !end_of_stream,
        };
        let policy = config.rules().policy_at(self.rule);
        if self.act(&policy.check_head(&head), "head") {
            return Flow::Answered;
        }
        if !end_of_stream {
            let plan = policy.body_plan(&head);
            self.body = if plan.validate {
                BodyState::Validate {
                    limit: plan.limit,
                    kind: plan.kind,
                }
            } else {
                BodyState::Count { limit: plan.limit }
            };
        }
        Flow::Continue
    }

    fn on_request_body(&mut self, body: Body) -> Flow {
        match self.body {
            BodyState::None | BodyState::Done => Flow::Continue,
            BodyState::Count { limit } => {
                // Streaming: only counted, never held.
                if BodyBuffer::check_total(limit, body.total).is_err() {
                    let verdict = self.policy().body_too_large();
                    if self.act(&verdict, "body") {
                        return Flow::Answered;
                    }
                    self.body = BodyState::None;
                }
                Flow::Continue
            }
            BodyState::Validate { limit, kind } => {
                // Envoy holds the chunks until the body is complete.
                if BodyBuffer::check_total(limit, body.total).is_err() {
                    let verdict = self.policy().body_too_large();
                    if self.act(&verdict, "body") {
                        return Flow::Answered;
                    }
                    self.body = BodyState::None;
                    return Flow::Continue;
                }
                if !body.end {
                    return Flow::Wait;
                }
                let bytes = host::request_body(0, body.buffered).unwrap_or_default();
                let verdict = self.policy().check_body(kind, &bytes);
                self.body = BodyState::None;
                if self.act(&verdict, "body") {
                    return Flow::Answered;
                }
                Flow::Continue
            }
        }
    }

    fn on_response_headers(&mut self, resp: &mut Response, end_of_stream: bool) -> Flow {
        if end_of_stream || matches!(self.body, BodyState::Done) {
            return Flow::Continue;
        }
        let config = Rc::clone(&self.config);
        if let Some(scrubber) = config.rules().policy_at(self.rule).scrubber() {
            if scrubber.applies_to(resp.get("content-type")) {
                // The body may shrink: its length is no longer known up front.
                resp.remove("content-length");
                self.scrub = true;
            }
        }
        Flow::Continue
    }

    fn on_response_body(&mut self, body: Body) -> Flow {
        if !self.scrub {
            return Flow::Continue;
        }
        let config = Rc::clone(&self.config);
        let Some(scrubber) = config.rules().policy_at(self.rule).scrubber() else {
            return Flow::Continue;
        };
        let body_size = body.buffered;
        if body.total > scrubber.max_body_size() {
            self.scrub = false;
            self.metrics.scrub_failed.inc();
            warn!(
                "palisade {FILTER_NAME}: response body over {} bytes, not scrubbed",
                scrubber.max_body_size()
            );
            if scrubber.on_failure() == OnFailure::Block {
                host::replace_response_body(body_size, &scrubber.failure_problem().body());
            }
            return Flow::Continue;
        }
        if !body.end {
            return Flow::Wait;
        }
        self.scrub = false;
        let bytes = host::response_body(0, body.buffered).unwrap_or_default();
        match scrubber.scrub(&bytes) {
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
        Flow::Continue
    }
}
