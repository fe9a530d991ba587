"""Idempotency-Key: the same call made twice has the effect of one.

Every RPC that is not read-only honours the ``Idempotency-Key`` header, scoped
to the caller (SPIFFE ID, or the enrolment's fingerprint space for anonymous
calls). A call's answer is stored (sealed by the KEK: an answer may hold a
join token) for :data:`RETENTION`. Then, for the same caller and key:

- the same request (same fingerprint) gets the stored answer again;
- a different request gets 422 ``idempotency_key_reused``;
- while the first is still running in the same process, 409 ``conflict``
  with ``Secinfra-Should-Retry: true``.

**The answer commits with the effect.** A handler writes its answer inside
the transaction of its effect (:meth:`KeyedCall.answer_in`, reached through
``RequestContext.commit_answer``), so the database holds either neither or
both. A retry after a crash at any point therefore either finds nothing done
and runs the call once, or finds the answer and replays it.

**No claim is ever committed.** A running call holds its key only in the
memory of the process serving it; a process that dies takes its claims with
it, so nothing a crash leaves behind can block a retry. A duplicate on another
process (replicas on one PostgreSQL) runs up to its write; writes are
serialised across every process on the database, and the write looks for the
key first: the later of the two finds the earlier's answer, rolls back its own
effect (:class:`AnsweredElsewhere`) and replays that answer.

Answers that change nothing are stored after the fact, in a transaction of
their own: a client error (4xx but 401/403/409/429, whose answer can change
with credentials, grants or time), raised before the write or inside it (which
rolls it back). Losing one of those to a crash only means that the retry runs
again, which is safe because nothing was changed. A 5xx or an unexpected error
stores nothing, so a retry runs anew.

Test mode can stop the process at the named points of this path
(:data:`WRITE_PATH_POINTS`) through a :data:`WritePathProbe` handed in by the
server's assembly; production never has one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final

from ._clock import Clock
from .crypto import Keyring, SealedBox, aad_for_idempotent_response, open_, seal
from .errors import ApiError
from .storage import Storage, to_ms

log = logging.getLogger("secinfra.idempotency")

RETENTION: Final = timedelta(hours=24)
#: Keys are opaque to the server; SDKs send UUIDv4. Printable ASCII, no spaces.
KEY_PATTERN: Final = re.compile(r"^[\x21-\x7e]{1,255}$")
#: Response headers replayed with a stored response.
REPLAYED_HEADERS: Final = ("Content-Type", "ETag", "Cache-Control")
NOT_REPLAYED_STATUSES: Final = frozenset({401, 403, 409, 429})
#: The named points of a keyed call's path, in order: the key is claimed (in
#: memory; nothing is written yet); the effect and its answer are written and
#: not yet committed; the transaction committed and the response is not yet
#: sent.
AFTER_CLAIM: Final = "after_claim"
BEFORE_COMMIT: Final = "before_commit"
AFTER_COMMIT: Final = "after_commit"
WRITE_PATH_POINTS: Final = (AFTER_CLAIM, BEFORE_COMMIT, AFTER_COMMIT)

#: Told ``(point, rpc)`` each time a keyed call passes a named point; test
#: mode's crash points are one (the server only ever gets one in test mode).
WritePathProbe = Callable[[str, str], None]

_SELECT_ANSWER: Final = (
    "SELECT fingerprint, kek_id, wrapped_key, ciphertext FROM idempotency"
    " WHERE caller = ? AND key = ? AND state = 'done' AND created_ms >= ?"
)
#: Writes a done record; replaces only one that holds no live answer (a
#: record past retention, or an *in progress* row an older server version
#: left behind), so an answer is never overwritten.
_STORE_ANSWER: Final = (
    "INSERT INTO idempotency (caller, key, fingerprint, state, kek_id, wrapped_key, ciphertext,"
    " created_ms) VALUES (?, ?, ?, 'done', ?, ?, ?, ?) ON CONFLICT (caller, key) DO UPDATE SET"
    " fingerprint = excluded.fingerprint, state = 'done', kek_id = excluded.kek_id,"
    " wrapped_key = excluded.wrapped_key, ciphertext = excluded.ciphertext,"
    " created_ms = excluded.created_ms"
    " WHERE idempotency.state <> 'done' OR idempotency.created_ms < ?"
)


@dataclass(frozen=True)
class StoredResponse:
    """A response to replay."""

    status: int
    headers: dict[str, str]
    body: bytes


class AnsweredElsewhere(Exception):
    """Raised inside a keyed call's write: another request with the same key
    and request committed its answer first (on another process). The write
    rolls back; the dispatcher replays ``answer``."""

    def __init__(self, answer: StoredResponse) -> None:
        super().__init__("secinfra: idempotency: the call was answered by another request")
        self.answer = answer


def validate_key(key: str) -> str:
    """The key, or invalid_argument saying what a key must look like."""
    if not KEY_PATTERN.fullmatch(key):
        raise ApiError(
            "invalid_argument",
            "secinfra: idempotency: Idempotency-Key must be 1-255 printable ASCII characters"
            " without spaces (SDKs send a UUIDv4)",
            details={"field": "Idempotency-Key"},
        )
    return key


def fingerprint(rpc: str, request_json: dict[str, Any]) -> str:
    """SHA-256 over the RPC and the canonical JSON of its decoded request."""
    canonical = json.dumps(
        [rpc, request_json], sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def should_store(status: int) -> bool:
    """Whether a response with this status is replayed to later attempts."""
    return status < 500 and status not in NOT_REPLAYED_STATUSES


def _reused() -> ApiError:
    return ApiError(
        "idempotency_key_reused",
        "secinfra: idempotency: this Idempotency-Key was used for a different request;"
        " use a new key for a new call",
    )


@dataclass(eq=False)
class KeyedCall:
    """One running call's hold on its key, from the claim to the answer."""

    caller: str
    key: str
    fingerprint: str
    rpc: str
    store: IdempotencyStore = field(repr=False)
    #: Set once the answer was written inside the effect's transaction (true
    #: after the handler returns only if that transaction committed).
    answered: bool = False

    def answer_in(self, conn: sqlite3.Connection, response: StoredResponse) -> None:
        """Inside the effect's transaction, as its last step: write the answer.

        Raises :class:`AnsweredElsewhere` (or 422 for a different request)
        when another request with this key committed first: the transaction
        then rolls back, effect and all.
        """
        self.store.answer_in(conn, self, response)


