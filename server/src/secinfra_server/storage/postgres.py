"""PostgreSQL storage: the same methods as SQLite, for replicas on one database.

**Threads, not the async pool.** The storage methods, the table modules and
the domain stores above them run synchronous functions of one connection
(``fn(conn)``, see :class:`~secinfra_server.storage.Storage`), and the
authorization engine calls its tuple reader from synchronous code deep in a
check. psycopg's async pool would need every one of them rewritten as
coroutines; instead, as :class:`~secinfra_server.storage.SqliteStorage` does,
each ``fn`` runs on a worker thread with a connection from psycopg_pool's
(thread-safe) :class:`~psycopg_pool.ConnectionPool`, and the event loop only
awaits the thread. Blocking calls therefore never run on the event loop.

**Transactions, the same as SQLite's.** Every write transaction first takes
one PostgreSQL advisory transaction lock (:data:`WRITE_LOCK`), so writes run
one at a time across every process on the database, exactly like SQLite's one
writer; a read-modify-write such as check-and-set, the audit chain's next
sequence number or a revision counter therefore needs no retry loop and can
never interleave. Reads run in ``REPEATABLE READ READ ONLY`` transactions: one
snapshot per read, as SQLite's read transactions give. A write is durable when
it returns: the server refuses ``synchronous_commit = off`` and a standby.

**Migrations** are the numbered SQL files in ``migrations/postgresql`` (the same
schema versions as SQLite's), recorded in ``schema_migrations`` and applied
under a session advisory lock (:data:`MIGRATE_LOCK`) by ``secinfra-server
migrate`` or at start with ``migrate = true``; otherwise a server refuses a
database whose schema is not exactly its own.

The DSN's password appears nowhere: not in a log line, an error message or a
``repr`` (:func:`redact_dsn`).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final, TypeVar, cast

import psycopg
from psycopg import conninfo
from psycopg_pool import ConnectionPool

from .._tracing import NO_TRACING, Tracing
from ._base import SchemaTooNew
from ._commit_hooks import collecting, run_committed
from ._pg_changes import (
    APPLICATION_NAME as FEED_APPLICATION_NAME,
)
from ._pg_changes import (
    KEEPALIVES,
    PROPAGATION_BOUND_SECONDS,
    ChangeCallback,
    ChangeFeed,
)
from ._pg_connection import PgConnection
from ._pg_leader import APPLICATION_NAME as LEADER_APPLICATION_NAME
from ._pg_leader import LEADER_LOCK, TAKEOVER_BOUND_SECONDS, LeaderElection
from ._sql_storage import SqlStorage

T = TypeVar("T")

log = logging.getLogger("secinfra.storage")

READ_THREADS: Final = 4
#: ``db.system.name`` of this backend's spans.
DB_SYSTEM: Final = "postgresql"
#: Seconds to wait for PostgreSQL to accept a connection (at open and in the pool).
CONNECT_TIMEOUT_SECONDS: Final = 10
#: Advisory lock keys (one 64-bit space per database): 'secinfra' in ASCII,
#: then the lock's number.
MIGRATE_LOCK: Final = 0x7365_6369_6E66_0001
WRITE_LOCK: Final = 0x7365_6369_6E66_0002
_MIGRATIONS_DIR: Final = ("migrations", "postgresql")


__all__ = [
    "CONNECT_TIMEOUT_SECONDS",
    "FEED_APPLICATION_NAME",
    "LEADER_APPLICATION_NAME",
    "LEADER_LOCK",
    "MIGRATE_LOCK",
    "PROPAGATION_BOUND_SECONDS",
    "SCHEMA_VERSION",
    "TAKEOVER_BOUND_SECONDS",
    "WRITE_LOCK",
    "ChangeFeed",
    "LeaderElection",
    "Migration",
    "MigrationReport",
    "PostgresStorage",
    "SchemaNotCurrent",
    "StorageUnavailable",
    "apply_migrations",
    "migrations",
    "redact_dsn",
]


class StorageUnavailable(RuntimeError):
    """PostgreSQL cannot be reached or is not fit to hold the server's state."""


class SchemaNotCurrent(RuntimeError):
    """The database's schema is older than this server's; run the migrations."""


@dataclass(frozen=True)
class Migration:
    """One numbered SQL file."""

    version: int
    name: str
    sql: str


@dataclass(frozen=True)
class MigrationReport:
    """What :func:`apply_migrations` did: the schema version before and after."""

    before: int
    after: int


