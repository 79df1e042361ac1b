"""`make bench`: Palisade filters against Envoy's native filters, in the same run.

Each group (e.g. "security headers") starts one Envoy per configuration, all with one worker and
pinned to CPU 0, and drives them with wrk pinned to CPU 1, in interleaved rounds (A B C A B C ...)
so that machine noise falls on every configuration alike. Every wrk run is bounded in time. For
each configuration it reports the median requests/s, p50 and p99 latency, and Envoy's CPU time per
request (user+sys from /proc divided by the requests served), the figure least disturbed by a noisy
machine. Results go to stdout and docs/benchmarks.md.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "e2e"))

import harness  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
WASM_TYPE = harness.WASM_TYPE


# --- config building ---------------------------------------------------------------------------

def envoy_config(port, admin_port, http_filters, route_extra=None, upstream_port=None):
    """Router-only direct response (or a route to an upstream), plus the given HTTP filters."""
    route = {"match": {"prefix": "/"}, "name": "bench"}
    if upstream_port:
        route["route"] = {"cluster": "upstream"}
    else:
        route["direct_response"] = {"status": 200, "body": {"inline_string": "ok"}}
    route.update(route_extra or {})
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": {
            "listeners": [{
                "name": "bench",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "bench",
                        "server_header_transformation": "PASS_THROUGH",
                        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [route]}]},
                        "http_filters": http_filters + [{
                            "name": "envoy.filters.http.router",
                            "typed_config": {
                                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
                                "suppress_envoy_headers": True,
                            },
                        }],
                    },
                }]}],
            }],
            "clusters": [] if not upstream_port else [{
                "name": "upstream",
                "type": "STATIC",
                "connect_timeout": "1s",
                "load_assignment": {"cluster_name": "upstream", "endpoints": [{"lb_endpoints": [{
                    "endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": upstream_port}}}}]}]},
            }],
        },
    }


def wasm_filter(name, wasm_file, config):
    return {
        "name": f"palisade.{name}",
        "typed_config": {
            "@type": WASM_TYPE,
            "config": {
                "name": f"palisade_{name}",
                "root_id": f"palisade_{name}",
                "failure_policy": "FAIL_CLOSED",
                "vm_config": {
                    "vm_id": f"palisade.{name}",
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": os.path.join(harness.WASM_DIR, wasm_file)}},
                },
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": config if isinstance(config, str) else json.dumps(config),
                },
            },
        },
    }


STRICT_HEADERS = [
    ("cache-control", "no-store, max-age=0"),
    ("content-security-policy", "default-src 'self'; form-action 'self'; base-uri 'self'; object-src 'none'; frame-ancestors 'none'; upgrade-insecure-requests"),
    ("cross-origin-embedder-policy", "require-corp"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("permissions-policy", "accelerometer=(), autoplay=(), camera=(), cross-origin-isolated=(), display-capture=(), encrypted-media=(), fullscreen=(), geolocation=(), gyroscope=(), keyboard-map=(), magnetometer=(), microphone=(), midi=(), payment=(), picture-in-picture=(), publickey-credentials-get=(), screen-wake-lock=(), sync-xhr=(self), usb=(), web-share=(), xr-spatial-tracking=(), clipboard-read=(), clipboard-write=(), gamepad=(), hid=(), idle-detection=(), interest-cohort=(), serial=(), unload=()"),
    ("referrer-policy", "no-referrer"),
    ("x-content-type-options", "nosniff"),
    ("x-dns-prefetch-control", "off"),
    ("x-frame-options", "deny"),
    ("x-permitted-cross-domain-policies", "none"),
]


def native_headers_route():
    return {
        "response_headers_to_add": [
            {"header": {"key": k, "value": v}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
            for k, v in STRICT_HEADERS
        ],
        "response_headers_to_remove": ["server", "x-powered-by"],
    }


NOOP = "palisade_bench_noop.wasm"
NOOP_TRIMMED = "palisade_bench_noop_trimmed.wasm"
# Request shapes other than a plain GET (see `entry`).
BEARER, API_KEY, POST, BROWSER = "bearer token", "x-api-key", "POST 1 KiB", "browser request"
# What a browser sends for a page (20 headers besides `:authority`, a cookie among them), where
# wrk sends none: reading request headers costs in proportion to them.
BROWSER_HEADERS = {
    "user-agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/131.0.0.0 Safari/537.36",
    "accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
    "accept-language": "en-GB,en;q=0.9,de;q=0.8",
    "accept-encoding": "gzip, deflate, br, zstd",
    "referer": "https://shop.example.com/catalog/shoes?page=2",
    "cookie": "session=3f9a1c0e7b2d4e6f8a0b1c2d3e4f5a6b; theme=dark; consent=necessary,analytics; "
              "_ga=GA1.2.1234567890.1733400000",
    "sec-fetch-dest": "document", "sec-fetch-mode": "navigate", "sec-fetch-site": "same-origin",
    "sec-fetch-user": "?1", "sec-ch-ua": '"Chromium";v="131", "Not_A Brand";v="24"',
    "sec-ch-ua-mobile": "?0", "sec-ch-ua-platform": '"Linux"', "upgrade-insecure-requests": "1",
    "priority": "u=0, i",
}
SH, RL, TA, IV = ("palisade_security_headers.wasm", "palisade_rate_limit.wasm",
                  "palisade_token_auth.wasm", "palisade_input_validation.wasm")
CO = "palisade_combined.wasm"


def entry(label, filters=(), wasm=(), route=None, script=None, upstream=False, twin=None,
          shape=None):
    """One configuration. `twin` names the native configuration doing the same work, if any;
    `shape` names the requests `script` sends, when they are not plain GETs: a configuration is
    compared with the baseline and wasm floor driven with requests of the same shape (a 700-byte
    bearer token alone costs Envoy about 16 k instructions more per request)."""
    return {"label": label, "filters": list(filters), "wasm": list(wasm), "route": route,
            "script": script, "upstream": upstream, "twin": twin, "shape": shape}


def baseline(shape=None, script=None):
    return entry("baseline (router only)" + (f", {shape}" if shape else ""), script=script, shape=shape)


def floor(shape=None, script=None):
    return entry("wasm floor (no-op filter)" + (f", {shape}" if shape else ""),
                 [wasm_filter("noop", NOOP, {})], [NOOP], script=script, shape=shape)


HOST_CALLS = "host calls alone"


def host_calls(ops, what, twin, script=None, shape=None):
    """A lower bound for a Palisade row: the no-op filter making only the host calls that any
    proxy-wasm filter doing `what` cannot do without (`ops`, see bench/noop-filter), none of the
    work between them. Beside `twin`, it shows how much of the native filter's cost the ABI alone
    already takes: a ratio above 1.00x here is a target no module can meet through this ABI."""
    return entry(f"{HOST_CALLS}: {what} (floor + {ops})", [wasm_filter("noop", NOOP, ops)], [NOOP],
                 script=script, twin=twin, shape=shape)


def native(name, type_, config):
    return {"name": name, "typed_config": {"@type": type_, **config}}


def lua_rotating_header(header, values):
    """A wrk script that sends each request with the next value of `header`."""
    items = ",".join(json.dumps(v) for v in values)
    return f"""local values = {{{items}}}
