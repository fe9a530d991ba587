"""The audit log never loses an entry, on each storage backend.

The failures are real: a trigger on ``audit_log`` that raises (SQLite's
``RAISE(ABORT)``, a PL/pgSQL ``RAISE EXCEPTION``), installed from a second
connection while the server runs. A change whose entry cannot be written
fails and leaves nothing behind; read decisions stay queued while writes fail
and are written once they succeed; a full queue refuses (``refuse``) or holds
(``wait``) the request. ``secinfra_audit_entries_lost`` stays 0 in every test.
Every wait is bounded.
"""

from __future__ import annotations

import base64
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import psycopg
import pytest
from backends import BACKENDS

from secinfra_server import audit
from secinfra_server.crypto import load_audit_key

from .harness import Client, Response, RunningServer, csr_pem, new_key

#: How long a test waits for the writer to drain the queue.
DRAIN_DEADLINE_SECONDS = 20.0
SQLITE_TRIGGER = (
    "CREATE TRIGGER audit_down BEFORE INSERT ON audit_log"
    " BEGIN SELECT RAISE(ABORT, 'audit storage is down'); END"
)
PG_TRIGGER = """
CREATE FUNCTION audit_down() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'audit storage is down'; END $$;
CREATE TRIGGER audit_down BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_down();
"""


class AuditOutage:
    """Breaks (and repairs) audit writes from outside the server process's code."""

    def __init__(self, running: RunningServer, dsn: str) -> None:
        self._running = running
        self._dsn = dsn

    def _sql(self, statement: str) -> None:
        if self._dsn:
            with psycopg.connect(self._dsn, autocommit=True) as conn:
                conn.execute(statement)
        else:
            conn = sqlite3.connect(self._running.config.database_path, timeout=10)
            try:
                conn.execute(statement)
                conn.commit()
            finally:
                conn.close()

    def start(self) -> None:
        self._sql(PG_TRIGGER if self._dsn else SQLITE_TRIGGER)

    def stop(self) -> None:
        self._sql(
            "DROP TRIGGER audit_down ON audit_log; DROP FUNCTION audit_down()"
            if self._dsn
            else "DROP TRIGGER audit_down"
        )


def _start(
    request: pytest.FixtureRequest, tmp_path: Path, **settings: Any
) -> tuple[RunningServer, str]:
    dsn = ""
    if request.param == "postgres":
        dsn = request.getfixturevalue("postgres_dsn")
        settings = {**settings, "database_dsn": dsn, "migrate": True}
    return RunningServer(tmp_path / "data", **settings).start(), dsn


@pytest.fixture(params=BACKENDS)
def backend_server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[RunningServer, AuditOutage]]:
    running, dsn = _start(request, tmp_path)
    try:
        yield running, AuditOutage(running, dsn)
    finally:
        running.stop()


@pytest.fixture(params=BACKENDS)
def small_queue_server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[RunningServer, AuditOutage]]:
    """A server whose queue holds one entry and refuses when full."""
    running, dsn = _start(request, tmp_path, audit_queue_max=1, audit_queue_full="refuse")
    try:
        yield running, AuditOutage(running, dsn)
    finally:
        running.stop()


@pytest.fixture(params=BACKENDS)
def waiting_queue_server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[RunningServer, AuditOutage]]:
    """A server whose queue holds one entry and makes requests wait when full."""
    running, dsn = _start(
        request, tmp_path, audit_queue_max=1, audit_queue_full="wait", audit_queue_wait_seconds=30
    )
    try:
        yield running, AuditOutage(running, dsn)
    finally:
        running.stop()


def _client(running: RunningServer, tmp_path: Path, name: str) -> Client:
    return Client(running.port, running.bundle_pem(), running.admin, tmp_path / name)


def put(client: Client, name: str, value: bytes) -> Response:
    return client.request("PUT", f"/v1/secrets/{name}", {"value": base64.b64encode(value).decode()})


def get(client: Client, name: str) -> Response:
    return client.request("GET", f"/v1/secrets/{name}")


def metric(running: RunningServer, name: str, **labels: str) -> float:
    value = running.server.metrics.registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


def until(running: RunningServer, condition: Callable[[], bool]) -> None:
    """Wait (bounded) until ``condition`` holds."""
    deadline = time.monotonic() + DRAIN_DEADLINE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, "the server did not get there in time"
        time.sleep(0.02)


