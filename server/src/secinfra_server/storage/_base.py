"""The storage interface, implemented by SQLite (the embedded default) and
PostgreSQL (for replicas that share one database). Every method is async and
every write is durable when it returns (acknowledged means kept)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol, TypeVar

from ._records import (
    IssuedCertificate,
    LiftedRevocation,
    StoredCa,
    StoredJoinToken,
    StoredRevocation,
)

T = TypeVar("T")

#: Extra work done inside a write method's transaction (e.g. its audit entry).
#: The connection is SQLite's, or for PostgreSQL a facade with the same
#: ``execute``/``executemany`` (see :mod:`._pg_connection`).
InTransaction = Callable[[sqlite3.Connection], None]


class SchemaTooNew(RuntimeError):
    """The database was written by a newer server; refusing to downgrade it."""


class Storage(Protocol):
    """Durable state of the server.

    Write methods take ``also``: work that must commit in the same transaction
    (the write's audit entry), so a change and its record are never apart.
    """

    async def close(self) -> None:
        """Release connections and threads."""

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in one write transaction. Writes are serialized (one
        at a time, across every process on the database) and durable when this
        returns; everything ``fn`` writes commits together or not at all."""

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` inside one read transaction: one snapshot."""

    # -- certificate authorities -------------------------------------------------
    async def list_cas(self) -> list[StoredCa]:
        """Every CA, newest first."""

    async def save_cas(
        self,
        changed: Sequence[StoredCa],
        *,
        bump_bundle: bool,
        also: InTransaction | None = None,
    ) -> int:
        """Insert or replace CAs in one transaction; bump the bundle sequence if
        asked. Returns the bundle sequence after the change."""

    async def bundle_sequence(self) -> int:
        """The current trust bundle sequence number (starts at 1)."""

    async def record_issued(
        self, cert: IssuedCertificate, *, also: InTransaction | None = None
    ) -> None:
        """Remember an issued certificate and extend its CA's leaves_expire_by."""

    async def issuers_of(self, serials: Sequence[str]) -> dict[str, str]:
        """The id of the CA that issued each serial this server recorded."""

    async def unexpired_certificates(self, now: datetime) -> list[tuple[str, str]]:
        """(serial, SPIFFE ID) of every issued certificate not expired at ``now``,
        the longest-lived first."""

    # -- join tokens -------------------------------------------------------------
    async def insert_join_token(
        self, token: StoredJoinToken, *, also: InTransaction | None = None
    ) -> None:
        """Store a new join token record."""

    async def get_join_token(self, token_id: str) -> StoredJoinToken | None:
        """A join token by id, or None."""

    async def consume_join_token(self, token_id: str, now: datetime) -> bool:
        """Atomically mark an unused, unrevoked, unexpired token as used.
        Returns False if another caller used it first or it is no longer valid."""

    async def list_join_tokens(self) -> list[StoredJoinToken]:
        """Every join token, newest first."""

    async def revoke_join_token(
        self, token_id: str, *, also: InTransaction | None = None
    ) -> StoredJoinToken | None:
        """Mark a token revoked (idempotent). None if it does not exist."""

    # -- revocation deny-list ----------------------------------------------------
    async def add_revocation(
        self, revocation: StoredRevocation, *, also: InTransaction | None = None
    ) -> StoredRevocation:
        """Add a deny-list entry; if the same target is already listed, return
        the existing entry unchanged."""

    async def list_revocations(self) -> list[StoredRevocation]:
        """The deny-list, oldest first."""

    async def lift_revocation(
        self,
        spiffe_id: str,
        now: datetime,
        *,
        also: Callable[[LiftedRevocation], InTransaction] | None = None,
    ) -> LiftedRevocation | None:
        """Remove the deny-list entry of ``spiffe_id``, first listing by serial
        the certificates it held then that are unexpired at ``now``; None (and
        nothing changed, ``also`` not run) if the ID is not revoked."""
