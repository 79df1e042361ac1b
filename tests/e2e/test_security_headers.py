"""End-to-end: the security-headers filter in a real Envoy, in front of a real upstream.

Expected values are the OWASP Secure Headers Project proposal of 2026-07-19 (see
../shared/reference/owasp-secure-headers.md), written out here independently of the filter's code.
"""

import re

import pytest

import harness
import tls

F = "palisade.security_headers"

OWASP_CSP = (
    "default-src 'self'; form-action 'self'; base-uri 'self'; object-src 'none'; "
    "frame-ancestors 'none'; upgrade-insecure-requests"
)
OWASP_PERMISSIONS = (
    "accelerometer=(), autoplay=(), camera=(), cross-origin-isolated=(), display-capture=(), "
    "encrypted-media=(), fullscreen=(), geolocation=(), gyroscope=(), keyboard-map=(), "
    "magnetometer=(), microphone=(), midi=(), payment=(), picture-in-picture=(), "
    "publickey-credentials-get=(), screen-wake-lock=(), sync-xhr=(self), usb=(), web-share=(), "
    "xr-spatial-tracking=(), clipboard-read=(), clipboard-write=(), gamepad=(), hid=(), "
    "idle-detection=(), interest-cohort=(), serial=(), unload=()"
)
STRICT = {
    "cache-control": "no-store, max-age=0",
    "content-security-policy": OWASP_CSP,
    "cross-origin-embedder-policy": "require-corp",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": OWASP_PERMISSIONS,
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-dns-prefetch-control": "off",
    "x-frame-options": "deny",
    "x-permitted-cross-domain-policies": "none",
}
LEAKING = ["server", "x-powered-by", "x-aspnet-version"]


def cookies(resp):
    return {c.split("=", 1)[0]: c for c in resp.all("set-cookie")}


def attrs(cookie):
    return [a.strip().lower() for a in cookie.split(";")[1:]]


# --- presets -------------------------------------------------------------------------------

def test_shipped_config_hardens_a_plain_response(envoy):
    e = envoy("palisade.yaml")
    r = e.get("/hello")
    assert r.status == 200
    for name, value in STRICT.items():
        assert r.header(name) == value, name
    for name in LEAKING + ["x-debug-info"]:
        assert r.header(name) is None, f"{name} leaked"
    # Plain HTTP: no HSTS (browsers ignore it there, and it must not be sent unless forced).
    assert r.header("strict-transport-security") is None
    # Clear-Site-Data is never global: only the configured logout route gets it.
    assert r.header("clear-site-data") is None
    assert e.get("/logout").header("clear-site-data") == '"cache","cookies","storage"'
    # The upstream body is untouched.
    assert r.json()["path"] == "/hello"


def test_empty_config_means_strict(envoy):
    r = envoy("security-headers.yaml", {F: {}}).get("/")
    for name, value in STRICT.items():
        assert r.header(name) == value, name
    assert r.header("server") is None


def test_api_preset(envoy):
    e = envoy("security-headers.yaml", {F: {"preset": "api"}})
    r = e.get("/own-headers")  # the upstream sets cache-control: public and x-frame-options
    assert r.header("content-security-policy") == "default-src 'none'; frame-ancestors 'none'"
    assert r.header("cache-control") == "no-store"
    assert r.header("x-content-type-options") == "nosniff"
    assert r.header("x-frame-options") == "deny"
    assert r.header("permissions-policy") is None
    assert r.header("x-powered-by") is None


def test_none_preset_changes_nothing_by_itself(envoy):
    e = envoy("security-headers.yaml", {F: {"preset": "none"}})
    r = e.get("/")
    for name in STRICT:
        assert r.header(name) is None, name
    assert r.header("x-powered-by") == "PHP/8.3.0"
    assert cookies(r)["session"] == "session=abc123; Path=/"


# --- per-header control ------------------------------------------------------------------------

