//! The rate-limit filter's configuration, and the per-request plan it yields.
//!
//! ```json
//! { "client_ip": { "trusted_hops": 1 },
//!   "limits": [
//!     { "name": "per-client", "requests": 10, "per": "second", "burst": 20,
//!       "key": { "client_ip": { "ipv4_prefix": 32, "ipv6_prefix": 64 } } },
//!     { "name": "per-client-daily", "requests": 10000, "per": "day" } ],
//!   "headers": { "ietf": true, "x_ratelimit": false, "on_allowed": false },
//!   "rules": [
//!     { "name": "login", "match": { "path": { "exact": "/login" } },
//!       "limits": [ { "name": "login", "requests": 5, "per": "minute" } ],
//!       "auth_failure": { "max_failures": 5, "window": 60, "block_for": 900 } },
//!     { "name": "health", "match": { "path": { "prefix": "/healthz" } }, "exempt": true } ] }
//! ```
//!
//! The top-level document is the default policy; rules are merged over it (see
//! [`crate::rules`]). Unlike other filters, **all matching limits apply**: a request counts
//! against the top-level limits and against the limits of every rule that matches it (a limit
//! reached through several rules, such as the top-level limits a rule inherits, counts once).
//! Limit names are unique: the same name with different settings is a config error. The *first*
//! matching rule (or the top level) decides the rest: `status`, `headers`, `shadow` (the route is
//! in shadow mode: every limit is counted and reported, none enforced) and `exempt` (no limit
//! and no auth-failure block applies, e.g. health checks).
//!
//! `client_ip`, `store` and `distributed` are filter-wide and may only be set at the top level.

use super::auth_failure::{self, AuthThrottle, Recorded};
use super::gcra::{Period, Rate, RateError, NANOS_PER_SEC};
use super::headers;
use super::key::{Key, KeySpec, KeyValue, MissingKey, Reads, RequestFacts};
use super::lease::Leases;
use super::limiter::{self, CheckItem, Limit, Verdict};
use super::state::{Table, WhenFull};
use super::store::{ensure_keys, CasStore, StoreError};
use crate::client_ip::ClientIpConfig;
use crate::config::{from_value, parse_json, ConfigError};
use crate::matcher::{NoHeaders, Request};
use crate::response::ErrorResponse;
use crate::rules::RuleSet;
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;
use std::cell::RefCell;

/// Keys that are filter-wide settings.
pub const TOP_LEVEL_ONLY: &[&str] = &["client_ip", "store", "distributed"];
/// Keys tracked per limit unless `max_keys` says otherwise.
pub const DEFAULT_MAX_KEYS: u32 = 10_000;
/// The largest `max_keys` accepted (about 250 bytes of shared data per 8 keys).
pub const MAX_MAX_KEYS: u32 = 1_000_000;
/// The shared-data namespace unless `store.key_prefix` says otherwise.
pub const DEFAULT_KEY_PREFIX: &str = "palisade.ratelimit";
/// The longest `window` / `block_for` accepted, in seconds (366 days).
pub const MAX_DURATION_SECS: u64 = 366 * 86_400;

/// A limit as written in the config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LimitSpec {
    /// Unique name: `[A-Za-z0-9_.-]`, at most 64 characters.
    pub name: String,
    /// Requests admitted per `per` (at least 1).
    pub requests: u32,
    /// The period: `second`, `minute`, `hour` or `day`.
    pub per: Period,
    /// Requests admitted at once from a quiet key (default: `requests`).
    #[serde(default)]
    pub burst: Option<u32>,
    /// Default: `{"client_ip": {}}`.
    #[serde(default)]
    pub key: Option<KeySpec>,
    /// A request without the key's input: counted in one `shared` bucket (default), or `skip`s
    /// the limit.
    #[serde(default)]
    pub missing: MissingKey,
    /// Count and report this limit, never enforce it.
    #[serde(default)]
    pub shadow: bool,
    /// How many keys (clients) are tracked, 1 to 1000000 (default 10000).
    #[serde(default)]
    pub max_keys: Option<u32>,
    /// Default: `shared`.
    #[serde(default)]
    pub when_full: Option<WhenFull>,
}

