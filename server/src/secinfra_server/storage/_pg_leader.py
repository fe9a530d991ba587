"""Choosing the one replica that runs the background jobs: a PostgreSQL
session advisory lock on a dedicated connection.

Every replica calls :meth:`LeaderElection.check` once per housekeeping tick.
A replica that does not hold :data:`LEADER_LOCK` tries
``pg_try_advisory_lock`` (never waits); the one that holds it confirms that its
session is still alive. PostgreSQL releases a session lock when the session
ends, so when the leader dies (its process exits or is killed and the kernel
closes its socket) the lock is free at once, and the next replica to tick
takes it: the takeover bound is one tick plus the time PostgreSQL needs to see
the session end (:data:`TAKEOVER_BOUND_SECONDS`, for a leader whose process
died). A leader cut off by the network is noticed by TCP keepalives
(:data:`~._pg_changes.KEEPALIVES`, about 11 s); it stops acting as leader as
soon as its own check fails.

Only one session can hold the lock, so at most one replica believes it leads
at any instant the database can confirm; the jobs it runs also write through
the storage's serialized transactions, so a late step of a leader that just
lost the lock is one more serialized write, never a torn one.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

import psycopg

log = logging.getLogger("secinfra.storage")

#: Advisory lock key of the leader ('secinfra' in ASCII, then 3; 1 and 2 are
#: the migration and write locks in :mod:`.postgres`).
LEADER_LOCK: Final = 0x7365_6369_6E66_0003
#: The application_name of the leader election's connection.
APPLICATION_NAME: Final = "secinfra-leader"
#: The stated bound from a leader's death to another replica leading (with
#: the server's 1 s housekeeping tick).
TAKEOVER_BOUND_SECONDS: Final = 3.0

Connector = Callable[[str], Awaitable[psycopg.AsyncConnection[Any]]]


class LeaderElection:
    """Whether this replica leads, asked once per tick; see the module."""

    def __init__(self, connect: Connector) -> None:
        self._connect = connect
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._leader = False

    @property
    def is_leader(self) -> bool:
        """The answer of the last :meth:`check`."""
        return self._leader

    async def check(self) -> bool:
        """Take the lock if it is free, or confirm we still hold it."""
        try:
            if self._conn is None or self._conn.closed:
                self._leader = False
                self._conn = await self._connect(APPLICATION_NAME)
            if self._leader:
                await self._conn.execute("SELECT 1")
            else:
                cursor = await self._conn.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK,))
                row = await cursor.fetchone()
                self._leader = bool(row and row[0])
        except (psycopg.Error, OSError) as exc:
            if self._leader:
                log.warning(
                    "leadership lost: the leader election's connection failed",
                    extra={"fields": {"error": type(exc).__name__}},
                )
            self._leader = False
            await self._drop()
        return self._leader

    async def close(self) -> None:
        """Give up leadership: unlock first, so that another replica can take
        over at its next tick (ending the session would free the lock too, but
        PostgreSQL ends it asynchronously)."""
        if self._leader and self._conn is not None and not self._conn.closed:
            with contextlib.suppress(psycopg.Error, OSError):
                await self._conn.execute("SELECT pg_advisory_unlock(%s)", (LEADER_LOCK,))
        self._leader = False
        await self._drop()

    async def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                await self._conn.close()
            self._conn = None
