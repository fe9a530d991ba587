"""Enrolment with a Kubernetes-style JWT attestation, over real TLS."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from .harness import Client, RunningServer, issue_with_jwt

ISSUER = "https://kubernetes.default.svc"
AUDIENCE = "secinfra"
KID = "k8s-1"


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def jwt_server(tmp_path: Path, signing_key: rsa.RSAPrivateKey) -> Iterator[RunningServer]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key.public_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": KID, "alg": "RS256", "use": "sig"}]}))
    server = RunningServer(
        tmp_path / "data",
        jwt_issuer=ISSUER,
        jwt_audiences=AUDIENCE,
        jwt_jwks_file=str(jwks),
    ).start()
    try:
        yield server
    finally:
        server.stop()


def _token(key: Any, *, alg: str = "RS256", kid: str = KID, **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": [AUDIENCE],
        "sub": "system:serviceaccount:payments:api",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "kubernetes.io": {"namespace": "payments", "serviceaccount": {"name": "api", "uid": "u1"}},
        **overrides,
    }
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


_issue = issue_with_jwt


def test_a_valid_token_enrols_the_mapped_identity(
    jwt_server: RunningServer, signing_key: rsa.RSAPrivateKey
) -> None:
    resp = _issue(jwt_server, _token(signing_key))
    assert resp.status == 200, resp.body
    assert resp.json()["svid"]["spiffe_id"] == "spiffe://secinfra.local/ns/payments/sa/api"
    # A JWT is a reusable attestation: the same token enrols again (re-enrolment).
    assert _issue(jwt_server, _token(signing_key)).status == 200


def _unsigned() -> str:
    return jwt.encode({"iss": ISSUER}, None, algorithm="none")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("wrong-issuer", lambda k: _token(k, iss="https://evil")),
        ("wrong-audience", lambda k: _token(k, aud=["other"])),
        ("expired", lambda k: _token(k, exp=int(time.time()) - 3600, iat=int(time.time()) - 7200)),
        ("unknown-kid", lambda k: _token(k, kid="nope")),
        (
            "bad-signature",
            lambda _k: _token(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ),
        ("alg-none", lambda _k: _unsigned()),
        ("sub-mismatch", lambda k: _token(k, sub="system:serviceaccount:payments:other")),
    ],
)
def test_bad_tokens_are_refused(
    name: str, make: Any, jwt_server: RunningServer, signing_key: rsa.RSAPrivateKey
) -> None:
    token = make(signing_key)
    resp = _issue(jwt_server, token)
    assert resp.status in (400, 401), (name, resp.body)
    assert resp.json()["error"]["code"] in ("unauthenticated", "invalid_argument")
    assert token not in resp.body.decode()


def test_jwt_is_refused_when_not_configured(server: RunningServer, admin: Client) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    resp = _issue(server, _token(key))
    assert resp.status == 412
    assert resp.json()["error"]["code"] == "failed_precondition"


def test_a_template_cannot_map_a_token_onto_the_admin_identity(
    tmp_path: Path, signing_key: rsa.RSAPrivateKey
) -> None:
    # An operator's template that lets namespace/service-account choose the whole
    # path: namespace "secinfra", service account "admin" would be the admin.
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key.public_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": KID, "alg": "RS256", "use": "sig"}]}))
    server = RunningServer(
        tmp_path / "data",
        jwt_issuer=ISSUER,
        jwt_audiences=AUDIENCE,
        jwt_jwks_file=str(jwks),
        jwt_spiffe_id_template="spiffe://{trust_domain}/{namespace}/{service_account}",
    ).start()
    try:
        token = _token(
            signing_key,
            sub="system:serviceaccount:secinfra:admin",
            **{
                "kubernetes.io": {
                    "namespace": "secinfra",
                    "serviceaccount": {"name": "admin", "uid": "u2"},
                }
            },
        )
        resp = _issue(server, token)
        assert resp.status == 403, resp.body
        assert "reserved" in resp.json()["error"]["message"]
    finally:
        server.stop()
