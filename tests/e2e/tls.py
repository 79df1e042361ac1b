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


def https_request(port, method="GET", path="/", headers=None):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return harness.Response(resp.status, [(k.lower(), v) for k, v in resp.getheaders()], data)
    finally:
        conn.close()