def drain(running: RunningServer) -> None:
    """Wait (bounded) until the read-path queue is written."""
    audit_log = running.server.audit
    assert audit_log is not None
    until(running, lambda: audit_log.pending == 0)


def chain(running: RunningServer) -> list[tuple[str, str, str]]:
    """(action, resource, outcome) of every entry, after verifying the chain."""
    assert running.server.storage is not None
    key = load_audit_key(running.config.audit_key_path)

    def read(conn: sqlite3.Connection) -> tuple[audit.VerifyResult, list[tuple[str, str, str]]]:
        rows = conn.execute(
            "SELECT action, resource, outcome FROM audit_log ORDER BY seq"
        ).fetchall()
        return audit.verify(conn, key), [(str(a), str(r), str(o)) for a, r, o in rows]

    result, rows = running.call(running.server.storage.read(read))
    assert result.ok, result.reason
    return rows


def test_a_change_fails_when_its_entry_cannot_be_written_and_reads_wait_in_the_queue(
    backend_server: tuple[RunningServer, AuditOutage], tmp_path: Path
) -> None:
    running, outage = backend_server
    admin = _client(running, tmp_path, "admin")
    assert put(admin, "kept", b"one").status == 200
    outage.start()
    try:
        refused = put(admin, "never", b"two")
        assert refused.status == 500, refused.body
        assert refused.code == "internal"
        # A read's entry is queued: the read is served, its entry waits.
        assert get(admin, "kept").status == 200
        until(running, lambda: metric(running, "secinfra_audit_write_failures_total") >= 1)
        assert running.server.audit is not None
        assert running.server.audit.pending >= 1  # the failed batch is still queued
    finally:
        outage.stop()
    drain(running)
    assert get(admin, "never").status == 404
    admin.close()
    rows = chain(running)
    assert ("secrets.put", "secret:kept", "allowed") in rows
    assert ("secrets.get", "secret:kept", "allowed") in rows
    assert not any(
        resource == "secret:never" and outcome == "allowed" and action == "secrets.put"
        for action, resource, outcome in rows
    )
    assert metric(running, "secinfra_audit_entries_lost_total") == 0
    assert metric(running, "secinfra_audit_entries_written_total", mode="batched") >= 1


WORKLOAD = "spiffe://secinfra.local/workload/a"
WORKLOAD_USER = f"workload:{WORKLOAD}"

#: Each audited change: (name, request, a read that shows its effect). With
#: audit writes failing the request must fail and the read show nothing new.
CHANGES: Final = [
    (
        "create_join_token",
        ("POST", "/v1/join-tokens", {"spiffe_id": WORKLOAD}),
        ("GET", "/v1/join-tokens", lambda body: body.get("join_tokens", [])),
    ),
    (
        "revoke",
        ("POST", "/v1/revocations", {"spiffe_id": WORKLOAD, "reason": "test"}),
        ("GET", "/v1/revocations", lambda body: body.get("revocations", [])),
    ),
    (
        "write_tuples",
        (
            "POST",
            "/v1/authz/tuples:write",
            {"writes": [{"object": "group:eng", "relation": "member", "user": WORKLOAD_USER}]},
        ),
        ("GET", "/v1/authz/tuples?object=group:eng", lambda body: body.get("tuples", [])),
    ),
    (
        "write_authorization_model",
        ("POST", "/v1/authz/models", {"dsl": "model\n  schema 1.1\ntype document\n"}),
        ("GET", "/v1/authz/models", lambda body: body.get("models", [])),
    ),
    (
        "prepare_ca_rotation",
        ("POST", "/v1/ca:prepare", {}),
        ("GET", "/v1/ca", lambda body: body.get("authorities", [])[1:]),
    ),
]


@pytest.mark.parametrize(
    ("change", "read"), [(c, r) for _, c, r in CHANGES], ids=[n for n, _, _ in CHANGES]
)
def test_each_audited_change_fails_without_its_entry(
    backend_server: tuple[RunningServer, AuditOutage],
    tmp_path: Path,
    change: tuple[str, str, dict[str, Any]],
    read: tuple[str, str, Callable[[dict[str, Any]], list[Any]]],
) -> None:
    running, outage = backend_server
    admin = _client(running, tmp_path, "admin")
    method, path, body = change
    read_method, read_path, effect = read
    before = admin.request(read_method, read_path)
    assert before.status == 200, before.body
    assert effect(before.json()) == []
    outage.start()
    try:
        failed = admin.request(method, path, body)
        assert failed.status == 500, failed.body
        assert failed.code == "internal"
    finally:
        outage.stop()
    after = admin.request(read_method, read_path)
    assert after.status == 200, after.body
    assert effect(after.json()) == [], "the change committed without its audit entry"
    # With audit writes back, the same change goes through, and so does its entry.
    done = admin.request(method, path, body)
    assert done.status == 200, done.body
    assert effect(admin.request(read_method, read_path).json()) != []
    admin.close()
    action = f"{'authz' if path.startswith('/v1/authz') else 'identity'}."
    assert any(a.startswith(action) and o == "allowed" for a, _, o in chain(running))