def test_override_disable_and_add_headers(envoy):
    e = envoy("security-headers.yaml", {F: {"headers": {
        "x-frame-options": "sameorigin",
        "permissions-policy": None,
        "x-team": {"value": "payments", "mode": "add_if_absent"},
    }}})
    r = e.get("/")
    assert r.header("x-frame-options") == "sameorigin"
    assert r.header("permissions-policy") is None
    assert r.header("x-team") == "payments"
    assert r.header("referrer-policy") == "no-referrer"


def test_overwrite_versus_add_if_absent(envoy):
    # strict: cache-control is add-if-absent, x-frame-options overwrites.
    r = envoy("security-headers.yaml", {F: {}}).get("/own-headers")
    assert r.header("cache-control") == "public, max-age=60"
    assert r.header("x-frame-options") == "deny"
    e = envoy("security-headers.yaml", {F: {"headers": {
        "x-frame-options": {"value": "deny", "mode": "add_if_absent"},
        "cache-control": {"value": "no-store", "mode": "overwrite"},
    }}})
    r = e.get("/own-headers")
    assert r.header("x-frame-options") == "SAMEORIGIN"
    assert r.header("cache-control") == "no-store"


def test_csp_report_only_and_html_only(envoy):
    e = envoy("security-headers.yaml", {F: {"csp": {
        "policy": "default-src 'self'",
        "report_only": "default-src 'none'; report-uri /csp",
        "html_only": True,
    }}})
    html = e.get("/html/page")
    assert html.header("content-security-policy") == "default-src 'self'"
    assert html.header("content-security-policy-report-only") == "default-src 'none'; report-uri /csp"
    api = e.get("/api/items")
    assert api.header("content-security-policy") is None
    assert api.header("content-security-policy-report-only") is None
    assert api.header("x-frame-options") == "deny"


def test_removes_configured_names_too(envoy):
    e = envoy("security-headers.yaml", {F: {"remove_response_headers": {"names": ["X-Debug-Info"]}}})
    r = e.get("/")
    assert r.header("x-debug-info") is None
    assert r.header("server") is None
    kept = envoy("security-headers.yaml", {F: {}}).get("/")
    assert kept.header("x-debug-info") == "node-7 build-4411"


# --- HSTS and HTTPS ------------------------------------------------------------------------------

def with_tls(tls_port):
    return lambda config: tls.add_https_listener(config, tls_port)


def test_hsts_only_on_https(envoy):
    tls_port = harness.free_port()
    e = envoy("security-headers.yaml", {F: {"hsts": {"max_age": 31536000, "include_subdomains": True, "preload": True}}},
              mutate=with_tls(tls_port))
    assert e.get("/").header("strict-transport-security") is None
    # A client cannot fake HTTPS: Envoy is the edge and overwrites x-forwarded-proto.
    assert e.get("/", headers={"x-forwarded-proto": "https"}).header("strict-transport-security") is None
    r = tls.https_request(tls_port, path="/")
    assert r.status == 200
    assert r.header("strict-transport-security") == "max-age=31536000; includeSubDomains; preload"


def test_hsts_forced_and_disabled(envoy):
    forced = envoy("security-headers.yaml", {F: {"hsts": {"max_age": 600, "include_subdomains": False, "force": True}}})
    assert forced.get("/").header("strict-transport-security") == "max-age=600"
    tls_port = harness.free_port()
    off = envoy("security-headers.yaml", {F: {"hsts": False}}, mutate=with_tls(tls_port))
    assert tls.https_request(tls_port).header("strict-transport-security") is None


def test_https_redirect_keeps_path_and_exempts_health_checks(envoy):
    tls_port = harness.free_port()
    e = envoy("security-headers.yaml", {F: {"https": {
        "mode": "redirect", "port": tls_port, "exempt": [{"exact": "/healthz"}, {"prefix": "/.well-known/"}],
    }}}, mutate=with_tls(tls_port))
    r = e.request("POST", "/orders/7?expand=items", body=b"{}", host="127.0.0.1")
    assert r.status == 308
    assert r.header("location") == f"https://127.0.0.1:{tls_port}/orders/7?expand=items"
    # The redirect itself carries the security headers.
    assert r.header("x-frame-options") == "deny"
    assert r.header("server") is None
    assert e.get("/healthz").status == 200
    assert e.get("/.well-known/acme").status == 200
    followed = tls.https_request(tls_port, "POST", "/orders/7?expand=items")
    assert followed.status == 200 and followed.json()["method"] == "POST"
    assert e.counter("palisade_security_headers_https_redirects_total") == 1


