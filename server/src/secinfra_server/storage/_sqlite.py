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
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeVar

from ._base import InTransaction
from ._records import IssuedCertificate, StoredCa, StoredJoinToken, StoredRevocation

T = TypeVar("T")

READ_THREADS: Final = 4
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
)
SCHEMA_VERSION: Final = len(MIGRATIONS)
_ENROLMENT_SELECT: Final = (
    "SELECT id, secret_hash, spiffe_id, expires_ms, created_ms, used_ms, revoked FROM join_tokens"
)


def to_ms(moment: datetime) -> int:
    """A timezone-aware datetime as integer milliseconds since the epoch."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return int(moment.timestamp() * 1000)


def from_ms(value: int) -> datetime:
    """Integer epoch milliseconds as an aware UTC datetime."""
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def _opt_to_ms(moment: datetime | None) -> int | None:
    return None if moment is None else to_ms(moment)


def _opt_from_ms(value: int | None) -> datetime | None:
    return None if value is None else from_ms(value)


class SchemaTooNew(RuntimeError):
    """The database was written by a newer server; refusing to downgrade it."""


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


class SqliteStorage:
    """The :class:`~secinfra_server.storage.Storage` interface over one SQLite file."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._local = threading.local()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-write")
        self._readers = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="sqlite-read")
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()

    @classmethod
    async def open(cls, path: Path) -> SqliteStorage:
        """Open (creating if needed, mode 0600) and migrate the database at ``path``."""
        if not path.exists():
            # SQLite gives the -wal and -shm files the database file's mode.
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        storage = cls(path)
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
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return result

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

        return await asyncio.get_running_loop().run_in_executor(self._readers, run)

    # -- certificate authorities -------------------------------------------------
    @staticmethod
    def _ca_from_row(row: Any) -> StoredCa:
        (cid, state, pem, kek_id, wrapped, ciphertext, nb, na, prep, act, ring, ret, leaves) = row
        return StoredCa(
            id=str(cid),
            state=str(state),
            cert_pem=str(pem),
            key_kek_id=str(kek_id),
            key_wrapped=bytes(wrapped),
            key_ciphertext=bytes(ciphertext),
            not_before=from_ms(int(nb)),
            not_after=from_ms(int(na)),
            prepared_at=from_ms(int(prep)),
            activated_at=_opt_from_ms(act),
            retiring_at=_opt_from_ms(ring),
            retired_at=_opt_from_ms(ret),
            leaves_expire_by=_opt_from_ms(leaves),
        )

    async def list_cas(self) -> list[StoredCa]:
        def q(conn: sqlite3.Connection) -> list[StoredCa]:
            rows = conn.execute(
                "SELECT id, state, cert_pem, key_kek_id, key_wrapped, key_ciphertext,"
                " not_before_ms, not_after_ms, prepared_ms, activated_ms, retiring_ms,"
                " retired_ms, leaves_expire_by_ms FROM cas ORDER BY prepared_ms DESC, id"
            ).fetchall()
            return [self._ca_from_row(row) for row in rows]

        return await self.read(q)

    async def save_cas(
        self, changed: Sequence[StoredCa], *, bump_bundle: bool, also: InTransaction | None = None
    ) -> int:
        def q(conn: sqlite3.Connection) -> int:
            # Demote before promote so the one-active index never sees two.
            ordered = sorted(changed, key=lambda ca: ca.state == "active")
            for ca in ordered:
                conn.execute(
                    "INSERT INTO cas (id, state, cert_pem, key_kek_id, key_wrapped,"
                    " key_ciphertext, not_before_ms, not_after_ms, prepared_ms, activated_ms,"
                    " retiring_ms, retired_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (id) DO UPDATE SET state = excluded.state,"
                    " key_kek_id = excluded.key_kek_id, key_wrapped = excluded.key_wrapped,"
                    " key_ciphertext = excluded.key_ciphertext,"
                    " activated_ms = excluded.activated_ms, retiring_ms = excluded.retiring_ms,"
                    " retired_ms = excluded.retired_ms",
                    (
                        ca.id,
                        ca.state,
                        ca.cert_pem,
                        ca.key_kek_id,
                        ca.key_wrapped,
                        ca.key_ciphertext,
                        to_ms(ca.not_before),
                        to_ms(ca.not_after),
                        to_ms(ca.prepared_at),
                        _opt_to_ms(ca.activated_at),
                        _opt_to_ms(ca.retiring_at),
                        _opt_to_ms(ca.retired_at),
                    ),
                )
            if bump_bundle:
                conn.execute(
                    "UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)"
                    " WHERE key = 'bundle_sequence'"
                )
            (seq,) = conn.execute(
                "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'bundle_sequence'"
            ).fetchone()
            if also is not None:
                also(conn)
            return int(seq)

        return await self.write(q)

    async def bundle_sequence(self) -> int:
        def q(conn: sqlite3.Connection) -> int:
            (seq,) = conn.execute(
                "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'bundle_sequence'"
            ).fetchone()
            return int(seq)

        return await self.read(q)

    async def record_issued(self, cert: IssuedCertificate) -> None:
        def q(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO issued_certificates (serial, spiffe_id, ca_id, not_after_ms,"
                " issued_ms) VALUES (?, ?, ?, ?, ?)",
                (
                    cert.serial,
                    cert.spiffe_id,
                    cert.ca_id,
                    to_ms(cert.not_after),
                    to_ms(cert.issued_at),
                ),
            )
            conn.execute(
                "UPDATE cas SET leaves_expire_by_ms = MAX(COALESCE(leaves_expire_by_ms, 0), ?)"
                " WHERE id = ?",
                (to_ms(cert.not_after), cert.ca_id),
            )

        await self.write(q)

    async def issuers_of(self, serials: Sequence[str]) -> dict[str, str]:
        """The id of the CA that issued each serial this server recorded."""

        def q(conn: sqlite3.Connection) -> dict[str, str]:
            found: dict[str, str] = {}
            for serial in serials:
                row = conn.execute(
                    "SELECT ca_id FROM issued_certificates WHERE serial = ?", (serial,)
                ).fetchone()
                if row is not None:
                    found[serial] = str(row[0])
            return found

        return await self.read(q)

    # -- join tokens -------------------------------------------------------------
    @staticmethod
    def _token_from_row(row: Any) -> StoredJoinToken:
        (tid, secret_hash, spiffe_id, expires, created, used, revoked) = row
        return StoredJoinToken(
            id=str(tid),
            secret_hash=bytes(secret_hash),
            spiffe_id=str(spiffe_id),
            expires_at=from_ms(int(expires)),
            created_at=from_ms(int(created)),
            used_at=_opt_from_ms(used),
            revoked=bool(revoked),
        )

    async def insert_join_token(
        self, token: StoredJoinToken, *, also: InTransaction | None = None
    ) -> None:
        def q(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO join_tokens (id, secret_hash, spiffe_id, expires_ms, created_ms,"
                " used_ms, revoked)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    token.id,
                    token.secret_hash,
                    token.spiffe_id,
                    to_ms(token.expires_at),
                    to_ms(token.created_at),
                    None if token.used_at is None else to_ms(token.used_at),
                    int(token.revoked),
                ),
            )
            if also is not None:
                also(conn)

        await self.write(q)

    async def get_join_token(self, token_id: str) -> StoredJoinToken | None:
        def q(conn: sqlite3.Connection) -> StoredJoinToken | None:
            row = conn.execute(_ENROLMENT_SELECT + " WHERE id = ?", (token_id,)).fetchone()
            return None if row is None else self._token_from_row(row)

        return await self.read(q)

    async def consume_join_token(self, token_id: str, now: datetime) -> bool:
        def q(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE join_tokens SET used_ms = ? WHERE id = ? AND used_ms IS NULL"
                " AND revoked = 0 AND expires_ms > ?",
                (to_ms(now), token_id, to_ms(now)),
            )
            return cursor.rowcount == 1

        return await self.write(q)

    async def list_join_tokens(self) -> list[StoredJoinToken]:
        def q(conn: sqlite3.Connection) -> list[StoredJoinToken]:
            rows = conn.execute(_ENROLMENT_SELECT + " ORDER BY created_ms DESC, id").fetchall()
            return [self._token_from_row(row) for row in rows]

        return await self.read(q)

    async def revoke_join_token(
        self, token_id: str, *, also: InTransaction | None = None
    ) -> StoredJoinToken | None:
        def q(conn: sqlite3.Connection) -> StoredJoinToken | None:
            conn.execute("UPDATE join_tokens SET revoked = 1 WHERE id = ?", (token_id,))
            row = conn.execute(_ENROLMENT_SELECT + " WHERE id = ?", (token_id,)).fetchone()
            if also is not None:
                also(conn)
            return None if row is None else self._token_from_row(row)

        return await self.write(q)

    # -- revocations -------------------------------------------------------------
    async def add_revocation(
        self, revocation: StoredRevocation, *, also: InTransaction | None = None
    ) -> StoredRevocation:
        def q(conn: sqlite3.Connection) -> StoredRevocation:
            conn.execute(
                "INSERT INTO revocations (serial, spiffe_id, reason, revoked_ms)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (serial, spiffe_id) DO NOTHING",
                (
                    revocation.serial,
                    revocation.spiffe_id,
                    revocation.reason,
                    to_ms(revocation.revoked_at),
                ),
            )
            serial, spiffe_id, reason, revoked = conn.execute(
                "SELECT serial, spiffe_id, reason, revoked_ms FROM revocations"
                " WHERE serial = ? AND spiffe_id = ?",
                (revocation.serial, revocation.spiffe_id),
            ).fetchone()
            if also is not None:
                also(conn)
            return StoredRevocation(serial, spiffe_id, reason, from_ms(revoked))

        return await self.write(q)

    async def list_revocations(self) -> list[StoredRevocation]:
        def q(conn: sqlite3.Connection) -> list[StoredRevocation]:
            rows = conn.execute(
                "SELECT serial, spiffe_id, reason, revoked_ms FROM revocations"
                " ORDER BY revoked_ms, serial, spiffe_id"
            ).fetchall()
            return [StoredRevocation(s, i, r, from_ms(t)) for s, i, r, t in rows]

        return await self.read(q)
