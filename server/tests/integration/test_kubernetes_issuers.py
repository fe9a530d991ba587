"""Several Kubernetes clusters as JWT issuers, over real TLS: keys from an issuer's
discovery document (served over HTTPS on loopback by the test, with keys it
rotates) and from a static file; mapping rules; the typed refusals."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from .harness import RunningServer, issue_with_jwt
from .jwks_issuer import JwksIssuer, running_issuer

STAGING_ISSUER = "https://staging.k8s.example"
REFRESH_SECONDS = 0.5


@pytest.fixture
def issuer(tmp_path: Path) -> Iterator[JwksIssuer]:
    yield from running_issuer(tmp_path / "issuer")


@pytest.fixture(scope="module")
def staging_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _settings(tmp_path: Path, issuer: JwksIssuer, staging_key: rsa.RSAPrivateKey) -> Any:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(staging_key.public_key()))
    jwks = tmp_path / "staging-jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "staging-1", "use": "sig"}]}))
    return [
        {
            "name": "prod",
            "issuer": issuer.url,
            "audiences": ["secinfra-prod"],
            "ca_file": str(issuer.ca_file),
            "jwks_min_refresh_seconds": REFRESH_SECONDS,
            "rules": [
                {
                    "namespace": "batch",
                    "spiffe_id": "spiffe://{trust_domain}/k8s/{cluster}/ns/{namespace}/pod/{pod}",
                },
                {
                    "namespace": "payments",
                    "service_account": "api*",
                    "spiffe_id": "spiffe://{trust_domain}/k8s/{cluster}/ns/{namespace}"
                    "/sa/{service_account}",
                },
            ],
        },
        {
            "name": "staging",
            "issuer": STAGING_ISSUER,
            "audiences": ["secinfra-staging"],
            "jwks_file": str(jwks),
            "spiffe_id_template": "spiffe://{trust_domain}/k8s/{cluster}/{namespace}/{service_account}",
        },
    ]


@pytest.fixture
def server(
    tmp_path: Path, issuer: JwksIssuer, staging_key: rsa.RSAPrivateKey
) -> Iterator[RunningServer]:
    issuer.add_key("prod-1")
    running = RunningServer(
        tmp_path / "data", jwt_issuers=_settings(tmp_path, issuer, staging_key)
    ).start()
    try:
        yield running
    finally:
        running.stop()


_issue = issue_with_jwt


def _staging_token(key: Any, **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": STAGING_ISSUER,
        "aud": "secinfra-staging",
        "sub": "system:serviceaccount:web:front",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "kubernetes.io": {"namespace": "web", "serviceaccount": {"name": "front", "uid": "u"}},
        **overrides,
    }
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "staging-1"})


def test_each_cluster_maps_by_its_own_rules(
    server: RunningServer, issuer: JwksIssuer, staging_key: rsa.RSAPrivateKey
) -> None:
    prod = _issue(server, issuer.service_account_token("prod-1", audience="secinfra-prod"))
    assert prod.status == 200, prod.body
    assert prod.json()["svid"]["spiffe_id"] == "spiffe://secinfra.local/k8s/prod/ns/payments/sa/api"
    pod = issuer.service_account_token(
        "prod-1", audience="secinfra-prod", namespace="batch", account="job", pod="job-7f9c"
    )
    resp = _issue(server, pod)
    assert resp.status == 200, resp.body
    assert (
        resp.json()["svid"]["spiffe_id"] == "spiffe://secinfra.local/k8s/prod/ns/batch/pod/job-7f9c"
    )
    staging = _issue(server, _staging_token(staging_key))
    assert staging.status == 200, staging.body
    assert staging.json()["svid"]["spiffe_id"] == "spiffe://secinfra.local/k8s/staging/web/front"


@pytest.mark.parametrize(
    ("case", "status", "code", "fragment"),
    [
        ("unknown-issuer", 401, "unauthenticated", "not one of the configured issuers"),
        ("other-clusters-audience", 401, "unauthenticated", "audience is not one of"),
        ("expired", 401, "unauthenticated", "token has expired"),
        ("bad-key", 401, "unauthenticated", "signature does not verify"),
        ("unknown-kid", 401, "unauthenticated", "not one of the issuer's keys"),
        ("no-rule", 403, "permission_denied", "no mapping rule of cluster 'prod'"),
        ("pod-rule-without-pod", 403, "permission_denied", "no mapping rule"),
    ],
)
def test_refusals_are_typed_and_never_echo_the_token(
    server: RunningServer,
    issuer: JwksIssuer,
    staging_key: rsa.RSAPrivateKey,
    caplog: pytest.LogCaptureFixture,
    case: str,
    status: int,
    code: str,
    fragment: str,
) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tokens = {
        "unknown-issuer": lambda: issuer.service_account_token(
            "prod-1", audience="secinfra-prod", issuer="https://evil.example"
        ),
        # A staging token presented with prod's audience: each cluster has its own.
        "other-clusters-audience": lambda: _staging_token(staging_key, aud="secinfra-prod"),
        "expired": lambda: issuer.service_account_token(
            "prod-1", audience="secinfra-prod", lifetime=-120
        ),
        "bad-key": lambda: issuer.service_account_token(
            "prod-1", audience="secinfra-prod", key=stranger
        ),
        "unknown-kid": lambda: issuer.service_account_token(
            "made-up", audience="secinfra-prod", key=stranger
        ),
        "no-rule": lambda: issuer.service_account_token(
            "prod-1", audience="secinfra-prod", namespace="payments", account="worker"
        ),
        "pod-rule-without-pod": lambda: issuer.service_account_token(
            "prod-1", audience="secinfra-prod", namespace="batch", account="job"
        ),
    }
    token = tokens[case]()
    with caplog.at_level(logging.DEBUG):
        resp = _issue(server, token)
    assert resp.status == status, resp.body
    error = resp.json()["error"]
    assert error["code"] == code
    assert fragment in error["message"]
    signature = token.rsplit(".", 1)[1]
    assert signature not in resp.body.decode()
    assert signature not in caplog.text
    assert token.split(".")[1] not in caplog.text


def test_a_rotated_key_is_fetched_on_its_first_token_and_the_refresh_is_rate_limited(
    server: RunningServer, issuer: JwksIssuer
) -> None:
    assert (
        _issue(server, issuer.service_account_token("prod-1", audience="secinfra-prod")).status
        == 200
    )
    fetches = issuer.jwks_fetches()
    assert fetches == 1
    # Unknown key ids within the interval cost the issuer nothing more.
    stranger = issuer.keys["prod-1"]
    for n in range(5):
        made_up = issuer.service_account_token(
            f"made-up-{n}", audience="secinfra-prod", key=stranger
        )
        assert _issue(server, made_up).status == 401
    assert issuer.jwks_fetches() <= fetches + 1
    # The cluster rotates: a new key is published, the old one withdrawn.
    issuer.add_key("prod-2")
    issuer.published.remove("prod-1")
    time.sleep(REFRESH_SECONDS + 0.1)
    resp = _issue(server, issuer.service_account_token("prod-2", audience="secinfra-prod"))
    assert resp.status == 200, resp.body
    # ... and once the interval has passed again, the withdrawn key is gone.
    time.sleep(REFRESH_SECONDS + 0.1)
    issuer.add_key("prod-3")
    resp = _issue(server, issuer.service_account_token("prod-3", audience="secinfra-prod"))
    assert resp.status == 200, resp.body
    old = _issue(server, issuer.service_account_token("prod-1", audience="secinfra-prod"))
    assert old.status == 401
    assert "not one of the issuer's keys" in old.json()["error"]["message"]


def test_keys_are_cached_across_a_restart_while_the_issuer_is_down(
    tmp_path: Path, issuer: JwksIssuer, staging_key: rsa.RSAPrivateKey
) -> None:
    issuer.add_key("prod-1")
    settings = _settings(tmp_path, issuer, staging_key)
    first = RunningServer(tmp_path / "data", jwt_issuers=settings).start()
    try:
        token = issuer.service_account_token("prod-1", audience="secinfra-prod")
        assert _issue(first, token).status == 200
    finally:
        first.stop()
    cache = list((tmp_path / "data" / "jwks-cache").iterdir())
    assert len(cache) == 1
    assert cache[0].stat().st_mode & 0o077 == 0
    issuer.stop()
    second = RunningServer(tmp_path / "data", jwt_issuers=settings).start()
    try:
        resp = _issue(second, issuer.service_account_token("prod-1", audience="secinfra-prod"))
        assert resp.status == 200, resp.body
    finally:
        second.stop()


def test_an_issuer_never_reached_answers_unavailable(
    tmp_path: Path, issuer: JwksIssuer, staging_key: rsa.RSAPrivateKey
) -> None:
    issuer.add_key("prod-1")
    settings = _settings(tmp_path, issuer, staging_key)
    issuer.stop()
    running = RunningServer(tmp_path / "data", jwt_issuers=settings).start()
    try:
        resp = _issue(running, issuer.service_account_token("prod-1", audience="secinfra-prod"))
        assert resp.status == 503, resp.body
        error = resp.json()["error"]
        assert error["code"] == "unavailable"
        assert "cannot be fetched now" in error["message"]
    finally:
        running.stop()
