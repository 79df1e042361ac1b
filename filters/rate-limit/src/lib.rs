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

use log::warn;
use palisade::metrics::Counter;
use palisade::ratelimit::headers::shadow_mark;
use palisade::ratelimit::key::Reads;
use palisade::ratelimit::rls::{self, BackendError, Decision};
use palisade::ratelimit::store::{CasStore, StoreError, Versioned};
use palisade::ratelimit::{Outcome, Plan, RateLimitConfig, RequestFacts, Verdict};
use palisade_host::{self as host, HostCounter, SharedWriteError};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};
use std::rc::Rc;
use std::time::Duration;

const FILTER: &str = "rate_limit";

proxy_wasm::main! {{
    host::init_logging();
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// The core's CAS store over Envoy's shared data (one per `vm_id`, shared by all workers).
struct SharedData;

impl CasStore for SharedData {
    fn get(&self, key: &str) -> Result<Versioned, StoreError> {
        let (value, cas) = host::shared_get(key);
        Ok(Versioned { value, cas })
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        host::shared_set(key, value, cas).map_err(|e| match e {
            SharedWriteError::CasMismatch => StoreError::CasMismatch,
            SharedWriteError::Failed => StoreError::Host("shared data write refused".into()),
        })
    }
}

#[derive(Clone, Copy)]
struct Metrics {
    allowed: HostCounter,
    limited: HostCounter,
    shadow_limited: HostCounter,
    unlimited: HostCounter,
    auth_blocked: HostCounter,
    auth_failures: HostCounter,
    auth_blocks_started: HostCounter,
    store_errors: HostCounter,
    backend_errors: HostCounter,
    backend_timeouts: HostCounter,
}

impl Metrics {
    fn define() -> Self {
        let c = |what| HostCounter::define(FILTER, what);
        Metrics {
            allowed: c(Outcome::Allowed.metric()),
            limited: c(Outcome::Limited.metric()),
            shadow_limited: c(Outcome::ShadowLimited.metric()),
            unlimited: c(Outcome::Unlimited.metric()),
            auth_blocked: c("auth_blocked"),
            auth_failures: c("auth_failures"),
            auth_blocks_started: c("auth_blocks_started"),
            store_errors: c("store_errors"),
            backend_errors: c("backend_errors"),
            backend_timeouts: c("backend_timeouts"),
        }
    }

    fn backend_failed(&self, e: &BackendError) {
        self.backend_errors.inc();
        if e.is_timeout() {
            self.backend_timeouts.inc();
        }
        warn!("palisade {FILTER}: rate-limit service failed: {e}");
    }

    fn outcome(&self, outcome: Outcome) -> HostCounter {
        match outcome {
            Outcome::Allowed => self.allowed,
            Outcome::Limited => self.limited,
            Outcome::ShadowLimited => self.shadow_limited,
            Outcome::Unlimited => self.unlimited,
        }
    }
}

#[derive(Default)]
struct Root {
    config: Option<Rc<RateLimitConfig>>,
    metrics: Option<Metrics>,
    reads: Reads,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(config) = host::load_config(FILTER, RateLimitConfig::from_slice) else {
            return false;
        };
        // Create every key up front, so that each later write is a real compare-and-swap.
        if let Err(e) = config.prepare_store(&SharedData) {
            log::error!("palisade {FILTER}: cannot prepare shared data: {e}");
            return false;
        }
        self.metrics.get_or_insert_with(Metrics::define);
        self.reads = config.reads();
        self.config = Some(Rc::new(config));
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Filter {
            config: self.config.clone()?,
            metrics: self.metrics?,
            reads: self.reads,
            plan: None,
            pending: None,
            response_headers: Vec::new(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Filter {
    config: Rc<RateLimitConfig>,
    metrics: Metrics,
    /// What the config needs read from each request.
    reads: Reads,
    /// Kept for the response when it has auth-failure throttles.
    plan: Option<Plan>,
    /// The plan of a request paused while the RLS backend is asked, and when it was asked.
    pending: Option<(Plan, u64)>,
    /// RateLimit headers for an admitted response.
    response_headers: Vec<(String, String)>,
}

impl Filter {
    /// The local limits' verdict (local mode, and the `local` failure mode).
    fn local_verdict(&self, plan: &Plan) -> Verdict {
        match self.config.check(&SharedData, plan, host::now_nanos()) {
            Ok(v) => v,
            Err(e) => {
                self.metrics.store_errors.inc();
                warn!("palisade {FILTER}: limit state unavailable: {e}");
                self.config.verdict_on_store_error(plan)
            }
        }
    }

    /// Acts on the backend's answer (or failure); `Continue` when the request may go on.
    fn decide_distributed(
        &mut self,
        plan: Plan,
        answer: Result<rls::RlsResponse, BackendError>,
    ) -> Action {
        if let Err(e) = &answer {
            self.metrics.backend_failed(e);
        }
        let verdict = match rls::decide(&self.config, &plan, &answer) {
            Decision::Act(v) => v,
            Decision::DecideLocally => self.local_verdict(&plan),
            Decision::Unavailable(reply) => {
                host::send_error(&reply, &[]);
                return Action::Pause;
            }
        };
        self.act(plan, &verdict)
    }

    /// Refuses (429 + headers), or marks and passes the request; the same for every mode.
    fn act(&mut self, plan: Plan, verdict: &Verdict) -> Action {
        let config = Rc::clone(&self.config);
        self.metrics.outcome(verdict.outcome()).inc();
        if verdict.is_limited() {
            host::send_error(&config.rejection(&plan, verdict), &[]);
            return Action::Pause;
        }
        if let Some((name, value)) = shadow_mark(verdict) {
            host::set_request_header(name, &value);
        }
        self.response_headers = config.allowed_headers(&plan, verdict);
        if !plan.throttles.is_empty() {
            self.plan = Some(plan);
        }
        Action::Continue
    }
}

impl Context for Filter {
    fn on_grpc_call_response(&mut self, _token_id: u32, status_code: u32, response_size: usize) {
        let (Some((plan, asked)), Some(d)) = (self.pending.take(), &self.config.distributed) else {
            return;
        };
        let message = host::grpc_call_response_body(response_size, rls::MAX_RESPONSE_BYTES);
        let end = rls::CallEnd {
            grpc_status: status_code,
            size: response_size,
            message: message.as_deref(),
            elapsed_ns: host::now_nanos().saturating_sub(asked),
        };
        let answer = rls::read_answer(d.timeout_ms, &end);
        if self.decide_distributed(plan, answer) == Action::Continue {
            host::resume_request();
        }
    }
}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let config = Rc::clone(&self.config);
        // Only what this config can use: a global bucket reads nothing from the request.
        let req = host::RequestHeaders::read(self.reads.headers, config.needs_route_name());
        let downstream = if self.reads.peer {
            host::property(&["source", "address"])
        } else {
            None
        };
        let request = req.request();
        let plan = config.plan(&RequestFacts {
            request: &request,
            downstream: downstream.as_deref(),
            client_ip: &config.client_ip,
        });
        if plan.checks.is_empty() && plan.throttles.is_empty() {
            self.metrics.unlimited.inc();
            return Action::Continue;
        }
        let now = host::now_nanos();

        match config.auth_blocked_for(&SharedData, &plan, now) {
            Ok(Some(remaining)) => {
                self.metrics.auth_blocked.inc();
                host::send_error(&config.blocked_response(&plan, remaining), &[]);
                return Action::Pause;
            }
            Ok(None) => {}
            Err(e) => {
                self.metrics.store_errors.inc();
                warn!("palisade {FILTER}: auth-failure state unavailable: {e}");
            }
        }

        if let (Some(d), Some(message)) = (&config.distributed, rls::request_for(&config, &plan)) {
            let timeout = Duration::from_millis(u64::from(d.timeout_ms));
            return match host::grpc_call(&d.cluster, rls::SERVICE, rls::METHOD, &message, timeout) {
                Some(_) => {
                    self.pending = Some((plan, now));
                    Action::Pause
                }
                None => self.decide_distributed(plan, Err(BackendError::Dispatch)),
            };
        }
        let verdict = self.local_verdict(&plan);
        self.act(plan, &verdict)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        for (name, value) in &self.response_headers {
            host::set_response_header(name, value);
        }
        if let Some(plan) = &self.plan {
            let status = host::response_header(":status")
                .and_then(|s| s.parse::<u32>().ok())
                .unwrap_or(0);
            match self
                .config
                .record_response(&SharedData, plan, status, host::now_nanos())
            {
                Ok(recorded) => {
                    use palisade::ratelimit::auth_failure::Recorded;
                    for r in recorded {
                        match r {
                            Recorded::Counted { .. } => self.metrics.auth_failures.inc(),
                            Recorded::Blocked { .. } => {
                                self.metrics.auth_failures.inc();
                                self.metrics.auth_blocks_started.inc();
                            }
                            Recorded::NotCounted | Recorded::AlreadyBlocked { .. } => {}
                        }
                    }
                }
                Err(e) => {
                    self.metrics.store_errors.inc();
                    warn!("palisade {FILTER}: cannot record the response: {e}");
                }
            }
        }
        Action::Continue
    }
}