def migrations() -> tuple[Migration, ...]:
    """The numbered migrations shipped in the package, in order.

    Raises:
        RuntimeError: the files are not numbered 0001, 0002, ... without a gap.
    """
    folder = resources.files(__package__).joinpath(*_MIGRATIONS_DIR)
    entries = sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(".sql")),
        key=lambda entry: entry.name,
    )
    found: list[Migration] = []
    for expected, entry in enumerate(entries, start=1):
        number = entry.name.split("_", 1)[0]
        if not number.isdigit() or int(number) != expected:
            raise RuntimeError(
                f"secinfra: storage: migration {entry.name} is out of sequence (expected"
                f" {expected:04d}_...)"
            )
        found.append(Migration(expected, entry.name, entry.read_text(encoding="utf-8")))
    return tuple(found)


SCHEMA_VERSION: Final = len(migrations())


def redact_dsn(dsn: str) -> str:
    """The DSN as libpq reads it, with any password replaced by ``***``.

    Safe for log lines and error messages; a DSN libpq cannot parse is shown as
    ``<unparsable DSN>`` (its text could hold the password anywhere).
    """
    try:
        params = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparsable DSN>"
    if "password" in params:
        params["password"] = "***"
    return conninfo.make_conninfo("", **params)


def _password(dsn: str) -> str:
    try:
        return str(conninfo.conninfo_to_dict(dsn).get("password") or "")
    except psycopg.ProgrammingError:
        return ""


def _reason(exc: BaseException, dsn: str) -> str:
    """``exc``'s message with the DSN's password blanked (libpq does not echo
    it, but a message is no place to depend on that)."""
    text = str(exc).strip() or type(exc).__name__
    password = _password(dsn)
    return text.replace(password, "***") if password else text


def _parses(dsn: str) -> bool:
    try:
        conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return False
    return True


def _connect(dsn: str) -> psycopg.Connection[Any]:
    if not _parses(dsn):
        # Raised outside the parser's except block on purpose: libpq's parse
        # error quotes the DSN around the mistake, password and all, so it
        # must be neither the message nor the cause (or context) of this one.
        raise StorageUnavailable(
            "secinfra: storage: the PostgreSQL DSN is not a valid libpq connection string"
            " (a postgresql:// URL or key=value pairs)"
        )
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS)
    except psycopg.Error as exc:
        raise StorageUnavailable(
            f"secinfra: storage: cannot connect to PostgreSQL ({redact_dsn(dsn)}):"
            f" {_reason(exc, dsn)}"
        ) from exc


def _schema_version(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if row is None or not row[0]:
        return 0
    (version,) = conn.execute(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"
    ).fetchone() or (0,)
    return int(version)


def _check_fit(conn: psycopg.Connection[Any]) -> None:
    """Refuse a standby and a database that may lose acknowledged commits."""
    row = conn.execute(
        "SELECT pg_is_in_recovery(), current_setting('synchronous_commit')"
    ).fetchone()
    assert row is not None
    in_recovery, synchronous_commit = row
    if in_recovery:
        raise StorageUnavailable(
            "secinfra: storage: PostgreSQL is a standby (in recovery); point the DSN at the"
            " writable primary"
        )
    if synchronous_commit == "off":
        raise StorageUnavailable(
            "secinfra: storage: PostgreSQL has synchronous_commit = off, so an acknowledged"
            " write could be lost in a crash; set it to on (or stronger) for this database"
        )


def _migrate(conn: psycopg.Connection[Any]) -> MigrationReport:
    """Apply pending migrations under :data:`MIGRATE_LOCK`, each in its own
    transaction with its row in ``schema_migrations``."""
    wanted = migrations()
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATE_LOCK,))
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
            " name TEXT NOT NULL, applied_ms BIGINT NOT NULL)"
        )
        before = _schema_version(conn)
        if before > len(wanted):
            raise SchemaTooNew(
                f"secinfra: storage: database schema version {before} is newer than this "
                f"server's {len(wanted)}; run a newer server"
            )
        for migration in wanted[before:]:
            with conn.transaction():
                conn.execute(cast(Any, migration.sql))
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_ms) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, int(time.time() * 1000)),
                )
            log.info(
                "applied a schema migration",
                extra={"fields": {"version": migration.version, "name": migration.name}},
            )
        return MigrationReport(before, len(wanted))
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATE_LOCK,))


def _require_current(conn: psycopg.Connection[Any]) -> None:
    version = _schema_version(conn)
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"secinfra: storage: database schema version {version} is newer than this "
            f"server's {SCHEMA_VERSION}; run a newer server"
        )
    if version < SCHEMA_VERSION:
        raise SchemaNotCurrent(
            f"secinfra: storage: database schema version {version} is older than this "
            f"server's {SCHEMA_VERSION}; run `secinfra-server migrate` (or start with"
            " --migrate)"
        )


async def apply_migrations(dsn: str) -> MigrationReport:
    """``secinfra-server migrate``: bring the database's schema up to date."""

    def run() -> MigrationReport:
        with _connect(dsn) as conn:
            _check_fit(conn)
            return _migrate(conn)

    return await asyncio.get_running_loop().run_in_executor(None, run)


