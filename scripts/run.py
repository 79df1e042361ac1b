"""`make run`: the demo upstream and Envoy with envoy-config/palisade.yaml, until Ctrl-C."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "e2e"))

import harness  # noqa: E402
import tokens  # noqa: E402
import upstream  # noqa: E402

PORT, ADMIN, UPSTREAM = 10000, 9901, 18080


def main():
    # A fresh demo signing key each run: its JWKS is served by the demo upstream, where the token
    # filter fetches it; nothing secret is stored in the repository.
    key = tokens.Key("RS256", "demo-1")
    upstream.Handler.jwks = tokens.jwks(key)
    token = key.token({"sub": "ada", "scope": "read admin"}, lifetime=3600)
    try:
        up = upstream.Upstream(UPSTREAM).start()
    except OSError as e:
        sys.exit(f"cannot start the demo upstream on 127.0.0.1:{UPSTREAM}: {e}")
    config, _, _ = harness.prepare(
        harness.load_config("palisade.yaml"), up.port, port=PORT, admin_port=ADMIN
    )
    try:
        envoy = harness.start_envoy(config, concurrency=2)
    except RuntimeError as e:
        up.stop()
        sys.exit(f"Envoy did not start (is port {PORT} or {ADMIN} in use?):\n{e}")
    print(f"""
Palisade is running: Envoy on http://localhost:{PORT} (admin http://localhost:{ADMIN}),
demo upstream on 127.0.0.1:{UPSTREAM}. Try:

  # security-headers: headers added, Server / X-Powered-By removed, every Set-Cookie hardened
  curl -si http://localhost:{PORT}/hello

  # token-auth: /api/ needs a token -> 401 (hardened, JSON body, WWW-Authenticate)
  curl -si http://localhost:{PORT}/api/orders
  # ... and with the demo token (valid 1 h) -> 200; the verified `sub` reaches the upstream,
  # a spoofed x-palisade-claim-sub does not
  TOKEN={token}
  curl -s http://localhost:{PORT}/api/orders -H "authorization: Bearer $TOKEN" -H 'x-palisade-claim-sub: mallory'

  # input-validation: a bad body -> 400 problem+json; a good one -> 201 with `password` scrubbed
  curl -si http://localhost:{PORT}/api/users -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{{"email":"nope","password":"x"}}'
  curl -s http://localhost:{PORT}/api/users -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{{"email":"ada@example.com","password":"s3cret!","name":"Ada"}}'

  # rate-limit: /login allows 5 per minute -> then 429 with Retry-After and RateLimit headers
  for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w '%{{http_code}} ' http://localhost:{PORT}/login; done; echo

  # Clear-Site-Data only on the logout route
  curl -si http://localhost:{PORT}/logout | grep -i clear-site-data

  # what the filters counted
  curl -s http://localhost:{ADMIN}/stats/prometheus | grep ^palisade_

Envoy's log: {envoy.log_path}
Ctrl-C stops everything.
""", flush=True)
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    try:
        while not stop["now"] and envoy.proc.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        envoy.stop()
        up.stop()
        print("stopped")


if __name__ == "__main__":
    main()
