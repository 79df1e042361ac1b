"""End-to-end: Envoy loads a filter module over HTTP (`vm_config.code.remote`) pinned by its
SHA-256, as a deployment that fetches modules from a registry or bucket would: the right module
serves traffic; a tampered one (one byte changed) is refused, and the filter fails closed."""

import functools
import hashlib
import http.server
import os
import shutil
import tempfile
import threading
import time

import pytest

import harness

MODULE = "palisade_security_headers.wasm"


@pytest.fixture
def module_server():
    """Serves a directory of modules on 127.0.0.1; yields (directory, port)."""
    d = tempfile.mkdtemp(prefix="palisade-modules-")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=d)
    handler.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield d, srv.server_address[1]
    srv.shutdown()
    srv.server_close()
    shutil.rmtree(d, ignore_errors=True)


def remote_config(upstream_port, server_port, name, sha256):
    config, _, _ = harness.prepare(harness.load_config("security-headers.yaml"), upstream_port)
    for hf in harness.wasm_filters(config):
        hf["typed_config"]["config"]["vm_config"]["code"] = {"remote": {
            "http_uri": {"uri": f"http://127.0.0.1:{server_port}/{name}", "cluster": "module_server",
                         "timeout": "5s"},
            "sha256": sha256,
        }}
    config["static_resources"]["clusters"].append({
        "name": "module_server", "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": "module_server", "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": server_port}}}}]}]}})
    return config


def started(config):
    """Envoy fetches remote code after it starts serving: wait for an answer that is not 'no
    filter yet', within a bounded time."""
    e = harness.start_envoy(config)
    deadline = time.time() + 15
    r = e.get("/")
    while r.status != 200 and time.time() < deadline and "failed to load" not in e.logs():
        time.sleep(0.2)
        r = e.get("/")
    return e, r


def test_pinned_module_loads_and_serves(upstream, module_server):
    d, port = module_server
    built = os.path.join(harness.WASM_DIR, MODULE)
    shutil.copy(built, os.path.join(d, MODULE))
    sha = hashlib.sha256(open(built, "rb").read()).hexdigest()
    e, r = started(remote_config(upstream.port, port, MODULE, sha))
    try:
        assert r.status == 200
        assert r.header("x-frame-options") == "deny", "the fetched module is the one serving"
        assert r.header("server") is None
    finally:
        e.stop()


def test_tampered_module_is_refused_and_fails_closed(upstream, module_server):
    d, port = module_server
    built = open(os.path.join(harness.WASM_DIR, MODULE), "rb").read()
    tampered = bytearray(built)
    tampered[len(tampered) // 2] ^= 0x01
    with open(os.path.join(d, MODULE), "wb") as f:
        f.write(bytes(tampered))
    sha = hashlib.sha256(built).hexdigest()  # the digest of the module we built and pinned
    e, r = started(remote_config(upstream.port, port, MODULE, sha))
    try:
        assert r.status == 503, "a module that does not match its pinned digest never runs"
        assert r.header("x-frame-options") is None
        assert "failed to load" in e.logs()
    finally:
        e.stop()
