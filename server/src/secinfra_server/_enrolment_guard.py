"""Failed enrolments: rate-limited per source address and per join token, and audited.

Enrolment (IssueCertificate) is the one write anyone may try without a client
certificate, so it is where credentials get guessed. The guard keeps, per
server process:

- a **source bucket** per source address (an IPv6 address counts by its /64):
  every attempt takes a token before any work is done, a successful enrolment
  gives it back. An empty bucket answers 429 ``rate_limited`` with
  ``Retry-After`` at once, without looking at the request;
- a **token bucket** per join token id, charged by each failed attempt that
  named the id. It never refuses the right secret: a request naming a
  throttled id is still verified, enrols if the secret is right, and is
  answered 429 instead of 401 if not. So whoever guesses at a token id (ids
  are not secret: they appear in listings and the audit log), from however
  many addresses, cannot lock out the holder, and the failures beyond the
  budget are counted, not written one row each.

Auditing: each failed attempt that was evaluated gets its own audit entry,
written durably before the answer is sent. Refusals by a limit (429) are
aggregated per source and window: the first refusal of a window is written at
once, and :meth:`EnrolmentGuard.flush` writes one summary entry with the count
of the rest when the window is over (the server calls it every second and at
shutdown). Audit growth is thus bounded per source by the bucket's refill rate
plus two entries per window.

State is per process (per replica): N replicas allow N times the rate. Memory
is bounded by ``max_keys`` per table.
"""

from __future__ import annotations

import ipaddress
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from ._clock import Clock
from ._rate_limit import TokenBuckets
from .audit import AuditChain, AuditEvent
from .storage import Storage

#: IPv6 sources are limited by their /64: one host usually holds a whole /64.
IPV6_SOURCE_PREFIX: Final = 64
#: What a request whose peer address is unknown is limited as.
UNKNOWN_SOURCE: Final = "unknown"


@dataclass(frozen=True)
class EnrolmentLimits:
    """The limits of :class:`EnrolmentGuard` (the ``enrolment_*`` settings)."""

    source_burst: int = 20
    source_per_minute: float = 30.0
    token_burst: int = 5
    token_per_minute: float = 6.0
    #: Buckets (and pending refusal counts) kept per table at most.
    max_keys: int = 10_000
    #: Refusals (429) of one source are summarised once per window.
    refusal_window_seconds: float = 60.0


def source_of(remote: str | None) -> str:
    """The rate-limit key of a peer address: the IPv4 address, or the /64 of an
    IPv6 address (an IPv4-mapped IPv6 address counts as its IPv4 address)."""
    if not remote:
        return UNKNOWN_SOURCE
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return UNKNOWN_SOURCE
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_SOURCE_PREFIX), strict=False))
    return str(address)


@dataclass
class _Refusals:
    started: float
    count: int = 0
    last: AuditEvent | None = None
    reasons: dict[str, int] = field(default_factory=dict)


class EnrolmentGuard:
    """Rate limits and failure audits for enrolment; see the module docstring."""

    def __init__(
        self,
        limits: EnrolmentLimits,
        *,
        storage: Storage,
        clock: Clock,
        chain: AuditChain,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits
        self._storage = storage
        self._clock = clock
        self._chain = chain
        self._monotonic = monotonic
        self._sources = TokenBuckets(
            burst=limits.source_burst,
            per_minute=limits.source_per_minute,
            max_keys=limits.max_keys,
            monotonic=monotonic,
        )
        self._tokens = TokenBuckets(
            burst=limits.token_burst,
            per_minute=limits.token_per_minute,
            max_keys=limits.max_keys,
            monotonic=monotonic,
        )
        #: Refusals since the first of the current window, by source.
        self._refusals: OrderedDict[str, _Refusals] = OrderedDict()

    # -- the limits ----------------------------------------------------------------
    def admit(self, source: str) -> float:
        """Take the attempt's token from the source's bucket: 0, or the seconds
        the source must wait (the attempt is then refused unseen)."""
        return self._sources.take(source)

    def token_wait(self, token_id: str) -> float:
        """Seconds until failures naming ``token_id`` are answered 401 again
        (0: not throttled). Spends nothing."""
        return self._tokens.wait(token_id)

    def succeeded(self, source: str) -> None:
        """An enrolment succeeded: it does not count against its source."""
        self._sources.give_back(source)

    def failed(self, token_id: str | None) -> None:
        """An evaluated attempt failed; charge the join token id it named."""
        if token_id is not None:
            self._tokens.charge(token_id)

    # -- the audit -------------------------------------------------------------------
    async def audit_failure(self, event: AuditEvent) -> None:
        """Write a failed attempt's audit entry now, in its own transaction."""
        await self._write([event])

    async def audit_refusal(self, source: str, event: AuditEvent) -> bool:
        """Count a refusal by a limit. The first of a window is written now
        (and True returned); the rest are summarised by :meth:`flush` when the
        window is over."""
        now = self._monotonic()
        pending = self._refusals.get(source)
        if pending is not None and now - pending.started >= self.limits.refusal_window_seconds:
            await self._write([self._summary(source, pending)])
            del self._refusals[source]
            pending = None
        reason = str(event.details.get("limit", "rate_limited"))
        if pending is None:
            self._refusals[source] = _Refusals(started=now)
            evicted = []
            while len(self._refusals) > self.limits.max_keys:
                oldest, entry = self._refusals.popitem(last=False)
                evicted.append(self._summary(oldest, entry))
            await self._write([event, *(e for e in evicted if e is not None)])
            return True
        self._refusals.move_to_end(source)
        pending.count += 1
        pending.last = event
        pending.reasons[reason] = pending.reasons.get(reason, 0) + 1
        return False

    async def flush(self, *, everything: bool = False) -> None:
        """Write the summaries of windows that are over (all of them if
        ``everything``, as at shutdown), in one transaction."""
        now = self._monotonic()
        done = [
            source
            for source, pending in self._refusals.items()
            if everything or now - pending.started >= self.limits.refusal_window_seconds
        ]
        if not done:
            return
        summaries = [self._summary(source, self._refusals[source]) for source in done]
        await self._write(summaries)
        for source in done:
            del self._refusals[source]

    def _summary(self, source: str, pending: _Refusals) -> AuditEvent | None:
        """The entry counting a window's refusals after its first (None: none)."""
        if pending.count == 0 or pending.last is None:
            return None
        last = pending.last
        return AuditEvent(
            actor=last.actor,
            action=last.action,
            resource="enrolment",
            outcome="denied",
            request_id=last.request_id,
            details={
                "reason": "rate_limited",
                "source": source,
                "summary": True,
                "refused": pending.count,
                "by_limit": dict(sorted(pending.reasons.items())),
                "window_seconds": self.limits.refusal_window_seconds,
            },
        )

    async def _write(self, events: list[AuditEvent | None]) -> None:
        entries = [e for e in events if e is not None]
        if not entries:
            return
        at = self._clock.now()

        def append(conn: sqlite3.Connection) -> None:
            for event in entries:
                self._chain.append(conn, event, at)

        await self._storage.write(append)
