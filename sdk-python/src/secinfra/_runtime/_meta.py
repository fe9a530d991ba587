"""Per-call metadata, captured with :func:`secinfra.capture`."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ResponseMeta:
    """How one call was answered."""

    method: str
    """The RPC, e.g. ``secinfra.v1.SecretsService/GetSecret``."""
    request_id: str | None
    """The server's request id of the last answered attempt, also when a later one got
    no answer (spec 7.7.1); None if none answered."""
    attempts: int
    """HTTP attempts made (0 when served from the cache without a request)."""
    from_cache: bool
    """The value came from the client's cache (fresh, revalidated, or stale)."""
    stale: bool
    """The value is a stale cached one, served because the server failed."""
    status: int | None = None
    """The HTTP status of the answering attempt."""
    endpoint: str | None = None
    """The endpoint URL of the answering (or last) attempt (spec 12.8.1); None
    for a value served from the cache without a request."""


@dataclass
class Captured:
    """The metadata of every call made inside a :func:`capture` block."""

    calls: list[ResponseMeta] = field(default_factory=list)

    @property
    def last(self) -> ResponseMeta:
        """The most recent call's metadata."""
        if not self.calls:
            raise LookupError("secinfra: no call was made inside capture()")
        return self.calls[-1]


_CAPTURE: contextvars.ContextVar[Captured | None] = contextvars.ContextVar(
    "secinfra_capture", default=None
)


@contextlib.contextmanager
def capture() -> Iterator[Captured]:
    """Collect :class:`ResponseMeta` for the calls made in this block (this thread
    or task only)::

        with secinfra.capture() as meta:
            secret = client.secrets.get_secret(name="db/password")
        if meta.last.stale:
            log.warning("serving a cached secret: the server is unreachable")
    """
    captured = Captured()
    token = _CAPTURE.set(captured)
    try:
        yield captured
    finally:
        _CAPTURE.reset(token)


def capturing() -> bool:
    """Whether a :func:`capture` block is active here (a call's metadata is wanted)."""
    return _CAPTURE.get() is not None


def report(meta: ResponseMeta) -> None:
    """Record a call's metadata in the active :func:`capture` block, if any."""
    captured = _CAPTURE.get()
    if captured is not None:
        captured.calls.append(meta)
