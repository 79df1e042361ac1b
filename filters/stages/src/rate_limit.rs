//! Rate limiting as a pipeline stage.
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
use palisade::ratelimit::headers::{shadow_mark, LastRejection};
use palisade::ratelimit::key::Reads;
use palisade::ratelimit::lease::TICK_MS;
use palisade::ratelimit::rls::{self, BackendError, Decision};
use palisade::ratelimit::store::{CasStore, StoreError, Versioned};
use palisade::ratelimit::{Leases, Outcome, Plan, RateLimitConfig, RequestFacts, Verdict};
use palisade_host::pipeline::{Flow, Request, Response, Stage, StageRoot};
use palisade_host::{self as host, HostCounter, SharedWriteError};
use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

const FILTER: &str = "rate_limit";

// Reservations end after a number of ticks of `TICK_MS`: the pipeline must not tick faster to
// send the counters.
const _: () = assert!(palisade_host::METRICS_FLUSH.as_millis() >= TICK_MS as u128);

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
    admitted_from_reservation: HostCounter,
    refused_from_memory: HostCounter,
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
            admitted_from_reservation: c("admitted_from_reservation"),
            refused_from_memory: c("refused_from_memory"),
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

/// The per-VM half: the compiled config, what it reads, its metrics, and this worker's
/// reservations (`palisade::ratelimit::lease`).
pub struct Root {
    config: Rc<RateLimitConfig>,
    metrics: Metrics,
    reads: Reads,
    leases: Rc<RefCell<Leases>>,
    rejections: Rc<RefCell<LastRejection>>,
}

impl Root {
    /// Creates every key of the limit state up front, so that each later write is a real
    /// compare-and-swap.
    pub fn new(config: RateLimitConfig) -> Result<Self, String> {
        config
            .prepare_store(&SharedData)
            .map_err(|e| format!("cannot prepare shared data: {e}"))?;
        Ok(Root {
            reads: config.reads(),
            config: Rc::new(config),
            metrics: Metrics::define(),
            leases: Rc::default(),
            rejections: Rc::default(),
        })
    }
}

impl StageRoot for Root {
    fn create(&self) -> Box<dyn Stage> {
        Box::new(Limit {
            config: Rc::clone(&self.config),
            metrics: self.metrics,
            reads: self.reads,
            leases: Rc::clone(&self.leases),
            rejections: Rc::clone(&self.rejections),
            plan: None,
            pending: None,
            response_headers: Vec::new(),
        })
    }

    fn tick_period(&self) -> Option<Duration> {
        self.config
            .reserves()
            .then_some(Duration::from_millis(TICK_MS))
    }

    fn on_tick(&mut self) {
        let (unused, admitted, refused) = {
            let mut leases = self.leases.borrow_mut();
            (
                leases.tick(),
                leases.take_admitted(),
                leases.take_refused_again(),
            )
        };
        self.metrics.admitted_from_reservation.add(admitted);
        self.metrics.refused_from_memory.add(refused);
        if !unused.is_empty() {
            self.config
                .give_back(&SharedData, &unused, host::now_nanos());
        }
    }
}

struct Limit {
    config: Rc<RateLimitConfig>,
    metrics: Metrics,
    /// What the config needs read from each request.
    reads: Reads,
    leases: Rc<RefCell<Leases>>,
    /// The worker's last 429, reused while a refusal reads the same.
    rejections: Rc<RefCell<LastRejection>>,
    /// Kept for the response when it has auth-failure throttles.
    plan: Option<Plan>,
    /// The call of a request paused while the RLS backend is asked, its plan, and when it was
    /// asked.
    pending: Option<(u32, Plan, u64)>,
    /// RateLimit headers for an admitted response.
    response_headers: Vec<(&'static str, String)>,
}

impl Limit {
    /// The local limits' verdict (local mode, and the `local` failure mode): from this worker's
    /// reservations when it can, otherwise from shared data.
    fn local_verdict(&self, plan: &Plan, req: &mut Request) -> Verdict {
        let checked = self.config.check_reserving(
            &SharedData,
            plan,
            || req.now_nanos(),
            &mut self.leases.borrow_mut(),
        );
        match checked {
            Ok(v) => v,
            Err(e) => {
                self.metrics.store_errors.inc();
                warn!("palisade {FILTER}: limit state unavailable: {e}");
                self.config.verdict_on_store_error(plan)
            }
        }
    }

