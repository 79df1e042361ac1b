"""End-to-end: the four policies over HTTP/2, the protocol proxies in a mesh speak to each other.

Envoy's listener accepts cleartext HTTP/2 (h2c, prior knowledge) beside HTTP/1; the demo upstream
stays HTTP/1. Requests carry their bodies in several DATA frames, and gRPC-style requests end in
trailers. Every test runs against the chained filters and the combined module (the `chain`
fixture, conftest.py).
"""

import json

import harness

# Padding past one DATA frame (harness.request_h2 sends 1 KiB frames).
PAD = "x" * 1500


def h2(e, method, path, **kw):
    return harness.request_h2(e.port, method, path, **kw)


def hardened(r):
    assert r.header("x-frame-options") == "deny", r.status
    assert r.header("x-content-type-options") == "nosniff"
    assert r.header("server") is None and r.header("x-powered-by") is None


def test_public_path_is_served_and_hardened(chain):
    e, _ = chain
    r = h2(e, "GET", "/hello")
    assert r.status == 200, r.body
    hardened(r)
    assert r.json()["path"] == "/hello"
    # Cookies are hardened, one header each (HTTP/2 must not fold them either).
    cookies = r.all("set-cookie")
    assert len(cookies) == 3 and all("; secure" in c.lower() for c in cookies), cookies


def test_token_is_checked_and_claims_reach_the_upstream(chain):
    e, key = chain
    anon = h2(e, "GET", "/api/orders")
    assert anon.status == 401
    assert anon.header("www-authenticate").startswith("Bearer")
    assert anon.json()["status"] == 401
    hardened(anon)
    ok = h2(e, "GET", "/api/orders", headers={"authorization": f"Bearer {key.token({'sub': 'ada'})}",
                                               "x-palisade-claim-sub": "mallory"})
    assert ok.status == 200, ok.body
    assert ok.json()["headers"]["x-palisade-claim-sub"] == "ada"
    assert "authorization" not in ok.json()["headers"]
    hardened(ok)


def test_bodies_in_several_frames_are_validated_and_scrubbed(chain):
    e, key = chain
    auth = {"authorization": f"Bearer {key.token()}", "content-type": "application/json"}
    bad = json.dumps({"email": "nope", "password": "x", "name": PAD}).encode()
    r = h2(e, "POST", "/api/users", headers=auth, body=bad)
    assert r.status == 400, r.body
    assert r.header("content-type") == "application/problem+json"
    hardened(r)
    # Valid, and still several frames long: JSON allows the whitespace.
    good = json.dumps({"email": "ada@example.com", "password": "s3cret!", "name": "Ada"}).encode()
    good = good[:-1] + b" " * 1500 + b"}"
    r = h2(e, "POST", "/api/users", headers=auth, body=good)
    assert r.status == 201, r.body
    assert r.json()["received_bytes"] == len(good)
    assert "password" not in r.json(), "scrubbed on the way back"
    hardened(r)


def test_a_body_ending_in_trailers_is_validated(chain):
    e, key = chain
    auth = {"authorization": f"Bearer {key.token()}", "content-type": "application/json"}
    bad = json.dumps({"email": "nope", "password": "x", "name": PAD}).encode()
    r = h2(e, "POST", "/api/users", headers=auth, body=bad, trailers={"x-checksum": "1"})
    assert r.status == 400, r.body
    good = json.dumps({"email": "ada@example.com", "password": "s3cret!", "name": "Ada"}).encode()
    r = h2(e, "POST", "/api/users", headers=auth, body=good, trailers={"x-checksum": "1"})
    assert r.status == 201, r.body
    assert r.json()["received_bytes"] == len(good)


def test_rate_limit_counts_http2_requests(chain):
    e, _ = chain
    statuses = [h2(e, "GET", "/login").status for _ in range(7)]
    assert statuses == [200] * 5 + [429] * 2
    r = h2(e, "GET", "/login")
    assert r.status == 429 and int(r.header("retry-after")) >= 1
    hardened(r)
