"""The hash-chained audit log, end to end: entries written by real admin
actions, and `secinfra-server audit verify` catching every kind of tampering."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from secinfra_server.cli import main

from .harness import Client, RunningServer, enrol


def _populate(tmp_path: Path) -> Path:
    """Admin actions (allowed and denied) against a real server; returns the data dir."""
    server = RunningServer(tmp_path / "data").start()
    admin = Client(server.port, server.bundle_pem(), server.admin, tmp_path / "admin")
    for i in range(3):
        created = admin.request(
            "POST", "/v1/join-tokens", {"spiffe_id": f"spiffe://secinfra.local/w/{i}"}
        )
        assert created.status == 200
    assert admin.request("POST", "/v1/ca:prepare", {}).status == 200
    admin.request("GET", "/v1/join-tokens")
    admin.close()
    me = Client(server.port, server.bundle_pem(), enrol(server, tmp_path), tmp_path / "me")
    assert me.request("POST", "/v1/ca:prepare", {}).status == 403
    me.close()
    server.stop()
    return tmp_path / "data"


def _rows(data: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(data / "secinfra.db")
    rows = conn.execute(
        "SELECT seq, actor, action, resource, outcome FROM audit_log ORDER BY seq"
    ).fetchall()
    conn.close()
    return rows


def test_admin_actions_and_denials_are_audited(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _populate(tmp_path)
    rows = _rows(data)
    actions = [(r[2], r[4]) for r in rows]
    assert actions.count(("identity.create_join_token", "allowed")) == 4  # 3 + enrol's
    assert ("identity.prepare_ca_rotation", "allowed") in actions
    assert ("identity.prepare_ca_rotation", "denied") in actions
    assert ("identity.list_join_tokens", "allowed") in actions
    assert ("identity.issue_certificate", "allowed") in actions
    denied = next(r for r in rows if r[4] == "denied")
    assert denied[1] == "spiffe://secinfra.local/workload/a"
    assert main(["audit", "verify", "--data-dir", str(data)]) == 0
    assert f"{len(rows)} entries" in capsys.readouterr().out


def _edit(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE audit_log SET outcome = 'allowed' WHERE outcome = 'denied'")


def _remove(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM audit_log WHERE seq = 2")


def _reorder(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE audit_log SET seq = -1 WHERE seq = 2")
    conn.execute("UPDATE audit_log SET seq = 2 WHERE seq = 3")
    conn.execute("UPDATE audit_log SET seq = 3 WHERE seq = -1")


def _rehash_edit(conn: sqlite3.Connection) -> None:
    # Editing an entry and recomputing its own hash still breaks the next link.
    from secinfra_server.audit import AuditEvent, entry_hash

    seq, at_ms, prev = conn.execute(
        "SELECT seq, at_ms, prev_hash FROM audit_log WHERE seq = 2"
    ).fetchone()
    event = AuditEvent("spiffe://evil", "identity.create_join_token", "x", "allowed", "r")
    conn.execute(
        "UPDATE audit_log SET actor = ?, resource = ?, request_id = ?, details = '{}', hash = ?"
        " WHERE seq = 2",
        (event.actor, event.resource, event.request_id, entry_hash(prev, seq, at_ms, event)),
    )


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (_edit, "was modified"),
        (_remove, "is missing"),
        (_reorder, "does not follow"),
        (_rehash_edit, "does not follow"),
    ],
)
def test_verify_detects_tampering(
    tamper: Callable[[sqlite3.Connection], None],
    reason: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = _populate(tmp_path)
    conn = sqlite3.connect(data / "secinfra.db")
    with conn:
        tamper(conn)
    conn.close()
    assert main(["audit", "verify", "--data-dir", str(data)]) == 1
    assert reason in capsys.readouterr().err
