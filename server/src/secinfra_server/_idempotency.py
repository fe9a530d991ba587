"""Idempotency-Key: the same call made twice has the effect of one.

Every RPC that is not read-only honours the ``Idempotency-Key`` header, scoped
to the caller (SPIFFE ID, or the enrolment's fingerprint space for anonymous
calls). The first request with a key records it as *in progress*; when it
ends, its response is stored (sealed by the KEK: a response may hold a join
token) for :data:`RETENTION`. Then, for the same caller and key:

- the same request (same fingerprint) gets the stored response again;
- a different request gets 422 ``idempotency_key_reused``;
- while the first is still in progress, 409 ``conflict`` with
  ``Secinfra-Should-Retry: true``.

Responses worth replaying are stored: 2xx and 4xx that a retry would get
again (not 401/403, whose answer can change with credentials or grants, nor
409/429). A 5xx or an unexpected error forgets the key so a retry runs anew.
An *in progress* record older than :data:`ABANDONED_AFTER` belongs to a
request that cannot still be running (the server crashed or was killed
between committing the change and storing its response): the next attempt
runs again. That window (between the write's commit and the response's) is
the one place a crash can turn a retry into a second execution.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sqlite3
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from ._clock import Clock
from .crypto import Keyring, SealedBox, aad_for_idempotent_response, open_, seal
from .errors import ApiError
from .storage import Storage, to_ms

RETENTION: Final = timedelta(hours=24)
ABANDONED_AFTER: Final = timedelta(minutes=2)
#: Keys are opaque to the server; SDKs send UUIDv4. Printable ASCII, no spaces.
KEY_PATTERN: Final = re.compile(r"^[\x21-\x7e]{1,255}$")
#: Response headers replayed with a stored response.
REPLAYED_HEADERS: Final = ("Content-Type", "ETag", "Cache-Control")
NOT_REPLAYED_STATUSES: Final = frozenset({401, 403, 409, 429})


@dataclass(frozen=True)
class StoredResponse:
    """A response to replay."""

    status: int
    headers: dict[str, str]
    body: bytes


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


class IdempotencyStore:
    """Records keys and stored responses in SQLite."""

    def __init__(self, storage: Storage, keyring: Keyring, clock: Clock) -> None:
        self._storage = storage
        self._keyring = keyring
        self._clock = clock

    async def begin(self, caller: str, key: str, print_: str) -> StoredResponse | None:
        """Claim ``key`` for this request (None: go ahead), or return the stored
        response to replay; raise the 409/422 answers described above."""
        now = self._clock.now()
        now_ms = to_ms(now)
        expired_ms = to_ms(now - RETENTION)
        abandoned_ms = to_ms(now - ABANDONED_AFTER)

        def claim(conn: sqlite3.Connection) -> tuple[str, Any]:
            row = conn.execute(
                "SELECT fingerprint, state, kek_id, wrapped_key, ciphertext, created_ms"
                " FROM idempotency WHERE caller = ? AND key = ?",
                (caller, key),
            ).fetchone()
            if row is not None:
                stored_print, state, kek_id, wrapped, ciphertext, created_ms = row
                stale = created_ms < expired_ms or (
                    state == "in_progress" and created_ms < abandoned_ms
                )
                if not stale:
                    if stored_print != print_:
                        return "mismatch", None
                    if state == "in_progress":
                        return "in_progress", None
                    return "done", SealedBox(kek_id, bytes(wrapped), bytes(ciphertext))
            conn.execute(
                "INSERT INTO idempotency (caller, key, fingerprint, state, created_ms)"
                " VALUES (?, ?, ?, 'in_progress', ?) ON CONFLICT (caller, key) DO UPDATE SET"
                " fingerprint = excluded.fingerprint, state = 'in_progress', kek_id = NULL,"
                " wrapped_key = NULL, ciphertext = NULL, created_ms = excluded.created_ms",
                (caller, key, print_, now_ms),
            )
            return "new", None

        state, box = await self._storage.write(claim)
        if state == "mismatch":
            raise ApiError(
                "idempotency_key_reused",
                "secinfra: idempotency: this Idempotency-Key was used for a different request;"
                " use a new key for a new call",
            )
        if state == "in_progress":
            raise ApiError(
                "conflict",
                "secinfra: idempotency: a request with this Idempotency-Key is still in"
                " progress; retry shortly",
                headers={"Secinfra-Should-Retry": "true", "Retry-After": "1"},
            )
        if state == "done":
            plain = open_(self._keyring, box, aad_for_idempotent_response(caller, key))
            doc = json.loads(plain)
            return StoredResponse(
                status=int(doc["status"]),
                headers=dict(doc["headers"]),
                body=base64.b64decode(doc["body"]),
            )
        return None

    async def complete(self, caller: str, key: str, response: StoredResponse) -> None:
        """Store the response (or forget the key when it is not worth replaying)."""
        if not should_store(response.status):
            await self.abandon(caller, key)
            return
        doc = json.dumps(
            {
                "status": response.status,
                "headers": response.headers,
                "body": base64.b64encode(response.body).decode(),
            }
        ).encode()
        box = seal(self._keyring, doc, aad_for_idempotent_response(caller, key))

        def store(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE idempotency SET state = 'done', kek_id = ?, wrapped_key = ?,"
                " ciphertext = ? WHERE caller = ? AND key = ?",
                (box.kek_id, box.wrapped_key, box.ciphertext, caller, key),
            )

        await self._storage.write(store)

    async def abandon(self, caller: str, key: str) -> None:
        """Forget the key so that the next attempt runs again."""

        def forget(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM idempotency WHERE caller = ? AND key = ?", (caller, key))

        await self._storage.write(forget)

    async def purge_expired(self) -> int:
        """Delete records past the retention period; returns how many."""
        cutoff = to_ms(self._clock.now() - RETENTION)

        def purge(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM idempotency WHERE created_ms < ?", (cutoff,)).rowcount

        return await self._storage.write(purge)
