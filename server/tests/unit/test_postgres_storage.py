"""PostgreSQL storage only: migrations under the advisory lock, refusing an
unfit database or schema, writes serialized across processes, and the DSN's
password kept out of every message, log line and repr."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from postgres_cluster import PostgresCluster

from secinfra_server.audit import AuditChain, AuditEvent, verify
from secinfra_server.config import ConfigError, load_config
from secinfra_server.crypto import AuditKey
from secinfra_server.storage import SCHEMA_VERSION, SchemaTooNew
from secinfra_server.storage import postgres as pg

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _versions(dsn: str) -> list[int]:
    with psycopg.connect(dsn) as conn:
        return [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]


def test_the_migrations_are_numbered_and_match_sqlites_schema_version() -> None:
    found = pg.migrations()
    assert [m.version for m in found] == list(range(1, SCHEMA_VERSION + 1))
    assert pg.SCHEMA_VERSION == SCHEMA_VERSION
    assert all(m.name.startswith(f"{m.version:04d}_") for m in found)


async def test_a_server_refuses_an_unmigrated_database(postgres_dsn: str) -> None:
    with pytest.raises(pg.SchemaNotCurrent, match="secinfra-server migrate"):
        await pg.PostgresStorage.open(postgres_dsn)
    storage = await pg.PostgresStorage.open(postgres_dsn, migrate=True)
    await storage.close()
    assert _versions(postgres_dsn) == list(range(1, SCHEMA_VERSION + 1))
    # Now current: opening without migrate is fine, and migrating again applies nothing.
    storage = await pg.PostgresStorage.open(postgres_dsn)
    assert await storage.bundle_sequence() == 1
    await storage.close()
    assert await pg.apply_migrations(postgres_dsn) == pg.MigrationReport(
        SCHEMA_VERSION, SCHEMA_VERSION
    )


async def test_concurrent_migrations_apply_each_version_once(postgres_dsn: str) -> None:
    reports = await asyncio.gather(*(pg.apply_migrations(postgres_dsn) for _ in range(4)))
    assert {report.after for report in reports} == {SCHEMA_VERSION}
    assert sorted(report.before for report in reports) == [0, *[SCHEMA_VERSION] * 3]
    assert _versions(postgres_dsn) == list(range(1, SCHEMA_VERSION + 1))


async def test_a_newer_schema_is_refused(postgres_dsn: str) -> None:
    await pg.apply_migrations(postgres_dsn)
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO schema_migrations VALUES (%s, 'from_the_future.sql', 0)",
            (SCHEMA_VERSION + 1,),
        )
    with pytest.raises(SchemaTooNew, match="newer than this server"):
        await pg.PostgresStorage.open(postgres_dsn)
    with pytest.raises(SchemaTooNew):
        await pg.apply_migrations(postgres_dsn)


async def test_a_database_without_synchronous_commit_is_refused(postgres_dsn: str) -> None:
    database = postgres_dsn.rsplit("/", 1)[1]
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {database} SET synchronous_commit = off")
    with pytest.raises(pg.StorageUnavailable, match="synchronous_commit = off"):
        await pg.PostgresStorage.open(postgres_dsn, migrate=True)


async def test_writes_from_two_processes_are_serialized(postgres_dsn: str) -> None:
    """Two storages stand for two replicas: read-modify-write transactions
    (a counter, the audit chain's next sequence number) never interleave."""
    first = await pg.PostgresStorage.open(postgres_dsn, migrate=True)
    second = await pg.PostgresStorage.open(postgres_dsn)
    chain = AuditChain(AuditKey.generate())

    def bump_and_audit(conn: sqlite3.Connection) -> None:
        (value,) = conn.execute("SELECT value FROM meta WHERE key = 'bundle_sequence'").fetchone()
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = 'bundle_sequence'", (str(int(value) + 1),)
        )
        chain.append(conn, AuditEvent("test", "test.bump", "meta", "allowed", "", {}), NOW)

    try:
        await asyncio.gather(
            *(storage.write(bump_and_audit) for storage in (first, second) for _ in range(15))
        )
        assert await first.bundle_sequence() == 31
        result = await second.read(lambda conn: verify(conn, chain.key))
        assert result.ok
        assert result.entries == 30
    finally:
        await first.close()
        await second.close()