/// Auth-failure throttling as written in the config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AuthFailureSpec {
    /// Unique name (default `auth_failure`): `[A-Za-z0-9_.-]`, at most 64 characters.
    #[serde(default = "default_auth_name")]
    pub name: String,
    /// Statuses that count as failures (default `[401, 403]`).
    #[serde(default = "default_auth_statuses")]
    pub statuses: Vec<u16>,
    /// Failures within `window` that block the client.
    pub max_failures: u32,
    /// Seconds.
    pub window: u64,
    /// Seconds.
    pub block_for: u64,
    /// Default: `{"client_ip": {}}`.
    #[serde(default)]
    pub key: Option<KeySpec>,
    /// A request without the key's input: counted in one `shared` bucket (default), or not
    /// watched (`skip`).
    #[serde(default)]
    pub missing: MissingKey,
    /// How many keys (clients) are tracked, 1 to 1000000 (default 10000).
    #[serde(default)]
    pub max_keys: Option<u32>,
    /// Default: `evict`.
    #[serde(default)]
    pub when_full: Option<WhenFull>,
}

fn default_auth_name() -> String {
    "auth_failure".to_owned()
}

fn default_auth_statuses() -> Vec<u16> {
    vec![401, 403]
}

/// Which quota headers to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct HeaderOptions {
    /// IETF `RateLimit-Policy` and `RateLimit` (default on).
    #[serde(default = "yes")]
    pub ietf: bool,
    /// `X-RateLimit-Limit` / `-Remaining` / `-Reset` (default off).
    #[serde(default)]
    pub x_ratelimit: bool,
    /// Also on admitted responses, not only on 429s (default off).
    #[serde(default)]
    pub on_allowed: bool,
    /// `Retry-After` on 429s (default on).
    #[serde(default = "yes")]
    pub retry_after: bool,
}

fn yes() -> bool {
    true
}

impl Default for HeaderOptions {
    fn default() -> Self {
        HeaderOptions {
            ietf: true,
            x_ratelimit: false,
            on_allowed: false,
            retry_after: true,
        }
    }
}

/// A policy: the top level's, or a rule's merged over it.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicySpec {
    /// Limits counted for the requests this policy covers (a matching rule's apply on top of the
    /// top level's).
    #[serde(default)]
    limits: Vec<LimitSpec>,
    /// Block a client after too many failed authentications (responses with `statuses`).
    #[serde(default)]
    auth_failure: Option<AuthFailureSpec>,
    /// Shadow mode: every limit is counted and reported, none enforced.
    #[serde(default)]
    shadow: bool,
    /// No limit and no auth-failure block applies (e.g. health checks).
    #[serde(default)]
    exempt: bool,
    /// The status of a refused request, 400 to 599 (default 429).
    #[serde(default = "default_status")]
    status: u16,
    /// Which quota headers to send.
    #[serde(default)]
    headers: HeaderOptions,
}

fn default_status() -> u16 {
    429
}

/// What the filter does when the shared-data store fails or stays contended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum OnStoreError {
    /// Let the request through (counted as a store error).
    Allow,
    /// Refuse it as rate limited: a limit is never exceeded because the store misbehaved.
    #[default]
    Deny,
}

/// Where limiter state goes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct StoreSpec {
    /// The shared-data key prefix; use distinct prefixes for filters that must not share state.
    #[serde(default = "default_prefix")]
    pub key_prefix: String,
    /// When the store fails or stays contended: `deny` (default) refuses the request, `allow` lets
    /// it through.
    #[serde(default)]
    pub on_error: OnStoreError,
    /// Let each worker reserve a few requests of a busy limit (at most 1/64 of its burst, 32 at
    /// most, only for bursts of 128 or more) and admit them without a shared-data round trip for
    /// up to 200 ms (a limit may then admit one reservation per worker more than its exact
    /// allowance), and refuse again without the store what it refused less than its wait ago.
    /// Default true; false decides every request against shared data.
    #[serde(default = "yes")]
    pub reserve: bool,
}

