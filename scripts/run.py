"""`make run`: the demo upstream and Envoy with envoy-config/palisade.yaml, until Ctrl-C."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "e2e"))

import harness  # noqa: E402
import upstream  # noqa: E402

PORT, ADMIN, UPSTREAM = 10000, 9901, 18080


def main():
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

  # security headers added, Server / X-Powered-By removed, every Set-Cookie hardened
  curl -si http://localhost:{PORT}/hello

  # a spoofed identity header never reaches the upstream (see "headers" in the echoed body)
  curl -s http://localhost:{PORT}/hello -H 'x-palisade-claim-sub: admin'

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