def test_https_reject_mode_sends_json_error(envoy):
    e = envoy("security-headers.yaml", {F: {"https": {"mode": "reject"}}})
    r = e.get("/account", headers={"x-request-id": "req-42"})
    assert r.status == 403
    assert r.header("content-type") == "application/json"
    body = r.json()
    # Envoy is the edge: it replaces a client's x-request-id with its own UUID, which the body carries.
    request_id = body.pop("request_id")
    assert re.fullmatch(harness.UUID, request_id)
    assert body == {"error": "https_required", "message": "this endpoint is only served over HTTPS",
                    "status": 403}
    assert r.header("x-content-type-options") == "nosniff"
    assert e.counter("palisade_security_headers_https_rejected_total") == 1


# --- cookies -------------------------------------------------------------------------------------

def test_every_set_cookie_is_hardened_separately(envoy):
    r = envoy("palisade.yaml").get("/")
    got = cookies(r)
    assert len(r.all("set-cookie")) == 3, "cookies must not be merged"
    assert attrs(got["session"]) == ["path=/", "secure", "httponly", "samesite=lax"]
    # An existing SameSite=Strict is kept, not weakened.
    assert attrs(got["theme"]) == ["path=/", "secure", "samesite=strict", "httponly"]
    # The shipped config lets JavaScript read the CSRF cookie (exception: no HttpOnly).
    assert attrs(got["csrftoken"]) == ["path=/", "secure", "samesite=lax"]


def test_cookie_options_and_exceptions(envoy):
    e = envoy("security-headers.yaml", {F: {"cookies": {
        "secure": False, "same_site": "Strict", "exceptions": [{"name": "csrftoken"}],
    }}})
    got = cookies(e.get("/"))
    assert attrs(got["session"]) == ["path=/", "httponly", "samesite=strict"]
    assert got["csrftoken"] == "csrftoken=xyz789; Path=/"
    assert e.counter("palisade_security_headers_cookies_hardened_total") == 2
    off = envoy("security-headers.yaml", {F: {"cookies": False}})
    assert cookies(off.get("/"))["session"] == "session=abc123; Path=/"


# --- request side --------------------------------------------------------------------------------

def test_strips_headers_clients_must_not_set(envoy):
    e = envoy("security-headers.yaml", {F: {"strip_request_headers": {"names": ["x-internal-user"]}}})
    r = e.get("/", headers={"x-palisade-claim-sub": "admin", "X-Palisade-Auth": "ok",
                            "x-internal-user": "root", "x-normal": "1"})
    seen = r.json()["headers"]
    assert "x-palisade-claim-sub" not in seen and "x-palisade-auth" not in seen
    assert "x-internal-user" not in seen
    assert seen["x-normal"] == "1"
    assert e.counter("palisade_security_headers_request_headers_stripped_total") == 3


# --- route rules ---------------------------------------------------------------------------------

