//! Token checks as a pipeline stage.
//!
//! Request: remove inbound copies of the claim headers, pick the route's requirement, verify the
//! token(s) (core: JWT or PASETO, keys bound to algorithms, claims, scopes), then either answer
//! (401/403/503 with the JSON body and `WWW-Authenticate`) or strip the token and pass verified
//! claims upstream as headers. Remote keys (JWKS URI or OpenID discovery) are fetched by the root
//! context and shared by all workers (see `keys`); an unknown `kid` triggers one rate-limited
//! refetch, during which the request waits and is then verified again. On routes with a `peers`
//! allow-list, the client certificate's URI SAN (`connection.uri_san_peer_certificate`, when
//! `connection.mtls` says one was presented) goes to the core with the request.

mod keys;

use log::{debug, info, warn};
use palisade::metrics::Counter;
use palisade::token::jwks::SkippedKey;
use palisade::token::remote::{parse_discovery, Endpoint, FetchSchedule, RemoteKeys};
use palisade::token::{
    strip_cookie, strip_query_param, HostCheck, HostVerdict, KeyStore, Outcome, Peer,
    SignatureBackend, TokenCache, TokenConfig, TokenLocation, TokenRequest, Verifier, FILTER_NAME,
};
use palisade_host::pipeline::{Flow, Request, Stage, StageRoot};
use palisade_host::{self as host, HostCounter, HostVerify};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

/// RSA PKCS#1 v1.5 and ECDSA checks by Envoy (BoringSSL) through its `verify_signature` foreign
/// function; the core falls back to pure Rust when the host cannot do it (counted).
struct EnvoyCrypto<'a>(&'a Metrics);

impl SignatureBackend for EnvoyCrypto<'_> {
    fn verify(&self, check: &HostCheck<'_>) -> HostVerdict {
        match host::verify_signature(
            check.hash.name(),
            check.public_key_der,
            check.signature,
            check.message,
        ) {
            HostVerify::Valid => {
                self.0.host_signature_checks.inc();
                HostVerdict::Valid
            }
            HostVerify::Invalid => {
                self.0.host_signature_checks.inc();
                HostVerdict::Invalid
            }
            HostVerify::Unavailable => {
                self.0.host_signature_unavailable.inc();
                HostVerdict::Unavailable
            }
        }
    }
}

/// The URI SANs of the downstream client certificate, or `None` without one. Envoy reports the
/// first URI SAN only (an X.509-SVID has exactly one).
fn peer_uri_sans() -> Option<Vec<String>> {
    // A bool attribute arrives as one byte.
    let presented = proxy_wasm::hostcalls::get_property(vec!["connection", "mtls"])
        .ok()
        .flatten()
        .is_some_and(|b| b.first().is_some_and(|&v| v != 0));
    if !presented {
        return None;
    }
    Some(
        host::property(&["connection", "uri_san_peer_certificate"])
            .filter(|s| !s.is_empty())
            .into_iter()
            .collect(),
    )
}

struct Metrics {
    allowed: HostCounter,
    denied: HashMap<&'static str, HostCounter>,
    cache_hits: HostCounter,
    cache_misses: HostCounter,
    jwks_fetch_success: HostCounter,
    jwks_fetch_failure: HostCounter,
    jwks_unknown_kid_refetch: HostCounter,
    host_signature_checks: HostCounter,
    host_signature_unavailable: HostCounter,
}

impl Metrics {
    fn define() -> Self {
        let c = |what: &str| HostCounter::define(FILTER_NAME, what);
        Metrics {
            allowed: c("allowed"),
            denied: palisade::token::DenyReason::METRIC_LABELS
                .iter()
                .map(|label| (*label, c(&format!("denied_{label}"))))
                .collect(),
            cache_hits: c("cache_hits"),
            cache_misses: c("cache_misses"),
            jwks_fetch_success: c("jwks_fetch_success"),
            jwks_fetch_failure: c("jwks_fetch_failure"),
            jwks_unknown_kid_refetch: c("jwks_unknown_kid_refetch"),
            host_signature_checks: c("host_signature_checks"),
            host_signature_unavailable: c("host_signature_unavailable"),
        }
    }

