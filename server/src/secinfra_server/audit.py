"""The audit log: every secret access and admin action, in a keyed, signed chain.

**The chain.** Each entry holds the MAC of its own canonical form, which covers
the MAC of the entry before it (the first entry chains to 64 zeros), so editing,
removing, reordering or inserting an entry breaks the chain at that point and
:func:`verify` says where. Since schema 4 the MAC is HMAC-SHA256 under the
**audit key** (see :mod:`secinfra_server.crypto`), which lives beside the KEK,
never in the database: write access to the database alone can no longer
rewrite history and hash it again. Each row records its rule (``chain``):

- ``sha256``: the entries written before the switch (plain SHA-256, as before
  schema 4). They still verify with that rule, but only as an unbroken prefix:
  a ``sha256`` entry after a keyed one is refused as a downgrade.
- ``hmac-sha256``: every entry since, with the id of the key that made it.

**Checkpoints.** Truncating the tail leaves a valid shorter chain, so the head
is anchored outside the host: :func:`make_checkpoint` signs (Ed25519, a key
derived from the audit key) the head's sequence number and MAC; the server
appends one to ``audit_checkpoint_file`` and logs it (for a log sink) on a
schedule, and ``secinfra-server audit checkpoint`` writes one on demand.
``audit verify --checkpoints FILE`` checks each signature against the pinned
public key and that the chain still holds that entry with that MAC.

**Two ways in.**

- **Changes** append with :meth:`AuditChain.append` inside the change's own
  transaction: the change and its entry commit together or not at all, so if
  the entry cannot be written the change fails.
- **Read decisions** (secret reads, checks, denials) go through
  :meth:`AuditLog.record`, which queues them; a background task writes them in
  one transaction per batch, removing a batch from the queue only once it is
  committed (a failed write is retried, nothing is dropped). The queue is
  bounded (``audit_queue_max``); when it is full, ``audit_queue_full`` chooses
  back-pressure (``wait``: the request waits, at most
  ``audit_queue_wait_seconds``) or fail-closed (``refuse``); either way a request
  that finds no room is refused with a typed 503 and nothing is acknowledged.
  Metrics count entries written and lost; lost stays 0 unless the final write
  at shutdown fails, which is logged with the count.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import hashlib
import json
import logging
import os
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ._clock import Clock
from ._metrics import Metrics
from .config import ServerConfig
from .crypto import AuditKey, load_audit_key, load_audit_key_from_env
from .errors import ApiError
from .storage import Storage, after_commit, from_ms, to_ms

log = logging.getLogger("secinfra.audit")
checkpoint_log = logging.getLogger("secinfra.audit.checkpoint")

GENESIS_HASH: Final = "0" * 64
#: The chain rules a row may carry (column ``chain``).
CHAIN_SHA256: Final = "sha256"
CHAIN_HMAC: Final = "hmac-sha256"
#: Queued read audits are written at least this often...
FLUSH_INTERVAL_SECONDS: Final = 0.5
#: ...or as soon as this many are waiting; a batch holds at most this many.
FLUSH_BATCH_SIZE: Final = 256
#: After a failed batch write, wait this long before the next try (doubling, capped).
RETRY_FIRST_SECONDS: Final = 0.1
RETRY_MAX_SECONDS: Final = 5.0
OUTCOMES: Final = frozenset({"allowed", "denied", "error"})
QUEUE_FULL_POLICIES: Final = frozenset({"wait", "refuse"})
CHECKPOINT_FORMAT: Final = 1


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


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _fields(event: AuditEvent) -> list[Any]:
    return [
        event.actor,
        event.action,
        event.resource,
        event.outcome,
        event.request_id,
        dict(event.details),
    ]


def entry_hash(prev_hash: str, seq: int, at_ms: int, event: AuditEvent) -> str:
    """The legacy (``sha256``) rule: SHA-256 over a canonical JSON array."""
    return hashlib.sha256(_canonical([prev_hash, seq, at_ms, *_fields(event)])).hexdigest()


def keyed_entry_hash(key: AuditKey, prev_hash: str, seq: int, at_ms: int, event: AuditEvent) -> str:
    """The ``hmac-sha256`` rule: HMAC under the audit key over the rule, the
    key id and the entry's fields (so neither can be swapped without the key)."""
    return key.mac(_canonical([CHAIN_HMAC, key.id, prev_hash, seq, at_ms, *_fields(event)]))


