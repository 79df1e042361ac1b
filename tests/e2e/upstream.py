"""A small real HTTP upstream for the end-to-end tests and `make run`.

It behaves like an ordinary web app that leaks a little: it sets `Server`, `X-Powered-By` and
`X-AspNet-Version`, and several `Set-Cookie` headers without security attributes. The JSON body
echoes what reached it (method, path, headers), so tests can see what the filters forwarded.

Paths:
  /html...             answers `text/html`
  /status/<code>       answers with that status
  /own-headers         sets its own `x-frame-options` and `cache-control`
  /latin1              sets `x-note` and a cookie whose values are Latin-1 bytes, not UTF-8
  .../users, .../users/<id>  a user record that leaks `password` and `profile.secret`
  /.well-known/jwks.json     the JWKS set in `Handler.jwks`, if any
  anything else        answers `application/json`

Request bodies may come chunked (trailers are read and dropped). A request with
`x-demo-trailers: 1` gets its answer chunked, followed by a trailer (`x-demo-trailer: done`).
"""

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # A JWKS document to serve at /.well-known/jwks.json (set by `make run` and chain tests).
    jwks = None
    server_version = "demo-upstream/1.0"
    sys_version = ""

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    def _answer(self):
        if self.path == "/.well-known/jwks.json" and Handler.jwks is not None:
            body = json.dumps(Handler.jwks).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        body_in = self._read_body()
        path = self.path.split("?", 1)[0]
        status = 200
        content_type = "application/json"
        extra = []
        if path.startswith("/status/"):
            try:
                status = int(path.split("/")[2])
            except ValueError:
                status = 400
        if path.startswith("/html"):
            content_type = "text/html; charset=utf-8"
        if path == "/own-headers":
            extra = [("X-Frame-Options", "SAMEORIGIN"), ("Cache-Control", "public, max-age=60")]
        if path == "/latin1":
            # http.server writes header values as Latin-1: "é" goes out as the single byte 0xE9.
            extra = [("X-Note", "caf\u00e9"), ("Set-Cookie", "note=caf\u00e9; Path=/")]
        if path.endswith("/users") and self.command == "POST" or "/users/" in path:
            # A user record that leaks what it should not (the input-validation filter scrubs it).
            status = 201 if self.command == "POST" else 200
            body = json.dumps({
                "id": 7, "email": "a@example.com", "password": "hunter2",
                "profile": {"name": "A", "secret": "s3cr3t", "tags": ["x"]},
                "received_bytes": len(body_in),
            }).encode()
        elif content_type.startswith("text/html"):
            body = b"<!doctype html><title>demo</title><p>hello</p>"
        else:
            body = json.dumps(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body_length": len(body_in),
                }
            ).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("X-Powered-By", "PHP/8.3.0")
        self.send_header("X-AspNet-Version", "4.0.30319")
        self.send_header("X-Debug-Info", "node-7 build-4411")
        self.send_header("Set-Cookie", "session=abc123; Path=/")
        self.send_header("Set-Cookie", "theme=dark; Path=/; Secure; SameSite=Strict")
        self.send_header("Set-Cookie", "csrftoken=xyz789; Path=/")
        for k, v in extra:
            self.send_header(k, v)
        if self.headers.get("x-demo-trailers") == "1":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"%x\r\n%s\r\n0\r\nx-demo-trailer: done\r\n\r\n" % (len(body), body))
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _read_body(self):
        if "chunked" not in (self.headers.get("transfer-encoding") or "").lower():
            length = int(self.headers.get("content-length") or 0)
            return self.rfile.read(length) if length else b""
        body = b""
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                break
            body += self.rfile.read(size)
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
            pass
        return body

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _answer


class _Server(ThreadingHTTPServer):
    # socketserver listens with a backlog of 5. Envoy opens a new upstream connection for each
    # concurrent request it has no idle one for, while the tests' client threads share this
    # process (and its GIL) with the accept loop: a burst could overflow the backlog, the kernel
    # drops the SYN, and the retry comes after Envoy's 1 s connect timeout, as a 503.
    request_queue_size = 128

    def handle_error(self, request, client_address):
        # A client (or Envoy, for a request it reset) that hung up before the answer was written
        # is part of the tests, not a failure: no traceback in their output.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class Upstream:
    """Runs the upstream in a background thread on 127.0.0.1."""

    def __init__(self, port=0):
        self.server = _Server(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=18080)
    args = parser.parse_args()
    up = Upstream(args.port)
    print(f"demo upstream on http://127.0.0.1:{up.port}", flush=True)
    try:
        up.server.serve_forever()
    except KeyboardInterrupt:
        pass
