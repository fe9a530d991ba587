"""Hearing about other replicas' changes: PostgreSQL LISTEN/NOTIFY plus a
revision check.

Migration 3 makes every write that changes a cached kind of state (``cas``,
``revocations``) bump that kind's row in ``state_revisions`` and ``NOTIFY``
:data:`CHANNEL` with the kind, inside the writer's own transaction, whichever
replica wrote. :class:`ChangeFeed` holds one dedicated connection per replica
that ``LISTEN``\\ s on the channel. It wakes on a notification, or after
:data:`POLL_INTERVAL_SECONDS` without one, reads ``state_revisions`` and hands
the kinds whose revision moved to the replica's callback. So:

- a notification delivers a change at once (milliseconds);
- a lost notification (the listening connection dropped, PostgreSQL
  restarted) is caught by the revision check within one poll interval of the
  connection being back; on every (re)connect the feed compares revisions
  before it waits, so a change made while it was away is never missed.

The bound a replica promises, from the commit of a change elsewhere to this
replica acting on it, is :data:`PROPAGATION_BOUND_SECONDS` while the database
is reachable.

Revisions are read *before* the callback reloads the state, so a change that
commits while the callback runs moves the revision again and is handed over
on the next round: the callback may run once too often, never once too few.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import psycopg

log = logging.getLogger("secinfra.storage")

#: The NOTIFY channel migration 3's triggers speak on.
CHANNEL: Final = "secinfra_changes"
#: The application_name of the listening connection (shows in pg_stat_activity).
APPLICATION_NAME: Final = "secinfra-changes"
#: The revision check runs at least this often (when no notification wakes it).
POLL_INTERVAL_SECONDS: Final = 0.5
#: Longest wait before reconnecting a dropped listening connection.
MAX_RECONNECT_DELAY_SECONDS: Final = 0.5
#: The stated bound: a change committed through any replica is acted on by
#: every other within this time (poll interval + reconnect delay, with room
#: for the reload itself).
PROPAGATION_BOUND_SECONDS: Final = 1.0
#: TCP keepalives on the dedicated connections, so a dead network path is
#: noticed even while the connection is idle.
KEEPALIVES: Final[Mapping[str, int]] = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
}

ChangeCallback = Callable[[frozenset[str]], Awaitable[None]]
Connector = Callable[[str], Awaitable[psycopg.AsyncConnection[Any]]]


async def _read_revisions(conn: psycopg.AsyncConnection[Any]) -> dict[str, int]:
    cursor = await conn.execute("SELECT kind, revision FROM state_revisions")
    return {str(kind): int(revision) for kind, revision in await cursor.fetchall()}


class ChangeFeed:
    """One replica's ear on the database: calls ``on_change(kinds)`` on the
    event loop after any replica's change to those kinds.

    :meth:`open` connects, listens and records the revisions to compare
    against (call it before loading the cached state, so that no change
    between the two is missed); :meth:`start` begins delivering; :meth:`close`
    stops and disconnects.
    """

    def __init__(self, connect: Connector, on_change: ChangeCallback) -> None:
        self._connect = connect
        self._on_change = on_change
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._known: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        #: Times the listening connection was (re)established; for the tests
        #: and the log.
        self.connections = 0

    async def open(self) -> None:
        """Connect, LISTEN, and note the current revisions."""
        self._conn = await self._listen()
        self._known = await _read_revisions(self._conn)

    def start(self) -> None:
        """Deliver changes from now on (in a task on the running loop)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="change-feed")

    async def close(self) -> None:
        """Stop delivering and close the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                await self._conn.close()
            self._conn = None

    async def _listen(self) -> psycopg.AsyncConnection[Any]:
        conn = await self._connect(APPLICATION_NAME)
        try:
            await conn.execute(f"LISTEN {CHANNEL}")
        except BaseException:
            await conn.close()
            raise
        self.connections += 1
        return conn

    async def _run(self) -> None:
        delay = 0.0
        while True:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = await self._listen()
                    log.info("change feed: listening again (revisions compared)")
                await self._deliver(self._conn)
                delay = 0.0
                await self._wait(self._conn)
            except (psycopg.Error, OSError) as exc:
                if self._conn is not None:
                    with contextlib.suppress(psycopg.Error):
                        await self._conn.close()
                self._conn = None
                log.warning(
                    "change feed: the listening connection failed; reconnecting",
                    extra={"fields": {"error": type(exc).__name__}},
                )
                await asyncio.sleep(delay)
                delay = min(MAX_RECONNECT_DELAY_SECONDS, delay * 2 or 0.05)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The callback failed (e.g. one reload hit a transient
                # error). Keep the old revisions, so the next round tries
                # those kinds again.
                log.exception("change feed: applying a change failed; retrying")
                await asyncio.sleep(POLL_INTERVAL_SECONDS)

    async def _wait(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Until the first notification (plus any sent with it) or the poll interval."""
        async for _ in conn.notifies(timeout=POLL_INTERVAL_SECONDS, stop_after=1):
            pass

    async def _deliver(self, conn: psycopg.AsyncConnection[Any]) -> None:
        current = await _read_revisions(conn)
        changed = frozenset(
            kind for kind, revision in current.items() if self._known.get(kind) != revision
        )
        if changed:
            await self._on_change(changed)
        self._known = current