def load_audit_key_for(config: ServerConfig, environ: Mapping[str, str] | None = None) -> AuditKey:
    """The server's audit key: ``SECINFRA_AUDIT_KEY`` if set, else the key file."""
    from_env = load_audit_key_from_env(environ=environ)
    return from_env if from_env is not None else load_audit_key(config.audit_key_path)


class AuditChain:
    """Appends entries to the keyed chain inside a caller's transaction."""

    def __init__(self, key: AuditKey, metrics: Metrics | None = None) -> None:
        self._key = key
        self._metrics = metrics

    @property
    def key(self) -> AuditKey:
        """The audit key the chain is keyed with."""
        return self._key

    def append(self, conn: sqlite3.Connection, event: AuditEvent, at: datetime) -> str:
        """Append ``event`` inside the caller's open write transaction; return its MAC.

        Any failure raises, and so rolls back the caller's change with it. The
        entry is counted as written once the transaction has committed (a
        change that rolls back takes its entry, and its count, with it).
        """
        digest = self._insert(conn, event, at)
        if self._metrics is not None:
            after_commit(self._metrics.audit_written.labels("in_transaction").inc)
        return digest

    def _insert(self, conn: sqlite3.Connection, event: AuditEvent, at: datetime) -> str:
        # Writes are serialised (SQLite's one writer; PostgreSQL's write
        # advisory lock across replicas), so the head cannot move under us.
        row = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (1, GENESIS_HASH) if row is None else (int(row[0]) + 1, str(row[1]))
        at_ms = to_ms(at)
        digest = keyed_entry_hash(self._key, prev, seq, at_ms, event)
        conn.execute(
            "INSERT INTO audit_log (seq, at_ms, actor, action, resource, outcome, request_id,"
            " details, prev_hash, hash, chain, key_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                CHAIN_HMAC,
                self._key.id,
            ),
        )
        return digest

    def append_batch(
        self, conn: sqlite3.Connection, batch: Iterable[tuple[AuditEvent, datetime]]
    ) -> int:
        """Append queued read audits in one transaction; the count (metrics are
        the caller's, once the transaction committed)."""
        count = 0
        for event, at in batch:
            self._insert(conn, event, at)
            count += 1
        return count


# -- checkpoints ---------------------------------------------------------------------
@dataclass(frozen=True)
class Checkpoint:
    """A signed statement: the chain had entry ``seq`` with MAC ``hash`` at ``at``."""

    seq: int
    hash: str
    at: datetime
    key_id: str
    public_key: str
    signature: str = ""

    def signed_part(self) -> bytes:
        """The canonical bytes the signature covers."""
        return _canonical(
            {
                "format": CHECKPOINT_FORMAT,
                "seq": self.seq,
                "hash": self.hash,
                "at_ms": to_ms(self.at),
                "key_id": self.key_id,
                "public_key": self.public_key,
            }
        )

    def to_json_line(self) -> str:
        """One JSON line, as appended to a checkpoint file or logged."""
        return json.dumps(
            {
                "format": CHECKPOINT_FORMAT,
                "seq": self.seq,
                "hash": self.hash,
                "at_ms": to_ms(self.at),
                "at": self.at.isoformat(),
                "key_id": self.key_id,
                "public_key": self.public_key,
                "signature": self.signature,
            },
            sort_keys=True,
            separators=(",", ":"),
        )

    @classmethod
    def parse(cls, line: str) -> Checkpoint:
        """Parse one checkpoint line; ValueError says what is wrong."""
        try:
            data = json.loads(line)
            if data.get("format") != CHECKPOINT_FORMAT:
                raise ValueError(f"format is not {CHECKPOINT_FORMAT}")
            return cls(
                seq=int(data["seq"]),
                hash=str(data["hash"]),
                at=from_ms(int(data["at_ms"])),
                key_id=str(data["key_id"]),
                public_key=str(data["public_key"]),
                signature=str(data["signature"]),
            )
        except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
            raise ValueError(f"not an audit checkpoint: {exc}") from exc

    def signature_valid(self, public_key: Ed25519PublicKey) -> bool:
        """Whether the signature verifies under ``public_key`` (the pinned key)."""
        try:
            public_key.verify(base64.b64decode(self.signature, validate=True), self.signed_part())
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True


