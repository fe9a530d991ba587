"""The keyed audit chain, end to end: entries written by real admin actions,
and `secinfra-server audit verify` catching every kind of tampering: a row
edited, deleted, reordered, inserted or appended, a downgrade to the unkeyed
rule, truncation after a signed checkpoint, a forged checkpoint; and a chain
from before the keyed rule still verifying up to the switch, on SQLite and
PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import psycopg
import pytest

from secinfra_server.audit import (
    CHAIN_HMAC,
    GENESIS_HASH,
    AuditEvent,
    Checkpoint,
    entry_hash,
    keyed_entry_hash,
    read_checkpoints,
)
from secinfra_server.cli import main
from secinfra_server.crypto import AuditKey
from secinfra_server.storage._sqlite import MIGRATIONS
from secinfra_server.storage.postgres import migrations as pg_migrations

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
    lost = server.server.metrics.registry.get_sample_value("secinfra_audit_entries_lost_total")
    assert lost == 0
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


def _forged(conn: sqlite3.Connection, seq: int, key: AuditKey) -> tuple[object, ...]:
    """A row for position ``seq`` claiming to follow the entry before it, keyed
    with ``key`` (an attacker's: the real one is not in the database)."""
    prev, real_key_id = conn.execute(
        "SELECT hash, key_id FROM audit_log WHERE seq = ?", (seq - 1,)
    ).fetchone()
    event = AuditEvent("spiffe://evil", "identity.create_join_token", "x", "allowed", "r")
    return (
        seq,
        0,
        event.actor,
        event.action,
        event.resource,
        event.outcome,
        event.request_id,
        "{}",
        prev,
        keyed_entry_hash(key, prev, seq, 0, event),
        CHAIN_HMAC,
        real_key_id,  # the id is public; the key is not
    )


def _insert(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE audit_log SET seq = -seq WHERE seq >= 3")
    conn.execute("UPDATE audit_log SET seq = 1 - seq WHERE seq < 0")
    conn.execute(
        "INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        _forged(conn, 3, AuditKey.generate()),
    )


def _append(conn: sqlite3.Connection) -> None:
    (last,) = conn.execute("SELECT MAX(seq) FROM audit_log").fetchone()
    conn.execute(
        "INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        _forged(conn, last + 1, AuditKey.generate()),
    )


def _rehash_edit(conn: sqlite3.Connection) -> None:
    # Editing an entry and recomputing its own plain SHA-256 no longer passes.
    seq, at_ms, prev = conn.execute(
        "SELECT seq, at_ms, prev_hash FROM audit_log WHERE seq = 2"
    ).fetchone()
    event = AuditEvent("spiffe://evil", "identity.create_join_token", "x", "allowed", "r")
    conn.execute(
        "UPDATE audit_log SET actor = ?, resource = ?, request_id = ?, details = '{}', hash = ?"
        " WHERE seq = 2",
        (event.actor, event.resource, event.request_id, entry_hash(prev, seq, at_ms, event)),
    )


def _rewrite_as_legacy(conn: sqlite3.Connection, from_seq: int) -> None:
    """Re-hash the chain from ``from_seq`` on with the unkeyed rule, consistently."""
    rows = conn.execute(
        "SELECT seq, at_ms, actor, action, resource, outcome, request_id, details"
        " FROM audit_log WHERE seq >= ? ORDER BY seq",
        (from_seq,),
    ).fetchall()
    prev_row = conn.execute("SELECT hash FROM audit_log WHERE seq = ?", (from_seq - 1,)).fetchone()
    prev = prev_row[0] if prev_row else GENESIS_HASH
    for seq, at_ms, actor, action, resource, outcome, request_id, details in rows:
        event = AuditEvent(actor, action, resource, outcome, request_id, json.loads(details))
        digest = entry_hash(prev, seq, at_ms, event)
        conn.execute(
            "UPDATE audit_log SET prev_hash = ?, hash = ?, chain = 'sha256', key_id = ''"
            " WHERE seq = ?",
            (prev, digest, seq),
        )
        prev = digest


def _downgrade_tail(conn: sqlite3.Connection) -> None:
    _rewrite_as_legacy(conn, 3)


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (_edit, "was modified"),
        (_remove, "is missing"),
        (_reorder, "does not follow"),
        (_insert, "entry 3 was modified"),
        (_append, "was modified"),
        (_rehash_edit, "entry 2 was modified"),
        (_downgrade_tail, "entry 3 uses the unkeyed SHA-256 rule after keyed entries"),
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


def _checkpoint(data: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> Checkpoint:
    assert main(["audit", "checkpoint", "--data-dir", str(data), "--out", str(out)]) == 0
    printed = Checkpoint.parse(capsys.readouterr().out.strip())
    assert read_checkpoints(out) == [printed]
    assert out.stat().st_mode & 0o777 == 0o600
    return printed


def test_truncation_after_a_checkpoint_is_detected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _populate(tmp_path)
    checkpoints = tmp_path / "offsite" / "checkpoints.jsonl"
    checkpoints.parent.mkdir()
    signed = _checkpoint(data, checkpoints, capsys)
    total = len(_rows(data))
    assert signed.seq == total
    assert (
        main(["audit", "verify", "--data-dir", str(data), "--checkpoints", str(checkpoints)]) == 0
    )
    assert f"{total} entries, 1 checkpoints hold" in capsys.readouterr().out
    conn = sqlite3.connect(data / "secinfra.db")
    with conn:
        conn.execute("DELETE FROM audit_log WHERE seq > ?", (total - 2,))
    conn.close()
    # Without the checkpoint a shorter chain is still a valid chain...
    assert main(["audit", "verify", "--data-dir", str(data)]) == 0
    capsys.readouterr()
    # ...with it, the cut is found.
    assert (
        main(["audit", "verify", "--data-dir", str(data), "--checkpoints", str(checkpoints)]) == 1
    )
    err = capsys.readouterr().err
    assert f"entry {total} is signed in a checkpoint but the chain ends at {total - 2}" in err


def test_a_chain_rewritten_from_genesis_fails_its_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Database write access can rebuild a consistent unkeyed chain; the signed
    checkpoint, kept off the host, still catches it."""
    data = _populate(tmp_path)
    checkpoints = tmp_path / "checkpoints.jsonl"
    signed = _checkpoint(data, checkpoints, capsys)
    conn = sqlite3.connect(data / "secinfra.db")
    with conn:
        _rewrite_as_legacy(conn, 1)
    conn.close()
    assert (
        main(["audit", "verify", "--data-dir", str(data), "--checkpoints", str(checkpoints)]) == 1
    )
    assert f"entry {signed.seq} differs from its signed checkpoint" in capsys.readouterr().err


def test_a_forged_checkpoint_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _populate(tmp_path)
    checkpoints = tmp_path / "checkpoints.jsonl"
    signed = _checkpoint(data, checkpoints, capsys)
    forged = dataclasses.replace(signed, seq=signed.seq - 1)
    checkpoints.write_text(forged.to_json_line() + "\n")
    assert (
        main(["audit", "verify", "--data-dir", str(data), "--checkpoints", str(checkpoints)]) == 1
    )
    assert "is not signed by the pinned audit key" in capsys.readouterr().err
    # Pinning another key (an attacker's) refuses the genuine checkpoint too.
    checkpoints.write_text(signed.to_json_line() + "\n")
    other = AuditKey.generate().public_key_b64()
    argv = ["audit", "verify", "--data-dir", str(data), "--checkpoints", str(checkpoints)]
    assert main([*argv, "--public-key", other]) == 1
    assert main([*argv, "--public-key", signed.public_key]) == 0


def test_verify_without_the_audit_key_cannot_pass_keyed_entries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _populate(tmp_path)
    (data / "audit.key").rename(tmp_path / "audit.key")
    assert main(["audit", "verify", "--data-dir", str(data)]) == 1
    assert "verifying it needs the audit key" in capsys.readouterr().err
    argv = ["audit", "verify", "--data-dir", str(data), "--audit-key-file"]
    assert main([*argv, str(tmp_path / "audit.key")]) == 0


#: Three entries as a server before schema 4 wrote them: plain SHA-256.
LEGACY_INSERT = (
    "INSERT INTO audit_log (seq, at_ms, actor, action, resource, outcome, request_id,"
    " details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, '{}', ?, ?)"
)


def _legacy_rows() -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    prev = GENESIS_HASH
    for seq in (1, 2, 3):
        event = AuditEvent("spiffe://old", "identity.revoke", f"serial:{seq}", "allowed", "r")
        digest = entry_hash(prev, seq, 1000 * seq, event)
        rows.append(
            (
                seq,
                1000 * seq,
                event.actor,
                event.action,
                event.resource,
                "allowed",
                "r",
                prev,
                digest,
            )
        )
        prev = digest
    return rows


def _upgrade_and_verify(
    server: RunningServer,
    tmp_path: Path,
    verify_argv: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Start the server on the old database (it migrates), make a keyed entry,
    and verify: the old entries by the old rule, the rest keyed."""
    server.start()
    admin = Client(server.port, server.bundle_pem(), server.admin, tmp_path / "admin")
    assert admin.request("GET", "/v1/join-tokens").status == 200
    admin.close()
    server.stop()
    assert main(["audit", "verify", *verify_argv]) == 0
    assert "(3 before the keyed chain)" in capsys.readouterr().out


def test_a_legacy_chain_keeps_verifying_up_to_the_switch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A database from before schema 4 (plain SHA-256 entries): after the
    upgrade its old entries verify with the old rule, new ones are keyed."""
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    conn = sqlite3.connect(data / "secinfra.db", isolation_level=None)
    for version, migration in enumerate(MIGRATIONS[:3], start=1):
        for statement in migration.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {version}")
    conn.executemany(LEGACY_INSERT, _legacy_rows())
    conn.close()
    _upgrade_and_verify(RunningServer(data), tmp_path, ["--data-dir", str(data)], capsys)
    rows = (
        sqlite3.connect(data / "secinfra.db")
        .execute("SELECT seq, chain FROM audit_log ORDER BY seq")
        .fetchall()
    )
    assert [chain for _, chain in rows[:3]] == ["sha256"] * 3
    assert len(rows) > 3
    assert {chain for _, chain in rows[3:]} == {"hmac-sha256"}


def test_a_legacy_chain_on_postgresql_keeps_verifying_after_migration_4(
    postgres_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same upgrade on PostgreSQL: a database at schema 3 with unkeyed
    entries, migrated by the server at start."""
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY,"
            " name TEXT NOT NULL, applied_ms BIGINT NOT NULL)"
        )
        for migration in pg_migrations()[:3]:
            with conn.transaction():
                conn.execute(cast(Any, migration.sql))
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (%s, %s, 0)",
                    (migration.version, migration.name),
                )
        conn.cursor().executemany(LEGACY_INSERT.replace("?", "%s"), _legacy_rows())
    data = tmp_path / "data"
    config = tmp_path / "server.toml"
    config.write_text(f"database_dsn = {json.dumps(postgres_dsn)}\n")
    server = RunningServer(data, database_dsn=postgres_dsn, migrate=True)
    _upgrade_and_verify(
        server, tmp_path, ["--data-dir", str(data), "--config", str(config)], capsys
    )
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        chains = [c for (c,) in conn.execute("SELECT chain FROM audit_log ORDER BY seq")]
    assert chains[:3] == ["sha256"] * 3
    assert set(chains[3:]) == {CHAIN_HMAC}


def test_on_postgresql_one_keyed_chain_and_truncation_after_a_checkpoint(
    postgres_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same chain rules on PostgreSQL: read with --config, checkpointed,
    an edit and a cut tail found."""
    data = tmp_path / "data"
    server = RunningServer(data, database_dsn=postgres_dsn, migrate=True).start()
    admin = Client(server.port, server.bundle_pem(), server.admin, tmp_path / "admin")
    for i in range(3):
        assert (
            admin.request(
                "POST", "/v1/join-tokens", {"spiffe_id": f"spiffe://secinfra.local/w/{i}"}
            ).status
            == 200
        )
    admin.close()
    server.stop()
    config = tmp_path / "server.toml"
    config.write_text(f"database_dsn = {json.dumps(postgres_dsn)}\n")
    base = ["--data-dir", str(data), "--config", str(config)]
    checkpoints = tmp_path / "checkpoints.jsonl"
    assert main(["audit", "checkpoint", *base, "--out", str(checkpoints)]) == 0
    signed = Checkpoint.parse(capsys.readouterr().out.strip())
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        (total,) = conn.execute("SELECT COUNT(*) FROM audit_log").fetchone() or (0,)
        assert signed.seq == total
        assert conn.execute("SELECT DISTINCT chain FROM audit_log").fetchall() == [(CHAIN_HMAC,)]
    assert main(["audit", "verify", *base, "--checkpoints", str(checkpoints)]) == 0
    capsys.readouterr()
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM audit_log WHERE seq = %s", (total,))
    assert main(["audit", "verify", *base, "--checkpoints", str(checkpoints)]) == 1
    assert "truncated" in capsys.readouterr().err
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute("UPDATE audit_log SET actor = 'spiffe://evil' WHERE seq = 2")
    assert main(["audit", "verify", *base]) == 1
    assert "entry 2 was modified" in capsys.readouterr().err