class IdempotencyStore:
    """Keys of running calls (in memory) and stored answers (in the database)."""

    def __init__(
        self,
        storage: Storage,
        keyring: Keyring,
        clock: Clock,
        *,
        probe: WritePathProbe | None = None,
    ) -> None:
        self._storage = storage
        self._keyring = keyring
        self._clock = clock
        self._probe = probe
        #: Calls running in this process, by (caller, key).
        self._running: dict[tuple[str, str], KeyedCall] = {}

    async def begin(
        self, caller: str, key: str, print_: str, rpc: str
    ) -> KeyedCall | StoredResponse:
        """Claim ``key`` for this request (a :class:`KeyedCall`: go ahead, and
        :meth:`release` it at the end), or the stored answer to replay; raise
        the 409/422 answers described above."""
        running = self._running.get((caller, key))
        if running is not None:
            if running.fingerprint != print_:
                raise _reused()
            raise ApiError(
                "conflict",
                "secinfra: idempotency: a request with this Idempotency-Key is still in"
                " progress; retry shortly",
                headers={"Secinfra-Should-Retry": "true", "Retry-After": "1"},
            )
        # Claimed before the first await, so a duplicate arriving meanwhile
        # in this process sees it.
        call = KeyedCall(caller, key, print_, rpc, self)
        self._running[(caller, key)] = call
        try:
            stored = await self._storage.read(lambda conn: self._lookup(conn, caller, key))
        except BaseException:
            self.release(call)
            raise
        if stored is None:
            return call
        self.release(call)
        stored_print, box = stored
        if stored_print != print_:
            raise _reused()
        return self._open(caller, key, box)

    def release(self, call: KeyedCall) -> None:
        """The call ended (however it ended): its key is free in this process."""
        if self._running.get((call.caller, call.key)) is call:
            del self._running[(call.caller, call.key)]

    def reached(self, point: str, call: KeyedCall) -> None:
        """``call`` passed the named ``point`` (see :data:`WRITE_PATH_POINTS`)."""
        if self._probe is not None:
            self._probe(point, call.rpc)

    def answer_in(
        self, conn: sqlite3.Connection, call: KeyedCall, response: StoredResponse
    ) -> None:
        """See :meth:`KeyedCall.answer_in`."""
        stored = self._lookup(conn, call.caller, call.key)
        if stored is not None:
            stored_print, box = stored
            if stored_print != call.fingerprint:
                raise _reused()
            raise AnsweredElsewhere(self._open(call.caller, call.key, box))
        if should_store(response.status):
            self._write(conn, call, response)
            call.answered = True
        self.reached(BEFORE_COMMIT, call)

    async def remember(self, call: KeyedCall, response: StoredResponse) -> None:
        """Store an answer that was not written with an effect (a client
        error: nothing changed), in a transaction of its own; never replaces
        an answer already stored."""
        if not should_store(response.status):
            return
        if response.status < 400:
            # Every keyed handler answers inside its write; one that does not
            # has the old gap (a crash here makes the retry run it again).
            log.warning(
                "keyed answer stored after its write",
                extra={"fields": {"rpc": call.rpc, "status": response.status}},
            )
        await self._storage.write(lambda conn: self._write(conn, call, response))

    async def purge_expired(self) -> int:
        """Delete records past the retention period; returns how many."""
        cutoff = to_ms(self._clock.now() - RETENTION)

        def purge(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM idempotency WHERE created_ms < ?", (cutoff,)).rowcount

        return await self._storage.write(purge)

    # -- plumbing ----------------------------------------------------------------
    def _lookup(
        self, conn: sqlite3.Connection, caller: str, key: str
    ) -> tuple[str, SealedBox] | None:
        """The live answer stored for (caller, key): its fingerprint and box."""
        cutoff = to_ms(self._clock.now() - RETENTION)
        row = conn.execute(_SELECT_ANSWER, (caller, key, cutoff)).fetchone()
        if row is None:
            return None
        stored_print, kek_id, wrapped, ciphertext = row
        return str(stored_print), SealedBox(str(kek_id), bytes(wrapped), bytes(ciphertext))

    def _open(self, caller: str, key: str, box: SealedBox) -> StoredResponse:
        plain = open_(self._keyring, box, aad_for_idempotent_response(caller, key))
        doc = json.loads(plain)
        return StoredResponse(
            status=int(doc["status"]),
            headers=dict(doc["headers"]),
            body=base64.b64decode(doc["body"]),
        )

    def _write(self, conn: sqlite3.Connection, call: KeyedCall, response: StoredResponse) -> None:
        doc = json.dumps(
            {
                "status": response.status,
                "headers": response.headers,
                "body": base64.b64encode(response.body).decode(),
            }
        ).encode()
        box = seal(self._keyring, doc, aad_for_idempotent_response(call.caller, call.key))
        now = self._clock.now()
        conn.execute(
            _STORE_ANSWER,
            (
                call.caller,
                call.key,
                call.fingerprint,
                box.kek_id,
                box.wrapped_key,
                box.ciphertext,
                to_ms(now),
                to_ms(now - RETENTION),
            ),
        )
