"""End-to-end: the combined module (envoy-config/combined.yaml) beyond what test_chain.py already
runs against it: configuration errors name the section, a request that waits for a key refetch
still has its body validated, every policy's metrics are reported, one VM holds them all."""

import copy
import json
import time

import pytest

import harness
import tokens
import upstream as upstream_mod
from tokens import Key

F = "palisade.combined"


def shipped():
    config = harness.load_config("combined.yaml")
    (plugin,) = harness.wasm_filters(config)
    return json.loads(plugin["typed_config"]["config"]["configuration"]["value"])


wait_until = harness.wait_until


@pytest.fixture
def rotating(envoy):
    """The shipped combined config, its JWKS served by the demo upstream, unknown-kid refetches
    allowed every second."""
    first = Key("RS256", "demo-1")
    upstream_mod.Handler.jwks = tokens.jwks(first)
    cfg = copy.deepcopy(shipped())
    cfg["token_auth"]["providers"][0]["refresh"]["unknown_kid_refetch_secs"] = 1
    try:
        e = envoy("combined.yaml", {F: cfg}, concurrency=2)
        assert wait_until(lambda: e.counter("palisade_token_jwks_fetch_success_total") >= 1), e.logs()[-2000:]
        yield e, first
    finally:
        upstream_mod.Handler.jwks = None


def test_a_request_waiting_for_a_key_refetch_still_has_its_body_validated(rotating):
    e, first = rotating
    # A new signing key, published after Envoy started: the request carrying it waits while the
    # token policy refetches the JWKS, and its body arrives meanwhile. The validation policy after
    # it must still see that body.
    second = Key("ES256", "demo-2")
    upstream_mod.Handler.jwks = tokens.jwks(first, second)
    auth = {"authorization": f"Bearer {second.token()}", "content-type": "application/json"}
    bad = e.request("POST", "/api/users", body=json.dumps({"email": "nope", "password": "x", "name": ""}), headers=auth)
    assert bad.status == 400, bad.body
    assert bad.header("content-type") == "application/problem+json"
    assert e.counter("palisade_token_jwks_unknown_kid_refetch_total") >= 1

    time.sleep(1.1)  # the unknown-kid refetch is rate limited (1 s here)
    third = Key("EdDSA", "demo-3")
    upstream_mod.Handler.jwks = tokens.jwks(first, second, third)
    good = e.request("POST", "/api/users",
                     body=json.dumps({"email": "ada@example.com", "password": "s3cret!", "name": "Ada"}),
                     headers={"authorization": f"Bearer {third.token()}", "content-type": "application/json"})
    assert good.status == 201, good.body
    assert "password" not in good.json(), "scrubbed on the way back"
    assert e.counter("palisade_token_jwks_unknown_kid_refetch_total") >= 2


def test_every_policy_reports_its_metrics(rotating):
    e, first = rotating
    assert e.get("/hello").status == 200
    assert e.get("/api/orders").status == 401
    ok = e.get("/api/orders", headers={"authorization": f"Bearer {first.token()}"})
    assert ok.status == 200
    assert e.counter("palisade_security_headers_responses_hardened_total") >= 3
    assert e.counter("palisade_rate_limit_allowed_total") >= 3
    assert e.counter("palisade_token_allowed_total") >= 1
    assert e.counter("palisade_token_denied_missing_total") >= 1
    # The 401 stopped at the token policy: validation saw only the two admitted requests.
    assert e.counter("palisade_input_validation_checked_total") == 2


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda c: c["token_auth"]["providers"][0]["jwks_uri"].update(path="jwks.json"),
         "token_auth.providers[0].jwks_uri.path"),
        (lambda c: c["rate_limit"]["limits"][0].update(per="fortnight"), "rate_limit.limits[0].per"),
        (lambda c: c.update(rate_limits={}), "rate_limits"),
        (lambda c: c.update(security_headers="strict"), "security_headers"),
        (lambda c: c.clear(), "no policy configured"),
    ],
    ids=["token", "rate-limit", "unknown-section", "not-an-object", "empty"],
)
def test_bad_config_is_refused_with_the_section_and_field_named(refused, mutate, field):
    cfg = copy.deepcopy(shipped())
    mutate(cfg)
    code, logs = refused("combined.yaml", {F: cfg})
    assert code not in (None, 0)
    line = next(l for l in logs.splitlines() if "invalid configuration" in l)
    assert "palisade combined" in line and field in line, line
