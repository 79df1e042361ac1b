"""End-to-end: the token filter in a real Envoy (two workers), with keys served by a real JWKS
server as an Envoy cluster and tokens minted by PyJWT / pyseto (not by the code under test)."""

import base64
import json
import re
import time

import pytest

import harness
import tokens
from tokens import AUDIENCE, ISSUER, JwksServer, Key

F = "palisade.token_auth"


wait_until = harness.wait_until


def provider(**extra):
    p = {
        "name": "demo",
        "issuer": ISSUER,
        "audiences": [AUDIENCE],
        "jwks_uri": {"cluster": "jwks_server", "path": "/.well-known/jwks.json"},
        "refresh": {"interval_secs": 600, "retry_base_ms": 300, "retry_max_ms": 1000,
                    "unknown_kid_refetch_secs": 1},
        "claim_to_headers": [{"claim": "sub", "header": "x-palisade-claim-sub"},
                             {"claim": "scope", "header": "x-palisade-claim-scope"}],
    }
    p.update(extra)
    return p


def config(providers=None, **extra):
    return {F: {"realm": "api", "providers": providers or [provider()], **extra}}


@pytest.fixture
def keyset():
    return {alg: Key(alg, f"k-{alg.lower()}") for alg in ["RS256", "PS256", "ES256", "ES384", "EdDSA"]}


@pytest.fixture
def jwks(keyset):
    server = JwksServer(document=tokens.jwks(*keyset.values())).start()
    yield server
    server.stop()


@pytest.fixture
def token_envoy(envoy, jwks):
    def start(cfg=None, **kw):
        e = envoy("token-auth.yaml", cfg or config(), clusters={"jwks_server": jwks.port}, concurrency=2, **kw)
        # The keys are fetched on the filter's first tick.
        assert wait_until(lambda: e.counter("palisade_token_jwks_fetch_success_total") >= 1), e.logs()[-2000:]
        return e
    return start


def bearer(token):
    return {"authorization": f"Bearer {token}"}


def test_valid_tokens_of_every_algorithm_pass_and_claims_reach_the_upstream(token_envoy, keyset):
    e = token_envoy()
    for alg, key in keyset.items():
        r = e.get("/orders", headers=bearer(key.token({"sub": f"user-{alg}", "scope": "read"})))
        assert r.status == 200, (alg, r.body)
        seen = r.json()["headers"]
        assert seen["x-palisade-claim-sub"] == f"user-{alg}"
        assert seen["x-palisade-claim-scope"] == "read"
        assert "authorization" not in seen, "the token is stripped before the upstream"
    assert e.counter("palisade_token_allowed_total") == len(keyset)
    # RS256, ES256 and ES384 were checked by Envoy's BoringSSL (verify_signature), natively;
    # PS256 and EdDSA in wasm. No RSA/ECDSA check fell back to the wasm path.
    assert e.counter("palisade_token_host_signature_checks_total") == 3
    assert e.counter("palisade_token_host_signature_unavailable_total") == 0


def test_missing_token_gets_401_with_rfc6750_challenge(token_envoy):
    e = token_envoy()
    r = e.get("/orders")
    assert r.status == 401
    assert r.header("www-authenticate").startswith('Bearer realm="api"')
    assert r.header("content-type") == "application/json"
    assert r.json()["status"] == 401
    # Envoy's request id, taken from the headers the filter had read.
    assert re.fullmatch(harness.UUID, r.json()["request_id"])
    assert e.counter("palisade_token_denied_missing_total") == 1
    # Denials are counted, and logged only at debug: a flood writes no line per request at info.
    assert "denied" not in e.logs()


