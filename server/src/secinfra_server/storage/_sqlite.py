"""SQLite storage: WAL journal, synchronous=FULL, versioned migrations.

Blocking SQLite calls never run on the event loop. Writes go through one
dedicated thread (SQLite has one writer at a time anyway, so this keeps them
ordered without busy-waiting); reads use a small pool of threads, each with its
own connection. synchronous=FULL in WAL mode makes a committed transaction
survive a power loss or a SIGKILL: when a write method returns, it is durable.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final, TypeVar

from .._tracing import NO_TRACING, Tracing
from ._base import SchemaTooNew
from ._commit_hooks import collecting, run_committed
from ._sql_storage import SqlStorage

T = TypeVar("T")

READ_THREADS: Final = 4
#: ``db.system.name`` of this backend's spans.
DB_SYSTEM: Final = "sqlite"
BUSY_TIMEOUT_MS: Final = 10_000

#: Each entry upgrades the schema by one version; never edit a released entry.
MIGRATIONS: Final[tuple[str, ...]] = (
    # 1: CA, join tokens, revocations, issued certificates, metadata.
    """
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    INSERT INTO meta (key, value) VALUES ('bundle_sequence', '1');
    CREATE TABLE cas (
        id TEXT PRIMARY KEY,
        state TEXT NOT NULL CHECK (state IN ('prepared', 'active', 'retiring', 'retired')),
        cert_pem TEXT NOT NULL,
        key_kek_id TEXT NOT NULL,
        key_wrapped BLOB NOT NULL,
        key_ciphertext BLOB NOT NULL,
        not_before_ms INTEGER NOT NULL,
        not_after_ms INTEGER NOT NULL,
        prepared_ms INTEGER NOT NULL,
        activated_ms INTEGER,
        retiring_ms INTEGER,
        retired_ms INTEGER,
        leaves_expire_by_ms INTEGER
    );
    CREATE UNIQUE INDEX cas_one_active ON cas (state) WHERE state = 'active';
    CREATE TABLE join_tokens (
        id TEXT PRIMARY KEY,
        secret_hash BLOB NOT NULL,
        spiffe_id TEXT NOT NULL,
        expires_ms INTEGER NOT NULL,
        created_ms INTEGER NOT NULL,
        used_ms INTEGER,
        revoked INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE revocations (
        serial TEXT NOT NULL,
        spiffe_id TEXT NOT NULL,
        reason TEXT NOT NULL,
        revoked_ms INTEGER NOT NULL,
        PRIMARY KEY (serial, spiffe_id)
    );
    CREATE TABLE issued_certificates (
        serial TEXT PRIMARY KEY,
        spiffe_id TEXT NOT NULL,
        ca_id TEXT NOT NULL REFERENCES cas (id),
        not_after_ms INTEGER NOT NULL,
        issued_ms INTEGER NOT NULL
    );
    CREATE INDEX issued_by_ca ON issued_certificates (ca_id, not_after_ms);
    """,
    # 2: secrets, authorization model and tuples, audit log, idempotency records.
    """
    CREATE TABLE secrets (
        name TEXT PRIMARY KEY,
        current_version INTEGER NOT NULL,
        max_versions INTEGER NOT NULL,
        cache_max_age_s INTEGER NOT NULL,
        stale_if_error_s INTEGER NOT NULL,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL
    );
    CREATE TABLE secret_versions (
        name TEXT NOT NULL REFERENCES secrets (name),
        version INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('enabled', 'deleted', 'destroyed')),
        kek_id TEXT,
        wrapped_key BLOB,
        ciphertext BLOB,
        created_ms INTEGER NOT NULL,
        deleted_ms INTEGER,
        PRIMARY KEY (name, version)
    );
    CREATE TABLE authz_models (
        id TEXT PRIMARY KEY,
        model_json TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    );
    INSERT INTO meta (key, value) VALUES ('authz_revision', '0');
    INSERT INTO meta (key, value) VALUES ('authz_model_id', '');
    CREATE TABLE authz_tuples (
        object_type TEXT NOT NULL,
        object_id TEXT NOT NULL,
        relation TEXT NOT NULL,
        user TEXT NOT NULL,
        revision INTEGER NOT NULL,
        PRIMARY KEY (object_type, object_id, relation, user)
    );
    CREATE INDEX authz_tuples_by_user ON authz_tuples (object_type, relation, user);
    CREATE TABLE audit_log (
        seq INTEGER PRIMARY KEY,
        at_ms INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        resource TEXT NOT NULL,
        outcome TEXT NOT NULL,
        request_id TEXT NOT NULL,
        details TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE TABLE idempotency (
        caller TEXT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('in_progress', 'done')),
        kek_id TEXT,
        wrapped_key BLOB,
        ciphertext BLOB,
        created_ms INTEGER NOT NULL,
        PRIMARY KEY (caller, key)
    );
    CREATE INDEX idempotency_by_age ON idempotency (created_ms);
    """,
    # 3: the published CRLs. (PostgreSQL's migration 3 also adds the replicas'
    # change feed, state_revisions and the NOTIFY triggers; one process on one
    # file makes every change itself and needs none of it.)
    """
    CREATE TABLE crls (
        ca_id TEXT PRIMARY KEY REFERENCES cas (id),
        crl_number INTEGER NOT NULL,
        der BLOB NOT NULL,
        revocations INTEGER NOT NULL,
        this_update_ms INTEGER NOT NULL
    );
    """,
    # 4: the keyed audit chain: each entry names its rule ('sha256' for the
    # entries written before, 'hmac-sha256' since) and the audit key's id.
    """
    ALTER TABLE audit_log ADD COLUMN chain TEXT NOT NULL DEFAULT 'sha256';
    ALTER TABLE audit_log ADD COLUMN key_id TEXT NOT NULL DEFAULT ''
    """,
    # 5: conditional tuples: the condition a tuple was written with, canonical
    # JSON {"name": ..., "context": {...}}, '' for none (not part of the key).
    """
    ALTER TABLE authz_tuples ADD COLUMN condition_json TEXT NOT NULL DEFAULT ''
    """,
    # 6: registration entries (see storage/entry_tables.py).
    """
    CREATE TABLE registration_entries (
        id TEXT PRIMARY KEY,
        spiffe_id TEXT NOT NULL,
        parent_id TEXT NOT NULL,
        selectors TEXT NOT NULL,
        ttl_seconds INTEGER NOT NULL,
        dns_names TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        UNIQUE (parent_id, spiffe_id, selectors)
    );
    CREATE INDEX registration_entries_by_parent
        ON registration_entries (parent_id, created_ms, id);
    CREATE INDEX registration_entries_by_age ON registration_entries (created_ms, id)
    """,
)
SCHEMA_VERSION: Final = len(MIGRATIONS)


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Apply pending migrations, each in its own transaction. Returns the version."""
    (current,) = conn.execute("PRAGMA user_version").fetchone()
    if current > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"secinfra: storage: database schema version {current} is newer than this "
            f"server's {SCHEMA_VERSION}; run a newer server"
        )
    for version in range(current + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[version - 1].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return SCHEMA_VERSION


class SqliteStorage(SqlStorage):
    """The :class:`~secinfra_server.storage.Storage` interface over one SQLite file."""

    def __init__(self, path: Path, *, tracing: Tracing = NO_TRACING) -> None:
        self._path = path
        self._tracing = tracing
        self._local = threading.local()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-write")
        self._readers = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="sqlite-read")
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()

    @classmethod
    async def open(cls, path: Path, *, tracing: Tracing = NO_TRACING) -> SqliteStorage:
        """Open (creating if needed, mode 0600) and migrate the database at
        ``path``; each transaction is a span of ``tracing`` (see ``_tracing``)."""
        if not path.exists():
            # SQLite gives the -wal and -shm files the database file's mode.
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        storage = cls(path, tracing=tracing)
        await storage.write(migrate)
        return storage

    async def close(self) -> None:
        """Close every connection and stop the threads."""
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        with self._connections_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()

    # -- plumbing ----------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self._path)
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in one IMMEDIATE transaction on the writer thread.

        The domain stores (secrets, authz, audit, idempotency) build on this and
        :meth:`read`; ``fn`` must be synchronous and must not block on I/O other
        than the database. Everything ``fn`` writes commits together, so a
        write and its audit entry are one transaction.
        """

        def run() -> T:
            conn = self._conn()
            if fn is migrate:
                return fn(conn)
            with collecting() as committed:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            run_committed(committed)
            return result

        with self._tracing.transaction(DB_SYSTEM, "write", fn):
            return await asyncio.get_running_loop().run_in_executor(self._writer, run)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on a reader thread inside one read transaction, so
        every statement in ``fn`` sees the same snapshot."""

        def run() -> T:
            conn = self._conn()
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                conn.execute("COMMIT")

        with self._tracing.transaction(DB_SYSTEM, "read", fn):
            return await asyncio.get_running_loop().run_in_executor(self._readers, run)
