"""Delivering notifications to a client's observers (spec 14.1, 14.2, 14.3).

`Notifier` is what the call pipeline holds when the client has observers
(none: it holds no notifier, and a call pays one ``is None`` test per step).
Each notification goes to every observer in the order registered; one that
raises is logged once per observer and kind of notification, at WARNING on
the ``secinfra.observe`` logger, and the call and the other observers go on
as if it had not been called (14.1.3). At ``attempt_started`` the first
valid trace context an observer returns is the attempt's (14.3.2).
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Sequence
from typing import Final

from ._meta import ResponseMeta
from ._observer import (
    AttemptFinished,
    AttemptStarted,
    CacheLookup,
    CacheResult,
    CallFinished,
    CallStarted,
    Observer,
)
from ._trace_context import TraceContext, valid_traceparent, valid_tracestate

__all__ = ["Notifier"]

log = logging.getLogger("secinfra.observe")

#: Call ids, unique in the process (several clients may share one observer).
_CALL_IDS: Final = itertools.count(1)


class Notifier:
    """A client's observers, told of each call. Thread-safe."""

    def __init__(self, observers: Sequence[Observer]) -> None:
        self._observers = tuple(observers)
        self._logged: set[tuple[int, str]] = set()
        self._lock = threading.Lock()

    def call_started(self, rpc: str, idempotency: str) -> int:
        """Tell of a call starting; the call's id."""
        call_id = next(_CALL_IDS)
        event = CallStarted(call_id=call_id, rpc=rpc, idempotency=idempotency)
        for index, observer in enumerate(self._observers):
            try:
                observer.call_started(event)
            except Exception:
                self._failed(index, observer, "call_started")
        return call_id

    def cache(self, call_id: int, rpc: str, result: CacheResult) -> None:
        event = CacheLookup(call_id=call_id, rpc=rpc, result=result)
        for index, observer in enumerate(self._observers):
            try:
                observer.cache(event)
            except Exception:
                self._failed(index, observer, "cache")

    def attempt_started(
        self, call_id: int, rpc: str, attempt: int, endpoint: str, http_method: str
    ) -> TraceContext | None:
        """Tell of an attempt starting; the trace context it carries, if any is valid."""
        event = AttemptStarted(
            call_id=call_id, rpc=rpc, attempt=attempt, endpoint=endpoint, http_method=http_method
        )
        chosen: TraceContext | None = None
        for index, observer in enumerate(self._observers):
            try:
                returned = observer.attempt_started(event)
            except Exception:
                self._failed(index, observer, "attempt_started")
                continue
            if chosen is None and isinstance(returned, TraceContext):
                chosen = _sendable(returned)
        return chosen

    def attempt_finished(
        self,
        call_id: int,
        rpc: str,
        attempt: int,
        endpoint: str,
        status: int | None,
        code: str | None,
    ) -> None:
        event = AttemptFinished(
            call_id=call_id, rpc=rpc, attempt=attempt, endpoint=endpoint, status=status, code=code
        )
        for index, observer in enumerate(self._observers):
            try:
                observer.attempt_finished(event)
            except Exception:
                self._failed(index, observer, "attempt_finished")

    def call_finished(
        self,
        call_id: int,
        rpc: str,
        meta: ResponseMeta,
        error: BaseException | None = None,
        code: str | None = None,
    ) -> None:
        """Tell of a call ending: ``error`` with its ``code``, or none for success."""
        event = CallFinished(call_id=call_id, rpc=rpc, code=code, meta=meta, error=error)
        for index, observer in enumerate(self._observers):
            try:
                observer.call_finished(event)
            except Exception:
                self._failed(index, observer, "call_finished")

    def _failed(self, index: int, observer: Observer, kind: str) -> None:
        """Log an observer's failure the first time it fails at ``kind`` (14.1.3)."""
        with self._lock:
            if (index, kind) in self._logged:
                return
            self._logged.add((index, kind))
        log.warning(
            "secinfra: observe: observer %d (%s) failed at %s; the call goes on"
            " (logged once per observer and notification)",
            index,
            type(observer).__qualname__,
            kind,
            exc_info=True,
        )


def _sendable(context: TraceContext) -> TraceContext | None:
    """``context`` as it may go out: None if its traceparent is invalid, without
    its tracestate if that one cannot be sent (spec 14.3.2)."""
    if not valid_traceparent(context.traceparent):
        return None
    if context.tracestate and not valid_tracestate(context.tracestate):
        return TraceContext(context.traceparent)
    return context
