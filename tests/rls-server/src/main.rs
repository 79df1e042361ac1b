//! A rate-limit service (RLS) for the distributed rate-limit end-to-end test.
//!
//! It serves Envoy's `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit` (the stubs of
//! `envoy-types`) on top of the `limitador` crate's Redis storage, the way Limitador's own server
//! does: the request's domain is the limitador namespace, and each descriptor's entries are bound
//! as `descriptors[0]` for the limits' CEL conditions and variables.
//!
//! ```text
//! palisade-rls-server --listen 127.0.0.1:0 --redis redis://127.0.0.1:6379 --limits limits.json
//! ```
//! prints `listening on 127.0.0.1:<port>` once it accepts connections. `limits.json`:
//! ```json
//! [{"namespace": "palisade", "name": "global", "max_value": 20, "seconds": 60,
//!   "conditions": ["descriptors[0].palisade_limit == 'global'"],
//!   "variables": ["descriptors[0].generic_key"]}]
//! ```
//!
//! Every descriptor is checked and counted on its own (the RLS contract: each descriptor is a
//! limit) and gets its own status with the counter's limit, remaining quota and time to reset.
//! Limitador's Redis storage reads the counters, then increments them, in two round trips: two
//! concurrent calls can both see the last unit of quota. This server therefore runs one check at
//! a time (a mutex), which makes it exact; several replicas of it would not be.

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    rate_limit::Unit, Code, DescriptorStatus, RateLimit,
};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, RateLimitServiceServer,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::Duration as PbDuration;
use limitador::limit::{Context, Expression, Limit, Predicate};
use limitador::storage::redis::AsyncRedisStorage;
use limitador::AsyncRateLimiter;
use serde::Deserialize;
use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use tokio::sync::Mutex;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

/// A limit as Limitador's limits file writes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitSpec {
    namespace: String,
    #[serde(default)]
    name: Option<String>,
    max_value: u64,
    seconds: u64,
    #[serde(default)]
    conditions: Vec<String>,
    #[serde(default)]
    variables: Vec<String>,
}

struct Args {
    listen: SocketAddr,
    redis: String,
    limits: String,
}

fn parse_args() -> Result<Args, String> {
    let mut listen = None;
    let mut redis = None;
    let mut limits = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => {
                listen = Some(
                    value
                        .parse::<SocketAddr>()
                        .map_err(|e| format!("--listen {value}: {e}"))?,
                )
            }
            "--redis" => redis = Some(value),
            "--limits" => limits = Some(value),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args {
        listen: listen.ok_or("--listen is required")?,
        redis: redis.ok_or("--redis is required")?,
        limits: limits.ok_or("--limits is required")?,
    })
}

fn compile_limit(spec: LimitSpec) -> Result<Limit, String> {
    let conditions = spec
        .conditions
        .iter()
        .map(|c| Predicate::parse(c).map_err(|e| format!("condition '{c}': {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let variables = spec
        .variables
        .iter()
        .map(|v| Expression::parse(v).map_err(|e| format!("variable '{v}': {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let mut limit = Limit::new(
        spec.namespace.as_str(),
        spec.max_value,
        spec.seconds,
        conditions,
        variables,
    );
    if let Some(name) = spec.name {
        limit.set_name(name);
    }
    Ok(limit)
}

fn unit(seconds: u64) -> Unit {
    match seconds {
        1 => Unit::Second,
        60 => Unit::Minute,
        3600 => Unit::Hour,
        86_400 => Unit::Day,
        _ => Unit::Unknown,
    }
}

struct Rls {
    limiter: Mutex<AsyncRateLimiter>,
}

impl Rls {
    async fn check(&self, req: &RateLimitRequest) -> Result<RateLimitResponse, Status> {
        let namespace = req.domain.as_str().into();
        let delta = u64::from(req.hits_addend.max(1));
        let limiter = self.limiter.lock().await;
        let mut statuses = Vec::with_capacity(req.descriptors.len());
        for descriptor in &req.descriptors {
            let entries: HashMap<String, String> = descriptor
                .entries
                .iter()
                .map(|e| (e.key.clone(), e.value.clone()))
                .collect();
            let mut ctx = Context::default();
            ctx.list_binding("descriptors".to_owned(), vec![entries]);
            let result = limiter
                .check_rate_limited_and_update(&namespace, &ctx, delta)
                .await
                .map_err(|e| Status::unavailable(format!("limitador: {e}")))?;
            // The most restrictive counter describes the descriptor.
            let tightest = result
                .counters
                .iter()
                .min_by_key(|c| c.remaining().unwrap_or(c.max_value()));
            statuses.push(DescriptorStatus {
                code: if result.limited {
                    Code::OverLimit
                } else {
                    Code::Ok
                } as i32,
                current_limit: tightest.map(|c| RateLimit {
                    name: c.limit().name().unwrap_or_default().to_owned(),
                    requests_per_unit: u32::try_from(c.max_value()).unwrap_or(u32::MAX),
                    unit: unit(c.window().as_secs()) as i32,
                }),
                limit_remaining: tightest
                    .and_then(|c| c.remaining())
                    .map_or(0, |r| u32::try_from(r).unwrap_or(u32::MAX)),
                duration_until_reset: tightest.and_then(|c| c.expires_in()).map(|d| PbDuration {
                    seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                    nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
                }),
                ..Default::default()
            });
        }
        let over = statuses.iter().any(|s| s.code == Code::OverLimit as i32);
        Ok(RateLimitResponse {
            overall_code: if over { Code::OverLimit } else { Code::Ok } as i32,
            statuses,
            ..Default::default()
        })
    }
}

#[tonic::async_trait]
impl RateLimitService for Rls {
    async fn should_rate_limit(
        &self,
        request: Request<RateLimitRequest>,
    ) -> Result<Response<RateLimitResponse>, Status> {
        let req = request.into_inner();
        let resp = self.check(&req).await;
        match &resp {
            Ok(r) => eprintln!(
                "rls: domain={} descriptors={} overall={}",
                req.domain,
                req.descriptors.len(),
                r.overall_code
            ),
            Err(e) => eprintln!("rls: domain={} error: {e}", req.domain),
        }
        resp.map(Response::new)
    }
}

async fn run() -> Result<(), String> {
    let args = parse_args()?;
    let text = std::fs::read_to_string(&args.limits)
        .map_err(|e| format!("cannot read {}: {e}", args.limits))?;
    let specs: Vec<LimitSpec> =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", args.limits))?;
    let storage = AsyncRedisStorage::new(&args.redis)
        .await
        .map_err(|e| format!("redis {}: {e}", args.redis))?;
    let limiter = AsyncRateLimiter::new_with_storage(Box::new(storage));
    for spec in specs {
        limiter.add_limit(compile_limit(spec)?);
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    println!("listening on {local}");
    let _ = std::io::stdout().flush();
    let service = RateLimitServiceServer::new(Rls {
        limiter: Mutex::new(limiter),
    });
    tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming(TcpIncoming::from(listener))
        .await
        .map_err(|e| format!("server: {e}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("palisade-rls-server: {e}");
            ExitCode::FAILURE
        }
    }
}