def test_route_rules_first_match_wins_and_inherit_defaults(envoy):
    e = envoy("security-headers.yaml", {F: {
        "preset": "strict",
        "rules": [
            {"name": "embeds", "match": {"path": {"prefix": "/embed/"}, "methods": ["GET"]},
             "headers": {"x-frame-options": "sameorigin"},
             "csp": {"policy": "frame-ancestors 'self'"}},
            {"name": "docs-host", "match": {"hosts": ["*.docs.example"]}, "preset": "api"},
            {"name": "by-route-name", "match": {"route_names": ["default"], "headers": [{"name": "x-variant", "exact": "b"}]},
             "headers": {"x-variant-seen": "b"}},
        ],
    }})
    r = e.get("/embed/widget")
    assert r.header("x-frame-options") == "sameorigin"
    assert r.header("content-security-policy") == "frame-ancestors 'self'"
    assert r.header("referrer-policy") == "no-referrer"  # inherited from the default
    assert e.request("POST", "/embed/widget", body=b"").header("x-frame-options") == "deny"
    docs = e.get("/", headers={"host": "v2.docs.example"})
    assert docs.header("cache-control") == "no-store"
    assert docs.header("permissions-policy") is None
    assert e.get("/", headers={"host": "docs.example"}).header("permissions-policy") == OWASP_PERMISSIONS
    assert e.get("/", headers={"x-variant": "b"}).header("x-variant-seen") == "b"
    assert e.get("/", headers={"x-variant": "a"}).header("x-variant-seen") is None


# --- local replies of other filters ---------------------------------------------------------------

def add_rbac_after_palisade(config):
    """A native filter after ours that answers 403 itself for /admin (stands in for any filter's local reply)."""
    for hf in harness.wasm_filters(config):
        pass
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    rbac = {
        "name": "envoy.filters.http.rbac",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
            "rules": {"action": "DENY", "policies": {"admin": {
                "permissions": [{"url_path": {"path": {"prefix": "/admin"}}}],
                "principals": [{"any": True}],
            }}},
        },
    }
    hcm["http_filters"].insert(len(hcm["http_filters"]) - 1, rbac)


def test_local_replies_from_later_filters_are_hardened(envoy):
    e = envoy("palisade.yaml", mutate=add_rbac_after_palisade)
    r = e.get("/admin/users")
    assert r.status == 403
    for name, value in STRICT.items():
        if name != "cache-control":
            assert r.header(name) == value, name
    assert r.header("server") is None


# --- metrics and bad config ------------------------------------------------------------------------

def test_metrics_count_what_happened(envoy):
    e = envoy("palisade.yaml")
    for _ in range(3):
        e.get("/")
    assert e.counter("palisade_security_headers_responses_hardened_total") == 3
    # server, x-powered-by, x-aspnet-version (OWASP list) and x-debug-info (configured), each response
    assert e.counter("palisade_security_headers_headers_removed_total") == 12
    assert e.counter("palisade_security_headers_cookies_hardened_total") == 9


@pytest.mark.parametrize("config, field, reason", [
    ({"preset": "paranoid"}, "preset", "unknown variant `paranoid`"),
    ({"hsts": {"max_agee": 5}}, "hsts.max_agee", "unknown field `max_agee`"),
    ({"hsts": {"max_age": 60, "preload": True}}, "hsts.preload", "preload needs max_age"),
    ({"headers": {"strict-transport-security": "max-age=1"}}, "headers.strict-transport-security", "use the 'hsts' option"),
    ({"rules": [{"match": {"path": {"exact": "logout"}}}]}, "rules[0].match.path.exact", "expected a string starting with '/'"),
    ({"rules": [{"match": {"path": {"regex": "(unclosed"}}}]}, "rules[0].match.path.regex", "invalid regex"),
    ({"https": {"mode": "redirect", "redirect_status": 200}}, "https.redirect_status", "expected 301, 302, 307 or 308"),
    ({"cookies": {"same_site": "lax"}}, "cookies.same_site", "unknown variant `lax`"),
])
def test_bad_config_is_refused_with_the_field_named(refused, config, field, reason):
    code, logs = refused("security-headers.yaml", {F: config})
    assert code not in (None, 0), "envoy must refuse to start"
    line = next((l for l in logs.splitlines() if "invalid configuration" in l), "")
    assert f"{field}: " in line and reason in line, logs[-3000:]


def test_config_that_is_not_json_is_refused(refused):
    code, logs = refused("security-headers.yaml", {F: "{ preset: strict"})
    assert code not in (None, 0)
    assert "configuration is not valid JSON" in logs
