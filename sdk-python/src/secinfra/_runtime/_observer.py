"""What an observer is told: the `Observer` interface and its notifications (spec 14.2).

An application registers observers when it creates a client
(``Client(..., observers=[...])``). For every call, the client's own too
(enrolment, renewal, bundle refresh: 14.2.4), each observer is told, in this
order::

    call_started                       once
    cache                              cacheable RPCs, when the call uses the cache
    attempt_started, attempt_finished  per attempt (none for a cache hit)
    call_finished                      once, also when no attempt was made

Notifications are frozen dataclasses and carry no secret: no request or
response body, no key, token or header value (14.2.5). All notifications of
one call share its ``call_id``; they are delivered on the thread that makes
the call, but for the attempts of a request other callers joined (one request
per cache key, spec 7.8): those are the calling thread's of the call that
made it, under its ``call_id``, and the joining calls see no attempt.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ._meta import ResponseMeta
from ._trace_context import TraceContext

__all__ = [
    "AttemptFinished",
    "AttemptStarted",
    "CacheLookup",
    "CacheResult",
    "CallFinished",
    "CallStarted",
    "Observer",
]


class CacheResult(enum.StrEnum):
    """What the cache answered a cacheable call (spec 14.2.1)."""

    HIT = "hit"
    """A fresh entry answers: no request."""
    MISS = "miss"
    """No entry: the request that follows fetches one."""
    REVALIDATE = "revalidate"
    """A stale entry (or a call that asked to revalidate): a conditional request follows."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallStarted:
    """A call started (spec 14.2.1)."""

    call_id: int
    """Shared by every notification of this call; unique in the process."""
    rpc: str
    """The RPC's full name, e.g. ``secinfra.v1.SecretsService/GetSecret``."""
    idempotency: str
    """``read_only``, ``idempotent`` or ``non_idempotent`` (spec 4.1)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheLookup:
    """What the cache answered a cacheable call that uses it."""

    call_id: int
    rpc: str
    result: CacheResult


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptStarted:
    """An attempt is about to be sent."""

    call_id: int
    rpc: str
    attempt: int
    """Its number, as in ``Secinfra-Attempt`` (1-based); the repeat after a
    trust-bundle refresh has the same number (spec 14.2.3)."""
    endpoint: str
    """The endpoint URL it goes to, e.g. ``https://10.0.0.7:8443``."""
    http_method: str
    """The HTTP method, e.g. ``GET``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptFinished:
    """An attempt got its answer, or failed without one."""

    call_id: int
    rpc: str
    attempt: int
    endpoint: str
    status: int | None
    """The HTTP status; None when the attempt got no answer."""
    code: str | None
    """The error code when the attempt failed: the API error's (``rate_limited``)
    or, with no answer, the transport failure's (``unavailable``); None when it
    succeeded (2xx, or a 304 to a conditional request)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallFinished:
    """A call ended, with its result or its error."""

    call_id: int
    rpc: str
    code: str | None
    """The error's code (spec 11.3); None when the call succeeded."""
    meta: ResponseMeta
    """The call's result metadata (spec 7.7); of a failed call, what its error
    says: attempts, the last endpoint, status and request id."""
    error: BaseException | None = None
    """The error the call raised; None when it succeeded."""

    @property
    def ok(self) -> bool:
        """Whether the call succeeded."""
        return self.code is None


class Observer:
    """Told what a client does (spec 14): subclass it and override what you need.

    Every method does nothing here. Observers run on the calling thread,
    inside the call, so keep them quick; one that raises is logged (once per
    observer and notification, logger ``secinfra.observe``) and changes
    nothing about the call, nor what the other observers are told (14.1.3)::

        class Counting(secinfra.Observer):
            def __init__(self) -> None:
                self.failed = collections.Counter()

            def call_finished(self, event: secinfra.CallFinished) -> None:
                if not event.ok:
                    self.failed[event.rpc, event.code] += 1

        client = secinfra.Client.enrol(url, join_token=token, bundle_file=path,
                                       observers=[Counting()])
    """

    def call_started(self, event: CallStarted) -> None:
        """A call started; first of its notifications."""

    def cache(self, event: CacheLookup) -> None:
        """The cache answered a cacheable call (before its attempts, if any)."""

    def attempt_started(self, event: AttemptStarted) -> TraceContext | None:
        """An attempt is about to go out. Return a :class:`TraceContext` to send
        it as this attempt's ``traceparent`` and ``tracestate`` (spec 14.3);
        when several observers do, the first registered with a valid one wins."""
        return None

    def attempt_finished(self, event: AttemptFinished) -> None:
        """The attempt ``attempt_started`` announced ended."""

    def call_finished(self, event: CallFinished) -> None:
        """The call ended; last of its notifications, exactly once per call."""