    fn outcome(&self, outcome: &Outcome) {
        match outcome.denial() {
            None => self.allowed.inc(),
            Some(failure) => {
                if let Some(c) = self.denied.get(failure.reason.metric()) {
                    c.inc();
                }
            }
        }
    }
}

/// A provider's remote-key state in this VM.
struct Remote {
    schedule: FetchSchedule,
    /// The version of the published document loaded into this VM's key store.
    loaded: Option<u32>,
    /// Where the JWKS is: configured, or found through discovery.
    jwks: Option<Endpoint>,
}

/// What a pending HTTP call fetches.
#[derive(Clone, Copy)]
enum Fetch {
    Discovery(usize),
    Jwks(usize),
}

/// Everything one VM shares between its root and HTTP contexts.
struct State {
    config: TokenConfig,
    /// The headers verified claims go to: removed from every request first.
    claim_headers: Vec<String>,
    keys: RefCell<KeyStore>,
    cache: RefCell<TokenCache>,
    remote: RefCell<Vec<Option<Remote>>>,
    metrics: Metrics,
}

impl State {
    fn new(config: TokenConfig, metrics: Metrics) -> Self {
        let mut keys = KeyStore::new(&config);
        for (provider, problem) in keys.load_hmac_secrets(&config, |var| {
            std::env::var(var).ok().map(String::into_bytes)
        }) {
            let name = &config.providers()[provider].name;
            match problem {
                None => warn!("palisade {FILTER_NAME}: provider '{name}': its HMAC secret variable is not set in the VM environment"),
                Some(e) => warn!("palisade {FILTER_NAME}: provider '{name}': unusable HMAC secret: {e}"),
            }
        }
        let now = host::now_nanos() / 1_000_000;
        let remote = config
            .providers()
            .iter()
            .map(|p| {
                p.remote.as_ref().map(|r| Remote {
                    schedule: FetchSchedule::new(p.refresh, now),
                    loaded: None,
                    jwks: match r {
                        RemoteKeys::Jwks(e) => Some(e.clone()),
                        RemoteKeys::Discovery(_) => None,
                    },
                })
            })
            .collect();
        State {
            claim_headers: config
                .claim_header_names()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            cache: RefCell::new(TokenCache::from_config(&config)),
            keys: RefCell::new(keys),
            remote: RefCell::new(remote),
            config,
            metrics,
        }
    }

    fn has_remote(&self) -> bool {
        self.remote.borrow().iter().any(Option::is_some)
    }

    /// Loads a document another worker (or an earlier fetch) published, if newer than ours.
    fn sync(&self, provider: usize) -> bool {
        let name = &self.config.providers()[provider].name;
        let mut remote = self.remote.borrow_mut();
        let Some(Some(r)) = remote.get_mut(provider) else {
            return false;
        };
        let Some(published) = keys::newer(name, r.loaded) else {
            return false;
        };
        r.loaded = Some(published.cas);
        r.schedule.succeeded(published.fetched_at_ms);
        drop(remote);
        self.install(provider, &published.document).is_some()
    }

    /// Parses a JWKS document and installs its keys in this VM; the keys it left out, or `None`
    /// when nothing was installed.
    fn install(&self, provider: usize, document: &[u8]) -> Option<Vec<SkippedKey>> {
        let p = &self.config.providers()[provider];
        match p.parse_fetched_jwks(document) {
            Ok(parsed) => match self.keys.borrow_mut().set_fetched(provider, parsed.keys) {
                Ok(()) => Some(parsed.skipped),
                Err(e) => {
                    warn!(
                        "palisade {FILTER_NAME}: provider '{}': keys not installed: {e}",
                        p.name
                    );
                    None
                }
            },
            Err(e) => {
                warn!(
                    "palisade {FILTER_NAME}: provider '{}': bad JWKS document: {e}",
                    p.name
                );
                None
            }
        }
    }

