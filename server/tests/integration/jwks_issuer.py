"""A token issuer the tests run: a real HTTPS server on loopback that serves an
OpenID discovery document and a JWK Set, with signing keys the test rotates.

It plays a Kubernetes API server's service-account issuer (which serves exactly
these two documents), so the attestor fetches keys over real TLS from a real
socket. It is not an identity provider: people's login is tested against Dex.
"""

from __future__ import annotations

import datetime as dt
import http.server
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def loopback_tls(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a serving certificate for 127.0.0.1: (ca.pem, cert.pem, key.pem)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("test issuer CA"))
        .issuer_name(_name("test issuer CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    paths = (directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        issuer = self.server.owner
        issuer.requests.append(self.path)
        if self.path == "/.well-known/openid-configuration":
            body: Any = {
                "issuer": issuer.url,
                "jwks_uri": issuer.url + "/openid/v1/jwks",
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            }
        elif self.path == "/openid/v1/jwks":
            body = {"keys": [issuer.public_jwk(kid) for kid in issuer.published]}
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    owner: JwksIssuer


class JwksIssuer:
    """An HTTPS issuer on 127.0.0.1 with named RSA keys; ``published`` says
    which the JWK Set shows (rotate by changing it)."""

    def __init__(self, directory: Path) -> None:
        self.ca_file, cert, key = loopback_tls(directory)
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self._httpd.server_address[1]}"
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.published: list[str] = []
        self.requests: list[str] = []
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def start(self) -> JwksIssuer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def add_key(self, kid: str, *, publish: bool = True) -> rsa.RSAPrivateKey:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if publish:
            self.published.append(kid)
        return self.keys[kid]

    def public_jwk(self, kid: str) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.keys[kid].public_key()))
        return {**jwk, "kid": kid, "alg": "RS256", "use": "sig"}

    def jwks_fetches(self) -> int:
        return self.requests.count("/openid/v1/jwks")

    def service_account_token(
        self,
        kid: str,
        *,
        audience: str,
        namespace: str = "payments",
        account: str = "api",
        pod: str | None = None,
        lifetime: int = 600,
        key: Any = None,
        issuer: str | None = None,
    ) -> str:
        """A projected service-account token shaped as Kubernetes issues them."""
        now = int(time.time())
        k8s: dict[str, Any] = {
            "namespace": namespace,
            "serviceaccount": {"name": account, "uid": f"uid-{account}"},
        }
        if pod is not None:
            k8s["pod"] = {"name": pod, "uid": f"uid-{pod}"}
        claims = {
            "iss": issuer or self.url,
            "aud": [audience],
            "sub": f"system:serviceaccount:{namespace}:{account}",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "kubernetes.io": k8s,
        }
        signer = key if key is not None else self.keys[kid]
        return jwt.encode(claims, signer, algorithm="RS256", headers={"kid": kid})


def running_issuer(directory: Path) -> Iterator[JwksIssuer]:
    """A started issuer that is stopped afterwards (for fixtures)."""
    issuer = JwksIssuer(directory).start()
    try:
        yield issuer
    finally:
        issuer.stop()
