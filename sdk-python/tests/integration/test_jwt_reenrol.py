"""JWT re-enrolment after expiry (spec 9.7): a JWT client re-enrols by itself.

The join-token counterpart (IdentityExpired) is in test_rotation.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

import secinfra
from secinfra import RotationEvent, RotationKind
from secinfra.testing import ReferenceServer

ISSUER = "https://kubernetes.default.svc"
AUDIENCE = "secinfra"
KID = "k8s-1"
EXPECTED_ID = "spiffe://secinfra.local/ns/payments/sa/api"


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def jwt_server(tmp_path: Path, signing_key: rsa.RSAPrivateKey) -> Iterator[ReferenceServer]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key.public_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": KID, "alg": "RS256", "use": "sig"}]}))
    # The JWT settings are a [jwt] table of the server's TOML configuration
    # (the server has no command-line flags for them).
    config = tmp_path / "server.toml"
    config.write_text(
        f"[jwt]\nissuer = {json.dumps(ISSUER)}\naudiences = [{json.dumps(AUDIENCE)}]\n"
        f"jwks_file = {json.dumps(str(jwks))}\n"
    )
    with ReferenceServer(config=str(config)) as server:
        yield server


def _provider(key: rsa.RSAPrivateKey, issued: list[str]) -> Callable[[], str]:
    """A JWT provider that signs a fresh Kubernetes-shaped token on every call."""

    def token() -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": [AUDIENCE],
            "sub": "system:serviceaccount:payments:api",
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "kubernetes.io": {
                "namespace": "payments",
                "serviceaccount": {"name": "api", "uid": "u1"},
            },
        }
        signed = jwt.encode(claims, key, algorithm="RS256", headers={"kid": KID})
        issued.append(signed)
        return signed

    return token


def test_a_jwt_client_re_enrols_after_expiry(
    jwt_server: ReferenceServer, signing_key: rsa.RSAPrivateKey
) -> None:
    server = jwt_server
    server.control("POST", "/_test/ca/leaf-ttl", {"seconds": 3})
    # Every renewal fails, so the certificate reaches its NotAfter.
    server.script("RenewCertificate", *[{"status": 503}] * 200)
    issued: list[str] = []
    lock = threading.Lock()
    kinds: list[RotationKind] = []

    def on_event(event: RotationEvent) -> None:
        with lock:
            kinds.append(event.kind)

    with secinfra.Client.enrol(
        server.url, jwt=_provider(signing_key, issued), bundle_file=server.bundle_file
    ) as client:
        client.on_rotation(on_event)
        first = client.source.identity()
        assert first is not None
        assert first.spiffe_id == EXPECTED_ID
        assert client.identity.get_caller_identity().spiffe_id == EXPECTED_ID

        def re_enrolled() -> bool:
            current = client.source.identity()
            return current is not None and current.serial != first.serial

        assert server.wait_until(re_enrolled, timeout=15), "the client did not re-enrol"
        # Calls keep working with the new certificate.
        answer = client.identity.get_caller_identity()
        assert answer.spiffe_id == EXPECTED_ID
        assert answer.serial != first.serial

    issues = [e for e in server.requests_log("IssueCertificate") if e["status"] == 200]
    assert len(issues) >= 2, "expected a second IssueCertificate (the re-enrolment)"
    assert len(issued) >= 2, "each enrolment asks the provider for a fresh token"
    assert server.requests_log("RenewCertificate")
    with lock:
        assert RotationKind.RENEWAL_FAILED in kinds
        # Spec 9.7.5: `expired` once per expired certificate, then the re-enrolment.
        assert RotationKind.EXPIRED in kinds
        assert RotationKind.ENROLLED in kinds[kinds.index(RotationKind.EXPIRED) :]