def test_issuance_entries_commit_with_the_certificate(
    backend_server: tuple[RunningServer, AuditOutage], tmp_path: Path
) -> None:
    """Enrolment's and renewal's entries are in the certificate's transaction:
    with audit writes failing, no certificate is issued."""
    running, outage = backend_server
    admin = _client(running, tmp_path, "admin")
    token = admin.request(
        "POST", "/v1/join-tokens", {"spiffe_id": "spiffe://secinfra.local/workload/a"}
    ).json()["token"]
    outage.start()
    try:
        anon = Client(running.port, running.bundle_pem())
        failed = anon.request(
            "POST", "/v1/identity:issue", {"csr_pem": csr_pem(new_key()), "join_token": token}
        )
        assert failed.status in (500, 503), failed.body
        anon.close()
    finally:
        outage.stop()
    assert running.server.storage is not None
    issued = running.call(
        running.server.storage.read(
            lambda conn: conn.execute(
                "SELECT COUNT(*) FROM issued_certificates WHERE spiffe_id = ?",
                ("spiffe://secinfra.local/workload/a",),
            ).fetchone()[0]
        )
    )
    assert issued == 0
    # The token was not spent: it still enrols, and that is audited in one go.
    anon = Client(running.port, running.bundle_pem())
    ok = anon.request(
        "POST", "/v1/identity:issue", {"csr_pem": csr_pem(new_key()), "join_token": token}
    )
    assert ok.status == 200, ok.body
    anon.close()
    admin.close()
    rows = chain(running)
    assert ("identity.issue_certificate", "spiffe://secinfra.local/workload/a", "allowed") in rows
    assert metric(running, "secinfra_audit_entries_lost_total") == 0


def test_a_full_queue_refuses_reads_with_a_typed_503(
    small_queue_server: tuple[RunningServer, AuditOutage], tmp_path: Path
) -> None:
    running, outage = small_queue_server
    admin = _client(running, tmp_path, "admin")
    assert put(admin, "s", b"v").status == 200
    outage.start()
    try:
        assert get(admin, "s").status == 200  # fills the one-entry queue
        refused = get(admin, "s")
        assert refused.status == 503, refused.body
        assert refused.code == "unavailable"
        assert refused.headers["retry-after"] == "1"
        assert "could not be audited" in refused.json()["error"]["message"]
    finally:
        outage.stop()
    drain(running)
    admin.close()
    rows = chain(running)
    assert rows.count(("secrets.get", "secret:s", "allowed")) == 1
    assert metric(running, "secinfra_audit_requests_refused_total") >= 1
    assert metric(running, "secinfra_audit_entries_lost_total") == 0


def test_a_full_queue_makes_reads_wait_for_room(
    waiting_queue_server: tuple[RunningServer, AuditOutage], tmp_path: Path
) -> None:
    running, outage = waiting_queue_server
    admin = _client(running, tmp_path, "admin")
    second = _client(running, tmp_path, "second")
    assert put(admin, "s", b"v").status == 200
    outage.start()
    answers: list[Response] = []
    try:
        assert get(admin, "s").status == 200  # fills the one-entry queue
        waiter = threading.Thread(target=lambda: answers.append(get(second, "s")))
        waiter.start()
        assert running.server.audit is not None
        audit_log = running.server.audit
        until(running, lambda: audit_log.waiting == 1)
    finally:
        outage.stop()
    waiter.join(DRAIN_DEADLINE_SECONDS)
    assert not waiter.is_alive()
    assert [a.status for a in answers] == [200]
    drain(running)
    admin.close()
    second.close()
    rows = chain(running)
    assert rows.count(("secrets.get", "secret:s", "allowed")) == 2
    assert metric(running, "secinfra_audit_requests_refused_total") == 0
    assert metric(running, "secinfra_audit_entries_lost_total") == 0
