"""Storage: SQLite's migrations and durability settings, and the semantics
every backend shares (atomic token use, idempotent revocations, uniqueness,
ordering, the bundle sequence), run on SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from backends import Backend

from secinfra_server.storage import (
    SCHEMA_VERSION,
    IssuedCertificate,
    SqliteStorage,
    SqlStorage,
    StoredCa,
    StoredJoinToken,
    StoredRevocation,
    after_commit,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _token(token_id: str = "t1") -> StoredJoinToken:
    return StoredJoinToken(
        id=token_id,
        secret_hash=b"h" * 32,
        spiffe_id="spiffe://td/w",
        expires_at=NOW + timedelta(minutes=10),
        created_at=NOW,
    )


async def test_schema_and_pragmas(tmp_path: Path) -> None:
    storage = await SqliteStorage.open(tmp_path / "db")
    await storage.close()
    conn = sqlite3.connect(tmp_path / "db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    # Re-opening an up-to-date database applies nothing and keeps data.
    storage = await SqliteStorage.open(tmp_path / "db")
    assert await storage.bundle_sequence() == 1
    await storage.close()


async def test_refuses_a_newer_schema(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "db")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(RuntimeError, match="newer than this server"):
        await SqliteStorage.open(tmp_path / "db")


async def test_join_token_is_consumed_once_under_concurrency(any_storage: SqlStorage) -> None:
    storage = any_storage
    await storage.insert_join_token(_token())
    results = await asyncio.gather(
        *(storage.consume_join_token("t1", NOW + timedelta(seconds=1)) for _ in range(10))
    )
    assert results.count(True) == 1
    stored = await storage.get_join_token("t1")
    assert stored is not None
    assert stored.used_at is not None
    assert "h" * 8 not in repr(stored)


async def test_expired_or_revoked_tokens_are_not_consumed(any_storage: SqlStorage) -> None:
    storage = any_storage
    await storage.insert_join_token(_token("a"))
    await storage.insert_join_token(_token("b"))
    assert not await storage.consume_join_token("a", NOW + timedelta(hours=1))
    assert await storage.revoke_join_token("b") is not None
    assert not await storage.consume_join_token("b", NOW)
    assert await storage.revoke_join_token("missing") is None


async def test_revocations_are_idempotent(any_storage: SqlStorage) -> None:
    storage = any_storage
    first = await storage.add_revocation(StoredRevocation("ab", "", "one", NOW))
    again = await storage.add_revocation(StoredRevocation("ab", "", "two", NOW + timedelta(1)))
    assert again == first
    assert await storage.list_revocations() == [first]


async def test_writes_survive_reopen(backend: Backend) -> None:
    storage = await backend.open()
    await storage.insert_join_token(_token())
    await storage.close()
    storage = await backend.open()
    assert await storage.get_join_token("t1") is not None
    await storage.close()


async def test_a_duplicate_key_raises_sqlite3s_integrity_error(any_storage: SqlStorage) -> None:
    await any_storage.insert_join_token(_token())
    with pytest.raises(sqlite3.IntegrityError) as caught:
        await any_storage.insert_join_token(_token())
    assert "h" * 8 not in str(caught.value)
    # The failed transaction left nothing behind, and the storage still works.
    assert [t.id for t in await any_storage.list_join_tokens()] == ["t1"]


async def test_tokens_and_revocations_list_in_their_order(any_storage: SqlStorage) -> None:
    for token_id, minutes in (("b", 1), ("a", 1), ("c", 0)):
        await any_storage.insert_join_token(
            dataclasses.replace(_token(token_id), created_at=NOW + timedelta(minutes=minutes))
        )
    assert [t.id for t in await any_storage.list_join_tokens()] == ["a", "b", "c"]
    for serial, spiffe_id, seconds in (("0b", "", 2), ("", "spiffe://td/x", 1), ("0a", "", 2)):
        await any_storage.add_revocation(
            StoredRevocation(serial, spiffe_id, "r", NOW + timedelta(seconds=seconds))
        )
    listed = [(r.serial, r.spiffe_id) for r in await any_storage.list_revocations()]
    assert listed == [("", "spiffe://td/x"), ("0a", ""), ("0b", "")]


def _ca(ca_id: str, state: str, prepared_minutes: int) -> StoredCa:
    return StoredCa(
        id=ca_id,
        state=state,
        cert_pem="-----BEGIN CERTIFICATE-----",
        key_kek_id="kek-1",
        key_wrapped=b"\x00wrapped",
        key_ciphertext=b"\x00\xffcipher",
        not_before=NOW,
        not_after=NOW + timedelta(days=365),
        prepared_at=NOW + timedelta(minutes=prepared_minutes),
        activated_at=NOW if state == "active" else None,
    )


async def test_cas_round_trip_and_one_active_at_a_time(any_storage: SqlStorage) -> None:
    storage = any_storage
    assert await storage.bundle_sequence() == 1
    old = _ca("ca-old", "active", 0)
    assert await storage.save_cas([old], bump_bundle=True) == 2
    new = _ca("ca-new", "prepared", 5)
    assert await storage.save_cas([new], bump_bundle=False) == 2
    assert await storage.list_cas() == [new, old]
    # Promote and demote in one call: the storage orders them for the index.
    promoted = dataclasses.replace(new, state="active", activated_at=NOW)
    demoted = dataclasses.replace(old, state="retiring", retiring_at=NOW)
    assert await storage.save_cas([promoted, demoted], bump_bundle=True) == 3
    assert [ca.state for ca in await storage.list_cas()] == ["active", "retiring"]
    with pytest.raises(sqlite3.IntegrityError):
        await storage.save_cas([dataclasses.replace(old, state="active")], bump_bundle=True)
    assert await storage.bundle_sequence() == 3


async def test_issued_certificates_extend_their_cas_leaf_horizon(any_storage: SqlStorage) -> None:
    storage = any_storage
    await storage.save_cas([_ca("ca-1", "active", 0)], bump_bundle=False)
    for serial, hours in (("01", 2), ("02", 1)):
        await storage.record_issued(
            IssuedCertificate(serial, "spiffe://td/w", "ca-1", NOW + timedelta(hours=hours), NOW)
        )
    (ca,) = await storage.list_cas()
    assert ca.leaves_expire_by == NOW + timedelta(hours=2)
    assert await storage.issuers_of(["01", "02", "03"]) == {"01": "ca-1", "02": "ca-1"}


async def test_a_failed_write_rolls_back_and_a_read_sees_one_snapshot(
    any_storage: SqlStorage,
) -> None:
    def fail(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'bundle_sequence'")
        raise RuntimeError("after the update")

    with pytest.raises(RuntimeError):
        await any_storage.write(fail)
    assert await any_storage.bundle_sequence() == 1

    def twice(conn: sqlite3.Connection) -> tuple[object, object]:
        query = "SELECT value FROM meta WHERE key = 'bundle_sequence'"
        return conn.execute(query).fetchone(), conn.execute(query).fetchone()

    first, second = await any_storage.read(twice)
    assert first == second == ("1",)


async def test_after_commit_runs_once_committed_and_never_after_a_rollback(
    any_storage: SqlStorage,
) -> None:
    ran: list[str] = []

    def commits(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'bundle_sequence'")
        after_commit(lambda: ran.append("committed"))
        assert ran == []  # not before the commit

    def rolls_back(conn: sqlite3.Connection) -> None:
        after_commit(lambda: ran.append("rolled back"))
        raise RuntimeError("after registering")

    await any_storage.write(commits)
    with pytest.raises(RuntimeError):
        await any_storage.write(rolls_back)
    assert ran == ["committed"]
    assert await any_storage.bundle_sequence() == 2
    with pytest.raises(RuntimeError, match="outside a storage write transaction"):
        after_commit(lambda: None)