async def test_a_read_transaction_cannot_write(postgres_dsn: str) -> None:
    storage = await pg.PostgresStorage.open(postgres_dsn, migrate=True)
    try:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            await storage.read(lambda conn: conn.execute("DELETE FROM meta"))
        assert await storage.bundle_sequence() == 1
    finally:
        await storage.close()


# --------------------------------------------------------------------- the DSN


def test_redact_dsn_hides_the_password_in_either_form() -> None:
    for dsn in (
        "postgresql://app:s3cr3t-pw@db.internal:5432/secinfra?sslmode=verify-full",
        "host=db.internal user=app password=s3cr3t-pw dbname=secinfra",
    ):
        shown = pg.redact_dsn(dsn)
        assert "s3cr3t-pw" not in shown
        assert "password=***" in shown
        assert "host=db.internal" in shown
    assert pg.redact_dsn("postgresql://app:s3cr3t-pw@[broken") == "<unparsable DSN>"


async def test_the_password_is_in_no_error_log_line_or_repr(
    postgres: PostgresCluster, postgres_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = postgres_dsn.replace(postgres.password, "Wr0ng-Passw0rd")
    unreachable = f"postgresql://secinfra:Wr0ng-Passw0rd@127.0.0.1:1/{postgres_dsn[-6:]}"
    unparsable = "host=127.0.0.1 password=Wr0ng-Passw0rd dbname"
    for dsn in (wrong, unreachable, unparsable):
        with pytest.raises(pg.StorageUnavailable) as caught:
            await pg.PostgresStorage.open(dsn)
        chain: list[BaseException] = []
        error: BaseException | None = caught.value
        while error is not None:
            chain.append(error)
            error = error.__cause__ or error.__context__
        assert "password=***" in str(caught.value) or dsn == unparsable
        for link in chain:
            assert "Wr0ng-Passw0rd" not in str(link)
    storage = await pg.PostgresStorage.open(postgres_dsn, migrate=True)
    try:
        assert postgres.password not in repr(storage)
        assert "password=***" in repr(storage)
        await storage.bundle_sequence()
    finally:
        await storage.close()
    assert "Wr0ng-Passw0rd" not in caplog.text
    assert postgres.password not in caplog.text


def test_the_dsn_setting_is_kept_out_of_the_configs_repr(tmp_path: Path) -> None:
    dsn = "postgresql://app:s3cr3t-pw@db.internal/secinfra"
    config = load_config(flags={"data_dir": str(tmp_path)}, environ={"SECINFRA_DATABASE_DSN": dsn})
    assert config.postgres_dsn() == dsn
    assert "s3cr3t-pw" not in repr(config)
    dsn_file = tmp_path / "dsn"
    dsn_file.write_text(dsn + "\n")
    from_file = load_config(
        flags={"data_dir": str(tmp_path), "database_dsn_file": str(dsn_file)}, environ={}
    )
    assert from_file.postgres_dsn() == dsn
    with pytest.raises(ConfigError, match="set one, not both"):
        load_config(
            flags={"data_dir": str(tmp_path), "database_dsn_file": str(dsn_file)},
            environ={"SECINFRA_DATABASE_DSN": dsn},
        )
    dsn_file.unlink()
    with pytest.raises(ConfigError, match="cannot read") as caught:
        from_file.postgres_dsn()
    assert "s3cr3t-pw" not in str(caught.value)
    assert load_config(flags={"data_dir": str(tmp_path)}, environ={}).postgres_dsn() is None
