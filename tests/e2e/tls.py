"""A self-signed certificate and an HTTPS listener, for tests of HTTPS-only behaviour."""

import copy
import http.client
import os
import ssl
import subprocess
import tempfile

import harness


def self_signed_cert():
    """Writes a throwaway self-signed certificate for localhost; returns (cert path, key path)."""
    d = tempfile.mkdtemp(prefix="palisade-tls-")
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def add_https_listener(config, port):
    """Adds a copy of the first listener that terminates TLS on `port`."""
    cert, key = self_signed_cert()
    listener = copy.deepcopy(config["static_resources"]["listeners"][0])
    listener["name"] = "ingress_tls"
    listener["address"]["socket_address"]["port_value"] = port
    for chain in listener["filter_chains"]:
        chain["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                "common_tls_context": {
                    "tls_certificates": [
                        {"certificate_chain": {"filename": cert}, "private_key": {"filename": key}}
                    ]
                },
            },
        }
    config["static_resources"]["listeners"].append(listener)


def _request(ctx, port, method, path, headers):
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return harness.Response(resp.status, [(k.lower(), v) for k, v in resp.getheaders()], data)
    finally:
        conn.close()


def https_request(port, method="GET", path="/", headers=None):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return _request(ctx, port, method, path, headers)


def _openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


def make_ca(directory, name="ca"):
    """A throwaway P-256 certificate authority in `directory`; returns (cert path, key path)."""
    cert, key = os.path.join(directory, f"{name}.pem"), os.path.join(directory, f"{name}.key")
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", key, "-out", cert, "-days", "1", "-subj", f"/CN=palisade test {name}",
    )
    return cert, key


def issue_cert(directory, ca, name, san):
    """A leaf certificate signed by `ca` (cert, key) with `san` as its subjectAltName (e.g.
    "URI:spiffe://cluster.local/ns/a/sa/b" or "DNS:localhost,IP:127.0.0.1"; None for none).
    Returns (cert path, key path)."""
    cert, key = os.path.join(directory, f"{name}.pem"), os.path.join(directory, f"{name}.key")
    csr = os.path.join(directory, f"{name}.csr")
    req = ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
           "-keyout", key, "-out", csr, "-subj", f"/CN={name}"]
    if san:
        req += ["-addext", f"subjectAltName={san}"]
    _openssl(*req)
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
        "-out", cert, "-days", "1", "-copy_extensions", "copy",
    )
    return cert, key


def add_mtls_listener(config, port, ca_cert, server, require_client_certificate=True, name="ingress_mtls"):
    """Adds a copy of the first listener that terminates TLS on `port` with `server` (cert, key)
    and validates client certificates against `ca_cert` (required, or only when presented)."""
    listener = copy.deepcopy(config["static_resources"]["listeners"][0])
    listener["name"] = name
    listener["address"]["socket_address"]["port_value"] = port
    for chain in listener["filter_chains"]:
        chain["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                "require_client_certificate": require_client_certificate,
                "common_tls_context": {
                    "tls_certificates": [
                        {"certificate_chain": {"filename": server[0]}, "private_key": {"filename": server[1]}}
                    ],
                    "validation_context": {"trusted_ca": {"filename": ca_cert}},
                },
            },
        }
    config["static_resources"]["listeners"].append(listener)


def mtls_request(port, ca_cert, client=None, method="GET", path="/", headers=None):
    """One HTTPS request to 127.0.0.1 that verifies the server against `ca_cert` and presents
    `client` (cert, key) when given."""
    ctx = ssl.create_default_context(cafile=ca_cert)
    if client:
        ctx.load_cert_chain(*client)
    return _request(ctx, port, method, path, headers)
