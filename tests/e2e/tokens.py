"""Keys, JWKS documents and tokens for the token-filter tests, made with PyJWT, `cryptography`
and pyseto: an implementation independent of the filter under test."""

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pyseto
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm, RSAPSSAlgorithm

ISSUER = "https://issuer.palisade.test"
AUDIENCE = "palisade-demo"


class Key:
    """A signing key with its public JWK."""

    def __init__(self, alg, kid):
        self.alg, self.kid = alg, kid
        if alg.startswith(("RS", "PS")):
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            algo = RSAPSSAlgorithm if alg.startswith("PS") else RSAAlgorithm
            jwk = json.loads(algo.to_jwk(self.private.public_key()))
        elif alg == "ES256":
            self.private = ec.generate_private_key(ec.SECP256R1())
            jwk = json.loads(ECAlgorithm.to_jwk(self.private.public_key()))
        elif alg == "ES384":
            self.private = ec.generate_private_key(ec.SECP384R1())
            jwk = json.loads(ECAlgorithm.to_jwk(self.private.public_key()))
        elif alg == "EdDSA":
            self.private = ed25519.Ed25519PrivateKey.generate()
            jwk = json.loads(OKPAlgorithm.to_jwk(self.private.public_key()))
        else:
            raise ValueError(alg)
        jwk.update({"kid": kid, "alg": alg, "use": "sig"})
        self.jwk = jwk

    def token(self, claims=None, headers=None, lifetime=300, **overrides):
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "iat": now, "exp": now + lifetime}
        body.update(claims or {})
        for k, v in overrides.items():
            if v is None:
                body.pop(k, None)
            else:
                body[k] = v
        return jwt.encode(body, self.private, algorithm=self.alg, headers={"kid": self.kid, **(headers or {})})


def jwks(*keys):
    return {"keys": [k.jwk for k in keys]}


def unsigned_token(claims):
    """An `alg: none` token (never valid)."""
    b64 = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


def hs256_by_hand(header, claims, secret):
    """An HS256 token signed with any bytes as the secret (PyJWT rightly refuses PEM keys)."""
    import hashlib
    import hmac
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(sig)}"


# The Ed25519 identity point (y = 1): a public key of small order. With it, the signature
# R = identity, s = 0 satisfies the verification equation [s]B = R + [k]A for every message.
ED25519_IDENTITY = bytes([1]) + bytes(31)


def small_order_ed25519_jwk(kid):
    x = base64.urlsafe_b64encode(ED25519_IDENTITY).rstrip(b"=").decode()
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"}


def forged_for_small_order_key(kid, claims):
    """A token anyone can make for `small_order_ed25519_jwk(kid)`, without any private key."""
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    signing_input = f"{b64(json.dumps({'alg': 'EdDSA', 'kid': kid}).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(ED25519_IDENTITY + bytes(32))}"


def paseto_key():
    """A v4.public key pair: (pyseto private key, 'k4.public...' PASERK of the public key)."""
    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public_pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    sk = pyseto.Key.new(version=4, purpose="public", key=pem)
    pk = pyseto.Key.new(version=4, purpose="public", key=public_pem)
    return sk, pk.to_paserk()


def paseto_token(sk, claims=None, footer=b"", implicit=b"", lifetime=300):
    now = time.time()
    body = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": "user-p",
        "iat": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "exp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + lifetime)),
    }
    body.update(claims or {})
    return pyseto.encode(sk, json.dumps(body).encode(), footer=footer, implicit_assertion=implicit).decode()


class JwksServer:
    """Serves a JWKS (and an OpenID discovery document) on 127.0.0.1; contents can change."""

    def __init__(self, port=0, document=None):
        self.document = document or {"keys": []}
        self.requests = 0
        self.port = port
        self.server = None

    def start(self):
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                owner.requests += 1
                if self.path.startswith("/.well-known/openid-configuration"):
                    body = json.dumps({"issuer": ISSUER,
                                       "jwks_uri": f"http://{self.headers.get('host', 'x')}/.well-known/jwks.json"}).encode()
                elif self.path.startswith("/.well-known/jwks.json"):
                    body = json.dumps(owner.document).encode()
                else:
                    self.send_response(404)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
