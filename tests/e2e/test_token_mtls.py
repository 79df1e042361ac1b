"""End-to-end: the token filter's mTLS peer allow-list in a real Envoy. A test CA, server and
client certificates (with SPIFFE IDs as URI SANs) are made with openssl; Envoy validates client
certificates against the CA and the filter decides on the peer's SPIFFE ID, alone or with a token
minted by PyJWT."""

import http.client
import os
import shutil
import ssl
import tempfile

import pytest

import harness
import tls
import tokens
from tokens import AUDIENCE, ISSUER, JwksServer, Key

F = "palisade.token_auth"
CHECKOUT = "spiffe://cluster.local/ns/payments/sa/checkout"
REPORTING = "spiffe://cluster.local/ns/payments/sa/reporting"
STRANGER = "spiffe://evil.example/ns/payments/sa/checkout"


wait_until = harness.wait_until


@pytest.fixture(scope="module")
def pki():
    """CA, server certificate, and client certificates by name (removed afterwards)."""
    d = tempfile.mkdtemp(prefix="palisade-mtls-")
    try:
        ca = tls.make_ca(d)
        other_ca = tls.make_ca(d, "other-ca")
        certs = {
            "server": tls.issue_cert(d, ca, "server", "DNS:localhost,IP:127.0.0.1"),
            "checkout": tls.issue_cert(d, ca, "checkout", f"URI:{CHECKOUT}"),
            "reporting": tls.issue_cert(d, ca, "reporting", f"URI:{REPORTING}"),
            "stranger": tls.issue_cert(d, ca, "stranger", f"URI:{STRANGER}"),
            "no_uri": tls.issue_cert(d, ca, "no-uri", "DNS:checkout.payments.svc"),
            # The right SPIFFE ID, from a CA Envoy does not trust.
            "forged": tls.issue_cert(d, other_ca, "forged", f"URI:{CHECKOUT}"),
        }
        yield {"dir": d, "ca": ca[0], **certs}
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def key():
    return Key("ES256", "k-es256")


@pytest.fixture
def jwks(key):
    server = JwksServer(document=tokens.jwks(key)).start()
    yield server
    server.stop()


def plugin_config(**rules_extra):
    return {F: {
        "realm": "api",
        "providers": [{
            "name": "demo", "issuer": ISSUER, "audiences": [AUDIENCE],
            "jwks_uri": {"cluster": "jwks_server", "path": "/.well-known/jwks.json"},
            "claim_to_headers": [{"claim": "sub", "header": "x-palisade-claim-sub"}],
        }],
        "rules": [
            {"name": "peer", "match": {"path": {"prefix": "/peer"}},
             "peers": {"spiffe_ids": [CHECKOUT], "mode": "alone"}},
            {"name": "both", "match": {"path": {"prefix": "/both"}},
             "peers": {"spiffe_ids": [CHECKOUT], "mode": "and_token"}},
            {"name": "either", "match": {"path": {"prefix": "/either"}},
             "peers": {"trust_domains": ["cluster.local"], "mode": "or_token"}},
        ],
    }}


@pytest.fixture
def mtls_envoy(envoy, jwks, pki):
    """Envoy with the plain listener, an mTLS listener that requires a client certificate and one
    where it is optional (validated when presented)."""
    ports = {"required": harness.free_port(), "optional": harness.free_port()}

    def mutate(config):
        server = pki["server"]
        tls.add_mtls_listener(config, ports["required"], pki["ca"], server)
        tls.add_mtls_listener(config, ports["optional"], pki["ca"], server,
                              require_client_certificate=False, name="ingress_mtls_optional")

    e = envoy("token-auth.yaml", plugin_config(), clusters={"jwks_server": jwks.port},
              concurrency=2, mutate=mutate)
    assert wait_until(lambda: e.counter("palisade_token_jwks_fetch_success_total") >= 1), e.logs()[-2000:]
    e.extra_ports.update(ports)
    return e


def call(e, pki, path, client=None, token=None, listener="required"):
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return tls.mtls_request(e.extra_ports[listener], pki["ca"], pki[client] if client else None,
                            path=path, headers=headers)


def assert_forbidden(r, message):
    assert r.status == 403, r.body
    assert r.header("content-type") == "application/json"
    assert r.header("www-authenticate") is None, "no challenge can ask for a client certificate"
    body = r.json()
    assert (body["error"], body["message"], body["status"]) == ("forbidden", message, 403)


