//! Policies as stages of one HTTP filter.
//!
//! Each Palisade policy is a [`Stage`] (per request) made by a [`StageRoot`] (per VM, owns the
//! compiled config). A [`Pipeline`] runs stages in order on the request and in reverse order on
//! the response, as Envoy runs a chain of filters, but inside one VM: the wasm floor, the request
//! header read and the route name are paid once however many policies run. A single filter is a
//! pipeline of one stage; the combined module (`palisade_combined`) is a pipeline of all four.
//!
//! Stages never resume the request themselves: a stage that waits for its own call answers
//! [`Flow::Wait`], and when the call's answer makes it [`Flow::Continue`], the pipeline runs the
//! stages after it (and any body that arrived meanwhile) before it resumes the request.

use crate::{request_headers, response_headers, resume_request};
use log::{error, info};
use palisade::header_map::HeaderList;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType};
use std::time::Duration;

/// What a stage says after a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Done with this callback: the next stage runs.
    Continue,
    /// The stage answered the request itself (a local reply): nothing after it runs.
    Answered,
    /// The stage waits: for its own HTTP/gRPC call (request headers), or for more of the body
    /// (body callbacks: Envoy buffers it).
    Wait,
}

/// Progress of a request or response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Body {
    /// Bytes of the body seen so far, this chunk included.
    pub total: usize,
    /// Bytes Envoy holds for this filter now (what [`crate::request_body`] and
    /// [`crate::response_body`] can read from 0).
    pub buffered: usize,
    /// The last chunk.
    pub end: bool,
}

/// The request as the stages share it: read from the host at most once, kept in step with
/// what the stages change.
#[derive(Debug, Default)]
pub struct Request {
    headers: HeaderList,
    headers_read: bool,
    route_name: Option<Option<String>>,
    source_address: Option<Option<String>>,
    /// The host clock as read during this callback.
    now: Option<u64>,
}

impl Request {
    /// Reads what a stage's config needs and was not read yet: the headers (pseudo-headers
    /// included) and Envoy's route name. Each host read that returns data costs about a
    /// microsecond (measured by `make bench`), so a stage asks only for what it uses.
    pub fn read(&mut self, headers: bool, route_name: bool) {
        if headers && !self.headers_read {
            self.headers = request_headers();
            self.headers_read = true;
        }
        if route_name && self.route_name.is_none() {
            self.route_name = Some(crate::route_name());
        }
    }

    /// The request headers read so far (empty when no stage asked for them).
    pub fn headers(&self) -> &HeaderList {
        &self.headers
    }

    /// One header by (lower-case) name.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// The request as route rules see it.
    pub fn request(&self) -> palisade::matcher::Request<'_> {
        palisade::matcher::Request {
            authority: self.get(":authority").unwrap_or(""),
            path: self.get(":path").unwrap_or("/"),
            method: self.get(":method").unwrap_or(""),
            route_name: self.route_name.as_ref().and_then(Option::as_deref),
            headers: &self.headers,
        }
    }

    /// The host clock in nanoseconds since the Unix epoch, read once per callback (every stage of
    /// one callback sees the same instant; a clock read costs about a microsecond).
    pub fn now_nanos(&mut self) -> u64 {
        *self.now.get_or_insert_with(crate::now_nanos)
    }

    /// The downstream peer's address (`source.address`), read once.
    pub fn source_address(&mut self) -> Option<&str> {
        self.source_address
            .get_or_insert_with(|| crate::property(&["source", "address"]))
            .as_deref()
    }

    /// Answers the request with one of Palisade's JSON error replies (plus `extra` headers). Its
    /// `x-request-id` comes from the headers when a stage read them, otherwise from one host read.
    pub fn send_error(&self, reply: &palisade::response::ErrorResponse, extra: &[(&str, &str)]) {
        const REQUEST_ID: &str = "x-request-id";
        if self.headers_read {
            crate::send_error(reply, self.get(REQUEST_ID), extra);
        } else {
            crate::send_error(reply, crate::request_header(REQUEST_ID).as_deref(), extra);
        }
    }

    /// Removes a header, upstream and here. Once the headers were read, a header the request
    /// does not carry costs no host call.
    pub fn remove(&mut self, name: &str) {
        if self.headers_read && self.get(name).is_none() {
            return;
        }
        crate::remove_request_header(name);
        self.headers.remove(name);
    }

    /// Sets (replaces) a header, upstream and here.
    pub fn set(&mut self, name: &str, value: &str) {
        crate::set_request_header(name, value);
        if self.headers_read {
            self.headers.remove(name);
            self.headers.push(name, value);
        }
    }
}

