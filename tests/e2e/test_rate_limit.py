"""End-to-end: the rate-limit filter in a real Envoy with two worker threads.

Exactness: limits here are per hour or per day, so that the refill during a test run (a few
seconds) is far below one request; with that, the number admitted must equal the limit exactly
(tolerance 0). Requests come from several threads, each on its own keep-alive connection, which
Envoy spreads over both workers.
"""

import concurrent.futures
import http.client
import re
import time

import harness

F = "palisade.rate_limit"


def fire(port, total, connections, path="/", headers=None):
    """Sends `total` requests over `connections` concurrent keep-alive connections; returns responses."""
    per_conn = [total // connections + (1 if i < total % connections else 0) for i in range(connections)]

    def client(n):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        out = []
        try:
            for _ in range(n):
                conn.request("GET", path, headers=headers or {})
                r = conn.getresponse()
                out.append(harness.Response(r.status, [(k.lower(), v) for k, v in r.getheaders()], r.read()))
        finally:
            conn.close()
        return out

    with concurrent.futures.ThreadPoolExecutor(connections) as pool:
        return [r for batch in pool.map(client, per_conn) for r in batch]


def rl(limits, **extra):
    return {F: {"limits": limits, **extra}}


def test_exact_limit_across_two_workers(envoy):
    e = envoy("rate-limit.yaml", rl([{"name": "global", "requests": 50, "per": "hour", "key": {"constant": "all"}}]),
              concurrency=2)
    responses = fire(e.port, 200, connections=8)
    statuses = [r.status for r in responses]
    assert statuses.count(200) == 50, statuses
    assert statuses.count(429) == 150
    assert e.counter("palisade_rate_limit_allowed_total") == 50
    assert e.counter("palisade_rate_limit_limited_total") == 150
    # Most refusals were repeated from each worker's memory of the store's refusal.
    again = harness.wait_until(lambda: e.counter("palisade_rate_limit_refused_from_memory_total"))
    assert 0 < again < 150, again
    # Both workers served traffic (otherwise this would not test cross-worker exactness).
    workers = [v for k, v in e.stats().items() if re.match(r"listener\.127\.0\.0\.1_\d+\.worker_\d+\.downstream_rq_completed", k)]
    assert len([w for w in workers if w > 0]) in (0, 2) or len(workers) == 0


def test_busy_limit_admits_from_worker_reservations_and_stays_exact(envoy):
    """A limit with a burst of 128 or more is mostly decided from each worker's reservation
    (no shared-data round trip), and still admits exactly its limit across two workers."""
    e = envoy("rate-limit.yaml", rl([{"name": "busy", "requests": 400, "per": "day", "key": {"constant": "all"}}]),
              concurrency=2)
    first = fire(e.port, 600, connections=8)
    # Reservations end within 200 ms; what they left unused goes back to the store.
    time.sleep(0.5)
    rest = fire(e.port, 100, connections=8)
    statuses = [r.status for r in first + rest]
    assert statuses.count(200) == 400, statuses.count(200)
    assert statuses.count(429) == 300
    assert e.counter("palisade_rate_limit_allowed_total") == 400
    reserved = harness.wait_until(lambda: e.counter("palisade_rate_limit_admitted_from_reservation_total"))
    assert 0 < reserved < 400, reserved


def test_a_flood_of_distinct_refused_clients_is_refused_from_memory(envoy):
    """400 clients, each over its own limit: every one's repeated requests are refused from the
    worker's memory of the store's refusal (not only the first few hundred clients')."""
    e = envoy("rate-limit.yaml", rl([{"name": "per_key", "requests": 1, "per": "hour",
                                      "key": {"header": "x-api-key"}, "max_keys": 4000}]))

    def client(first):
        # Each client's three requests in order, on one keep-alive connection per 50 clients.
        conn = http.client.HTTPConnection("127.0.0.1", e.port, timeout=10)
        out = []
        try:
            for i in range(first, first + 50):
                for _ in range(3):
                    conn.request("GET", "/", headers={"x-api-key": f"client-{i}"})
                    r = conn.getresponse()
                    out.append(harness.Response(r.status, [(k.lower(), v) for k, v in r.getheaders()], r.read()))
        finally:
            conn.close()
        return out

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        responses = [r for batch in pool.map(client, range(0, 400, 50)) for r in batch]
    expected = [200, 429, 429] * 400
    assert [r.status for r in responses] == expected, [
        (i, r.status, r.body[:160]) for i, (r, want) in enumerate(zip(responses, expected)) if r.status != want]
    last = responses[-1]
    assert last.json()["error"] == "rate_limited" and int(last.header("retry-after")) > 0
    # The third request of every client: refused without asking the store.
    counted = harness.wait_until(lambda: e.counter("palisade_rate_limit_refused_from_memory_total") >= 400)
    assert counted and e.counter("palisade_rate_limit_refused_from_memory_total") == 400


def test_small_limits_are_never_reserved(envoy):
    e = envoy("rate-limit.yaml", rl([{"name": "small", "requests": 100, "per": "day", "key": {"constant": "all"}}]))
    statuses = [r.status for r in fire(e.port, 120, connections=4)]
    assert statuses.count(200) == 100
    time.sleep(0.3)  # a tick would have added any reservation's admissions
    assert e.counter("palisade_rate_limit_admitted_from_reservation_total") == 0


def test_refusals_in_a_row_get_their_own_request_id_and_current_seconds(envoy):
    """A flood is refused with the worker's last 429 while it reads the same: the body still
    carries each request's own id, and once a second has passed the figures move on."""
    e = envoy("rate-limit.yaml", rl([{"name": "per_client", "requests": 3, "per": "hour"}]))
    assert [e.get("/").status for _ in range(3)] == [200, 200, 200]
    first, second = e.get("/"), e.get("/")
    assert first.status == second.status == 429
    assert first.json()["request_id"] != second.json()["request_id"]
    time.sleep(1.6)
    later = e.get("/")
    assert later.status == 429
    assert int(later.header("retry-after")) < int(first.header("retry-after"))
    t = lambda r: int(re.fullmatch(r'"per_client";r=0;t=(\d+)', r.header("ratelimit")).group(1))
    assert t(later) < t(first)
    assert later.json()["message"] != first.json()["message"], "the message names the wait"


def test_429_carries_retry_after_ratelimit_headers_and_json(envoy):
    e = envoy("rate-limit.yaml", rl([{"name": "per_client", "requests": 3, "per": "hour"}],
                                     headers={"ietf": True, "x_ratelimit": True}))
    ok = [e.get("/") for _ in range(3)]
    assert [r.status for r in ok] == [200, 200, 200]
    r = e.get("/")
    assert r.status == 429
    assert r.header("content-type") == "application/json"
    body = r.json()
    assert body["error"] == "rate_limited" and body["status"] == 429
    # The request id Envoy gave the request (read from the host: this limit needs no headers).
    assert re.fullmatch(harness.UUID, body["request_id"]), body
    retry = int(r.header("retry-after"))
    assert 1 <= retry <= 1200  # one request per 1200 s comes back
    assert r.header("ratelimit-policy") == '"per_client";q=3;w=3600'
    m = re.fullmatch(r'"per_client";r=0;t=(\d+)', r.header("ratelimit"))
    assert m and int(m.group(1)) >= retry
    assert r.header("x-ratelimit-limit") == "3"
    assert r.header("x-ratelimit-remaining") == "0"


def test_headers_on_allowed_responses_count_down(envoy):
    e = envoy("rate-limit.yaml", rl([{"name": "per_client", "requests": 5, "per": "day"}],
                                     headers={"on_allowed": True}))
    remaining = []
    for _ in range(3):
        r = e.get("/")
        assert r.status == 200
        remaining.append(int(re.search(r";r=(\d+)", r.header("ratelimit")).group(1)))
    assert remaining == [4, 3, 2]


def test_keys_separate_clients_and_tightest_limit_decides(envoy):
    e = envoy("rate-limit.yaml", rl([
        {"name": "per_user", "requests": 2, "per": "hour", "key": {"header": "x-user"}},
        {"name": "total", "requests": 5, "per": "hour", "key": {"constant": "all"}},
    ]))
    a = [e.get("/", headers={"x-user": "alice"}).status for _ in range(3)]
    b = [e.get("/", headers={"x-user": "bob"}).status for _ in range(3)]
    assert a == [200, 200, 429] and b == [200, 200, 429]
    # Four admitted so far; alice's refusal did not consume the global limit.
    c = [e.get("/", headers={"x-user": "carol"}).status for _ in range(2)]
    assert c == [200, 429], "the global limit (5) decides now"


def test_rules_add_route_limits_and_exempt_health_checks(envoy):
    e = envoy("rate-limit.yaml", rl(
        [{"name": "per_client", "requests": 100, "per": "hour"}],
        rules=[
            {"name": "login", "match": {"path": {"exact": "/login"}},
             "limits": [{"name": "login", "requests": 2, "per": "hour"}]},
            {"name": "health", "match": {"path": {"prefix": "/healthz"}}, "exempt": True},
        ]))
    assert [e.get("/login").status for _ in range(3)] == [200, 200, 429]
    assert e.get("/other").status == 200
    assert all(e.get("/healthz").status == 200 for _ in range(5))
    assert e.counter("palisade_rate_limit_unlimited_total") == 5


def test_shadow_mode_counts_and_marks_but_never_rejects(envoy):
    e = envoy("rate-limit.yaml", rl([{"name": "trial", "requests": 2, "per": "hour", "shadow": True}]))
    responses = [e.get("/") for _ in range(5)]
    assert [r.status for r in responses] == [200] * 5
    marks = [r.json()["headers"].get("x-palisade-ratelimit-shadow") for r in responses]
    assert marks == [None, None, "trial", "trial", "trial"]
    assert e.counter("palisade_rate_limit_shadow_limited_total") == 3
    assert responses[-1].header("ratelimit") is None, "shadow limits are not advertised"


def test_auth_failures_block_the_client(envoy):
    e = envoy("rate-limit.yaml", rl(
        [{"name": "per_client", "requests": 1000, "per": "hour"}],
        auth_failure={"max_failures": 3, "window": 60, "block_for": 120}))
    assert [e.get("/status/401").status for _ in range(3)] == [401, 401, 401]
    r = e.get("/anything")
    assert r.status == 429
    assert r.json()["error"] == "rate_limited"
    assert 100 <= int(r.header("retry-after")) <= 120
    assert e.counter("palisade_rate_limit_auth_blocks_started_total") == 1
    assert e.counter("palisade_rate_limit_auth_blocked_total") == 1
    # Another client (by trusted X-Forwarded-For) is not blocked. Two trusted appenders: the
    # test client plays a load balancer that appended the client address, and Envoy
    # (use_remote_address: true) appends its peer.
    other = envoy("rate-limit.yaml", rl(
        [{"name": "per_client", "requests": 1000, "per": "hour"}],
        client_ip={"trusted_hops": 2},
        auth_failure={"max_failures": 2, "window": 60, "block_for": 120}))
    h1, h2 = {"x-forwarded-for": "203.0.113.1"}, {"x-forwarded-for": "203.0.113.2"}
    assert [other.get("/status/403", headers=h1).status for _ in range(2)] == [403, 403]
    assert other.get("/", headers=h1).status == 429
    assert other.get("/", headers=h2).status == 200


def test_flood_of_distinct_keys_keeps_memory_bounded(envoy):
    e = envoy("rate-limit.yaml", rl([{"name": "per_token", "requests": 5, "per": "hour",
                                      "key": {"header": "x-api-key"}, "max_keys": 256}]), concurrency=2)
    def rss():
        with open(f"/proc/{e.proc.pid}/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) / 1024
    fire(e.port, 300, connections=4)  # warm up
    hot = [harness.request(e.port, headers={"x-api-key": "hot"}).status for _ in range(2)]
    before = rss()
    codes = []
    for batch in range(6):
        for i in range(500):
            r = harness.request(e.port, headers={"x-api-key": f"k{batch}-{i}"})
            codes.append(r.status)
    grown = rss() - before
    assert grown < 16, f"Envoy grew {grown:.1f} MiB under 3000 distinct keys"
    assert all(c in (200, 429) for c in codes)
    # A key tracked before the flood keeps its exact count: a flood cannot evict it (new keys
    # beyond max_keys share one overflow bucket instead, the default `when_full: shared`).
    hot += [harness.request(e.port, headers={"x-api-key": "hot"}).status for _ in range(5)]
    assert hot == [200] * 5 + [429] * 2
    assert harness.request(e.port, headers={"x-api-key": "brand-new"}).status == 429


def test_bad_config_is_refused_with_the_field_named(refused):
    code, logs = refused("rate-limit.yaml", rl([{"name": "x", "requests": 5, "per": "fortnight"}]))
    assert code not in (None, 0)
    assert "limits[0].per: unknown variant `fortnight`" in logs