fn default_prefix() -> String {
    DEFAULT_KEY_PREFIX.to_owned()
}

impl Default for StoreSpec {
    fn default() -> Self {
        StoreSpec {
            key_prefix: default_prefix(),
            on_error: OnStoreError::default(),
            reserve: true,
        }
    }
}

/// What happens when the RLS backend fails or times out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum FailureMode {
    /// Admit the request.
    Open,
    /// Refuse it.
    Closed,
    /// Decide it with the local limits (default).
    #[default]
    Local,
}

/// A distributed limit through an Envoy RLS backend
/// (`envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct DistributedSpec {
    /// The Envoy cluster of the RLS server.
    pub cluster: String,
    /// The RLS domain.
    pub domain: String,
    /// Call timeout in milliseconds (default 20, as Envoy's ratelimit filter).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u32,
    /// When the RLS backend fails or times out: `open` admits, `closed` refuses, `local` (default)
    /// decides with the local limits.
    #[serde(default)]
    pub failure_mode: FailureMode,
}

fn default_timeout_ms() -> u32 {
    20
}

/// A compiled policy (the top level, or a rule merged over it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    limits: Vec<usize>,
    throttle: Option<usize>,
    pub shadow: bool,
    pub exempt: bool,
    pub status: u32,
    pub headers: HeaderOptions,
}

/// One limit to apply to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Index into [`RateLimitConfig::limits`].
    pub limit: usize,
    pub key: KeyValue,
    pub shadow: bool,
}

/// One auth-failure throttle that watches a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleCheck {
    /// Index into [`RateLimitConfig::throttles`].
    pub throttle: usize,
    pub key: KeyValue,
}

/// Everything that applies to one request; owned, so the filter can keep it until the response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub checks: Vec<Check>,
    pub throttles: Vec<ThrottleCheck>,
    /// The first matching rule (`None`: the top-level policy).
    pub rule: Option<usize>,
}

/// The compiled rate-limit configuration.
#[derive(Debug)]
pub struct RateLimitConfig {
    limits: Vec<Limit>,
    throttles: Vec<AuthThrottle>,
    rules: RuleSet<Policy>,
    pub client_ip: ClientIpConfig,
    pub store: StoreSpec,
    pub distributed: Option<DistributedSpec>,
    needs_route_name: bool,
    /// The plan of every request and its lease keys, when no request can change it (see
    /// [`RateLimitConfig::plan_for`]).
    fixed: Option<(Plan, Vec<Vec<u8>>)>,
}

#[derive(Default)]
struct Registry {
    limits: Vec<(LimitSpec, Limit)>,
    throttles: Vec<(AuthFailureSpec, AuthThrottle)>,
}

fn check_name(path: &str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::field(
            path,
            format!("'{name}' is not a valid name: use 1 to 64 letters, digits, '_', '.' or '-'"),
        ))
    }
}

fn max_keys(path: &str, value: Option<u32>) -> Result<u32, ConfigError> {
    match value {
        None => Ok(DEFAULT_MAX_KEYS),
        Some(n) if (1..=MAX_MAX_KEYS).contains(&n) => Ok(n),
        Some(n) => Err(ConfigError::field(
            path,
            format!("{n} is out of range (1 to {MAX_MAX_KEYS})"),
        )),
    }
}

fn duration_secs(path: &str, value: u64) -> Result<u64, ConfigError> {
    if value == 0 || value > MAX_DURATION_SECS {
        Err(ConfigError::field(
            path,
            format!("{value} is out of range (1 to {MAX_DURATION_SECS} seconds)"),
        ))
    } else {
        Ok(value * NANOS_PER_SEC)
    }
}