/// The response headers as the stages share them: read at most once, kept in step with what the
/// stages write.
///
/// Writes go to the host one by one: replacing the whole map in one call was measured (`make
/// bench`, instructions per request, group "host operations" and the security-headers filter) to
/// cost more than one call per header, since Envoy then removes and re-adds every header.
#[derive(Debug, Default)]
pub struct Response {
    headers: Option<HeaderList>,
}

impl Response {
    fn list(&mut self) -> &mut HeaderList {
        self.headers.get_or_insert_with(response_headers)
    }

    /// One header by (lower-case) name.
    pub fn get(&mut self, name: &str) -> Option<&str> {
        self.list().get(name)
    }

    /// All response headers, for a stage that edits them through the host itself (the one that
    /// edits the most: keeping this copy in step with every write was measured to cost more than
    /// reading the headers again); the next reader reads them again.
    pub fn take_headers(&mut self) -> HeaderList {
        self.headers.take().unwrap_or_else(response_headers)
    }

    /// Sets (replaces) a header.
    pub fn set(&mut self, name: &str, value: &str) {
        crate::set_response_header(name, value);
        if let Some(headers) = &mut self.headers {
            headers.remove(name);
            headers.push(name, value);
        }
    }

    /// Removes a header. Once the headers were read, a header the response does not carry
    /// costs no host call.
    pub fn remove(&mut self, name: &str) {
        if let Some(headers) = &mut self.headers {
            if headers.get(name).is_none() {
                return;
            }
            headers.remove(name);
        }
        crate::remove_response_header(name);
    }
}

/// One policy's per-request half. Every callback has a default that lets traffic through.
pub trait Stage {
    fn on_request_headers(&mut self, req: &mut Request, end_of_stream: bool) -> Flow;

    fn on_request_body(&mut self, _body: Body) -> Flow {
        Flow::Continue
    }

    fn on_response_headers(&mut self, _resp: &mut Response, _end_of_stream: bool) -> Flow {
        Flow::Continue
    }

    fn on_response_body(&mut self, _body: Body) -> Flow {
        Flow::Continue
    }

    /// The answer to a call this stage started while it waits; `None` when the call is not its
    /// own. `Some(Flow::Wait)`: it started another call.
    fn on_http_call_response(
        &mut self,
        _req: &mut Request,
        _token: u32,
        _body_size: usize,
    ) -> Option<Flow> {
        None
    }

    /// As [`Stage::on_http_call_response`], for gRPC.
    fn on_grpc_call_response(
        &mut self,
        _req: &mut Request,
        _token: u32,
        _status_code: u32,
        _message_size: usize,
    ) -> Option<Flow> {
        None
    }
}

/// One policy's per-VM half: its compiled config, metrics and background work.
pub trait StageRoot {
    /// The stage for a new request.
    fn create(&self) -> Box<dyn Stage>;

    /// How often [`StageRoot::on_tick`] must run, if at all. The pipeline ticks at the shortest
    /// period of its stages and at least every [`crate::METRICS_FLUSH`] (to send the counters),
    /// so a stage's `on_tick` can run more often than it asked.
    fn tick_period(&self) -> Option<Duration> {
        None
    }

    fn on_tick(&mut self) {}

    /// The answer to a call the root started; `false` when the call is not its own.
    fn on_http_call_response(&mut self, _token: u32, _body_size: usize) -> bool {
        false
    }
}

/// Builds a module's stages from its configuration bytes; the error is logged and the
/// configuration refused.
pub type Build = fn(&[u8]) -> Result<Vec<Box<dyn StageRoot>>, String>;

/// The root context of a Palisade module: loads the configuration, owns the stage roots.
pub struct Root {
    name: &'static str,
    build: Build,
    stages: Vec<Box<dyn StageRoot>>,
}

impl Root {
    /// `name` is what log lines call the module (`token_auth`, `combined`).
    pub fn new(name: &'static str, build: Build) -> Self {
        Root {
            name,
            build,
            stages: Vec::new(),
        }
    }
}

