"""SQLite storage: migrations, durability settings, atomic token use."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from secinfra_server.storage import (
    SCHEMA_VERSION,
    SqliteStorage,
    StoredJoinToken,
    StoredRevocation,
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


async def test_join_token_is_consumed_once_under_concurrency(tmp_path: Path) -> None:
    storage = await SqliteStorage.open(tmp_path / "db")
    await storage.insert_join_token(_token())
    results = await asyncio.gather(
        *(storage.consume_join_token("t1", NOW + timedelta(seconds=1)) for _ in range(10))
    )
    assert results.count(True) == 1
    stored = await storage.get_join_token("t1")
    assert stored is not None
    assert stored.used_at is not None
    assert "h" * 8 not in repr(stored)
    await storage.close()


async def test_expired_or_revoked_tokens_are_not_consumed(tmp_path: Path) -> None:
    storage = await SqliteStorage.open(tmp_path / "db")
    await storage.insert_join_token(_token("a"))
    await storage.insert_join_token(_token("b"))
    assert not await storage.consume_join_token("a", NOW + timedelta(hours=1))
    assert await storage.revoke_join_token("b") is not None
    assert not await storage.consume_join_token("b", NOW)
    assert await storage.revoke_join_token("missing") is None
    await storage.close()


async def test_revocations_are_idempotent(tmp_path: Path) -> None:
    storage = await SqliteStorage.open(tmp_path / "db")
    first = await storage.add_revocation(StoredRevocation("ab", "", "one", NOW))
    again = await storage.add_revocation(StoredRevocation("ab", "", "two", NOW + timedelta(1)))
    assert again == first
    assert await storage.list_revocations() == [first]
    await storage.close()


async def test_writes_survive_reopen(tmp_path: Path) -> None:
    storage = await SqliteStorage.open(tmp_path / "db")
    await storage.insert_join_token(_token())
    await storage.close()
    storage = await SqliteStorage.open(tmp_path / "db")
    assert await storage.get_join_token("t1") is not None
    await storage.close()
