"""The audit log: every secret access and admin action, hash-chained.

Each entry stores the SHA-256 of its own canonical form together with the hash
of the entry before it (the first entry chains to 64 zeros), so editing,
removing or reordering any entry breaks the chain at that point, and
:func:`verify` says where. Truncating the tail leaves a valid shorter chain:
operators anchor the head hash that ``secinfra-server audit verify`` prints
(see docs/operations).

Two ways in:

- **Writes** call :func:`append_in_transaction` inside the write's own
  transaction, so the change and its audit entry commit together or not at all.
- **Reads** call :meth:`AuditLog.record`, which queues the event; a background
  task writes queued events in one transaction per batch, keeping the database
  write off the read path. A crash can lose at most the last batch of *read*
  audits, never an acknowledged write's entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from ._clock import Clock
from .storage import Storage, to_ms

log = logging.getLogger("secinfra.audit")

GENESIS_HASH: Final = "0" * 64
#: Queued read audits are written at least this often...
FLUSH_INTERVAL_SECONDS: Final = 0.5
#: ...or as soon as this many are waiting.
FLUSH_BATCH_SIZE: Final = 256
OUTCOMES: Final = frozenset({"allowed", "denied", "error"})


@dataclass(frozen=True)
class AuditEvent:
    """Who did what to which resource, and how it ended. Never a secret value."""

    actor: str
    action: str
    resource: str
    outcome: str
    request_id: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"audit outcome must be one of {sorted(OUTCOMES)}")


def entry_hash(prev_hash: str, seq: int, at_ms: int, event: AuditEvent) -> str:
    """The hash of one entry: SHA-256 over a canonical JSON array of its fields."""
    canonical = json.dumps(
        [
            prev_hash,
            seq,
            at_ms,
            event.actor,
            event.action,
            event.resource,
            event.outcome,
            event.request_id,
            dict(event.details),
        ],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def append_in_transaction(conn: sqlite3.Connection, event: AuditEvent, at: datetime) -> str:
    """Append ``event`` inside the caller's open write transaction; return its hash."""
    row = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (1, GENESIS_HASH) if row is None else (int(row[0]) + 1, str(row[1]))
    at_ms = to_ms(at)
    digest = entry_hash(prev, seq, at_ms, event)
    conn.execute(
        "INSERT INTO audit_log (seq, at_ms, actor, action, resource, outcome, request_id,"
        " details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            seq,
            at_ms,
            event.actor,
            event.action,
            event.resource,
            event.outcome,
            event.request_id,
            json.dumps(dict(event.details), sort_keys=True, separators=(",", ":")),
            prev,
            digest,
        ),
    )
    return digest


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of :func:`verify`."""

    ok: bool
    entries: int
    head_hash: str
    first_bad_seq: int | None = None
    reason: str = ""


def verify(conn: sqlite3.Connection) -> VerifyResult:
    """Walk the chain from the first entry; report the first entry that breaks it."""
    prev = GENESIS_HASH
    expected_seq = 1
    count = 0
    rows = conn.execute(
        "SELECT seq, at_ms, actor, action, resource, outcome, request_id, details,"
        " prev_hash, hash FROM audit_log ORDER BY seq"
    )
    for (
        seq,
        at_ms,
        actor,
        action,
        resource,
        outcome,
        request_id,
        details,
        prev_hash,
        digest,
    ) in rows:
        if seq != expected_seq:
            return VerifyResult(
                False, count, prev, expected_seq, f"entry {expected_seq} is missing"
            )
        if prev_hash != prev:
            return VerifyResult(
                False, count, prev, seq, f"entry {seq} does not follow entry {seq - 1}"
            )
        try:
            event = AuditEvent(actor, action, resource, outcome, request_id, json.loads(details))
        except (ValueError, TypeError):
            return VerifyResult(False, count, prev, seq, f"entry {seq} is malformed")
        if entry_hash(prev_hash, seq, at_ms, event) != digest:
            return VerifyResult(False, count, prev, seq, f"entry {seq} was modified")
        prev = digest
        expected_seq += 1
        count += 1
    return VerifyResult(True, count, prev)


class AuditLog:
    """Queues read audits and writes them in batches; see the module docstring."""

    def __init__(self, storage: Storage, clock: Clock) -> None:
        self._storage = storage
        self._clock = clock
        self._queue: list[tuple[AuditEvent, datetime]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the background writer."""
        self._task = asyncio.create_task(self._run(), name="audit-writer")

    def record(self, event: AuditEvent) -> None:
        """Queue a read-path audit event (no database work on the caller's path)."""
        self._queue.append((event, self._clock.now()))
        if len(self._queue) >= FLUSH_BATCH_SIZE:
            self._wake.set()

    async def flush(self) -> None:
        """Write every queued event now, in one transaction."""
        if not self._queue:
            return
        batch, self._queue = self._queue, []

        def write(conn: sqlite3.Connection) -> None:
            for event, at in batch:
                append_in_transaction(conn, event, at)

        await self._storage.write(write)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FLUSH_INTERVAL_SECONDS):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                log.exception("writing queued audit events failed; will retry")

    async def close(self) -> None:
        """Stop the writer and write what is queued."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