def test_listed_peer_passes_alone_and_others_get_403(mtls_envoy, pki):
    e = mtls_envoy
    r = call(e, pki, "/peer/orders", "checkout")
    assert r.status == 200, r.body
    seen = r.json()["headers"]
    assert not any(k.startswith("x-palisade-claim") for k in seen), seen

    for client in ["reporting", "stranger"]:
        assert_forbidden(call(e, pki, "/peer/orders", client), "the client is not allowed on this route")
    assert_forbidden(call(e, pki, "/peer/orders", "no_uri"), "the client certificate does not hold a SPIFFE ID")
    assert e.counter("palisade_token_denied_peer_total") == 3

    # No client certificate: on the optional-certificate listener and in plain text.
    assert_forbidden(call(e, pki, "/peer/orders", listener="optional"), "a client certificate is required")
    assert_forbidden(e.get("/peer/orders"), "a client certificate is required")
    assert e.counter("palisade_token_denied_peer_missing_total") == 2
    # The optional listener still honours a listed peer.
    assert call(e, pki, "/peer/orders", "checkout", listener="optional").status == 200
    assert e.counter("palisade_token_allowed_total") == 2


def test_envoy_refuses_missing_and_untrusted_client_certificates(mtls_envoy, pki):
    e = mtls_envoy
    # The filter trusts Envoy's certificate validation: these never reach it.
    for client, listener in [(None, "required"), ("forged", "required"), ("forged", "optional")]:
        with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException, OSError)):
            call(e, pki, "/peer/orders", client, listener=listener)
    assert e.counter("palisade_token_allowed_total") == 0
    assert e.counter("palisade_token_denied_peer_missing_total") == 0


def test_and_token_needs_the_peer_and_a_valid_token(mtls_envoy, pki, key):
    e = mtls_envoy
    token = key.token({"sub": "svc-checkout"})
    r = call(e, pki, "/both", "checkout", token)
    assert r.status == 200, r.body
    seen = r.json()["headers"]
    assert seen["x-palisade-claim-sub"] == "svc-checkout"
    assert "authorization" not in seen

    r = call(e, pki, "/both", "checkout")
    assert r.status == 401
    assert r.header("www-authenticate") == 'Bearer realm="api"'
    r = call(e, pki, "/both", "checkout", key.token(aud="someone-else"))
    assert r.status == 401 and 'error="invalid_token"' in r.header("www-authenticate")

    assert_forbidden(call(e, pki, "/both", "reporting", token), "the client is not allowed on this route")
    assert_forbidden(call(e, pki, "/both", listener="optional", token=token), "a client certificate is required")
    assert_forbidden(e.get("/both", headers={"authorization": f"Bearer {token}"}), "a client certificate is required")


def test_or_token_takes_a_peer_of_the_trust_domain_or_a_token(mtls_envoy, pki, key):
    e = mtls_envoy
    for client in ["checkout", "reporting"]:
        assert call(e, pki, "/either", client).status == 200, client
    r = call(e, pki, "/either", "stranger")
    assert r.status == 401 and r.header("www-authenticate") == 'Bearer realm="api"'
    assert call(e, pki, "/either", "stranger", key.token()).status == 200
    assert e.get("/either", headers={"authorization": f"Bearer {key.token()}"}).status == 200
    assert e.get("/either").status == 401


def test_token_routes_ignore_the_peer(mtls_envoy, pki, key):
    e = mtls_envoy
    # A listed peer is no token on a route without `peers`; a token works on every listener.
    r = call(e, pki, "/orders", "checkout")
    assert r.status == 401
    assert call(e, pki, "/orders", "checkout", key.token()).status == 200
    assert call(e, pki, "/orders", listener="optional", token=key.token()).status == 200
    assert e.get("/orders", headers={"authorization": f"Bearer {key.token()}"}).status == 200


def test_bad_peer_config_is_refused_with_the_field_named(refused):
    bad = plugin_config()
    bad[F]["rules"][0]["peers"]["spiffe_ids"] = ["spiffe://Cluster.local/ns/a"]
    code, logs = refused("token-auth.yaml", bad)
    assert code not in (None, 0)
    line = next(l for l in logs.splitlines() if "invalid configuration" in l)
    assert "rules[0].peers.spiffe_ids[0]" in line and "is not a SPIFFE ID" in line, line