    /// Acts on the backend's answer (or failure).
    fn decide_distributed(
        &mut self,
        req: &mut Request,
        plan: Plan,
        answer: Result<rls::RlsResponse, BackendError>,
    ) -> Flow {
        if let Err(e) = &answer {
            self.metrics.backend_failed(e);
        }
        let verdict = match rls::decide(&self.config, &plan, &answer) {
            Decision::Act(v) => v,
            Decision::DecideLocally => self.local_verdict(&plan, req),
            Decision::Unavailable(reply) => {
                req.send_error(&reply, &[]);
                return Flow::Answered;
            }
        };
        self.act(req, Cow::Owned(plan), &verdict)
    }

    /// Refuses (429 + headers), or marks and passes the request; the same for every mode.
    fn act(&mut self, req: &mut Request, plan: Cow<'_, Plan>, verdict: &Verdict) -> Flow {
        let config = Rc::clone(&self.config);
        self.metrics.outcome(verdict.outcome()).inc();
        if verdict.is_limited() {
            let mut last = self.rejections.borrow_mut();
            req.send_error(config.rejection_reusing(&plan, verdict, &mut last), &[]);
            return Flow::Answered;
        }
        if let Some((name, value)) = shadow_mark(verdict) {
            req.set(name, &value);
        }
        self.response_headers = config.allowed_headers(&plan, verdict);
        if !plan.throttles.is_empty() {
            self.plan = Some(plan.into_owned());
        }
        Flow::Continue
    }
}

impl Stage for Limit {
    fn on_request_headers(&mut self, req: &mut Request, _end_of_stream: bool) -> Flow {
        let config = Rc::clone(&self.config);
        // Only what this config can use: a global bucket reads nothing from the request.
        req.read(self.reads.headers, config.needs_route_name());
        let downstream = if self.reads.peer {
            req.source_address().map(str::to_owned)
        } else {
            None
        };
        let plan = config.plan_for(&RequestFacts {
            request: &req.request(),
            downstream: downstream.as_deref(),
            client_ip: &config.client_ip,
        });
        if plan.checks.is_empty() && plan.throttles.is_empty() {
            self.metrics.unlimited.inc();
            return Flow::Continue;
        }
        // The clock only when something needs it: a request admitted from this worker's
        // reservations needs none.
        if !plan.throttles.is_empty() {
            match config.auth_blocked_for(&SharedData, &plan, req.now_nanos()) {
                Ok(Some(remaining)) => {
                    self.metrics.auth_blocked.inc();
                    req.send_error(&config.blocked_response(&plan, remaining), &[]);
                    return Flow::Answered;
                }
                Ok(None) => {}
                Err(e) => {
                    self.metrics.store_errors.inc();
                    warn!("palisade {FILTER}: auth-failure state unavailable: {e}");
                }
            }
        }

        if let (Some(d), Some(message)) = (&config.distributed, rls::request_for(&config, &plan)) {
            let timeout = Duration::from_millis(u64::from(d.timeout_ms));
            let now = req.now_nanos();
            return match host::grpc_call(&d.cluster, rls::SERVICE, rls::METHOD, &message, timeout) {
                Some(token) => {
                    self.pending = Some((token, plan.into_owned(), now));
                    Flow::Wait
                }
                None => {
                    self.decide_distributed(req, plan.into_owned(), Err(BackendError::Dispatch))
                }
            };
        }
        let verdict = self.local_verdict(&plan, req);
        self.act(req, plan, &verdict)
    }

    fn on_response_headers(&mut self, resp: &mut Response, _end_of_stream: bool) -> Flow {
        for (name, value) in &self.response_headers {
            resp.set(name, value);
        }
        if let Some(plan) = &self.plan {
            let status = resp
                .get(":status")
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
        Flow::Continue
    }

    fn on_grpc_call_response(
        &mut self,
        req: &mut Request,
        token: u32,
        status_code: u32,
        message_size: usize,
    ) -> Option<Flow> {
        let d = self.config.distributed.as_ref()?;
        if !matches!(self.pending, Some((expected, ..)) if expected == token) {
            return None;
        }
        let (_, plan, asked) = self.pending.take()?;
        let message = host::grpc_call_response_body(message_size, rls::MAX_RESPONSE_BYTES);
        let end = rls::CallEnd {
            grpc_status: status_code,
            size: message_size,
            message: message.as_deref(),
            elapsed_ns: req.now_nanos().saturating_sub(asked),
        };
        let answer = rls::read_answer(d.timeout_ms, &end);
        Some(self.decide_distributed(req, plan, answer))
    }
}