class PostgresStorage(SqlStorage):
    """The :class:`~secinfra_server.storage.Storage` interface over PostgreSQL."""

    def __init__(
        self, pool: ConnectionPool[Any], dsn: str, *, tracing: Tracing = NO_TRACING
    ) -> None:
        self._pool = pool
        self._tracing = tracing
        self._dsn = dsn
        self._where = redact_dsn(dsn)
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="pg-write")
        self._readers = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="pg-read")

    def __repr__(self) -> str:
        return f"PostgresStorage({self._where})"

    @classmethod
    async def open(
        cls, dsn: str, *, migrate: bool = False, tracing: Tracing = NO_TRACING
    ) -> PostgresStorage:
        """Connect, check the database (a writable primary with synchronous
        commit) and its schema, migrating first if ``migrate``. Each
        transaction is a span of ``tracing`` (see ``_tracing``).

        Raises:
            StorageUnavailable: PostgreSQL cannot be reached or is unfit.
            SchemaNotCurrent: the schema is behind and ``migrate`` is false.
            SchemaTooNew: the schema is newer than this server's.
        """

        def run() -> PostgresStorage:
            with _connect(dsn) as conn:
                _check_fit(conn)
                if migrate:
                    _migrate(conn)
                else:
                    _require_current(conn)
            pool: ConnectionPool[Any] = ConnectionPool(
                dsn,
                min_size=1,
                max_size=1 + READ_THREADS,
                kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_SECONDS},
                name="secinfra-storage",
                open=False,
            )
            try:
                pool.open(wait=True, timeout=CONNECT_TIMEOUT_SECONDS)
            except Exception as exc:
                pool.close()
                raise StorageUnavailable(
                    f"secinfra: storage: the connection pool to PostgreSQL ({redact_dsn(dsn)})"
                    f" did not start: {_reason(exc, dsn)}"
                ) from exc
            return cls(pool, dsn, tracing=tracing)

        storage = await asyncio.get_running_loop().run_in_executor(None, run)
        log.info("storage: PostgreSQL", extra={"fields": {"dsn": storage._where}})
        return storage

    def change_feed(self, on_change: ChangeCallback) -> ChangeFeed:
        """A feed of other replicas' changes on a dedicated connection (see
        :mod:`._pg_changes`); the caller opens, starts and closes it."""
        return ChangeFeed(self._connect_dedicated, on_change)

    def leader_election(self) -> LeaderElection:
        """The background jobs' leader election on a dedicated connection (see
        :mod:`._pg_leader`); the caller checks it each tick and closes it."""
        return LeaderElection(self._connect_dedicated)

    async def _connect_dedicated(self, application_name: str) -> psycopg.AsyncConnection[Any]:
        """A connection of its own, outside the pool (LISTEN and a session
        lock belong to one session for as long as it lives)."""
        try:
            params = conninfo.make_conninfo(
                self._dsn,
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                application_name=application_name,
                **KEEPALIVES,
            )
            return await psycopg.AsyncConnection.connect(params, autocommit=True)
        except psycopg.Error as exc:
            # Not chained: the cause's text is libpq's, and only _reason
            # guarantees the password is not in it.
            raise psycopg.OperationalError(
                f"secinfra: storage: cannot connect to PostgreSQL ({self._where}):"
                f" {_reason(exc, self._dsn)}"
            ) from None

    async def close(self) -> None:
        """Stop the threads, then close every pooled connection."""
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        await asyncio.get_running_loop().run_in_executor(None, self._pool.close)

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in one transaction that holds :data:`WRITE_LOCK`.

        ``conn`` is a :class:`~._pg_connection.PgConnection`: the part of
        ``sqlite3.Connection`` the table modules use (hence the cast; their SQL
        is the subset both databases speak). Everything ``fn`` writes commits
        together, durably, when this returns.
        """

        def run() -> T:
            with (
                collecting() as committed,
                self._pool.connection() as conn,
                conn.transaction(),
            ):
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                result = fn(cast(sqlite3.Connection, PgConnection(conn)))
            run_committed(committed)
            return result

        with self._tracing.transaction(DB_SYSTEM, "write", fn):
            return await asyncio.get_running_loop().run_in_executor(self._writer, run)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in one ``REPEATABLE READ READ ONLY`` transaction, so
        every statement in ``fn`` sees the same snapshot."""

        def run() -> T:
            with self._pool.connection() as conn, conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                return fn(cast(sqlite3.Connection, PgConnection(conn)))

        with self._tracing.transaction(DB_SYSTEM, "read", fn):
            return await asyncio.get_running_loop().run_in_executor(self._readers, run)