@pytest.mark.parametrize("mutate, reason", [
    (lambda k: k.token(exp=int(time.time()) - 3600), "expired"),
    (lambda k: k.token(aud="someone-else"), "audience"),
    (lambda k: k.token(iss="https://evil.example"), "issuer"),
    (lambda k: k.token(exp=None), "missing_exp"),
    (lambda k: k.token(nbf=int(time.time()) + 3600), "not_yet_valid"),
    (lambda k: k.token()[:-6] + "AAAAAA", "bad_signature"),
    (lambda k: tokens.unsigned_token({"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": int(time.time()) + 60}), "algorithm"),
    (lambda k: "not.a.jwt", "malformed"),
    (lambda k: "e30." * 3000, "too_large"),
])
def test_bad_tokens_get_401_invalid_token(token_envoy, keyset, mutate, reason):
    e = token_envoy()
    token = mutate(keyset["RS256"])
    r = e.get("/orders", headers=bearer(token))
    assert r.status == 401, r.body
    challenge = r.header("www-authenticate")
    assert 'error="invalid_token"' in challenge
    assert token[:20] not in r.body.decode() and token[:20] not in challenge, "never echo the token"
    assert e.counter(f"palisade_token_denied_{reason}_total") == 1


def test_algorithm_comes_from_the_key_not_the_token(token_envoy, keyset):
    e = token_envoy()
    rsa = keyset["RS256"]
    # HS256 signed with the RSA public key as the HMAC secret (the classic confusion attack).
    public_pem = rsa.private.public_key().public_bytes(
        tokens.serialization.Encoding.PEM, tokens.serialization.PublicFormat.SubjectPublicKeyInfo)
    now = int(time.time())
    forged = tokens.hs256_by_hand({"alg": "HS256", "kid": rsa.kid},
                                  {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": now + 60}, public_pem)
    assert e.get("/orders", headers=bearer(forged)).status == 401
    # A PS256 signature under the RS256 key's kid does not verify either.
    ps = Key("PS256", rsa.kid)
    ps.private = rsa.private
    assert e.get("/orders", headers=bearer(ps.token())).status == 401
    # An attacker key embedded in the token header is never trusted.
    attacker = Key("RS256", "attacker")
    embedded = attacker.token(headers={"jwk": attacker.jwk, "kid": rsa.kid})
    assert e.get("/orders", headers=bearer(embedded)).status == 401


def test_per_route_requirements_and_scopes(token_envoy, keyset):
    cfg = config(requires={"providers": ["demo"]}, rules=[
        {"name": "public", "match": {"path": {"prefix": "/public"}}, "requires": {"mode": "none"}},
        {"name": "admin", "match": {"path": {"prefix": "/admin"}}, "scopes": ["admin"]},
        {"name": "optional", "match": {"path": {"prefix": "/maybe"}}, "allow_missing": True},
    ])
    e = token_envoy(cfg)
    key = keyset["ES256"]
    assert e.get("/public/docs").status == 200
    r = e.get("/admin/users", headers=bearer(key.token({"scope": "read write"})))
    assert r.status == 403
    assert 'error="insufficient_scope"' in r.header("www-authenticate")
    assert r.json()["error"] == "insufficient_scope"
    assert e.get("/admin/users", headers=bearer(key.token({"scope": "read admin"}))).status == 200
    assert e.get("/maybe").status == 200
    assert e.get("/maybe", headers=bearer("garbage")).status == 401
    assert e.get("/orders").status == 401


def test_spoofed_claim_headers_never_reach_the_upstream(token_envoy, keyset):
    cfg = config(rules=[{"name": "public", "match": {"path": {"prefix": "/public"}}, "requires": {"mode": "none"}}])
    e = token_envoy(cfg)
    spoof = {"x-palisade-claim-sub": "admin", "x-palisade-claim-scope": "admin"}
    seen = e.get("/public", headers=spoof).json()["headers"]
    assert "x-palisade-claim-sub" not in seen and "x-palisade-claim-scope" not in seen
    seen = e.get("/orders", headers={**spoof, **bearer(keyset["EdDSA"].token({"sub": "alice"}))}).json()["headers"]
    assert seen["x-palisade-claim-sub"] == "alice"
    assert "x-palisade-claim-scope" not in seen


def test_nested_and_array_claims_to_headers(token_envoy, keyset):
    cfg = config([provider(claim_to_headers=[
        {"claim": "org.team", "header": "x-palisade-claim-team"},
        {"claim": "roles", "header": "x-palisade-claim-roles"},
    ], payload_header="x-palisade-payload")])
    e = token_envoy(cfg)
    token = keyset["RS256"].token({"org": {"team": "payments"}, "roles": ["a", "b"]})
    seen = e.get("/", headers=bearer(token)).json()["headers"]
    assert seen["x-palisade-claim-team"] == "payments"
    assert json.loads(seen["x-palisade-claim-roles"]) == ["a", "b"]
    payload = json.loads(base64.urlsafe_b64decode(seen["x-palisade-payload"] + "=="))
    assert payload["org"] == {"team": "payments"}


def test_key_rotation_new_kid_accepted_without_restart(token_envoy, jwks, keyset):
    e = token_envoy()
    rotated = Key("ES256", "k-rotated")
    assert e.get("/", headers=bearer(rotated.token())).status == 401  # not published yet
    time.sleep(1.1)  # the unknown-kid refetch is rate limited (1 s in this config)
    jwks.document = tokens.jwks(*keyset.values(), rotated)
    r = e.get("/", headers=bearer(rotated.token({"sub": "rotated"})))
    assert r.status == 200, r.body
    assert r.json()["headers"]["x-palisade-claim-sub"] == "rotated"
    assert e.counter("palisade_token_jwks_unknown_kid_refetch_total") >= 1


def test_a_fetched_key_anyone_could_sign_for_is_skipped(token_envoy, jwks, keyset):
    # A JWKS that publishes a small-order Ed25519 key beside good ones (a broken or tampered key
    # set): a token "signed" for it without any private key must not pass.
    jwks.document = {"keys": [*tokens.jwks(*keyset.values())["keys"], tokens.small_order_ed25519_jwk("weak")]}
    e = token_envoy()
    now = int(time.time())
    forged = tokens.forged_for_small_order_key(
        "weak", {"iss": ISSUER, "aud": AUDIENCE, "sub": "attacker", "iat": now, "exp": now + 300})
    r = e.get("/", headers=bearer(forged))
    assert r.status == 401, r.body
    assert e.counter("palisade_token_denied_unknown_kid_total") == 1
    # The other keys of the same document were installed.
    assert e.get("/", headers=bearer(keyset["EdDSA"].token())).status == 200
    assert "JWKS key skipped: keys[5] (kid 'weak'): the key is not a valid public key: an Ed25519 key " \
        "of small order" in e.logs()
    # Logged once per fetch, by the VM that fetched (not again by each worker loading the keys).
    fetches = lambda: e.counter("palisade_token_jwks_fetch_success_total")
    assert wait_until(lambda: e.logs().count("JWKS key skipped") == fetches()), \
        (e.logs().count("JWKS key skipped"), fetches())


def test_keys_found_through_openid_discovery(envoy, jwks, keyset):
    # The issuer's /.well-known/openid-configuration names the JWKS; both come through the cluster.
    disco = provider(jwks_uri=None, discovery={"cluster": "jwks_server"})
    del disco["jwks_uri"]
    e = envoy("token-auth.yaml", config([disco]), clusters={"jwks_server": jwks.port}, concurrency=2)
    assert wait_until(lambda: e.counter("palisade_token_jwks_fetch_success_total") >= 1), e.logs()[-2000:]
    r = e.get("/", headers=bearer(keyset["EdDSA"].token({"sub": "discovered"})))
    assert r.status == 200, r.body
    assert r.json()["headers"]["x-palisade-claim-sub"] == "discovered"
    assert jwks.requests >= 2, "the discovery document, then the JWKS it names"


def test_jwks_down_at_start_answers_503_then_recovers(envoy, keyset):
    port = harness.free_port()  # nothing listens there yet
    e = envoy("token-auth.yaml", config(), clusters={"jwks_server": port}, concurrency=2)
    assert wait_until(lambda: e.counter("palisade_token_jwks_fetch_failure_total") >= 1)
    r = e.get("/", headers=bearer(keyset["RS256"].token()))
    assert r.status == 503, "no keys yet: the client did nothing wrong"
    assert int(r.header("retry-after")) >= 1
    assert r.header("www-authenticate") is None
    assert e.counter("palisade_token_denied_keys_unavailable_total") == 1
    server = JwksServer(port=port, document=tokens.jwks(*keyset.values())).start()
    try:
        assert wait_until(lambda: e.get("/", headers=bearer(keyset["RS256"].token())).status == 200, timeout=20)
        assert e.counter("palisade_token_jwks_fetch_success_total") >= 1
    finally:
        server.stop()


def test_last_known_good_keys_survive_a_jwks_outage(token_envoy, jwks, keyset):
    e = token_envoy(config([provider(refresh={"interval_secs": 1, "retry_base_ms": 200, "retry_max_ms": 500})]))
    jwks.stop()
    # Refreshes fail from now on (every second); wait until at least two have.
    assert wait_until(lambda: e.counter("palisade_token_jwks_fetch_failure_total") >= 2, timeout=30)
    assert e.get("/", headers=bearer(keyset["ES384"].token())).status == 200


def test_paseto_v4_public(token_envoy):
    sk, paserk = tokens.paseto_key()
    cfg = config([
        provider(),
        {"name": "paseto", "issuer": ISSUER, "audiences": [AUDIENCE],
         "paseto": {"keys": [{"public_key": paserk}], "implicit_assertion": "tenant-7"},
         "claim_to_headers": [{"claim": "sub", "header": "x-palisade-claim-sub"}]},
    ])
    e = token_envoy(cfg)
    good = tokens.paseto_token(sk, implicit=b"tenant-7")
    r = e.get("/", headers=bearer(good))
    assert r.status == 200, r.body
    assert r.json()["headers"]["x-palisade-claim-sub"] == "user-p"
    assert e.get("/", headers=bearer(tokens.paseto_token(sk, implicit=b"tenant-8"))).status == 401
    assert e.get("/", headers=bearer(tokens.paseto_token(sk, implicit=b"tenant-7", lifetime=-60))).status == 401


def test_hmac_secret_from_the_vm_environment(envoy, jwks):
    secret = "s" * 40
    cfg = config([{"name": "internal", "issuer": ISSUER, "audiences": [AUDIENCE],
                   "hmac_secret_env": "PALISADE_TEST_HMAC"}])

    def with_env(c):
        for hf in harness.wasm_filters(c):
            hf["typed_config"]["config"]["vm_config"]["environment_variables"] = {
                "key_values": {"PALISADE_TEST_HMAC": secret}}

    e = envoy("token-auth.yaml", cfg, clusters={"jwks_server": jwks.port}, mutate=with_env)
    now = int(time.time())
    good = tokens.jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "svc", "exp": now + 60}, secret, algorithm="HS256")
    bad = tokens.jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "svc", "exp": now + 60}, "x" * 40, algorithm="HS256")
    assert e.get("/", headers=bearer(good)).status == 200
    assert e.get("/", headers=bearer(bad)).status == 401


def test_cache_makes_a_hot_token_a_lookup(token_envoy, keyset):
    e = token_envoy()
    token = keyset["RS256"].token()
    for _ in range(5):
        assert e.get("/", headers=bearer(token)).status == 200
    # Two workers: at most one miss per worker, the rest are hits.
    assert e.counter("palisade_token_cache_hits_total") >= 3
    assert e.counter("palisade_token_cache_misses_total") <= 2


def test_bad_config_is_refused_with_the_field_named(refused):
    bad = config([provider(jwks_uri={"cluster": "jwks_server", "path": "jwks.json"})])
    code, logs = refused("token-auth.yaml", bad)
    assert code not in (None, 0)
    line = next(l for l in logs.splitlines() if "invalid configuration" in l)
    assert "providers[0].jwks_uri.path" in line, line
