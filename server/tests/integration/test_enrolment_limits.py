"""Failed enrolments are rate-limited and audited, against a real TLS server.

An attacker guessing join tokens from one loopback address (127.0.0.2: on
Linux the whole of 127/8 reaches the server) gets 401s, then 429s with
Retry-After; the legitimate holder enrols from another address meanwhile;
every evaluated failure has its own audit row and the 429s are summarised;
no token, secret or JWT appears in any log line or audit row.
"""

from __future__ import annotations

import http.client
import json
import logging
import secrets
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from secinfra_server.audit import verify
from secinfra_server.crypto import load_audit_key

from .harness import Client, RunningServer, csr_pem, new_key

ATTACKER = "127.0.0.2"
#: Wrong guesses the attacker sends: bounded (the issue's probe sent 2,000).
GUESSES = 2000
SOURCE_BURST = 20
TOKEN_BURST = 5


@dataclass
class SourceClient(Client):
    """A harness client whose connections start from ``source`` (a loopback address)."""

    source: str = "127.0.0.1"

    def connect(self) -> http.client.HTTPSConnection:
        if self.conn is None:
            self.conn = http.client.HTTPSConnection(
                "127.0.0.1",
                self.port,
                context=self.context(),
                timeout=30,
                source_address=(self.source, 0),
            )
        return self.conn


def _wrong_token(token_id: str | None = None) -> str:
    return f"sjt_{token_id or secrets.token_hex(16)}.{secrets.token_urlsafe(32)}"


def _issue(client: Client, token: str) -> Any:
    return client.request(
        "POST", "/v1/identity:issue", {"csr_pem": csr_pem(new_key()), "join_token": token}
    )


