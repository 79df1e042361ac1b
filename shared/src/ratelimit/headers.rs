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
use crate::decimal;
use crate::response::ErrorResponse;

/// The request header that marks a request a shadow limit would have refused; its value lists
/// those limits' names.
pub const SHADOW_HEADER: &str = "x-palisade-ratelimit-shadow";

/// The error code in the JSON body of a refusal.
pub const ERROR_CODE: &str = "rate_limited";

/// Appends `name` as a structured-field string: quoted, printable ASCII only, `"` and `\\`
/// escaped.
fn push_sf_string(out: &mut String, name: &str) {
    out.push('"');
    // Limit names are usually plain: written as they are.
    if name
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        out.push_str(name);
        out.push('"');
        return;
    }
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
}

fn enforced(verdict: &Verdict) -> impl Iterator<Item = &LimitStatus> {
    verdict.statuses.iter().filter(|s| !s.shadow)
}

/// One item per enforced limit, `"name"` followed by what `params` appends, comma-separated;
/// `None` without enforced limits.
fn item_list(verdict: &Verdict, params: impl Fn(&mut String, &LimitStatus)) -> Option<String> {
    let mut out = String::with_capacity(48);
    for status in enforced(verdict) {
        if !out.is_empty() {
            out.push_str(", ");
        }
        push_sf_string(&mut out, &status.name);
        params(&mut out, status);
    }
    (!out.is_empty()).then_some(out)
}

/// The `RateLimit-Policy` value, or `None` without enforced limits.
pub fn policy_value(verdict: &Verdict) -> Option<String> {
    item_list(verdict, |out, s| {
        out.push_str(";q=");
        decimal::push(out, u64::from(s.requests));
        out.push_str(";w=");
        decimal::push(out, s.period.secs());
    })
}

/// The `RateLimit` value, or `None` without enforced limits.
pub fn ratelimit_value(verdict: &Verdict) -> Option<String> {
    item_list(verdict, |out, s| {
        out.push_str(";r=");
        decimal::push(out, u64::from(s.remaining));
        out.push_str(";t=");
        decimal::push(out, ceil_secs(s.reset_ns));
    })
}

/// `Retry-After` in seconds for a refused request (at least 1), `None` if it was admitted or
/// no wait is known.
pub fn retry_after_secs(verdict: &Verdict) -> Option<u64> {
    verdict.retry_after_ns().map(|ns| ceil_secs(ns).max(1))
}

/// Appends the quota headers (`RateLimit-*`, `X-RateLimit-*`) the options ask for.
fn push_quota_headers(
    out: &mut Vec<(&'static str, String)>,
    verdict: &Verdict,
    options: &HeaderOptions,
) {
    if options.ietf {
        if let (Some(policy), Some(state)) = (policy_value(verdict), ratelimit_value(verdict)) {
            out.push(("ratelimit-policy", policy));
            out.push(("ratelimit", state));
        }
    }
    if options.x_ratelimit {
        if let Some(t) = verdict.tightest() {
            out.push(("x-ratelimit-limit", decimal::string(t.requests.into())));
            out.push(("x-ratelimit-remaining", decimal::string(t.remaining.into())));
            out.push(("x-ratelimit-reset", decimal::string(ceil_secs(t.reset_ns))));
        }
    }
}

/// Headers for the response to an admitted request: the quota headers if `on_allowed`.
pub fn allowed_headers(verdict: &Verdict, options: &HeaderOptions) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if options.on_allowed && verdict.admitted {
        push_quota_headers(&mut out, verdict, options);
    }
    out
}

/// The response to a refused request: `status` (429 unless configured), the JSON error body,
/// `Retry-After` and the quota headers the options ask for.
pub fn rejection(verdict: &Verdict, options: &HeaderOptions, status: u32) -> ErrorResponse {
    let retry = retry_after_secs(verdict);
    let mut message = String::with_capacity(48);
    message.push_str("rate limit exceeded");
    if let Some(secs) = retry {
        message.push_str(", retry in ");
        decimal::push(&mut message, secs);
        message.push_str(" s");
    }
    let mut response = ErrorResponse::new(status, ERROR_CODE, message);
    response.headers.reserve(5);
    if options.retry_after {
        if let Some(secs) = retry {
            response = response.with_header("retry-after", decimal::string(secs));
        }
    }
    push_quota_headers(&mut response.headers, verdict, options);
    response
}

/// The last rejection written, reused while the next refusal would read the same: a flood from
/// one client is refused with the same 429 until one of its figures changes (its seconds, about
/// once a second), so most refusals skip writing it. Exact: it is keyed by everything
/// [`rejection`] writes from (status, options, `Retry-After`, and each enforced limit's name,
/// quota, window, requests left and seconds to reset, and which one is the tightest).
#[derive(Debug, Default)]
pub struct LastRejection {
    head: Option<Head>,
    shown: Vec<Shown>,
    response: Option<ErrorResponse>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    status: u32,
    options: HeaderOptions,
    retry: Option<u64>,
    tightest: Option<usize>,
}

/// What a rejection shows of one enforced limit.
#[derive(Debug, PartialEq, Eq)]
struct Shown {
    name: std::sync::Arc<str>,
    requests: u32,
    period: u64,
    remaining: u32,
    reset_secs: u64,
}

impl Shown {
    fn of(s: &LimitStatus) -> Self {
        Shown {
            name: s.name.clone(),
            requests: s.requests,
            period: s.period.secs(),
            remaining: s.remaining,
            reset_secs: ceil_secs(s.reset_ns),
        }
    }

    fn shows(&self, s: &LimitStatus) -> bool {
        self.requests == s.requests
            && self.remaining == s.remaining
            && self.period == s.period.secs()
            && self.reset_secs == ceil_secs(s.reset_ns)
            && self.name == s.name
    }
}

impl LastRejection {
    pub fn new() -> Self {
        Self::default()
    }

    /// [`rejection`] for this refusal: the one written last if it reads the same.
    pub fn rejection(
        &mut self,
        verdict: &Verdict,
        options: &HeaderOptions,
        status: u32,
    ) -> &ErrorResponse {
        let tightest = if options.x_ratelimit {
            verdict
                .tightest()
                .and_then(|t| verdict.statuses.iter().position(|s| std::ptr::eq(s, t)))
        } else {
            None
        };
        let head = Head {
            status,
            options: *options,
            retry: retry_after_secs(verdict),
            tightest,
        };
        let same = self.head == Some(head)
            && enforced(verdict).count() == self.shown.len()
            && enforced(verdict)
                .zip(&self.shown)
                .all(|(status, shown)| shown.shows(status));
        if !same {
            self.head = Some(head);
            self.shown.clear();
            self.shown.extend(enforced(verdict).map(Shown::of));
            self.response = None;
        }
        self.response
            .get_or_insert_with(|| rejection(verdict, options, status))
    }
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