    /// Starts the next fetch for a provider: discovery first when the JWKS location is unknown.
    fn dispatch(&self, provider: usize) -> Option<(u32, Fetch)> {
        let p = &self.config.providers()[provider];
        let remote = self.remote.borrow();
        let r = remote.get(provider)?.as_ref()?;
        let (endpoint, fetch) = match (&r.jwks, p.remote.as_ref()?) {
            (Some(jwks), _) => (jwks.clone(), Fetch::Jwks(provider)),
            (None, RemoteKeys::Discovery(d)) => (d.clone(), Fetch::Discovery(provider)),
            (None, RemoteKeys::Jwks(j)) => (j.clone(), Fetch::Jwks(provider)),
        };
        let timeout = Duration::from_millis(p.refresh.timeout_ms);
        let token = host::http_call(
            &endpoint.cluster,
            vec![
                (":method", "GET"),
                (":path", &endpoint.path),
                (":authority", &endpoint.authority),
                ("accept", "application/json"),
            ],
            None,
            timeout,
        )?;
        Some((token, fetch))
    }

    /// Handles a fetch's answer. Returns the next fetch to start (JWKS after discovery).
    fn on_fetched(&self, fetch: Fetch, body_size: usize) -> Option<(u32, Fetch)> {
        let now = host::now_nanos() / 1_000_000;
        let status = host::http_call_response_headers()
            .get(":status")
            .and_then(|s| s.parse::<u32>().ok())
            .unwrap_or(0);
        let provider = match fetch {
            Fetch::Discovery(p) | Fetch::Jwks(p) => p,
        };
        let p = &self.config.providers()[provider];
        let max = p.refresh.max_document_bytes;
        let body = if status == 200 && body_size <= max {
            host::http_call_response_body(body_size, max)
        } else {
            None
        };
        let ok = match (fetch, body) {
            (_, None) => {
                warn!(
                    "palisade {FILTER_NAME}: provider '{}': key fetch failed (status {status}, {body_size} bytes)",
                    p.name
                );
                false
            }
            (Fetch::Discovery(_), Some(body)) => {
                match parse_discovery(&body, p.identity.issuer.as_deref().unwrap_or(""), max) {
                    Ok(found) => {
                        let cluster = match &p.remote {
                            Some(RemoteKeys::Discovery(d)) => d.cluster.clone(),
                            _ => String::new(),
                        };
                        if let Some(Some(r)) = self.remote.borrow_mut().get_mut(provider) {
                            r.jwks = Some(Endpoint {
                                cluster,
                                path: found.path,
                                authority: found.authority,
                            });
                        }
                        return self.dispatch(provider);
                    }
                    Err(e) => {
                        warn!(
                            "palisade {FILTER_NAME}: provider '{}': discovery failed: {e}",
                            p.name
                        );
                        false
                    }
                }
            }
            (Fetch::Jwks(_), Some(body)) => {
                // Skipped keys are logged here, by the VM that fetched the document (once per
                // fetch), not by every VM that loads it from shared data.
                let installed = self.install(provider, &body);
                for skipped in installed.iter().flatten() {
                    info!(
                        "palisade {FILTER_NAME}: provider '{}': JWKS key skipped: {skipped}",
                        p.name
                    );
                }
                if installed.is_some() {
                    let cas = keys::publish(&p.name, now, &body);
                    if let Some(Some(r)) = self.remote.borrow_mut().get_mut(provider) {
                        r.loaded = cas;
                    }
                }
                installed.is_some()
            }
        };
        keys::release_lease(&p.name);
        let mut remote = self.remote.borrow_mut();
        if let Some(Some(r)) = remote.get_mut(provider) {
            if ok {
                r.schedule.succeeded(now);
                self.metrics.jwks_fetch_success.inc();
            } else {
                r.schedule.failed(now);
                // Rediscover next time: the JWKS location may have moved.
                if matches!(p.remote, Some(RemoteKeys::Discovery(_))) {
                    r.jwks = None;
                }
                self.metrics.jwks_fetch_failure.inc();
            }
        }
        None
    }