def make_checkpoint(conn: sqlite3.Connection, key: AuditKey, at: datetime) -> Checkpoint | None:
    """A signed checkpoint of the chain's head as ``conn`` sees it (None if empty)."""
    row = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    if row is None:
        return None
    unsigned = Checkpoint(int(row[0]), str(row[1]), at, key.id, key.public_key_b64())
    signature = base64.b64encode(key.sign(unsigned.signed_part())).decode("ascii")
    return Checkpoint(unsigned.seq, unsigned.hash, at, key.id, unsigned.public_key, signature)


def append_checkpoint_file(path: Path, checkpoint: Checkpoint) -> None:
    """Append one checkpoint line to ``path`` (created 0600), fsynced."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, (checkpoint.to_json_line() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read_checkpoints(path: Path) -> list[Checkpoint]:
    """Every checkpoint in a file (blank lines ignored); ValueError names the line."""
    checkpoints = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            checkpoints.append(Checkpoint.parse(line))
        except ValueError as exc:
            raise ValueError(f"{path}: line {number}: {exc}") from exc
    return checkpoints


# -- verification --------------------------------------------------------------------
@dataclass(frozen=True)
class VerifyResult:
    """The outcome of :func:`verify`."""

    ok: bool
    entries: int
    head_hash: str
    first_bad_seq: int | None = None
    reason: str = ""
    #: How many leading entries carry the legacy (unkeyed) rule.
    legacy_entries: int = 0
    #: How many checkpoints were checked against the chain.
    checkpoints: int = 0


def verify(
    conn: sqlite3.Connection,
    key: AuditKey | None = None,
    checkpoints: Iterable[Checkpoint] = (),
    *,
    public_key: Ed25519PublicKey | None = None,
) -> VerifyResult:
    """Walk the chain from the first entry; report the first entry that breaks
    it, then check every checkpoint (signature under ``public_key``, default the
    audit key's; the chain still holds that entry with that MAC).

    Without ``key`` only a chain of legacy entries can verify: a keyed entry is
    reported as unverifiable.
    """
    prev = GENESIS_HASH
    expected_seq = 1
    count = 0
    legacy = 0
    keyed_seen = False
    macs: dict[int, str] = {}
    rows = conn.execute(
        "SELECT seq, at_ms, actor, action, resource, outcome, request_id, details,"
        " prev_hash, hash, chain, key_id FROM audit_log ORDER BY seq"
    )

    def broken(seq: int, reason: str) -> VerifyResult:
        return VerifyResult(False, count, prev, seq, reason, legacy)

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
        chain,
        key_id,
    ) in rows:
        if seq != expected_seq:
            return broken(expected_seq, f"entry {expected_seq} is missing")
        if prev_hash != prev:
            return broken(seq, f"entry {seq} does not follow entry {seq - 1}")
        try:
            event = AuditEvent(actor, action, resource, outcome, request_id, json.loads(details))
        except (ValueError, TypeError):
            return broken(seq, f"entry {seq} is malformed")
        if chain == CHAIN_SHA256:
            if keyed_seen:
                return broken(
                    seq,
                    f"entry {seq} uses the unkeyed SHA-256 rule after keyed entries (downgrade)",
                )
            expected = entry_hash(prev_hash, seq, at_ms, event)
            legacy += 1
        elif chain == CHAIN_HMAC:
            keyed_seen = True
            if key is None:
                return broken(seq, f"entry {seq} is keyed; verifying it needs the audit key")
            if key_id != key.id:
                return broken(
                    seq, f"entry {seq} names audit key {key_id}; this verifier holds {key.id}"
                )
            expected = keyed_entry_hash(key, prev_hash, seq, at_ms, event)
        else:
            return broken(seq, f"entry {seq} names an unknown chain rule")
        if expected != digest:
            return broken(seq, f"entry {seq} was modified")
        macs[seq] = digest
        prev = digest
        expected_seq += 1
        count += 1
    pinned = public_key if public_key is not None else (key.public_key if key else None)
    checked = 0
    for checkpoint in checkpoints:
        if pinned is None or not checkpoint.signature_valid(pinned):
            return VerifyResult(
                False,
                count,
                prev,
                checkpoint.seq,
                f"the checkpoint of entry {checkpoint.seq} is not signed by the pinned audit key",
                legacy,
                checked,
            )
        held = macs.get(checkpoint.seq)
        if held is None:
            return VerifyResult(
                False,
                count,
                prev,
                checkpoint.seq,
                f"entry {checkpoint.seq} is signed in a checkpoint but the chain ends at"
                f" {count} (truncated)",
                legacy,
                checked,
            )
        if held != checkpoint.hash:
            return VerifyResult(
                False,
                count,
                prev,
                checkpoint.seq,
                f"entry {checkpoint.seq} differs from its signed checkpoint (history rewritten)",
                legacy,
                checked,
            )
        checked += 1
    return VerifyResult(True, count, prev, legacy_entries=legacy, checkpoints=checked)


# -- the read-path queue -------------------------------------------------------------
@dataclass(frozen=True)
class QueueSettings:
    """How full the read-path queue may get, and what a request finds then."""

    max_entries: int = 10000
    when_full: str = "wait"
    wait_seconds: float = 2.0

    def __post_init__(self) -> None:
        if self.when_full not in QUEUE_FULL_POLICIES:
            raise ValueError(f"when_full must be one of {sorted(QUEUE_FULL_POLICIES)}")
        if self.max_entries < 1 or self.wait_seconds <= 0:
            raise ValueError("max_entries and wait_seconds must be positive")


class AuditLog:
    """Queues read audits and writes them in batches; see the module docstring."""

    def __init__(
        self,
        storage: Storage,
        clock: Clock,
        chain: AuditChain,
        *,
        metrics: Metrics | None = None,
        settings: QueueSettings | None = None,
        checkpoint_file: Path | None = None,
        checkpoint_interval: float = 300.0,
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._chain = chain
        self._metrics = metrics or Metrics()
        self._settings = settings or QueueSettings()
        self._queue: collections.deque[tuple[AuditEvent, datetime]] = collections.deque()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._room = asyncio.Condition()
        self._flush_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._checkpoint_task: asyncio.Task[None] | None = None
        self._checkpoint_file = checkpoint_file
        self._checkpoint_interval = checkpoint_interval
        self._waiting = 0

    @property
    def chain(self) -> AuditChain:
        """The chain changes append to in their own transaction."""
        return self._chain

    @property
    def metrics(self) -> Metrics:
        """Where written/lost counts go."""
        return self._metrics

    @property
    def pending(self) -> int:
        """Entries queued and not yet committed."""
        return len(self._queue)

    @property
    def waiting(self) -> int:
        """Requests waiting for room in the queue now (``wait`` policy)."""
        return self._waiting

    def start(self) -> None:
        """Start the background writer (and the checkpoint schedule)."""
        self._task = asyncio.create_task(self._run(), name="audit-writer")
        self._checkpoint_task = asyncio.create_task(self._checkpoints(), name="audit-checkpoints")

    async def record(self, event: AuditEvent) -> None:
        """Queue a read-path audit event (no database work on the caller's path).

        Raises:
            ApiError: ``unavailable`` (503, Retry-After) when the queue is full
                and stays full (``wait``) or at once (``refuse``): the request
                must fail rather than go unaudited.
        """
        if len(self._queue) >= self._settings.max_entries:
            self._wake.set()
            if self._settings.when_full == "wait":
                self._waiting += 1
                try:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._settings.wait_seconds), self._room:
                            await self._room.wait_for(
                                lambda: len(self._queue) < self._settings.max_entries
                            )
                finally:
                    self._waiting -= 1
            if len(self._queue) >= self._settings.max_entries:
                self._metrics.audit_refused.inc()
                raise ApiError(
                    "unavailable",
                    "secinfra: audit: the audit log cannot keep up; the request was not"
                    " served because it could not be audited; retry later",
                    headers={"Retry-After": "1"},
                )
        self._queue.append((event, self._clock.now()))
        self._metrics.audit_queue.set(len(self._queue))
        if len(self._queue) >= FLUSH_BATCH_SIZE:
            self._wake.set()

    async def flush(self) -> None:
        """Write every queued event now, a batch per transaction; a batch leaves
        the queue only once committed, so a failed write loses nothing (it raises,
        and the entries stay queued for the next try)."""
        async with self._flush_lock:
            while self._queue:
                batch = [self._queue[i] for i in range(min(FLUSH_BATCH_SIZE, len(self._queue)))]

                def write(conn: sqlite3.Connection, batch: list[Any] = batch) -> int:
                    return self._chain.append_batch(conn, batch)

                written = await self._storage.write(write)
                for _ in range(written):
                    self._queue.popleft()
                self._metrics.audit_written.labels("batched").inc(written)
                self._metrics.audit_queue.set(len(self._queue))
                async with self._room:
                    self._room.notify_all()

    async def _run(self) -> None:
        # Never cancelled mid-write (see close): a batch committed in the
        # storage thread is always removed from the queue, never written twice.
        delay = RETRY_FIRST_SECONDS
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FLUSH_INTERVAL_SECONDS):
                    await self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                await self.flush()
                delay = RETRY_FIRST_SECONDS
            except Exception:
                self._metrics.audit_write_failures.inc()
                log.exception(
                    "writing queued audit entries failed; they stay queued and are retried",
                    extra={"fields": {"queued": len(self._queue), "retry_in_s": delay}},
                )
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._stop.wait()
                delay = min(delay * 2, RETRY_MAX_SECONDS)

    async def checkpoint(self) -> Checkpoint | None:
        """Sign the head now; append it to the checkpoint file (if set) and log it."""
        key = self._chain.key
        now = self._clock.now()
        checkpoint = await self._storage.read(lambda conn: make_checkpoint(conn, key, now))
        if checkpoint is None:
            return None
        if self._checkpoint_file is not None:
            await asyncio.to_thread(append_checkpoint_file, self._checkpoint_file, checkpoint)
        checkpoint_log.info(
            "audit checkpoint", extra={"fields": {"checkpoint": checkpoint.to_json_line()}}
        )
        return checkpoint

    async def _checkpoints(self) -> None:
        while True:
            await asyncio.sleep(self._checkpoint_interval)
            try:
                await self.checkpoint()
            except Exception:
                log.exception("writing an audit checkpoint failed; the next one is tried later")

    async def close(self) -> None:
        """Stop the writer (letting a write in progress finish) and write what
        is queued. Entries that cannot be written even now are counted as lost
        and logged (their count only)."""
        if self._checkpoint_task is not None:
            self._checkpoint_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpoint_task
        if self._task is not None:
            self._stop.set()
            self._wake.set()
            with contextlib.suppress(Exception):
                await self._task
        self._task = self._checkpoint_task = None
        try:
            await self.flush()
        except Exception:
            lost = len(self._queue)
            self._metrics.audit_lost.inc(lost)
            log.exception(
                "audit entries could not be written at shutdown and are lost",
                extra={"fields": {"lost": lost}},
            )
            self._queue.clear()