fn compile_limit(at: &str, prefix: &str, spec: &LimitSpec) -> Result<Limit, ConfigError> {
    check_name(&format!("{at}.name"), &spec.name)?;
    let rate = Rate::new(spec.requests, spec.per, spec.burst).map_err(|e| match e {
        RateError::Zero if spec.requests == 0 => {
            ConfigError::field(format!("{at}.requests"), "must be at least 1")
        }
        other => ConfigError::field(format!("{at}.burst"), other),
    })?;
    let key_spec = spec.key.clone().unwrap_or_else(KeySpec::client_ip);
    let key = Key::compile(&format!("{at}.key"), &key_spec)?;
    let max_keys = max_keys(&format!("{at}.max_keys"), spec.max_keys)?;
    Ok(Limit {
        name: spec.name.as_str().into(),
        rate,
        key,
        missing: spec.missing,
        shadow: spec.shadow,
        table: Table::new(
            format!("{prefix}/limit/{}", spec.name),
            max_keys,
            1,
            spec.when_full.unwrap_or(WhenFull::Shared),
        ),
    })
}

fn compile_throttle(
    at: &str,
    prefix: &str,
    spec: &AuthFailureSpec,
) -> Result<AuthThrottle, ConfigError> {
    check_name(&format!("{at}.name"), &spec.name)?;
    if spec.statuses.is_empty() {
        return Err(ConfigError::field(
            format!("{at}.statuses"),
            "list at least one status",
        ));
    }
    for (i, s) in spec.statuses.iter().enumerate() {
        if !(100..=599).contains(s) {
            return Err(ConfigError::field(
                format!("{at}.statuses[{i}]"),
                format!("{s} is not an HTTP status"),
            ));
        }
    }
    if spec.max_failures == 0 {
        return Err(ConfigError::field(
            format!("{at}.max_failures"),
            "must be at least 1",
        ));
    }
    let window_ns = duration_secs(&format!("{at}.window"), spec.window)?;
    let block_ns = duration_secs(&format!("{at}.block_for"), spec.block_for)?;
    let key_spec = spec.key.clone().unwrap_or_else(KeySpec::client_ip);
    let key = Key::compile(&format!("{at}.key"), &key_spec)?;
    let max_keys = max_keys(&format!("{at}.max_keys"), spec.max_keys)?;
    Ok(AuthThrottle {
        name: spec.name.clone(),
        statuses: spec.statuses.iter().map(|s| u32::from(*s)).collect(),
        max_failures: spec.max_failures,
        window_ns,
        block_ns,
        key,
        skip_missing: spec.missing == MissingKey::Skip,
        table: Table::new(
            format!("{prefix}/auth/{}", spec.name),
            max_keys,
            auth_failure::WIDTH,
            spec.when_full.unwrap_or(WhenFull::Evict),
        ),
    })
}

const DUPLICATE: &str = "is already defined with different settings (names are unique; a rule inherits the top-level definitions unless it sets its own)";