    /// Runs the refresh schedule of every remote provider (root context tick).
    fn refresh(&self) -> Vec<(u32, Fetch)> {
        let now = host::now_nanos() / 1_000_000;
        let mut started = Vec::new();
        for provider in 0..self.config.providers().len() {
            self.sync(provider);
            let due =
                matches!(self.remote.borrow().get(provider), Some(Some(r)) if r.schedule.due(now));
            if !due {
                continue;
            }
            let p = &self.config.providers()[provider];
            if !keys::take_lease(&p.name, now, p.refresh.timeout_ms.saturating_add(1000)) {
                continue;
            }
            if let Some(call) = self.dispatch(provider) {
                if let Some(Some(r)) = self.remote.borrow_mut().get_mut(provider) {
                    r.schedule.started();
                }
                started.push(call);
            } else {
                keys::release_lease(&p.name);
                if let Some(Some(r)) = self.remote.borrow_mut().get_mut(provider) {
                    r.schedule.failed(now);
                }
                self.metrics.jwks_fetch_failure.inc();
            }
        }
        started
    }
}

/// The per-VM half: the compiled config, keys, cache, and the key fetches it started.
pub struct Root {
    state: Rc<State>,
    pending: HashMap<u32, Fetch>,
}

impl Root {
    pub fn new(config: TokenConfig) -> Self {
        Root {
            state: Rc::new(State::new(config, Metrics::define())),
            pending: HashMap::new(),
        }
    }
}

impl StageRoot for Root {
    fn create(&self) -> Box<dyn Stage> {
        Box::new(Check {
            state: Rc::clone(&self.state),
            rule: None,
            refetched: false,
            pending: None,
        })
    }

    fn tick_period(&self) -> Option<Duration> {
        self.state
            .has_remote()
            .then_some(Duration::from_millis(500))
    }

    fn on_tick(&mut self) {
        for (token, fetch) in self.state.refresh() {
            self.pending.insert(token, fetch);
        }
    }

    fn on_http_call_response(&mut self, token: u32, body_size: usize) -> bool {
        let Some(fetch) = self.pending.remove(&token) else {
            return false;
        };
        if let Some((next, fetch)) = self.state.on_fetched(fetch, body_size) {
            self.pending.insert(next, fetch);
        }
        true
    }
}

struct Check {
    state: Rc<State>,
    rule: Option<usize>,
    /// This request already waited for one unknown-`kid` refetch.
    refetched: bool,
    pending: Option<(u32, Fetch)>,
}

