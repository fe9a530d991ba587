"""The authorization engine over SQLite, as the server runs it.

Snapshots (one transaction: revision, current model, tuple reader), a cache of
parsed models, and the one-time bootstrap grant of the init-time admin (see the
package docstring). The AuthzService handlers and the access policy share one
engine.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeVar

from .._clock import Clock
from ..audit import AuditChain, AuditEvent
from ..authz import (
    FAILED_PRECONDITION,
    AuthorizationModel,
    AuthzError,
    TupleKey,
    parse_model,
)
from ..storage import Storage
from ..storage.authz_tables import (
    SYSTEM_ROOT,
    SqliteTupleReader,
    apply_tuple_changes,
    current_model_id,
    current_revision,
    is_bootstrapped,
    load_model_json,
    mark_bootstrapped,
)
from ._builtin_model import (
    ADMIN_RELATION,
    BUILTIN_MODEL,
    BUILTIN_MODEL_ID,
    WORKLOAD_TYPE,
    with_current_builtins,
)

log = logging.getLogger("secinfra.authz")

T = TypeVar("T")

#: The audit actor of changes the server makes on its own (the bootstrap grant).
SERVER_ACTOR: Final = "secinfra-server"
#: Parsed models kept in memory, by id (the current one, plus a few read by id).
MODEL_CACHE_SIZE: Final = 8


class RevisionTooNew(AuthzError):
    """An at_least_as_fresh revision token is ahead of this server's state."""

    code = FAILED_PRECONDITION

    def __init__(self, wanted: int, current: int) -> None:
        super().__init__(
            f"secinfra: authz: revision: the token asks for revision {wanted}, but this "
            f"server is at revision {current}; the token comes from a different server "
            "or database"
        )
        self.wanted = wanted
        self.current = current


@dataclass(frozen=True)
class Snapshot:
    """Authorization state as one transaction sees it: the revision, the current
    model and a tuple reader over the same connection."""

    conn: sqlite3.Connection
    revision: int
    model_id: str
    model: AuthorizationModel
    reader: SqliteTupleReader


class AuthzEngine:
    """The engine over SQLite: snapshots, a model cache, the one-time bootstrap.

    Every engine call runs inside one :meth:`read` (one snapshot, on a reader
    thread, off the event loop); every change inside one :meth:`write` (one
    IMMEDIATE transaction on the writer thread).
    """

    def __init__(self, storage: Storage, *, clock: Clock, admin_id: str, chain: AuditChain) -> None:
        self._chain = chain
        self._storage = storage
        self._clock = clock
        self._admin_id = admin_id
        self._bootstrapped = False
        self._bootstrap_lock = asyncio.Lock()
        self._models: OrderedDict[str, AuthorizationModel] = OrderedDict()
        self._models_lock = threading.Lock()

    @property
    def admin_id(self) -> str:
        """The init-time admin's SPIFFE ID."""
        return self._admin_id

    async def ensure_bootstrapped(self) -> None:
        """Grant the init-time admin, unless this database ever did (see the module)."""
        if self._bootstrapped:
            return
        async with self._bootstrap_lock:
            if not self._bootstrapped:
                await self._storage.write(self._bootstrap)
                self._bootstrapped = True

    def _bootstrap(self, conn: sqlite3.Connection) -> None:
        if is_bootstrapped(conn):
            return
        grant = TupleKey(f"{WORKLOAD_TYPE}:{self._admin_id}", ADMIN_RELATION, SYSTEM_ROOT)
        change = apply_tuple_changes(conn, [grant], [])
        mark_bootstrapped(conn, change.revision)
        self._chain.append(
            conn,
            AuditEvent(
                actor=SERVER_ACTOR,
                action="authz.bootstrap_admin",
                resource=SYSTEM_ROOT,
                outcome="allowed",
                request_id="",
                details={"writes": [str(grant)], "revision": change.revision},
            ),
            self._clock.now(),
        )
        log.info("granted the init-time admin", extra={"fields": {"tuple": str(grant)}})

    async def read(self, fn: Callable[[Snapshot], T], *, at_least: int | None = None) -> T:
        """Run ``fn`` on one snapshot.

        Raises:
            RevisionTooNew: the snapshot's revision is below ``at_least``.
        """
        await self.ensure_bootstrapped()

        def run(conn: sqlite3.Connection) -> T:
            snapshot = self.snapshot(conn)
            if at_least is not None and snapshot.revision < at_least:
                raise RevisionTooNew(at_least, snapshot.revision)
            return fn(snapshot)

        return await self._storage.read(run)

    async def write(self, fn: Callable[[Snapshot], T]) -> T:
        """Run ``fn`` in one write transaction (with the current model at hand)."""
        await self.ensure_bootstrapped()
        return await self._storage.write(lambda conn: fn(self.snapshot(conn)))

    def snapshot(self, conn: sqlite3.Connection) -> Snapshot:
        """The state as ``conn``'s open transaction sees it."""
        current = current_model_id(conn) or BUILTIN_MODEL_ID
        model = self.load_model(conn, current)
        if model is None:
            raise RuntimeError(f"secinfra: authz: the current model {current} is not stored")
        return Snapshot(conn, current_revision(conn), current, model, SqliteTupleReader(conn))

    def load_model(self, conn: sqlite3.Connection, wanted: str) -> AuthorizationModel | None:
        """The model with id ``wanted`` (the built-in one needs no storage), or None."""
        if wanted == BUILTIN_MODEL_ID:
            return BUILTIN_MODEL
        with self._models_lock:
            cached = self._models.get(wanted)
            if cached is not None:
                self._models.move_to_end(wanted)
                return cached
        text = load_model_json(conn, wanted)
        if text is None:
            return None
        model = with_current_builtins(parse_model(json.loads(text)))
        with self._models_lock:
            self._models[wanted] = model
            while len(self._models) > MODEL_CACHE_SIZE:
                self._models.popitem(last=False)
        return model
