"""End-to-end: header values that are not UTF-8.

HTTP/1 allows bytes 0x80-0xFF in header values (obs-text) and Envoy passes them on, in both
directions. A filter must decide on such a request like on any other (the proxy-wasm SDK's header
reads panic on them, which stops the filter's VM), and a header it writes back must carry the
bytes the upstream sent. http.client writes and reads header values as Latin-1, so "café" below
travels as the bytes 63 61 66 E9.
"""

import pytest

import harness
import upstream as upstream_mod
from tokens import Key

NOT_UTF8 = "caf\u00e9"
PATH = "/api/orders"  # needs a token wherever a token policy runs


def envoy_for(envoy, upstream, config_name):
    # token-auth.yaml fetches keys from the `jwks_server` cluster: the demo upstream serves them.
    return envoy(config_name, clusters={"jwks_server": upstream.port})


@pytest.fixture
def keys():
    key = Key("ES256", "bytes-1")
    upstream_mod.Handler.jwks = {"keys": [key.jwk]}
    yield key
    upstream_mod.Handler.jwks = None


@pytest.mark.parametrize("config_name", [
    "security-headers.yaml", "rate-limit.yaml", "input-validation.yaml", "token-auth.yaml",
    "palisade.yaml", "combined.yaml",
])
def test_a_request_header_that_is_not_utf8_is_decided_like_any_other(envoy, upstream, keys, config_name):
    e = envoy_for(envoy, upstream, config_name)
    auth = {"authorization": f"Bearer {keys.token()}"}
    clean = e.get(PATH, headers=auth)
    # With a token the filters accept (the JWKS fetch may still be under way: wait for it).
    assert harness.wait_until(lambda: e.get(PATH, headers=auth).status == 200), (clean.status, clean.body)

    odd = e.get(PATH, headers={**auth, "x-note": NOT_UTF8, "user-agent": "\u00ff\u00fe"})
    assert odd.status == 200, odd.body
    # What reached the upstream is what the client sent.
    assert odd.json()["headers"]["x-note"] == NOT_UTF8

    # The filter is still there and still deciding: a request without a token is refused where
    # a token policy runs, and served where none does.
    expected = 401 if config_name in ("token-auth.yaml", "palisade.yaml", "combined.yaml") else 200
    assert e.get(PATH).status == expected
    assert e.get(PATH, headers={"x-note": NOT_UTF8}).status == expected
    assert "panicked" not in e.logs()


@pytest.mark.parametrize("config_name", ["token-auth.yaml", "combined.yaml"])
def test_a_token_that_is_not_utf8_is_refused_with_a_json_error(envoy, upstream, keys, config_name):
    e = envoy_for(envoy, upstream, config_name)
    r = e.get(PATH, headers={"authorization": f"Bearer {NOT_UTF8}"})
    assert r.status == 401, r.body
    assert r.header("content-type").startswith("application/")
    assert r.json()["status"] == 401
    good = {"authorization": f"Bearer {keys.token()}"}
    assert harness.wait_until(lambda: e.get(PATH, headers=good).status == 200)
    assert "panicked" not in e.logs()


def test_a_rate_limit_key_that_is_not_utf8_is_counted(envoy, upstream):
    e = envoy("rate-limit.yaml", {"palisade.rate_limit": {
        "limits": [{"name": "per_user", "requests": 2, "per": "hour", "key": {"header": "x-user"}}]}})
    odd = {"x-user": NOT_UTF8}
    assert [e.get("/", headers=odd).status for _ in range(3)] == [200, 200, 429]
    assert e.get("/", headers={"x-user": "cafe"}).status == 200
    assert "panicked" not in e.logs()


def test_response_headers_that_are_not_utf8_keep_their_bytes_when_hardened(envoy):
    e = envoy("security-headers.yaml")
    r = e.get("/latin1")
    assert r.status == 200, r.body
    assert r.header("x-note") == NOT_UTF8
    assert r.header("x-frame-options") == "deny", "the response was hardened"
    cookies = {c.split("=", 1)[0]: c for c in r.all("set-cookie")}
    # The same attributes as an ASCII cookie of the same shape gets, after the upstream's bytes.
    added = cookies["session"][len("session=abc123; Path=/"):]
    assert "secure" in added.lower() and "httponly" in added.lower()
    assert cookies["note"] == f"note={NOT_UTF8}; Path=/{added}"
    assert "panicked" not in e.logs()
