"""JWT attestation for cases with ``setup.attestation: jwt``.

The runner plays the Kubernetes API server: it holds an RSA signing key, gives
the reference server its public key as a JWKS file (the server's ``[jwt]``
configuration), and hands the conformance client a projected service-account
token of the Kubernetes shape. The token is a reusable attestation (spec 8.7.3):
the client may enrol with it again after its certificate expired (9.7.1).

Tokens are signed with ``cryptography`` (RS256 is RSASSA-PKCS1-v1_5 with
SHA-256 over ``base64url(header).base64url(claims)``), so the runner needs no
JWT library.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ISSUER: Final = "https://kubernetes.default.svc"
AUDIENCE: Final = "secinfra"
KEY_ID: Final = "conformance-1"
#: The namespace of every workload a JWT case enrols (its SPIFFE ID is
#: ``spiffe://<td>/ns/conformance/sa/<case>`` by the server's default template).
NAMESPACE: Final = "conformance"
TOKEN_TTL_SECONDS: Final = 900


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _uint(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


class JwtIssuer:
    """One signing key for the whole run (made on first use)."""

    def __init__(self) -> None:
        self._key: rsa.RSAPrivateKey | None = None
        self._lock = threading.Lock()

    def _signing_key(self) -> rsa.RSAPrivateKey:
        with self._lock:
            if self._key is None:
                self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            return self._key

    def jwks(self) -> dict[str, Any]:
        """The public key as a JSON Web Key Set (what the server verifies against)."""
        numbers = self._signing_key().public_key().public_numbers()
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "kid": KEY_ID,
                    "alg": "RS256",
                    "use": "sig",
                    "n": _uint(numbers.n),
                    "e": _uint(numbers.e),
                }
            ]
        }

    def write_server_config(self, directory: Path) -> Path:
        """Write the JWKS and a server TOML file with its ``[jwt]`` table; the TOML path."""
        jwks = directory / "jwks.json"
        jwks.write_text(json.dumps(self.jwks()))
        config = directory / "server.toml"
        config.write_text(
            "[jwt]\n"
            f"issuer = {json.dumps(ISSUER)}\n"
            f"audiences = [{json.dumps(AUDIENCE)}]\n"
            f"jwks_file = {json.dumps(str(jwks))}\n"
        )
        return config

    def token(self, service_account: str, *, ttl_seconds: int = TOKEN_TTL_SECONDS) -> str:
        """A signed projected service-account token for ``NAMESPACE/service_account``."""
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "kid": KEY_ID}
        claims = {
            "iss": ISSUER,
            "aud": [AUDIENCE],
            "sub": f"system:serviceaccount:{NAMESPACE}:{service_account}",
            "iat": now,
            "nbf": now,
            "exp": now + ttl_seconds,
            "kubernetes.io": {
                "namespace": NAMESPACE,
                "serviceaccount": {"name": service_account, "uid": service_account},
            },
        }
        signing_input = ".".join(
            _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        )
        signature = self._signing_key().sign(
            signing_input.encode(), padding.PKCS1v15(), hashes.SHA256()
        )
        return f"{signing_input}.{_b64url(signature)}"


#: The run's issuer, shared by every JWT case.
ISSUER_FOR_RUN: Final = JwtIssuer()
