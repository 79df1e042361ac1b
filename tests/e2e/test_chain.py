"""End-to-end: all four policies as in envoy-config/palisade.yaml (four chained filters, what `make
run` starts) and as in envoy-config/combined.yaml (the same configuration in one module), two
workers, in front of the demo upstream, which also serves the demo issuer's JWKS. Every test runs
against both (the `chain` fixture, conftest.py): the combined module must behave exactly as the
chain."""

import json

HARDENED = {"x-frame-options": "deny", "x-content-type-options": "nosniff", "referrer-policy": "no-referrer"}


def hardened(r):
    for name, value in HARDENED.items():
        assert r.header(name) == value, (name, r.status)
    assert r.header("server") is None and r.header("x-powered-by") is None


def test_public_paths_need_no_token_and_are_hardened(chain):
    e, _ = chain
    r = e.get("/hello")
    assert r.status == 200
    hardened(r)


def test_api_needs_a_token_and_the_401_is_hardened(chain):
    e, key = chain
    r = e.get("/api/orders")
    assert r.status == 401
    assert r.header("www-authenticate").startswith("Bearer")
    hardened(r)
    ok = e.get("/api/orders", headers={"authorization": f"Bearer {key.token({'sub': 'ada'})}",
                                       "x-palisade-claim-sub": "mallory"})
    assert ok.status == 200
    seen = ok.json()["headers"]
    assert seen["x-palisade-claim-sub"] == "ada", "the spoofed header was replaced by the verified claim"
    hardened(ok)


def test_admin_scope_gets_403_hardened(chain):
    e, key = chain
    r = e.get("/api/admin/users", headers={"authorization": f"Bearer {key.token({'scope': 'read'})}"})
    assert r.status == 403
    hardened(r)


def test_validation_runs_after_authentication(chain):
    e, key = chain
    auth = {"authorization": f"Bearer {key.token()}", "content-type": "application/json"}
    bad = e.request("POST", "/api/users", body=json.dumps({"email": "nope", "password": "x", "name": ""}), headers=auth)
    assert bad.status == 400
    assert bad.header("content-type") == "application/problem+json"
    hardened(bad)
    # Without a token the body is never looked at: 401, not 400.
    anon = e.request("POST", "/api/users", body="{}", headers={"content-type": "application/json"})
    assert anon.status == 401
    good = e.request("POST", "/api/users", body=json.dumps({"email": "ada@example.com", "password": "s3cret!", "name": "Ada"}), headers=auth)
    assert good.status == 201
    assert "password" not in good.json(), "scrubbed on the way back"
    hardened(good)


def test_login_rate_limit_429_is_hardened(chain):
    e, _ = chain
    statuses = [e.get("/login").status for _ in range(7)]
    assert statuses == [200] * 5 + [429] * 2
    r = e.get("/login")
    assert r.status == 429 and int(r.header("retry-after")) >= 1
    hardened(r)
