"""The :class:`~secinfra_server.storage.Storage` methods, written once.

SQLite and PostgreSQL run the same statements: every method here is SQL of the
subset both speak (``?`` placeholders, ``ON CONFLICT``, ``CAST``, ``COALESCE``),
run inside the backend's :meth:`~SqlStorage.read` (one snapshot) or
:meth:`~SqlStorage.write` (one serialized transaction). Writing the methods
once is what keeps the two backends' semantics the same: the same ordering,
the same idempotent inserts, the same check-and-set updates.
"""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

from ._base import InTransaction
from ._records import (
    IssuedCertificate,
    LiftedRevocation,
    StoredCa,
    StoredJoinToken,
    StoredRevocation,
)
from ._time import from_ms, to_ms
from .identity_tables import (
    lift_id_revocation,
    read_bundle_sequence,
    read_cas,
    read_join_token,
    read_join_tokens,
    read_revocation,
    spend_join_token,
)

__all__ = ["SqlStorage", "from_ms", "to_ms"]

T = TypeVar("T")


def _opt_to_ms(moment: datetime | None) -> int | None:
    return None if moment is None else to_ms(moment)


class SqlStorage(ABC):
    """The storage methods over a backend's :meth:`read` and :meth:`write`.

    A backend supplies the two transaction runners and :meth:`close`; the
    connection it hands to ``fn`` offers ``sqlite3.Connection``'s ``execute``
    and ``executemany`` (the real thing for SQLite, a facade for PostgreSQL).
    """

    @abstractmethod
    async def close(self) -> None:
        """Release connections and threads."""

    @abstractmethod
    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in one write transaction; writes are serialized and
        durable when this returns."""

    @abstractmethod
    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` inside one read transaction (one snapshot)."""

    # -- certificate authorities -------------------------------------------------
    async def list_cas(self) -> list[StoredCa]:
        return await self.read(read_cas)

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
            seq = read_bundle_sequence(conn)
            if also is not None:
                also(conn)
            return seq

        return await self.write(q)

    async def bundle_sequence(self) -> int:
        return await self.read(read_bundle_sequence)

    async def record_issued(
        self, cert: IssuedCertificate, *, also: InTransaction | None = None
    ) -> None:
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
                # MAX(COALESCE(leaves_expire_by_ms, 0), ?), spelled so that both
                # backends run it (PostgreSQL's two-argument maximum is GREATEST).
                "UPDATE cas SET leaves_expire_by_ms = CASE"
                " WHEN COALESCE(leaves_expire_by_ms, 0) > ? THEN COALESCE(leaves_expire_by_ms, 0)"
                " ELSE ? END WHERE id = ?",
                (to_ms(cert.not_after), to_ms(cert.not_after), cert.ca_id),
            )
            if also is not None:
                also(conn)

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

    async def unexpired_certificates(self, now: datetime) -> list[tuple[str, str]]:
        """(serial, SPIFFE ID) of every issued certificate not expired at ``now``,
        the longest-lived first."""

        def q(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            rows = conn.execute(
                "SELECT serial, spiffe_id FROM issued_certificates WHERE not_after_ms > ?"
                " ORDER BY not_after_ms DESC",
                (to_ms(now),),
            )
            return [(str(serial), str(spiffe_id)) for serial, spiffe_id in rows]

        return await self.read(q)

    # -- join tokens -------------------------------------------------------------
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
        return await self.read(lambda conn: read_join_token(conn, token_id))

    async def consume_join_token(self, token_id: str, now: datetime) -> bool:
        return await self.write(lambda conn: spend_join_token(conn, token_id, now))

    async def list_join_tokens(self) -> list[StoredJoinToken]:
        return await self.read(read_join_tokens)

    async def revoke_join_token(
        self, token_id: str, *, also: InTransaction | None = None
    ) -> StoredJoinToken | None:
        def q(conn: sqlite3.Connection) -> StoredJoinToken | None:
            conn.execute("UPDATE join_tokens SET revoked = 1 WHERE id = ?", (token_id,))
            row = read_join_token(conn, token_id)
            if also is not None:
                also(conn)
            return row

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
            entry = read_revocation(conn, revocation.serial, revocation.spiffe_id)
            assert entry is not None, "inserted or already there"
            if also is not None:
                also(conn)
            return entry

        return await self.write(q)

    async def lift_revocation(
        self,
        spiffe_id: str,
        now: datetime,
        *,
        also: Callable[[LiftedRevocation], InTransaction] | None = None,
    ) -> LiftedRevocation | None:
        def q(conn: sqlite3.Connection) -> LiftedRevocation | None:
            lifted = lift_id_revocation(conn, spiffe_id, now)
            if lifted is not None and also is not None:
                also(lifted)(conn)
            return lifted

        return await self.write(q)

    async def list_revocations(self) -> list[StoredRevocation]:
        def q(conn: sqlite3.Connection) -> list[StoredRevocation]:
            rows = conn.execute(
                "SELECT serial, spiffe_id, reason, revoked_ms FROM revocations"
                " ORDER BY revoked_ms, serial, spiffe_id"
            ).fetchall()
            return [StoredRevocation(s, i, r, from_ms(t)) for s, i, r, t in rows]

        return await self.read(q)