def _audit_rows(data_dir: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(data_dir / "secinfra.db")
    try:
        assert verify(conn, load_audit_key(data_dir / "audit.key")).ok
        rows = conn.execute(
            "SELECT actor, action, resource, outcome, request_id, details FROM audit_log"
            " WHERE action = 'identity.issue_certificate' ORDER BY seq"
        ).fetchall()
    finally:
        conn.close()
    keys = ("actor", "action", "resource", "outcome", "request_id", "details")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def _audit_text(data_dir: Path) -> str:
    conn = sqlite3.connect(data_dir / "secinfra.db")
    try:
        return "\n".join(repr(row) for row in conn.execute("SELECT * FROM audit_log"))
    finally:
        conn.close()


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[RunningServer]:
    running = RunningServer(
        tmp_path / "data",
        enrolment_source_burst=SOURCE_BURST,
        enrolment_source_per_minute=1,
        enrolment_token_burst=TOKEN_BURST,
        enrolment_token_per_minute=1,
    ).start()
    try:
        yield running
    finally:
        if running.server.storage is not None:
            running.stop()


def _create_token(server: RunningServer, tmp: Path, path: str) -> str:
    admin = Client(server.port, server.bundle_pem(), server.admin, tmp / "admin")
    try:
        created = admin.request(
            "POST", "/v1/join-tokens", {"spiffe_id": f"spiffe://secinfra.local{path}"}
        )
    finally:
        admin.close()
    assert created.status == 200, created.body
    return str(created.json()["token"])


def test_a_guessing_flood_is_limited_and_audited_and_the_holder_still_enrols(
    limited: RunningServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    real = _create_token(limited, tmp_path, "/workload/holder")
    real_id = real.split(".")[0].removeprefix("sjt_")
    attacker = SourceClient(limited.port, limited.bundle_pem(), source=ATTACKER)
    sent: list[str] = []
    statuses: Counter[int] = Counter()
    limits: Counter[str] = Counter()
    try:
        for i in range(GUESSES):
            # First wrong secrets for the real token's id, then random ids.
            guess = _wrong_token(real_id if i < SOURCE_BURST else None)
            sent.append(guess)
            response = _issue(attacker, guess)
            statuses[response.status] += 1
            assert response.status in (401, 429), response.body
            error = response.json()["error"]
            assert error["request_id"] == response.headers["request-id"]
            if response.status == 429:
                assert error["code"] == "rate_limited"
                assert response.headers["retry-after"].isdigit()
                assert int(response.headers["retry-after"]) >= 1
                limits[error["details"]["limit"]] += 1
            assert guess not in response.body.decode()
    finally:
        attacker.close()
    # The first TOKEN_BURST wrong secrets for the id were evaluated (401); the
    # rest of the source's burst was answered 429 by the token's limit, and
    # everything after it 429 by the source's limit, unseen.
    assert statuses[401] == TOKEN_BURST
    assert limits["join_token"] == SOURCE_BURST - TOKEN_BURST
    assert limits["source"] == GUESSES - SOURCE_BURST
    assert statuses[429] == GUESSES - TOKEN_BURST

    # The holder, from another address, enrols with the real token although
    # its id is throttled and the attacker's address is blocked.
    holder = SourceClient(limited.port, limited.bundle_pem(), source="127.0.0.1")
    try:
        enrolled = _issue(holder, real)
    finally:
        holder.close()
    assert enrolled.status == 200, enrolled.body
    assert enrolled.json()["svid"]["spiffe_id"] == "spiffe://secinfra.local/workload/holder"

    limited.stop()  # flushes the summary of the current window
    rows = _audit_rows(limited.config.data_dir)
    details = [json.loads(row["details"]) for row in rows]
    failures = [d for d in details if d.get("reason") == "wrong_secret"]
    assert len(failures) == TOKEN_BURST
    assert all(d["source"] == ATTACKER and d["token_id"] == real_id for d in failures)
    assert all(row["resource"] == f"join-token:{real_id}" for row in rows[:TOKEN_BURST])
    refusals = [d for d in details if d.get("reason") == "rate_limited"]
    first = [d for d in refusals if not d.get("summary")]
    summary = [d for d in refusals if d.get("summary")]
    assert len(first) == 1
    assert first[0]["source"] == ATTACKER
    assert len(summary) == 1
    assert summary[0]["refused"] == GUESSES - TOKEN_BURST - 1
    assert summary[0]["by_limit"] == {
        "join_token": SOURCE_BURST - TOKEN_BURST - 1,
        "source": GUESSES - SOURCE_BURST,
    }
    assert [row["outcome"] for row in rows].count("allowed") == 1
    # The audit table grew by a handful of rows, not by one per guess.
    assert len(rows) == TOKEN_BURST + 1 + 1 + 1

    # No token, and no secret part of one, in any log line or audit row.
    logged = "\n".join(record.getMessage() + repr(record.__dict__) for record in caplog.records)
    audited = _audit_text(limited.config.data_dir)
    for token in [real, *sent]:
        secret = token.split(".", 1)[1]
        assert secret not in logged
        assert secret not in audited
    # One log line for the flood's 429s, as one audit entry (plus the summary).
    throttled = [r for r in caplog.records if r.getMessage() == "enrolment rate-limited"]
    assert len(throttled) == 1


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda real, real_id: _wrong_token(), "unknown_token"),
        (lambda real, real_id: _wrong_token(real_id), "wrong_secret"),
        (lambda real, real_id: "sjt_not-a-token", "malformed_token"),
    ],
)
def test_each_failed_attempt_is_audited_with_its_reason(
    make: Any, reason: str, limited: RunningServer, tmp_path: Path
) -> None:
    real = _create_token(limited, tmp_path, "/workload/r")
    real_id = real.split(".")[0].removeprefix("sjt_")
    token = make(real, real_id)
    client = Client(limited.port, limited.bundle_pem())
    try:
        response = _issue(client, token)
    finally:
        client.close()
    assert response.status in (400, 401), response.body
    limited.stop()
    rows = _audit_rows(limited.config.data_dir)
    assert len(rows) == 1
    row = rows[0]
    details = json.loads(row["details"])
    assert row["outcome"] == "denied"
    assert row["actor"] == "anonymous"
    assert row["request_id"] == response.headers["request-id"]
    assert details["reason"] == reason
    assert details["source"] == "127.0.0.1"
    assert details["via"] == "join_token"
    assert token.split(".", 1)[-1] not in _audit_text(limited.config.data_dir)


