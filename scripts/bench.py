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

def envoy_config(port, admin_port, http_filters, route_extra=None):
    """Router-only direct response, plus the given HTTP filters before the router."""
    route = {
        "match": {"prefix": "/"},
        "direct_response": {"status": 200, "body": {"inline_string": "ok"}},
        "name": "bench",
    }
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
            "clusters": [],
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
                    "value": json.dumps(config),
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


def groups():
    """Benchmark groups: name -> list of (label, filters, route_extra, path, wasm files used)."""
    sh = "palisade_security_headers.wasm"
    return {
        "security headers": [
            ("baseline (router only)", [], None, []),
            ("native response_headers_to_add", [], native_headers_route(), []),
            ("palisade security-headers strict", [wasm_filter("security_headers", sh, {"preset": "strict"})], None, [sh]),
        ],
    }


# --- measuring ----------------------------------------------------------------------------------

def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


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


def run_wrk(port, seconds, connections, path="/"):
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
         f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, timeout=seconds + 30, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    p50 = to_us(re.search(r"50%\s+(\S+)", out).group(1))
    p99 = to_us(re.search(r"99%\s+(\S+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "requests": total, "p50": p50, "p99": p99,
            "non2xx": int(non2xx.group(1)) if non2xx else 0}


def start(config):
    envoy = harness.start_envoy(config, concurrency=1)
    subprocess.run(["taskset", "-pc", "0", str(envoy.proc.pid)], capture_output=True, check=False)
    for task in os.listdir(f"/proc/{envoy.proc.pid}/task"):
        subprocess.run(["taskset", "-pc", "0", task], capture_output=True, check=False)
    return envoy


def bench_group(name, configs, rounds, seconds, connections):
    envoys = []
    try:
        for label, filters, route_extra, wasm in configs:
            missing = [w for w in wasm if not os.path.exists(os.path.join(harness.WASM_DIR, w))]
            if missing:
                print(f"  skip {label}: {missing} not built", flush=True)
                continue
            port, admin = harness.free_port(), harness.free_port()
            envoys.append((label, wasm, start(envoy_config(port, admin, filters, route_extra))))
        for _, _, e in envoys:  # warm-up
            run_wrk(e.port, 1, connections)
        samples = {label: [] for label, _, _ in envoys}
        for r in range(rounds):
            for label, _, e in envoys:
                before = cpu_ticks(e.proc.pid)
                res = run_wrk(e.port, seconds, connections)
                res["cpu_us"] = (cpu_ticks(e.proc.pid) - before) / CLK_TCK * 1e6 / max(res["requests"], 1)
                samples[label].append(res)
            print(f"  {name}: round {r + 1}/{rounds} done", flush=True)
        rows = []
        for label, wasm, e in envoys:
            s = samples[label]
            rows.append({
                "group": name,
                "config": label,
                "rps": statistics.median(x["rps"] for x in s),
                "p50": statistics.median(x["p50"] for x in s),
                "p99": statistics.median(x["p99"] for x in s),
                "cpu_us": statistics.median(x["cpu_us"] for x in s),
                "non2xx": sum(x["non2xx"] for x in s),
                "rss_mib": rss_mib(e.proc.pid),
                "wasm": wasm,
            })
        return rows
    finally:
        for _, _, e in envoys:
            e.stop()


def table(rows):
    base = next((r for r in rows if r["config"].startswith("baseline")), None)
    native = next((r for r in rows if r["config"].startswith("native")), None)
    lines = [
        "| configuration | req/s (median) | p50 µs | p99 µs | CPU µs/req | + µs/req vs baseline | req/s vs baseline | req/s vs native | Envoy RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        added = r["cpu_us"] - base["cpu_us"] if base else float("nan")
        vs_base = r["rps"] / base["rps"] if base else float("nan")
        vs_native = r["rps"] / native["rps"] if native and not r["config"].startswith(("baseline", "native")) else None
        lines.append(
            f"| {r['config']} | {r['rps']:.0f} | {r['p50']:.0f} | {r['p99']:.0f} | {r['cpu_us']:.2f} | "
            f"{added:+.2f} | {vs_base:.2f}x | {f'{vs_native:.2f}x' if vs_native else '–'} | {r['rss_mib']:.1f} |"
        )
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--only", help="run only groups whose name contains this")
    ap.add_argument("--out", default=os.path.join(harness.ROOT, "docs", "benchmarks.md"))
    args = ap.parse_args()

    results = {}
    for name, configs in groups().items():
        if args.only and args.only not in name:
            continue
        print(f"group: {name}", flush=True)
        results[name] = bench_group(name, configs, args.rounds, args.seconds, args.connections)

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
        "Router-only direct responses, so the figures isolate the filters' own cost. CPU µs/req is "
        "Envoy's user+sys time divided by the requests it served.",
        "",
    ]
    for name, rows in results.items():
        out += [f"## {name}", "", table(rows), ""]
    out += ["## .wasm sizes", "", "| module | bytes | KiB |", "|---|---:|---:|"]
    out += [f"| {f} | {n} | {n / 1024:.0f} |" for f, n in sizes.items()]
    out.append("")
    text = "\n".join(out)
    print(text)
    if not args.only:
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