fn compile_policy(
    value: Value,
    prefix: &str,
    registry: &RefCell<Registry>,
) -> Result<Policy, ConfigError> {
    let spec: PolicySpec = from_value(value)?;
    if !(400..=599).contains(&spec.status) {
        return Err(ConfigError::field(
            "status",
            format!("{} is not an error status (400 to 599)", spec.status),
        ));
    }
    let mut reg = registry.borrow_mut();
    let mut limits = Vec::with_capacity(spec.limits.len());
    for (i, limit) in spec.limits.iter().enumerate() {
        let at = format!("limits[{i}]");
        let index = match reg.limits.iter().position(|(s, _)| s.name == limit.name) {
            Some(existing) => {
                if reg.limits.get(existing).map(|(s, _)| s) != Some(limit) {
                    return Err(ConfigError::field(
                        format!("{at}.name"),
                        format!("limit '{}' {DUPLICATE}", limit.name),
                    ));
                }
                existing
            }
            None => {
                let compiled = compile_limit(&at, prefix, limit)?;
                reg.limits.push((limit.clone(), compiled));
                reg.limits.len() - 1
            }
        };
        if limits.contains(&index) {
            return Err(ConfigError::field(
                format!("{at}.name"),
                format!("limit '{}' is listed twice", limit.name),
            ));
        }
        limits.push(index);
    }
    let throttle = match &spec.auth_failure {
        None => None,
        Some(af) => Some(
            match reg.throttles.iter().position(|(s, _)| s.name == af.name) {
                Some(existing) => {
                    if reg.throttles.get(existing).map(|(s, _)| s) != Some(af) {
                        return Err(ConfigError::field(
                            "auth_failure.name",
                            format!("auth_failure '{}' {DUPLICATE}", af.name),
                        ));
                    }
                    existing
                }
                None => {
                    let compiled = compile_throttle("auth_failure", prefix, af)?;
                    reg.throttles.push((af.clone(), compiled));
                    reg.throttles.len() - 1
                }
            },
        ),
    };
    Ok(Policy {
        limits,
        throttle,
        shadow: spec.shadow,
        exempt: spec.exempt,
        status: u32::from(spec.status),
        headers: spec.headers,
    })
}

fn top_level<T: serde::de::DeserializeOwned + Default>(
    doc: &serde_json::Map<String, Value>,
    key: &str,
) -> Result<T, ConfigError> {
    match doc.get(key) {
        None | Some(Value::Null) => Ok(T::default()),
        Some(v) => from_value(v.clone()).map_err(|e| e.within(key)),
    }
}

/// The filter-wide settings ([`TOP_LEVEL_ONLY`]) for the JSON Schema: the parser reads each of
/// them with [`top_level`] as the type given here (`null` is the same as leaving it out). Not
/// deserialized itself, so that the filter carries no code for it.
#[cfg(feature = "schema")]
#[derive(schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "only its JSON Schema is used")]
pub(crate) struct FilterWideSpec {
    /// How to find the client address that `client_ip` keys use (default: the peer address).
    client_ip: Option<ClientIpConfig>,
    /// Where limiter state goes (Envoy shared data), and what happens when it fails.
    store: Option<StoreSpec>,
    /// A distributed limit through an Envoy rate limit service (RLS), on top of the local limits.
    distributed: Option<DistributedSpec>,
}