def test_used_expired_and_revoked_tokens_are_told_apart_in_the_audit_only(
    limited: RunningServer, tmp_path: Path
) -> None:
    used = _create_token(limited, tmp_path, "/workload/used")
    revoked = _create_token(limited, tmp_path, "/workload/revoked")
    revoked_id = revoked.split(".")[0].removeprefix("sjt_")
    admin = Client(limited.port, limited.bundle_pem(), limited.admin, tmp_path / "admin")
    try:
        assert admin.request("DELETE", f"/v1/join-tokens/{revoked_id}").status == 200
    finally:
        admin.close()
    client = Client(limited.port, limited.bundle_pem())
    try:
        assert _issue(client, used).status == 200
        again = _issue(client, used)
        refused = _issue(client, revoked)
        unknown = _issue(client, _wrong_token())
    finally:
        client.close()
    assert (again.status, refused.status, unknown.status) == (401, 401, 401)
    # The client cannot tell a revoked token from one that does not exist.
    assert refused.json()["error"]["message"] == unknown.json()["error"]["message"]
    limited.stop()
    reasons = [
        json.loads(row["details"]).get("reason")
        for row in _audit_rows(limited.config.data_dir)
        if row["outcome"] == "denied"
    ]
    assert reasons == ["used_token", "revoked_token", "unknown_token"]


def test_successful_enrolments_do_not_use_up_the_source_budget(
    limited: RunningServer, tmp_path: Path
) -> None:
    tokens = [_create_token(limited, tmp_path, f"/workload/fleet-{i}") for i in range(25)]
    client = Client(limited.port, limited.bundle_pem())
    try:
        statuses = [_issue(client, token).status for token in tokens]
    finally:
        client.close()
    assert statuses == [200] * 25  # more than the burst of 20, from one address


def test_a_bad_csr_is_audited_and_does_not_spend_the_token(
    limited: RunningServer, tmp_path: Path
) -> None:
    token = _create_token(limited, tmp_path, "/workload/csr")
    client = Client(limited.port, limited.bundle_pem())
    try:
        bad = client.request(
            "POST", "/v1/identity:issue", {"csr_pem": "not a csr", "join_token": token}
        )
        good = _issue(client, token)
    finally:
        client.close()
    assert bad.status == 400
    assert good.status == 200
    limited.stop()
    rows = _audit_rows(limited.config.data_dir)
    assert [json.loads(r["details"]).get("reason") for r in rows if r["outcome"] == "denied"] == [
        "bad_csr"
    ]


def test_a_failed_jwt_attestation_is_audited_without_the_jwt(tmp_path: Path) -> None:
    trusted = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(trusted.public_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "RS256", "use": "sig"}]}))
    server = RunningServer(
        tmp_path / "data", jwt_issuer="https://k8s", jwt_audiences="secinfra", jwt_jwks_file=jwks
    ).start()
    now = int(time.time())
    claims = {"iss": "https://k8s", "aud": ["secinfra"], "sub": "x", "iat": now, "exp": now + 60}
    forged = jwt.encode(claims, forger, algorithm="RS256", headers={"kid": "k1"})
    client = Client(server.port, server.bundle_pem())
    try:
        response = client.request(
            "POST", "/v1/identity:issue", {"csr_pem": csr_pem(new_key()), "jwt": forged}
        )
    finally:
        client.close()
        server.stop()
    assert response.status == 401, response.body
    (row,) = _audit_rows(tmp_path / "data")
    details = json.loads(row["details"])
    assert details == {"reason": "jwt_bad_signature", "source": "127.0.0.1", "via": "jwt"}
    audited = _audit_text(tmp_path / "data")
    assert forged.rsplit(".", 1)[1] not in audited
    assert forged not in audited
