//! Quota headers and the rejection response.
//!
//! - IETF `RateLimit-Policy` / `RateLimit` (draft-ietf-httpapi-ratelimit-headers-08 and later):
//!   one item per enforced limit, named after the limit:
//!   `RateLimit-Policy: "per-client";q=10;w=1, "daily";q=10000;w=86400` and
//!   `RateLimit: "per-client";r=0;t=2, "daily";r=9950;t=432`. `q`/`w` are the configured
//!   `requests` per `per` in seconds; `r` is how many requests would be admitted right now and
//!   `t` the seconds until that limit's bucket is full again (rounded up).
//! - `X-RateLimit-Limit` / `-Remaining` / `-Reset` (the older draft Envoy and Kong send), for the
//!   tightest limit only, as an option.
//! - `Retry-After` on refusals: whole seconds, rounded up and at least 1, after which the request
//!   would pass every limit that refused it.
//!
//! Shadow limits never appear in headers: clients see only what is enforced. Requests refused by
//! the filter get the shared JSON error body ([`crate::response`]) with code `rate_limited`.

use super::config::HeaderOptions;
use super::gcra::ceil_secs;
use super::limiter::{LimitStatus, Verdict};
use crate::response::ErrorResponse;

/// The request header that marks a request a shadow limit would have refused; its value lists
/// those limits' names.
pub const SHADOW_HEADER: &str = "x-palisade-ratelimit-shadow";

/// The error code in the JSON body of a refusal.
pub const ERROR_CODE: &str = "rate_limited";

fn sf_string(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name
        .chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
    {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn enforced(verdict: &Verdict) -> impl Iterator<Item = &LimitStatus> {
    verdict.statuses.iter().filter(|s| !s.shadow)
}

/// The `RateLimit-Policy` value, or `None` without enforced limits.
pub fn policy_value(verdict: &Verdict) -> Option<String> {
    let items: Vec<String> = enforced(verdict)
        .map(|s| {
            format!(
                "{};q={};w={}",
                sf_string(&s.name),
                s.requests,
                s.period.secs()
            )
        })
        .collect();
    (!items.is_empty()).then(|| items.join(", "))
}

/// The `RateLimit` value, or `None` without enforced limits.
pub fn ratelimit_value(verdict: &Verdict) -> Option<String> {
    let items: Vec<String> = enforced(verdict)
        .map(|s| {
            format!(
                "{};r={};t={}",
                sf_string(&s.name),
                s.remaining,
                ceil_secs(s.reset_ns)
            )
        })
        .collect();
    (!items.is_empty()).then(|| items.join(", "))
}

/// `Retry-After` in seconds for a refused request (at least 1), `None` if it was admitted or
/// no wait is known.
pub fn retry_after_secs(verdict: &Verdict) -> Option<u64> {
    verdict.retry_after_ns().map(|ns| ceil_secs(ns).max(1))
}

/// The quota headers (`RateLimit-*`, `X-RateLimit-*`) the options ask for.
pub fn quota_headers(verdict: &Verdict, options: &HeaderOptions) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if options.ietf {
        if let (Some(policy), Some(state)) = (policy_value(verdict), ratelimit_value(verdict)) {
            out.push(("ratelimit-policy".to_owned(), policy));
            out.push(("ratelimit".to_owned(), state));
        }
    }
    if options.x_ratelimit {
        if let Some(t) = verdict.tightest() {
            out.push(("x-ratelimit-limit".to_owned(), t.requests.to_string()));
            out.push(("x-ratelimit-remaining".to_owned(), t.remaining.to_string()));
            out.push((
                "x-ratelimit-reset".to_owned(),
                ceil_secs(t.reset_ns).to_string(),
            ));
        }
    }
    out
}

/// Headers for the response to an admitted request: the quota headers if `on_allowed`.
pub fn allowed_headers(verdict: &Verdict, options: &HeaderOptions) -> Vec<(String, String)> {
    if options.on_allowed && verdict.admitted {
        quota_headers(verdict, options)
    } else {
        Vec::new()
    }
}

/// The response to a refused request: `status` (429 unless configured), the JSON error body,
/// `Retry-After` and the quota headers the options ask for.
pub fn rejection(verdict: &Verdict, options: &HeaderOptions, status: u32) -> ErrorResponse {
    let retry = retry_after_secs(verdict);
    let message = match retry {
        Some(secs) => format!("rate limit exceeded, retry in {secs} s"),
        None => "rate limit exceeded".to_owned(),
    };
    let mut response = ErrorResponse::new(status, ERROR_CODE, message);
    if options.retry_after {
        if let Some(secs) = retry {
            response = response.with_header("retry-after", secs.to_string());
        }
    }
    for (name, value) in quota_headers(verdict, options) {
        response = response.with_header(&name, value);
    }
    response
}

/// The response to a client blocked for auth failures for `remaining_ns` more.
pub fn blocked(remaining_ns: u64, status: u32) -> ErrorResponse {
    let secs = ceil_secs(remaining_ns).max(1);
    ErrorResponse::new(
        status,
        ERROR_CODE,
        format!("too many failed authentication attempts, retry in {secs} s"),
    )
    .with_header("retry-after", secs.to_string())
}

/// The request header to add when shadow limits would have refused an admitted request.
pub fn shadow_mark(verdict: &Verdict) -> Option<(&'static str, String)> {
    if !verdict.is_shadow_limited() {
        return None;
    }
    let names: Vec<&str> = verdict.shadow_refusals().collect();
    Some((SHADOW_HEADER, names.join(",")))
}
