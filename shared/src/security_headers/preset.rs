//! The header sets behind `preset: strict | api | none`.
//!
//! `strict` is the OWASP Secure Headers Project configuration proposal (list of 2026-07-19, see
//! the project's reference notes), except `Clear-Site-Data`, which OWASP itself advises only on a
//! logout response: Palisade sends it only where a rule sets `clear_site_data`. `api` is for JSON
//! APIs: nothing may be rendered or framed, nothing cached. `none` adds nothing and removes nothing
//! unless configured.

use serde::Deserialize;

/// Which built-in header set to start from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    #[default]
    Strict,
    Api,
    None,
}

/// Whether a header replaces what the upstream sent, or is added only when the upstream sent none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Overwrite,
    AddIfAbsent,
}

/// OWASP's proposed CSP.
pub const STRICT_CSP: &str = "default-src 'self'; form-action 'self'; base-uri 'self'; object-src 'none'; frame-ancestors 'none'; upgrade-insecure-requests";
/// A CSP for JSON APIs: nothing may load, nothing may frame the response.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
/// OWASP's proposed `Clear-Site-Data` value (used for `clear_site_data: true`).
pub const CLEAR_SITE_DATA_ALL: &str = "\"cache\",\"cookies\",\"storage\"";
/// OWASP's proposed HSTS max-age (two years).
pub const HSTS_MAX_AGE: u64 = 63_072_000;

const PERMISSIONS_POLICY: &str = "accelerometer=(), autoplay=(), camera=(), cross-origin-isolated=(), display-capture=(), encrypted-media=(), fullscreen=(), geolocation=(), gyroscope=(), keyboard-map=(), magnetometer=(), microphone=(), midi=(), payment=(), picture-in-picture=(), publickey-credentials-get=(), screen-wake-lock=(), sync-xhr=(self), usb=(), web-share=(), xr-spatial-tracking=(), clipboard-read=(), clipboard-write=(), gamepad=(), hid=(), idle-detection=(), interest-cohort=(), serial=(), unload=()";

/// The plain headers a preset adds (HSTS and CSP have their own options).
pub fn headers(preset: Preset) -> &'static [(&'static str, &'static str, Mode)] {
    match preset {
        Preset::Strict => &[
            ("cache-control", "no-store, max-age=0", Mode::AddIfAbsent),
            (
                "cross-origin-embedder-policy",
                "require-corp",
                Mode::Overwrite,
            ),
            ("cross-origin-opener-policy", "same-origin", Mode::Overwrite),
            (
                "cross-origin-resource-policy",
                "same-origin",
                Mode::Overwrite,
            ),
            ("permissions-policy", PERMISSIONS_POLICY, Mode::Overwrite),
            ("referrer-policy", "no-referrer", Mode::Overwrite),
            ("x-content-type-options", "nosniff", Mode::Overwrite),
            ("x-dns-prefetch-control", "off", Mode::Overwrite),
            ("x-frame-options", "deny", Mode::Overwrite),
            ("x-permitted-cross-domain-policies", "none", Mode::Overwrite),
        ],
        Preset::Api => &[
            ("cache-control", "no-store", Mode::Overwrite),
            (
                "cross-origin-resource-policy",
                "same-origin",
                Mode::Overwrite,
            ),
            ("referrer-policy", "no-referrer", Mode::Overwrite),
            ("x-content-type-options", "nosniff", Mode::Overwrite),
            ("x-frame-options", "deny", Mode::Overwrite),
        ],
        Preset::None => &[],
    }
}

/// The CSP a preset sends.
pub fn csp(preset: Preset) -> Option<&'static str> {
    match preset {
        Preset::Strict => Some(STRICT_CSP),
        Preset::Api => Some(API_CSP),
        Preset::None => None,
    }
}

/// Whether a preset sends HSTS, removes the OWASP list and hardens cookies by default.
pub fn hardens_by_default(preset: Preset) -> bool {
    preset != Preset::None
}

/// OWASP's list of response headers that leak implementation details (87 names, 2026-07-19),
/// lower-cased. Matched exactly (names, not prefixes).
pub const OWASP_REMOVE: &[&str] = &[
    "$wsep",
    "host-header",
    "k-proxy-request",
    "liferay-portal",
    "oraclecommercecloud-version",
    "pega-host",
    "powered-by",
    "product",
    "server",
    "sourcemap",
    "x-aspnet-version",
    "x-aspnetmvc-version",
    "x-atmosphere-error",
    "x-atmosphere-first-request",
    "x-atmosphere-tracking-id",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-spanid",
    "x-b3-traceid",
    "x-beserver",
    "x-backside-transport",
    "x-cf-powered-by",
    "x-cms",
    "x-calculatedbetarget",
    "x-cocoon-version",
    "x-content-encoded-by",
    "x-datadog-origin",
    "x-datadog-parent-id",
    "x-datadog-sampling-priority",
    "x-datadog-tags",
    "x-datadog-trace-id",
    "x-diaginfo",
    "x-envoy-attempt-count",
    "x-envoy-external-address",
    "x-envoy-internal",
    "x-envoy-original-dst-host",
    "x-envoy-upstream-service-time",
    "x-feserver",
    "x-framework",
    "x-generated-by",
    "x-generator",
    "x-gitlab-meta",
    "x-jitsi-release",
    "x-joomla-version",
    "x-kong-admin-latency",
    "x-kong-client-latency",
    "x-kong-proxy-latency",
    "x-kong-request-id",
    "x-kong-response-latency",
    "x-kong-third-party-latency",
    "x-kong-total-latency",
    "x-kong-upstream-latency",
    "x-kong-upstream-status",
    "x-kubernetes-pf-flowschema-ui",
    "x-kubernetes-pf-prioritylevel-uid",
    "x-litespeed-cache",
    "x-litespeed-purge",
    "x-litespeed-tag",
    "x-litespeed-vary",
    "x-litespeed-cache-control",
    "x-mod-pagespeed",
    "x-nextjs-cache",
    "x-nextjs-matched-path",
    "x-nextjs-page",
    "x-nextjs-redirect",
    "x-owa-version",
    "x-old-content-length",
    "x-oneagent-js-injection",
    "x-page-speed",
    "x-php-version",
    "x-powered-by",
    "x-powered-by-plesk",
    "x-powered-cms",
    "x-redirect-by",
    "x-server-powered-by",
    "x-sourcefiles",
    "x-sourcemap",
    "x-turbo-charged-by",
    "x-tyk-trace-id",
    "x-umbraco-version",
    "x-varnish-backend",
    "x-varnish-server",
    "x-woodpecker-version",
    "x-dtagentid",
    "x-dthealthcheck",
    "x-dtinjectedservlet",
    "x-ruxit-js-agent",
];