local i = 0
request = function()
  i = (i % #values) + 1
  return wrk.format(nil, nil, {{["{header}"] = values[i]}})
end
"""


def lua_random_key(header, n):
    return f"""request = function()
  return wrk.format(nil, nil, {{["{header}"] = "k" .. math.random(1, {n})}})
end
"""


def lua_headers(headers):
    """A wrk script that sends these headers with every request."""
    return "".join(f'wrk.headers["{k}"] = {json.dumps(v)}\n' for k, v in headers.items())


def lua_post(body, headers):
    return f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n{lua_headers(headers)}'


def token_group(alg):
    import tokens
    key = tokens.Key(alg, f"bench-{alg.lower()}")
    jwks = tokens.jwks(key)
    hot = key.token(lifetime=3600)
    distinct = [key.token({"jti": str(i)}, lifetime=3600) for i in range(2000)]
    bearer = lambda ts: lua_rotating_header("authorization", [f"Bearer {t}" for t in ts])
    palisade = lambda cache: wasm_filter("token_auth", TA, {
        "providers": [{"name": "bench", "issuer": tokens.ISSUER, "audiences": [tokens.AUDIENCE], "jwks": jwks}],
        **({} if cache else {"cache": {"max_entries": 0}})})
    jwt_authn = lambda cache: native("envoy.filters.http.jwt_authn",
        "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication", {
            "providers": {"bench": {"issuer": tokens.ISSUER, "audiences": [tokens.AUDIENCE],
                                    "local_jwks": {"inline_string": json.dumps(jwks)},
                                    **({"jwt_cache_config": {"jwt_cache_size": 100}} if cache else {})}},
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "bench"}}]})
    # A flood of requests without a token (the denial path), once: it does not depend on the alg.
    denials = [
        entry("native jwt_authn, no token (401)", [jwt_authn(True)]),
        entry("palisade token, no token (401)", [palisade(True)], [TA],
              twin="native jwt_authn, no token (401)"),
        host_calls("read_authorization local_reply", "read the token's header, answer 401",
                   "native jwt_authn, no token (401)"),
    ] if alg == "ES256" else []
    # Each Palisade configuration beside jwt_authn doing the same: with and without a cache, one
    # hot token and 2,000 distinct ones in turn (both caches hold 100 tokens, so distinct tokens
    # miss every time and show what a cache costs when it does not help).
    pairs = []
    for cache, tokens_, script in [(True, "hot token", bearer([hot])),
                                   (True, "distinct tokens", bearer(distinct)),
                                   (False, "hot token", bearer([hot])),
                                   (False, "distinct tokens", bearer(distinct))]:
        what = f"{alg}, {'cache' if cache else 'no cache'}, {tokens_}"
        pairs += [
            entry(f"native jwt_authn {what}", [jwt_authn(cache)], script=script, shape=BEARER),
            entry(f"palisade token {what}", [palisade(cache)], [TA], script=script,
                  twin=f"native jwt_authn {what}", shape=BEARER),
        ]
    shaped = [baseline(BEARER, bearer([hot])), floor(BEARER, bearer([hot]))]
    # A cached token's hit cannot do with less than reading its header and removing it (as
    # jwt_authn does by default); ES256 only, as it does not depend on the alg.
    bound = [host_calls("read_authorization remove_request_header",
                        "read the token's header, remove it", f"native jwt_authn {alg}, cache, hot token",
                        script=bearer([hot]), shape=BEARER)] if alg == "ES256" else []
    return [baseline(), floor()] + shaped + pairs + bound + denials


def rate_limit_group():
    big = 1_000_000_000
    on = {"default_value": {"numerator": 100, "denominator": "HUNDRED"}}
    lr = lambda tokens_, key=None, every="1s": native("envoy.filters.http.local_ratelimit",
        "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit", {
            "stat_prefix": "bench",
            "filter_enabled": {**on, "runtime_key": "rl_on"},
            "filter_enforced": {**on, "runtime_key": "rl_enf"},
            **({"token_bucket": {"max_tokens": tokens_, "tokens_per_fill": tokens_, "fill_interval": "1s"}}
               if key is None else {
                # A bucket per value of the header (a wildcard descriptor), as Palisade's `key`.
                "token_bucket": {"max_tokens": big, "tokens_per_fill": big, "fill_interval": "1s"},
                "rate_limits": [{"actions": [{"request_headers": {"header_name": key, "descriptor_key": "key"}}]}],
                "descriptors": [{"entries": [{"key": "key"}], "token_bucket": {
                    "max_tokens": tokens_, "tokens_per_fill": tokens_, "fill_interval": every}}],
                "always_consume_default_token_bucket": False,
                "max_dynamic_descriptors": 20000})})
    pal = lambda requests, key, per="second": wasm_filter("rate_limit", RL, {
        "limits": [{"name": "bench", "requests": requests, "per": per, "key": key, "max_keys": 20000}]})
    one_key = lua_rotating_header("x-api-key", ["bench"])
    keys = lua_random_key("x-api-key", 10000)
    n = {
        "never": "native local_ratelimit, never rejects",
        "most": "native local_ratelimit, rejects most (10/s)",
        "header most": "native local_ratelimit, rejects most (10/s), one key from a header",
        "keys": "native local_ratelimit, never rejects, 10,000 keys",
        "keys most": "native local_ratelimit, rejects most (1/min per key), 10,000 keys",
    }
    return [
        baseline(), floor(), baseline(API_KEY, one_key), floor(API_KEY, one_key),
        entry(n["never"], [lr(big)]),
        entry("palisade rate-limit, never rejects, one key", [pal(big, {"constant": "all"})], [RL],
              twin=n["never"]),
        entry(n["most"], [lr(10)]),
        entry("palisade rate-limit, rejects most (10/s), one key", [pal(10, {"constant": "all"})], [RL],
              twin=n["most"]),
        host_calls("local_reply", "answer 429", n["most"]),
        entry(n["header most"], [lr(10, "x-api-key")], script=one_key, shape=API_KEY),
        entry("palisade rate-limit, rejects most (10/s), one key from a header",
              [pal(10, {"header": "x-api-key"})], [RL], script=one_key, twin=n["header most"],
              shape=API_KEY),
        host_calls("request_header local_reply", "read the key's header, answer 429", n["header most"],
                   script=one_key, shape=API_KEY),
        entry(n["keys"], [lr(big, "x-api-key")], script=keys, shape=API_KEY),
        entry("palisade rate-limit, never rejects, 10,000 keys", [pal(big, {"header": "x-api-key"})], [RL],
              script=keys, twin=n["keys"], shape=API_KEY),
        # A key seen once has no reservation: its count is read and written in the store Envoy's
        # workers share, as local_ratelimit's buckets are shared.
        host_calls("request_header shared_cas", "read the key's header, count it in the store",
                   n["keys"], script=keys, shape=API_KEY),
        # About 1.5 requests per key and second: one a minute per key rejects most of them.
        entry(n["keys most"], [lr(1, "x-api-key", "60s")], script=keys, shape=API_KEY),
        entry("palisade rate-limit, rejects most (1/min per key), 10,000 keys",
              [pal(1, {"header": "x-api-key"}, "minute")], [RL], script=keys, twin=n["keys most"],
              shape=API_KEY),
        host_calls("request_header local_reply", "read the key's header, answer 429, 10,000 keys", n["keys most"],
                   script=keys, shape=API_KEY),
    ]


def headers_group():
    strict = [wasm_filter("security_headers", SH, {"preset": "strict"})]
    browser = lua_headers(BROWSER_HEADERS)
    return [
        baseline(), floor(),
        entry("native response_headers_to_add", route=native_headers_route()),
        entry("palisade security-headers strict", strict, [SH], twin="native response_headers_to_add"),
        host_calls("add11_add", "add the eleven headers, remove server", "native response_headers_to_add"),
        baseline(BROWSER, browser), floor(BROWSER, browser),
        entry("native response_headers_to_add, browser request", route=native_headers_route(),
              script=browser, shape=BROWSER),
        entry("palisade security-headers strict, browser request", strict, [SH], script=browser,
              twin="native response_headers_to_add, browser request", shape=BROWSER),
    ]


def validation_group():
    schema = {"type": "object", "required": ["email", "name", "items"], "properties": {
        "email": {"type": "string", "format": "email"},
        "name": {"type": "string", "minLength": 1, "maxLength": 100},
        "age": {"type": "integer", "minimum": 13, "maximum": 150},
        "items": {"type": "array", "maxItems": 50, "items": {"type": "object", "properties": {
            "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"}, "qty": {"type": "integer", "minimum": 1}}}}}}
    doc = {"email": "ada@example.com", "name": "Ada Lovelace", "age": 36,
           "items": [{"sku": f"ABC-{i:04d}", "qty": i + 1} for i in range(27)]}
    body = json.dumps(doc)
    assert 900 <= len(body) <= 1100, len(body)  # about 1 KiB
    post = lua_post(body, {"content-type": "application/json"})
    cfg = {"body": {"max_size": 4096, "content_types": ["application/json"], "schema": schema}}
    return [
        baseline(POST, post), floor(POST, post),
        entry("palisade input-validation, JSON schema, 1 KiB", [wasm_filter("input_validation", IV, cfg)], [IV],
              script=post, shape=POST),
    ]


def chain_group():
    import tokens
    key = tokens.Key("ES256", "bench-chain")
    hot = key.token(lifetime=3600)
    policies = {
        "security_headers": {"preset": "strict"},
        "rate_limit": {"limits": [{"name": "per_client", "requests": 1_000_000_000, "per": "second"}]},
        "token_auth": {"providers": [{"name": "bench", "issuer": tokens.ISSUER,
                                      "audiences": [tokens.AUDIENCE], "jwks": tokens.jwks(key)}]},
        "input_validation": {"path": {"max_length": 2048}, "headers": {"max_count": 64}},
    }
    modules = dict(zip(policies, [SH, RL, TA, IV]))
    chain = [wasm_filter(name, modules[name], cfg) for name, cfg in policies.items()]
    # The same four configurations in one module and one VM.
    combined = [wasm_filter("combined", CO, policies)]
    auth = lua_rotating_header("authorization", [f"Bearer {hot}"])
    # What no module running these four policies can do without: read the request headers (input
    # validation counts them all), remove the token, add the eleven headers and remove `server`
    # (the rate limit admits from the worker's reservation, with no host call).
    bound = "request_headers_raw remove_request_header add11_add"
    return [
        entry("upstream only (router to a real upstream)", upstream=True, script=auth, shape=BEARER),
        entry("wasm floor (no-op filter), real upstream", [wasm_filter("noop", NOOP, {})], [NOOP],
              upstream=True, script=auth, shape=BEARER),
        entry(f"{HOST_CALLS}: the four policies' host calls (floor + {bound}), real upstream",
              [wasm_filter("noop", NOOP, bound)], [NOOP], upstream=True, script=auth, shape=BEARER),
        entry("palisade chain of all four filters, real upstream", chain, [SH, RL, TA, IV], upstream=True,
              script=auth, shape=BEARER),
        entry("palisade combined module (the same four policies, one VM), real upstream", combined, [CO],
              upstream=True, script=auth, shape=BEARER),
        baseline(BEARER, auth),
        entry("palisade chain of all four filters, direct response", chain, [SH, RL, TA, IV], script=auth,
              shape=BEARER),
        entry("palisade combined module, direct response", combined, [CO], script=auth, shape=BEARER),
    ]


def trimmed_floor():
    """The no-op filter exporting only the callbacks a filter cannot do without (Envoy calls
    every exported one on every request; Palisade's modules drop those they never use, see
    scripts/trim_exports.py): the least any proxy-wasm filter can cost."""
    import trim_exports
    with open(os.path.join(harness.WASM_DIR, NOOP), "rb") as f:
        trimmed, _ = trim_exports.trim(f.read(), {
            "proxy_on_log", "proxy_on_done", "proxy_on_request_body", "proxy_on_request_trailers",
            "proxy_on_response_headers", "proxy_on_response_body", "proxy_on_response_trailers"})
    with open(os.path.join(harness.WASM_DIR, NOOP_TRIMMED), "wb") as f:
        f.write(trimmed)
    return entry("no-op filter exporting only the request-headers callback", [wasm_filter("noop", NOOP_TRIMMED, {})],
                 [NOOP_TRIMMED])


def host_ops_group():
    """What single host operations cost inside a filter (the wasm floor plus one operation)."""
    probe = lambda ops: entry(f"floor + {ops}", [wasm_filter("noop", NOOP, ops)], [NOOP])
    return [baseline(), floor(), trimmed_floor()] + [probe(op) for op in [
        "request_headers", "request_headers_raw", "request_header", "property", "time", "shared_get", "shared_cas",
        "metric", "response_headers", "set_response_headers", "set_response_header",
        "add11_each", "add11_map", "remove_request_header", "local_reply"]]


def memory_entries():
    """One configuration per filter (and the chain), as the throughput groups run them."""
    pick = lambda entries, label: next(e for e in entries if e["label"] == label)
    chain = chain_group()
    return [
        baseline(), floor(),
        pick(headers_group(), "palisade security-headers strict"),
        pick(rate_limit_group(), "palisade rate-limit, never rejects, one key"),
        pick(token_group("ES256"), "palisade token ES256, cache, hot token"),
        pick(validation_group(), "palisade input-validation, JSON schema, 1 KiB"),
        pick(chain, "palisade chain of all four filters, direct response"),
        pick(chain, "palisade combined module, direct response"),
    ]


MEMORY = "memory"
MEMORY_NOTE = (
    "Each configuration started alone and given one second of its traffic. RSS is the process's "
    "resident memory; heap in use is what Envoy's allocator (tcmalloc) has handed out and not "
    "got back, heap held what it has taken from the system (freed memory it keeps for reuse, "
    "mostly from compiling the wasm module at start-up); compiled code is V8's resident machine "
    "code.\n\n")


def memory_rows(connections, workdir):
    """Envoy's memory with each configuration loaded, after one second of its traffic."""
    rows = []
    for i, en in enumerate(memory_entries()):
        script = lua_file(en, workdir, f"memory-{i}")
        port, admin = harness.free_port(), harness.free_port()
        e = start(envoy_config(port, admin, en["filters"], en["route"]))
        try:
            run_wrk(e.port, 1, connections, script=script)
            time.sleep(1)
            in_use, held = heap_mib(admin)
            rows.append({"config": en["label"], "rss": rss_mib(e.proc.pid), "in_use": in_use,
                         "held": held, "code": jit_code_mib(e.proc.pid), "wasm": en["wasm"]})
        finally:
            e.stop()
    return rows


def memory_table(rows):
    floor_ = next(r for r in rows if r["config"].startswith("wasm floor"))
    lines = [
        "| configuration | RSS MiB | + RSS vs wasm floor | heap in use MiB | + in use vs wasm floor "
        "| heap held MiB | compiled code MiB | + code vs wasm floor |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        over = r["wasm"] and r is not floor_
        d = lambda k: f"{r[k] - floor_[k]:+.1f}" if over else "–"
        lines.append(f"| {r['config']} | {r['rss']:.1f} | {d('rss')} | {r['in_use']:.1f} | "
                     f"{d('in_use')} | {r['held']:.1f} | {r['code']:.1f} | {d('code')} |")
    return "\n".join(lines)


def groups():
    """Benchmark groups, each measured in interleaved rounds."""
    return {
        "host operations": host_ops_group,
        "security headers": headers_group,
        "rate limit": rate_limit_group,
        "token RS256": lambda: token_group("RS256"),
        "token ES256": lambda: token_group("ES256"),
        "token EdDSA": lambda: token_group("EdDSA"),
        "input validation": validation_group,
        "full chain": chain_group,
    }


# --- measuring ----------------------------------------------------------------------------------

class Instructions:
    """User-space instructions retired by every thread of a process (Linux perf_event_open).

    Unlike CPU time, the count barely moves when the machine is busy or its clock changes, so it
    is the steadiest figure of what a filter costs per request. `None` where the kernel or the
    virtual machine gives no hardware counters.
    """

    PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241}

    def __init__(self, pid):
        import ctypes
        import platform

        self.fds = []
        nr = self.PERF_EVENT_OPEN.get(platform.machine())
        if nr is None:
            return
        libc = ctypes.CDLL(None, use_errno=True)

        class Attr(ctypes.Structure):
            _fields_ = [("type", ctypes.c_uint32), ("size", ctypes.c_uint32), ("config", ctypes.c_uint64),
                        ("sample_period", ctypes.c_uint64), ("sample_type", ctypes.c_uint64),
                        ("read_format", ctypes.c_uint64), ("flags", ctypes.c_uint64),
                        ("wakeup_events", ctypes.c_uint32), ("bp_type", ctypes.c_uint32),
                        ("config1", ctypes.c_uint64), ("config2", ctypes.c_uint64),
                        ("rest", ctypes.c_uint64 * 8)]

        for tid in os.listdir(f"/proc/{pid}/task"):
            attr = Attr(type=0, size=ctypes.sizeof(Attr), config=1)  # PERF_COUNT_HW_INSTRUCTIONS
            attr.flags = (1 << 5) | (1 << 6)  # exclude_kernel, exclude_hv
            fd = libc.syscall(nr, ctypes.byref(attr), int(tid), -1, -1, 0)
            if fd >= 0:
                self.fds.append(fd)

    def read(self):
        if not self.fds:
            return None
        return sum(int.from_bytes(os.read(fd, 8), "little") for fd in self.fds)

    def close(self):
        for fd in self.fds:
            os.close(fd)
        self.fds = []


def counts_instructions():
    """Whether this machine can count instructions (some virtual machines expose no PMU)."""
    probe = Instructions(os.getpid())
    ok = bool(probe.fds)
    probe.close()
    return ok


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def jit_code_mib(pid):
    """Resident machine code V8 compiled (its writable-executable mappings)."""
    kib, executable = 0, False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if not parts[0].endswith(":"):
                executable = len(parts) > 1 and parts[1] == "rwxp"
            elif parts[0] == "Rss:" and executable:
                kib += int(parts[1])
    return kib / 1024


def heap_mib(admin_port):
    """Envoy's heap: bytes in live allocations, and what the allocator holds from the system."""
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/memory", timeout=5) as r:
        m = json.load(r)
    return int(m["allocated"]) / 2**20, int(m["heap_size"]) / 2**20


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def to_us(text):
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        return float("nan")
    v, unit = float(m.group(1)), m.group(2)
    return v * {"us": 1, "ms": 1000, "s": 1_000_000}[unit]


def run_wrk(port, seconds, connections, path="/", script=None):
    cmd = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run(
        cmd + [f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, timeout=seconds + 30, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    # The distribution's own lines: a thread-stats line can end in "85.50%" or "72.99%" too.
    p50 = to_us(re.search(r"^\s*50%\s+(\S+)", out, re.M).group(1))
    p99 = to_us(re.search(r"^\s*99%\s+(\S+)", out, re.M).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "requests": total, "p50": p50, "p99": p99,
            "non2xx": int(non2xx.group(1)) if non2xx else 0}


def start(config):
    envoy = harness.start_envoy(config, concurrency=1)
    subprocess.run(["taskset", "-pc", "0", str(envoy.proc.pid)], capture_output=True, check=False)
    for task in os.listdir(f"/proc/{envoy.proc.pid}/task"):
        subprocess.run(["taskset", "-pc", "0", task], capture_output=True, check=False)
    return envoy


def start_upstream():
    """A fast real upstream: another Envoy answering directly, pinned to the load generator's CPU."""
    port, admin = harness.free_port(), harness.free_port()
    e = harness.start_envoy(envoy_config(port, admin, []), concurrency=1)
    subprocess.run(["taskset", "-apc", "1", str(e.proc.pid)], capture_output=True, check=False)
    return e


def lua_file(en, workdir, stem):
    """The entry's wrk script written to a file, or None without one."""
    if not en["script"]:
        return None
    path = os.path.join(workdir, f"{stem}.lua")
    with open(path, "w") as f:
        f.write(en["script"])
    return path


def bench_group(name, make_entries, rounds, seconds, connections, workdir):
    envoys, upstream = [], None
    try:
        entries = make_entries()
        for i, en in enumerate(entries):
            missing = [w for w in en["wasm"] if not os.path.exists(os.path.join(harness.WASM_DIR, w))]
            if missing:
                print(f"  skip {en['label']}: {missing} not built", flush=True)
                continue
            if en["upstream"] and upstream is None:
                upstream = start_upstream()
            script = lua_file(en, workdir, f"{abs(hash(name))}-{i}")
            port, admin = harness.free_port(), harness.free_port()
            cfg = envoy_config(port, admin, en["filters"], en["route"],
                               upstream.port if en["upstream"] else None)
            e = start(cfg)
            e.instructions = Instructions(e.proc.pid)
            envoys.append((en, script, e))
        for _, script, e in envoys:  # warm-up
            run_wrk(e.port, 1, connections, script=script)
        samples = {en["label"]: [] for en, _, _ in envoys}
        for r in range(rounds):
            for en, script, e in envoys:
                before, instr = cpu_ticks(e.proc.pid), e.instructions.read()
                res = run_wrk(e.port, seconds, connections, script=script)
                res["cpu_us"] = (cpu_ticks(e.proc.pid) - before) / CLK_TCK * 1e6 / max(res["requests"], 1)
                after = e.instructions.read()
                res["kinstr"] = (after - instr) / 1000 / max(res["requests"], 1) if instr is not None else None
                samples[en["label"]].append(res)
            print(f"  {name}: round {r + 1}/{rounds} done", flush=True)
        rows = []
        for en, _, e in envoys:
            s_ = samples[en["label"]]
            rows.append({
                "group": name,
                "config": en["label"],
                "rps": statistics.median(x["rps"] for x in s_),
                "p50": statistics.median(x["p50"] for x in s_),
                "p99": statistics.median(x["p99"] for x in s_),
                "cpu_us": statistics.median(x["cpu_us"] for x in s_),
                "kinstr": (statistics.median(x["kinstr"] for x in s_)
                           if all(x["kinstr"] is not None for x in s_) else None),
                "non2xx": sum(x["non2xx"] for x in s_) / max(sum(x["requests"] for x in s_), 1),
                "rss_mib": rss_mib(e.proc.pid),
                "wasm": en["wasm"],
                "upstream": en["upstream"],
                "twin": en["twin"],
                "shape": en["shape"],
            })
        return rows
    finally:
        for _, _, e in envoys:
            e.instructions.close()
            e.stop()
        if upstream:
            upstream.stop()


def table(rows):
    """The group's table. Each row is compared with the baseline of its kind (router-only direct
    response, or router to the real upstream, driven with requests of the same shape), a wasm
    filter also with the wasm floor, and a Palisade configuration with its native twin: req/s,
    and the cost each adds (Palisade's above the wasm floor, the native filter's above the
    baseline)."""
    bases, floors = {}, {}
    for r in rows:
        kind = (r["upstream"], r["shape"])
        if r["config"].startswith(("baseline", "upstream only")):
            bases.setdefault(kind, r)
        elif r["config"].startswith("wasm floor"):
            floors.setdefault(kind, r)
    by_label = {r["config"]: r for r in rows}
    lines = [
        "| configuration | req/s | p50 µs | p99 µs | CPU µs/req | + µs vs baseline | + µs vs wasm floor "
        "| k instr/req | + k instr vs baseline | + k instr vs wasm floor | req/s vs baseline "
        "| req/s vs native | added µs vs native | added k instr vs native | non-2xx | RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def num(v, fmt):
        return "–" if v is None else format(v, fmt)

    def diff(r, ref, key):
        if ref is None or r[key] is None or ref[key] is None:
            return None
        return r[key] - ref[key]

    def added(r, key):
        """What a configuration adds: a wasm filter above the wasm floor, anything else above the
        baseline."""
        kind = (r["upstream"], r["shape"])
        floor_, base = floors.get(kind), bases.get(kind)
        return diff(r, floor_ if r["wasm"] and floor_ else base, key)

    def ratio(a, b):
        return None if a is None or b is None or b <= 0 else a / b

    for r in rows:
        kind = (r["upstream"], r["shape"])
        base, floor_ = bases.get(kind), floors.get(kind)
        over_floor = lambda key: diff(r, floor_, key) if r["wasm"] and r is not floor_ else None
        twin = by_label.get(r["twin"])
        vs_base = r["rps"] / base["rps"] if base else None
        vs_twin = r["rps"] / twin["rps"] if twin else None
        cost_us = ratio(added(r, "cpu_us"), added(twin, "cpu_us")) if twin else None
        cost_k = ratio(added(r, "kinstr"), added(twin, "kinstr")) if twin else None
        lines.append(
            f"| {r['config']} | {r['rps']:.0f} | {r['p50']:.0f} | {r['p99']:.0f} | {r['cpu_us']:.2f} | "
            f"{num(diff(r, base, 'cpu_us'), '+.2f')} | {num(over_floor('cpu_us'), '+.2f')} | "
            f"{num(r['kinstr'], '.1f')} | {num(diff(r, base, 'kinstr'), '+.1f')} | "
            f"{num(over_floor('kinstr'), '+.1f')} | {num(vs_base, '.2f')}{'x' if vs_base else ''} | "
            f"{num(vs_twin, '.2f')}{'x' if vs_twin else ''} | {num(cost_us, '.2f')}{'x' if cost_us else ''} | "
            f"{num(cost_k, '.2f')}{'x' if cost_k else ''} | {r['non2xx']:.0%} | {r['rss_mib']:.1f} |"
        )
    return "\n".join(lines)


# --- side by side: this build against another ---------------------------------------------------

def is_reference(en):
    return en["label"].startswith(("baseline", "wasm floor", "upstream only"))


def with_modules_from(en, base_dir):
    """`en` with its Palisade modules loaded from `base_dir` instead of this build (the no-op
    floor stays this build's: it is the reference of both)."""
    import copy

    en = copy.deepcopy(en)
    en["label"] += f" [{os.path.basename(os.path.normpath(base_dir))}]"
    en["twin"] = None
    for f in en["filters"]:
        code = f.get("typed_config", {}).get("config", {}).get("vm_config", {}).get("code", {})
        local = code.get("local")
        if local and os.path.basename(local["filename"]) != NOOP:
            local["filename"] = os.path.join(base_dir, os.path.basename(local["filename"]))
    return en


PALISADE_MODULES = (SH, RL, TA, IV, CO)


def compared(entries, base_dir, match):
    """A group's entries for a side-by-side run: its baselines and floors, and each Palisade
    configuration (whose label contains `match`, if given) followed by the same configuration
    built from `base_dir`'s modules, measured in the same interleaved rounds. Native twins are
    left out unless they match."""
    out = []
    for en in entries:
        if is_reference(en):
            out.append(en)
        elif en["label"].startswith(HOST_CALLS) and (match is None or match not in en["label"]):
            continue
        elif match is None or match in en["label"]:
            out.append(en)
            if any(w in PALISADE_MODULES for w in en["wasm"]):
                out.append(with_modules_from(en, base_dir))
    return out


def compare(args, workdir):
    """`--compare DIR`: this build's modules beside DIR's, printed, never written to the report
    (the before/after figures in docs/performance.md come from here; targets are checked against
    a full `make bench`)."""
    base_dir = os.path.abspath(args.compare)
    if not any(os.path.exists(os.path.join(base_dir, m)) for m in PALISADE_MODULES):
        sys.exit(f"--compare {args.compare}: no Palisade module there (`make bench-base "
                 f"BASE={args.compare}` keeps a copy of a build's modules)")
    for name, make in groups().items():
        if args.only and args.only not in name:
            continue
        entries = compared(make(), base_dir, args.match)
        if all(is_reference(en) for en in entries):
            continue
        print(f"group: {name} (this build against {base_dir})", flush=True)
        rows = bench_group(name, lambda: entries, args.rounds, args.seconds, args.connections,
                           workdir)
        print(table(rows), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--only", help="run only groups whose name contains this")
    ap.add_argument("--out", default=os.path.join(harness.ROOT, "docs", "benchmarks.md"))
    ap.add_argument("--compare", metavar="DIR",
                    help="run this build's Palisade configurations beside the same ones loaded "
                         "from DIR's modules (a copy of an earlier build), print the table and "
                         "write nothing")
    ap.add_argument("--match", help="with --compare: only configurations whose label contains this")
    args = ap.parse_args()

    import tempfile
    workdir = tempfile.mkdtemp(prefix="palisade-bench-")
    if args.compare:
        compare(args, workdir)
        return
    results = {}
    for name, make in groups().items():
        if args.only and args.only not in name:
            continue
        print(f"group: {name}", flush=True)
        results[name] = table(bench_group(name, make, args.rounds, args.seconds, args.connections, workdir))
    if not args.only or args.only in MEMORY:
        print(f"group: {MEMORY}", flush=True)
        results[MEMORY] = MEMORY_NOTE + memory_table(memory_rows(args.connections, workdir))

    sizes = {}
    for f in sorted(os.listdir(harness.WASM_DIR)):
        if f.startswith("palisade_") and f.endswith(".wasm"):
            sizes[f] = os.path.getsize(os.path.join(harness.WASM_DIR, f))

    out = [
        "# Benchmarks",
        "",
        f"Written by `make bench` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: Envoy "
        f"1.40 with one worker pinned to CPU 0, wrk (1 thread, {args.connections} connections) pinned "
        f"to CPU 1, {args.rounds} interleaved rounds of {args.seconds} s per configuration, medians. "
        "Router-only direct responses (except where a real upstream is named: a second Envoy "
        "answering directly, pinned to CPU 1), so the figures isolate the filters' own cost. "
        "CPU µs/req is Envoy's user+sys time divided by the requests it served; \"+ µs vs wasm "
        "floor\" is a filter's cost above a proxy-wasm filter that does nothing. k instr/req is "
        "the user-space instructions Envoy retired per request (hardware counter, "
        "perf_event_open): unlike time, it does not move when the machine is busy or slow, so it "
        "is the figure to compare across runs and machines. A Palisade configuration is also "
        "compared with its native twin (the native filter doing the same work, same run): "
        "\"req/s vs native\", and \"added µs/k instr vs native\", its cost above the wasm floor "
        "divided by the native filter's above the baseline (1.00x: as cheap as native). Requests "
        "other than a plain GET (a bearer token, an x-api-key, a 1 KiB POST, a browser's 20 "
        "request headers) are compared with "
        "the baseline and floor driven with the same requests, named after that shape. Rows "
        f"\"{HOST_CALLS}\" are a lower bound beside a native twin: the no-op filter making only "
        "the host calls any proxy-wasm filter doing that job needs, without the job itself; where "
        "their \"added µs vs native\" is above 1.00x, the ABI alone costs more than the native "
        "filter, and no module can meet that target."
        + ("" if counts_instructions() else
           " This machine has no hardware instruction counter (a virtual machine without a "
           "PMU), so the instruction columns are empty: compare its CPU times within this run."),
        "",
    ]
    for name, text in results.items():
        out += [f"## {name}", "", text, ""]
    out += ["## .wasm sizes", "", "| module | bytes | KiB |", "|---|---:|---:|"]
    out += [f"| {f} | {n} | {n / 1024:.0f} |" for f, n in sizes.items()]
    out.append("")
    text = "\n".join(out)
    print(text)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    if args.only:
        # A partial run replaces only its groups' sections (and the sizes) in the last full report,
        # and says when they were measured.
        if not os.path.exists(args.out):
            return
        with open(args.out, encoding="utf-8") as f:
            text = merge_sections(f.read(), results, sizes, args)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"written to {args.out}")


def sections(text):
    """{heading: body} of a report's `## ` sections, in order, plus the text before them."""
    head, *parts = text.split("\n## ")
    out = {}
    for part in parts:
        title, _, body = part.partition("\n")
        out[title] = body
    return head, out


def merge_sections(old, results, sizes, args):
    head, parts = sections(old)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for name, text in results.items():
        parts[name] = (f"\nRe-measured by `make bench BENCH_ARGS=\"--only '{args.only}'\"` on {stamp} "
                       f"({args.rounds} interleaved rounds of {args.seconds} s).\n\n{text}\n")
    sizes_lines = ["", "| module | bytes | KiB |", "|---|---:|---:|"]
    sizes_lines += [f"| {f} | {n} | {n / 1024:.0f} |" for f, n in sizes.items()]
    parts[".wasm sizes"] = "\n".join(sizes_lines) + "\n"
    return head + "".join(f"\n## {title}\n{body}" for title, body in parts.items())


if __name__ == "__main__":
    main()