/// The VM is going away (Envoy deletes the root context): what the counters still hold goes to
/// Envoy first. (Not `on_done`: the modules do not export `proxy_on_done`, which Envoy would
/// otherwise call on every request too.)
impl Drop for Root {
    fn drop(&mut self) {
        crate::flush_metrics();
    }
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        for stage in &mut self.stages {
            if stage.on_http_call_response(token, body_size) {
                return;
            }
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        crate::follow_host_log_level();
        let name = self.name;
        let bytes = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(bytes) => bytes.unwrap_or_default(),
            Err(status) => {
                error!("palisade {name}: cannot read the plugin configuration: {status:?}");
                return false;
            }
        };
        match (self.build)(&bytes) {
            Ok(stages) => {
                info!(
                    "palisade {name} v{}: configuration loaded",
                    env!("CARGO_PKG_VERSION")
                );
                // The stages' background work, and the counters' flush.
                let tick = stages
                    .iter()
                    .filter_map(|s| s.tick_period())
                    .chain([crate::METRICS_FLUSH])
                    .min()
                    .unwrap_or(crate::METRICS_FLUSH);
                let _ = hostcalls::set_tick_period(tick);
                self.stages = stages;
                true
            }
            Err(e) => {
                error!("palisade {name}: invalid configuration: {e}");
                false
            }
        }
    }

    fn on_tick(&mut self) {
        for stage in &mut self.stages {
            stage.on_tick();
        }
        crate::flush_metrics();
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        if self.stages.is_empty() {
            return None;
        }
        Some(Box::new(Pipeline::new(
            self.stages.iter().map(|s| s.create()).collect(),
        )))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Where the request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Request headers not finished: stage `at` runs next, or waits for its call.
    Headers { at: usize, waiting: bool },
    /// Every stage let the request headers through.
    Passed,
    /// A stage answered locally.
    Answered,
}

/// Body bookkeeping for one direction: bytes already let through, and bytes Envoy holds for
/// this filter. While Envoy buffers for this filter it hands over everything it holds since the
/// last pass, otherwise only the new chunk; either way the body so far is what passed plus what
/// is handed over now.
#[derive(Debug, Default, Clone, Copy)]
struct BodyTrack {
    passed: usize,
    /// What the last callback handed over, when a stage then waited (Envoy keeps it buffered).
    held: usize,
}

impl BodyTrack {
    fn progress(&self, size: usize, end: bool) -> Body {
        Body {
            total: self.passed.saturating_add(size),
            buffered: size,
            end,
        }
    }

    /// The stages' verdict on `body`: what Envoy holds from now on.
    fn settle(&mut self, body: Body, flow: Flow) {
        match flow {
            Flow::Continue => {
                self.passed = body.total;
                self.held = 0;
            }
            Flow::Wait => self.held = body.buffered,
            Flow::Answered => {}
        }
    }
}

/// The HTTP context: runs the stages.
pub struct Pipeline {
    stages: Vec<Box<dyn Stage>>,
    req: Request,
    phase: Phase,
    end_of_stream: bool,
    /// Stages whose request-headers callback ran: they see the response (in reverse order).
    started: usize,
    request_body: BodyTrack,
    /// A body that arrived while the request headers were still waiting: (buffered, end).
    held_body: Option<(usize, bool)>,
    response_body: BodyTrack,
}

impl Pipeline {
    pub fn new(stages: Vec<Box<dyn Stage>>) -> Self {
        Pipeline {
            stages,
            req: Request::default(),
            phase: Phase::Headers {
                at: 0,
                waiting: false,
            },
            end_of_stream: false,
            started: 0,
            request_body: BodyTrack::default(),
            held_body: None,
            response_body: BodyTrack::default(),
        }
    }

    /// Runs the request-headers callbacks from stage `from` on.
    fn run_request_headers(&mut self, from: usize) -> Flow {
        for at in from..self.stages.len() {
            self.started = self.started.max(at + 1);
            let Some(stage) = self.stages.get_mut(at) else {
                break;
            };
            match stage.on_request_headers(&mut self.req, self.end_of_stream) {
                Flow::Continue => {}
                Flow::Answered => {
                    self.phase = Phase::Answered;
                    return Flow::Answered;
                }
                Flow::Wait => {
                    self.phase = Phase::Headers { at, waiting: true };
                    return Flow::Wait;
                }
            }
        }
        self.phase = Phase::Passed;
        Flow::Continue
    }

