"""Spans for calls and attempts (spec 14.5.1 to 14.5.3).

A call's span (INTERNAL) starts at ``call_started``, in the context current
on the calling thread, and ends at ``call_finished``; each attempt's span
(CLIENT) is its child, from ``attempt_started`` to ``attempt_finished``. The
attempt's trace context is injected with the W3C propagator, whatever the
global propagators are: the wire carries W3C trace context (14.3).
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import secinfra

__all__ = ["Tracing"]

#: The W3C propagator: what goes out is W3C trace context (spec 14.3).
_W3C: Final = TraceContextTextMapPropagator()

# Attribute names: OpenTelemetry's semantic conventions, and secinfra's own.
HTTP_REQUEST_METHOD: Final = "http.request.method"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
ERROR_TYPE: Final = "error.type"
RPC_SERVICE: Final = "rpc.service"
RPC_METHOD: Final = "rpc.method"
ATTEMPT: Final = "secinfra.attempt"
IDEMPOTENCY: Final = "secinfra.idempotency"
CACHE_RESULT: Final = "secinfra.cache.result"
ATTEMPTS: Final = "secinfra.attempts"
FROM_CACHE: Final = "secinfra.from_cache"
STALE: Final = "secinfra.stale"
CACHE_EVENT: Final = "cache"


@dataclass(slots=True)
class _Call:
    span: Span
    attempt: Span | None = None


class Tracing:
    """The spans of every call one or more clients make. Thread-safe."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer
        self._calls: dict[int, _Call] = {}
        self._lock = threading.Lock()

    def call_started(self, event: secinfra.CallStarted) -> None:
        span = self._tracer.start_span(
            event.rpc,
            kind=SpanKind.INTERNAL,
            attributes={**rpc_attributes(event.rpc), IDEMPOTENCY: event.idempotency},
        )
        with self._lock:
            self._calls[event.call_id] = _Call(span)

    def cache(self, event: secinfra.CacheLookup) -> None:
        call = self._call(event.call_id)
        if call is not None:
            call.span.add_event(CACHE_EVENT, {CACHE_RESULT: str(event.result)})

    def attempt_started(self, event: secinfra.AttemptStarted) -> secinfra.TraceContext | None:
        call = self._call(event.call_id)
        parent = trace.set_span_in_context(call.span) if call is not None else None
        address, port = endpoint_address(event.endpoint)
        span = self._tracer.start_span(
            event.http_method,
            context=parent,
            kind=SpanKind.CLIENT,
            attributes={
                **rpc_attributes(event.rpc),
                HTTP_REQUEST_METHOD: event.http_method,
                SERVER_ADDRESS: address,
                SERVER_PORT: port,
                ATTEMPT: event.attempt,
            },
        )
        if call is not None:
            call.attempt = span
        carrier: dict[str, str] = {}
        _W3C.inject(carrier, context=trace.set_span_in_context(span))
        traceparent = carrier.get("traceparent")
        if traceparent is None:  # no valid span context (a no-op tracer, no parent)
            return None
        return secinfra.TraceContext(traceparent, carrier.get("tracestate", ""))

    def attempt_finished(self, event: secinfra.AttemptFinished) -> None:
        call = self._call(event.call_id)
        if call is None or call.attempt is None:
            return
        span, call.attempt = call.attempt, None
        if event.status is not None:
            span.set_attribute(HTTP_RESPONSE_STATUS_CODE, event.status)
        if event.code is not None:
            span.set_attribute(ERROR_TYPE, event.code)
            span.set_status(Status(StatusCode.ERROR, event.code))
        span.end()

    def call_finished(self, event: secinfra.CallFinished) -> None:
        with self._lock:
            call = self._calls.pop(event.call_id, None)
        if call is None:
            return
        if call.attempt is not None:  # an attempt cut short by a bug: never leave it open
            call.attempt.end()
        span = call.span
        meta = event.meta
        span.set_attribute(ATTEMPTS, meta.attempts)
        span.set_attribute(FROM_CACHE, meta.from_cache)
        span.set_attribute(STALE, meta.stale)
        if event.code is not None:
            span.set_attribute(ERROR_TYPE, event.code)
            span.set_status(Status(StatusCode.ERROR, event.code))
        span.end()

    def _call(self, call_id: int) -> _Call | None:
        with self._lock:
            return self._calls.get(call_id)


@functools.lru_cache(maxsize=64)
def rpc_attributes(rpc: str) -> dict[str, str]:
    """``rpc.service`` and ``rpc.method`` of an RPC's full name (``service/method``)."""
    service, _, method = rpc.rpartition("/")
    return {RPC_SERVICE: service, RPC_METHOD: method}


@functools.lru_cache(maxsize=64)
def endpoint_address(endpoint: str) -> tuple[str, int]:
    """``server.address`` and ``server.port`` of an endpoint URL (https: 443 by default)."""
    parts = urlsplit(endpoint)
    return parts.hostname or "", parts.port or 443