impl RateLimitConfig {
    /// Parses and compiles the filter's configuration bytes (JSON).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ConfigError> {
        Self::from_value(parse_json(bytes)?)
    }

    /// Compiles a configuration document.
    pub fn from_value(value: Value) -> Result<Self, ConfigError> {
        let Value::Object(doc) = value else {
            return Err(ConfigError::field("", "expected a JSON object"));
        };
        let client_ip: ClientIpConfig = top_level(&doc, "client_ip")?;
        let store: StoreSpec = top_level(&doc, "store")?;
        check_name("store.key_prefix", &store.key_prefix)?;
        let distributed: Option<DistributedSpec> = top_level(&doc, "distributed")?;
        if let Some(d) = &distributed {
            if d.cluster.is_empty() {
                return Err(ConfigError::field("distributed.cluster", "cannot be empty"));
            }
            if d.domain.is_empty() {
                return Err(ConfigError::field("distributed.domain", "cannot be empty"));
            }
            if !(1..=60_000).contains(&d.timeout_ms) {
                return Err(ConfigError::field(
                    "distributed.timeout_ms",
                    format!("{} is out of range (1 to 60000)", d.timeout_ms),
                ));
            }
        }
        let registry = RefCell::new(Registry::default());
        let prefix = store.key_prefix.clone();
        let rules = RuleSet::from_document(&doc, TOP_LEVEL_ONLY, |v| {
            compile_policy(v, &prefix, &registry)
        })?;
        let registry = registry.into_inner();
        let limits: Vec<Limit> = registry.limits.into_iter().map(|(_, l)| l).collect();
        let throttles: Vec<AuthThrottle> = registry.throttles.into_iter().map(|(_, t)| t).collect();
        let needs_route_name = rules.needs_route_name()
            || limits.iter().any(|l| l.key.needs_route_name())
            || throttles.iter().any(|t| t.key.needs_route_name());
        let mut config = RateLimitConfig {
            limits,
            throttles,
            rules,
            client_ip,
            store,
            distributed,
            needs_route_name,
            fixed: None,
        };
        config.fixed = config.fixed_plan();
        Ok(config)
    }

    /// The plan every request gets when none can change it: no rules, no auth-failure throttle,
    /// and only constant keys (a global limit). Planned once, with its lease keys.
    fn fixed_plan(&self) -> Option<(Plan, Vec<Vec<u8>>)> {
        let policy = self.rules.default_policy();
        let fixed = !self.rules.has_rules()
            && policy.throttle.is_none()
            && (policy.limits.iter())
                .all(|&id| self.limits.get(id).is_some_and(|l| l.key.is_constant()));
        if !fixed {
            return None;
        }
        let plan = self.plan(&RequestFacts {
            request: &Request {
                authority: "",
                path: "/",
                method: "",
                route_name: None,
                headers: &NoHeaders,
            },
            downstream: None,
            client_ip: &self.client_ip,
        });
        let keys = plan.checks.iter().map(super::lease::lease_key).collect();
        Some((plan, keys))
    }

    /// The plan for a request: [`RateLimitConfig::plan`], borrowed from the config when no
    /// request can change it (no allocation, and [`RateLimitConfig::check_reserving`] reuses its
    /// lease keys).
    pub fn plan_for(&self, facts: &RequestFacts<'_>) -> Cow<'_, Plan> {
        match &self.fixed {
            Some((plan, _)) => Cow::Borrowed(plan),
            None => Cow::Owned(self.plan(facts)),
        }
    }

    /// Every limit, in config order.
    pub fn limits(&self) -> &[Limit] {
        &self.limits
    }

    /// Every auth-failure throttle, in config order.
    pub fn throttles(&self) -> &[AuthThrottle] {
        &self.throttles
    }

    /// Whether the filter must look up Envoy's route name for rules or keys.
    pub fn needs_route_name(&self) -> bool {
        self.needs_route_name
    }

    /// The policy that decides the response for a plan (its first matching rule, or the top).
    pub fn policy(&self, plan: &Plan) -> &Policy {
        self.rules.policy_at(plan.rule)
    }

    /// The name of the plan's first matching rule.
    pub fn rule_name(&self, plan: &Plan) -> Option<&str> {
        self.rules.rule_name(plan.rule)
    }

    /// What the filter must read from the host for each request: the request headers only when
    /// route rules or a key need them, the peer address only when a key is the client address.
    pub fn reads(&self) -> Reads {
        let keys = self
            .limits
            .iter()
            .map(|l| &l.key)
            .chain(self.throttles.iter().map(|t| &t.key));
        let rules = Reads {
            headers: !self.rules.rules().is_empty(),
            peer: false,
        };
        keys.fold(rules, |r, key| r | key.reads(&self.client_ip))
    }

    /// Creates every store key the configuration uses, so that every later write is a real
    /// compare-and-swap (see [`super::store`]). Call it from `on_configure`. Returns how many
    /// keys were created.
    pub fn prepare_store<S: CasStore + ?Sized>(&self, store: &S) -> Result<usize, StoreError> {
        let mut created = 0;
        for table in self
            .limits
            .iter()
            .map(|l| &l.table)
            .chain(self.throttles.iter().map(|t| &t.table))
        {
            created += ensure_keys(store, table.store_keys(), &table.empty_value())?;
        }
        Ok(created)
    }

    /// The limits and throttles that apply to a request, with their keys.
    pub fn plan(&self, facts: &RequestFacts<'_>) -> Plan {
        let req: &Request<'_> = facts.request;
        let rule = self.rules.select_index(req);
        let selected = self.rules.policy_at(rule);
        let mut plan = Plan {
            rule,
            ..Plan::default()
        };
        if selected.exempt {
            return plan;
        }
        // The plan's own lists keep out duplicates (a limit named by the default and by a rule
        // counts once) and are put in limit order at the end: no list of ids on the side.
        let policies = std::iter::once(self.rules.default_policy())
            .chain(self.rules.select_all(req).map(|s| s.policy));
        for policy in policies {
            for &id in &policy.limits {
                if plan.checks.iter().any(|c| c.limit == id) {
                    continue;
                }
                let Some(limit) = self.limits.get(id) else {
                    continue;
                };
                let key = limit.key.extract(facts);
                if key == KeyValue::Missing && limit.missing == MissingKey::Skip {
                    continue;
                }
                plan.checks.push(Check {
                    limit: id,
                    key,
                    shadow: limit.shadow || selected.shadow,
                });
            }
            if let Some(id) = policy.throttle {
                if plan.throttles.iter().any(|t| t.throttle == id) {
                    continue;
                }
                let Some(throttle) = self.throttles.get(id) else {
                    continue;
                };
                let key = throttle.key.extract(facts);
                if key == KeyValue::Missing && throttle.skip_missing {
                    continue;
                }
                plan.throttles.push(ThrottleCheck { throttle: id, key });
            }
        }
        plan.checks.sort_unstable_by_key(|c| c.limit);
        plan.throttles.sort_unstable_by_key(|t| t.throttle);
        plan
    }

    /// Decides the plan's limits at `now` (nanoseconds) and counts the request where admitted.
    pub fn check<S: CasStore + ?Sized>(
        &self,
        store: &S,
        plan: &Plan,
        now: u64,
    ) -> Result<Verdict, StoreError> {
        limiter::check(store, &self.items(plan), now)
    }

    /// The plan's checks with their limits, as the limiter takes them.
    fn items<'a>(&'a self, plan: &'a Plan) -> Vec<CheckItem<'a>> {
        plan.checks
            .iter()
            .filter_map(|c| {
                self.limits.get(c.limit).map(|limit| CheckItem {
                    limit,
                    key: &c.key,
                    shadow: c.shadow,
                })
            })
            .collect()
    }

    /// As [`RateLimitConfig::check`], admitting from this worker's reservations when it can
    /// (then without reading the clock: `now` is only called when the store is asked),
    /// refusing again without the store what the store refused less than its wait ago, and
    /// reserving for the next requests, when workers keep them ([`RateLimitConfig::reserves`]:
    /// `store.reserve` on, local limits; [`super::lease`]).
    pub fn check_reserving<S: CasStore + ?Sized>(
        &self,
        store: &S,
        plan: &Plan,
        now: impl FnOnce() -> u64,
        leases: &mut Leases,
    ) -> Result<Verdict, StoreError> {
        if !self.reserves() {
            return self.check(store, plan, now());
        }
        // The config's fixed plan (as `plan_for` lends it) comes with its lease keys; any other
        // plan has them made here.
        let planned;
        let keys: &[Vec<u8>] = match &self.fixed {
            Some((fixed, keys)) if std::ptr::eq(fixed, plan) => keys,
            _ => {
                planned = plan
                    .checks
                    .iter()
                    .map(super::lease::lease_key)
                    .collect::<Vec<_>>();
                &planned
            }
        };
        if let Some(verdict) = leases.admit(&self.limits, &plan.checks, keys) {
            return Ok(verdict);
        }
        let now = now();
        if let Some(verdict) = leases.refuse(keys, now) {
            return Ok(verdict);
        }
        let want = leases.wanted(&self.limits, &plan.checks, keys);
        let verdict = limiter::check_reserving(store, &self.items(plan), now, &want)?;
        let unused = leases.keep(&plan.checks, keys, &verdict);
        self.give_back(store, &unused, now);
        leases.remember_refusal(keys, &verdict, now);
        Ok(verdict)
    }

    /// Whether workers keep reservations and refusals (`store.reserve`, local limits): the filter
    /// then ticks [`Leases::tick`] every [`super::lease::TICK_MS`].
    pub fn reserves(&self) -> bool {
        self.store.reserve && self.distributed.is_none() && !self.limits.is_empty()
    }

    /// Gives reserved requests nobody used back to the store (best effort: one that cannot be
    /// written leaves its limit stricter for a moment). Returns how many were given back.
    pub fn give_back<S: CasStore + ?Sized>(
        &self,
        store: &S,
        unused: &[super::lease::Unused],
        now: u64,
    ) -> u64 {
        let mut given = 0;
        for u in unused {
            let Some(limit) = self.limits.get(u.limit) else {
                continue;
            };
            let Ok(slot) = limit.table.read(store, &u.key, now) else {
                continue;
            };
            if slot.current.is_some() && !slot.overflow {
                if let Ok(true) = limiter::give_back(store, limit, &slot, now, u.requests) {
                    given += u64::from(u.requests);
                }
            }
        }
        given
    }

    /// The verdict to act on when [`RateLimitConfig::check`] failed: per `store.on_error`,
    /// admitted or refused, with no quota figures (a plan of only shadow limits is admitted).
    pub fn verdict_on_store_error(&self, plan: &Plan) -> Verdict {
        let admitted =
            self.store.on_error == OnStoreError::Allow || plan.checks.iter().all(|c| c.shadow);
        Verdict {
            admitted,
            statuses: Vec::new(),
        }
    }

    /// The 429 (or configured status) for a refused request.
    pub fn rejection(&self, plan: &Plan, verdict: &Verdict) -> ErrorResponse {
        let policy = self.policy(plan);
        headers::rejection(verdict, &policy.headers, policy.status)
    }

    /// [`RateLimitConfig::rejection`], reusing the one `last` wrote when it reads the same.
    pub fn rejection_reusing<'r>(
        &self,
        plan: &Plan,
        verdict: &Verdict,
        last: &'r mut headers::LastRejection,
    ) -> &'r ErrorResponse {
        let policy = self.policy(plan);
        last.rejection(verdict, &policy.headers, policy.status)
    }

    /// Headers for an admitted request's response (empty unless `headers.on_allowed`).
    pub fn allowed_headers(&self, plan: &Plan, verdict: &Verdict) -> Vec<(&'static str, String)> {
        headers::allowed_headers(verdict, &self.policy(plan).headers)
    }

    /// How much longer the request's client is blocked for auth failures, if it is (the longest
    /// block among the plan's throttles).
    pub fn auth_blocked_for<S: CasStore + ?Sized>(
        &self,
        store: &S,
        plan: &Plan,
        now: u64,
    ) -> Result<Option<u64>, StoreError> {
        let mut longest = None;
        for check in &plan.throttles {
            if let Some(throttle) = self.throttles.get(check.throttle) {
                if let Some(ns) = throttle.blocked_for(store, &check.key, now)? {
                    longest = Some(longest.map_or(ns, |l: u64| l.max(ns)));
                }
            }
        }
        Ok(longest)
    }

    /// The response for a client blocked for `remaining_ns` more.
    pub fn blocked_response(&self, plan: &Plan, remaining_ns: u64) -> ErrorResponse {
        headers::blocked(remaining_ns, self.policy(plan).status)
    }

    /// Records the response status of a request in every throttle of its plan.
    pub fn record_response<S: CasStore + ?Sized>(
        &self,
        store: &S,
        plan: &Plan,
        status: u32,
        now: u64,
    ) -> Result<Vec<Recorded>, StoreError> {
        let mut out = Vec::with_capacity(plan.throttles.len());
        for check in &plan.throttles {
            if let Some(throttle) = self.throttles.get(check.throttle) {
                out.push(throttle.record(store, &check.key, status, now)?);
            }
        }
        Ok(out)
    }
}