    /// Runs the request-body callbacks of every stage.
    fn run_request_body(&mut self, size: usize, end: bool) -> Flow {
        let body = self.request_body.progress(size, end);
        let mut flow = Flow::Continue;
        for stage in &mut self.stages {
            flow = stage.on_request_body(body);
            if flow != Flow::Continue {
                break;
            }
        }
        if flow == Flow::Answered {
            self.phase = Phase::Answered;
        }
        self.request_body.settle(body, flow);
        flow
    }

    /// Runs the response-body callbacks of the stages that saw the request, in reverse order.
    fn run_response_body(&mut self, size: usize, end: bool) -> Flow {
        let body = self.response_body.progress(size, end);
        let started = self.started.min(self.stages.len());
        let mut flow = Flow::Continue;
        for stage in self.stages[..started].iter_mut().rev() {
            flow = stage.on_response_body(body);
            if flow != Flow::Continue {
                break;
            }
        }
        self.response_body.settle(body, flow);
        flow
    }

    /// A waiting stage's call answered with `flow`: go on from there.
    fn after_call(&mut self, at: usize, flow: Flow) {
        match flow {
            Flow::Wait => {}
            Flow::Answered => self.phase = Phase::Answered,
            Flow::Continue => {
                if self.run_request_headers(at + 1) != Flow::Continue {
                    return;
                }
                if let Some((size, end)) = self.held_body.take() {
                    // Envoy buffered this body for us while the headers waited.
                    if self.run_request_body(size, end) != Flow::Continue {
                        return;
                    }
                }
                resume_request();
            }
        }
    }

    fn waiting_stage(&self) -> Option<usize> {
        match self.phase {
            Phase::Headers { at, waiting: true } => Some(at),
            _ => None,
        }
    }
}

fn action(flow: Flow) -> Action {
    match flow {
        Flow::Continue => Action::Continue,
        Flow::Answered | Flow::Wait => Action::Pause,
    }
}

impl Context for Pipeline {
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let Some(at) = self.waiting_stage() else {
            return;
        };
        let Some(stage) = self.stages.get_mut(at) else {
            return;
        };
        self.req.now = None;
        if let Some(flow) = stage.on_http_call_response(&mut self.req, token, body_size) {
            self.after_call(at, flow);
        }
    }

    fn on_grpc_call_response(&mut self, token: u32, status_code: u32, response_size: usize) {
        let Some(at) = self.waiting_stage() else {
            return;
        };
        let Some(stage) = self.stages.get_mut(at) else {
            return;
        };
        self.req.now = None;
        if let Some(flow) =
            stage.on_grpc_call_response(&mut self.req, token, status_code, response_size)
        {
            self.after_call(at, flow);
        }
    }
}

impl HttpContext for Pipeline {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        self.end_of_stream = end_of_stream;
        action(self.run_request_headers(0))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        match self.phase {
            Phase::Answered => Action::Pause,
            Phase::Headers { .. } => {
                // Held until the waiting stage is done: Envoy buffers it meanwhile.
                self.held_body = Some((body_size, end_of_stream));
                Action::Pause
            }
            Phase::Passed => action(self.run_request_body(body_size, end_of_stream)),
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let mut resp = Response::default();
        let started = self.started.min(self.stages.len());
        let mut flow = Flow::Continue;
        for stage in self.stages[..started].iter_mut().rev() {
            flow = stage.on_response_headers(&mut resp, end_of_stream);
            if flow != Flow::Continue {
                break;
            }
        }
        action(flow)
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        // The body is complete. Continuing here would let Envoy pass everything it holds, so a
        // stage that waits for its call or for the whole body must be done first.
        match self.phase {
            Phase::Answered => Action::Pause,
            Phase::Headers { .. } => {
                // (Envoy holds body and trailers back while request headers wait; a host that
                // does not gets them held here, for after the call.)
                let buffered = self.held_body.map_or(0, |(size, _)| size);
                self.held_body = Some((buffered, true));
                Action::Pause
            }
            Phase::Passed => action(self.run_request_body(self.request_body.held, true)),
        }
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        action(self.run_response_body(body_size, end_of_stream))
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        // As for the request: the body is complete, and a waiting stage sees its end here.
        action(self.run_response_body(self.response_body.held, true))
    }
}