impl Check {
    /// Verifies the request and acts on the outcome.
    fn decide(&mut self, req: &mut Request) -> Flow {
        let state = Rc::clone(&self.state);
        let config = &state.config;
        let requirement = config.rules().policy_at(self.rule);

        // Keys another worker fetched, for a provider this VM has none for yet.
        for &p in &requirement.providers {
            if !state.keys.borrow().has_jwt_keys(p) {
                state.sync(p);
            }
        }

        let now = req.now_nanos() / 1_000_000_000;
        let method = req.get(":method").unwrap_or("");
        let path = req.get(":path").unwrap_or("/");
        let request = TokenRequest {
            method,
            path,
            headers: req.headers(),
        };
        let uri_sans = if requirement.peers.is_some() {
            peer_uri_sans()
        } else {
            None
        };
        let peer = match &uri_sans {
            Some(uri_sans) => Peer::Certificate { uri_sans },
            None => Peer::NoCertificate,
        };
        let outcome = {
            let keys = state.keys.borrow();
            let mut cache = state.cache.borrow_mut();
            let (hits, misses) = (cache.hits(), cache.misses());
            let outcome = Verifier::new(config, &keys)
                .with_backend(&EnvoyCrypto(&state.metrics))
                .check_with_peer(requirement, &request, &peer, now, Some(&mut cache));
            state
                .metrics
                .cache_hits
                .add(cache.hits().saturating_sub(hits));
            state
                .metrics
                .cache_misses
                .add(cache.misses().saturating_sub(misses));
            outcome
        };

        if let Some(provider) = outcome.unknown_kid_provider() {
            if !self.refetched {
                self.refetched = true;
                if state.sync(provider) {
                    return self.decide(req);
                }
                let allowed = {
                    let mut remote = state.remote.borrow_mut();
                    match remote.get_mut(provider) {
                        Some(Some(r)) => r.schedule.unknown_kid(host::now_nanos() / 1_000_000),
                        _ => false,
                    }
                };
                if allowed {
                    if let Some(call) = state.dispatch(provider) {
                        state.metrics.jwks_unknown_kid_refetch.inc();
                        self.pending = Some(call);
                        return Flow::Wait;
                    }
                }
            }
        }

        state.metrics.outcome(&outcome);
        match outcome.response(config) {
            Some(reply) => {
                // At debug, as Envoy's jwt_authn: a flood of bad tokens must not write a log
                // line per request (the denial counters show it).
                if let Some(failure) = outcome.denial() {
                    let rule = config.rules().rule_name(self.rule).unwrap_or("default");
                    debug!(
                        "palisade {FILTER_NAME}: denied {} {}: {} (rule {rule})",
                        method,
                        palisade::matcher::path_without_query(path),
                        failure.reason.metric()
                    );
                }
                req.send_error(&reply, &[]);
                Flow::Answered
            }
            None => {
                let admitted = outcome.locations_to_strip(config);
                let claims = outcome.upstream_headers(config);
                pass(req, admitted, claims);
                Flow::Continue
            }
        }
    }
}

/// An admitted request: remove the token unless forwarded, add the verified claims.
fn pass(
    req: &mut Request,
    strip: impl IntoIterator<Item = TokenLocation>,
    claims: impl IntoIterator<Item = (String, String)>,
) {
    for location in strip {
        match location {
            TokenLocation::Header(name) => req.remove(&name),
            TokenLocation::Query(name) => {
                if let Some(path) = req.get(":path").map(|p| strip_query_param(p, &name)) {
                    req.set(":path", &path);
                }
            }
            TokenLocation::Cookie(name) => {
                match req.get("cookie").map(|c| strip_cookie(c, &name)) {
                    Some(Some(rest)) => req.set("cookie", &rest),
                    Some(None) => req.remove("cookie"),
                    None => {}
                }
            }
        }
    }
    for (name, value) in claims {
        req.set(&name, &value);
    }
}

impl Stage for Check {
    fn on_request_headers(&mut self, req: &mut Request, _end_of_stream: bool) -> Flow {
        let state = Rc::clone(&self.state);
        let config = &state.config;
        req.read(true, config.rules().needs_route_name());
        // Claim headers only ever come from this filter, after verification.
        for name in &state.claim_headers {
            req.remove(name);
        }
        self.rule = config.rules().select_index(&req.request());
        self.decide(req)
    }

    fn on_http_call_response(
        &mut self,
        req: &mut Request,
        token: u32,
        body_size: usize,
    ) -> Option<Flow> {
        let (expected, fetch) = self.pending?;
        if token != expected {
            return None;
        }
        self.pending = None;
        if let Some(next) = self.state.on_fetched(fetch, body_size) {
            // Discovery answered; the JWKS fetch follows before the request goes on.
            self.pending = Some(next);
            return Some(Flow::Wait);
        }
        // Verify again with whatever keys we now have.
        Some(self.decide(req))
    }
}
