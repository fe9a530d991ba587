"""`Observer`: tracing and metrics for a client, on OpenTelemetry's API."""

from __future__ import annotations

from typing import Final

from opentelemetry import metrics, trace

import secinfra

from ._metrics import (
    ATTEMPTS_COUNTER,
    CACHE_LOOKUPS_COUNTER,
    CALLS_COUNTER,
    RENEWALS_COUNTER,
    Metrics,
)
from ._tracing import Tracing

__all__ = [
    "ATTEMPTS_COUNTER",
    "CACHE_LOOKUPS_COUNTER",
    "CALLS_COUNTER",
    "INSTRUMENTATION_SCOPE",
    "RENEWALS_COUNTER",
    "Observer",
]

INSTRUMENTATION_SCOPE: Final = "secinfra"
"""The name of the tracer and the meter (their version: ``secinfra.__version__``)."""


class Observer(secinfra.Observer):
    """Spans and counters for every call of the clients it is registered on.

    ``tracer_provider`` and ``meter_provider`` default to OpenTelemetry's
    global ones (looked up when first used, so they may be set later). One
    observer may serve several clients.

    Spans (spec 14.5): a span per call, kind INTERNAL, named by the RPC's full
    name (``secinfra.v1.SecretsService/GetSecret``), a child of the current
    span where the call is made, with ``rpc.service``, ``rpc.method``,
    ``secinfra.idempotency``, and at its end ``secinfra.attempts``,
    ``secinfra.from_cache`` and ``secinfra.stale``; a call that failed has
    status ERROR and ``error.type`` set to the error's code (``not_found``).
    The cache's answer is an event ``cache`` on it with
    ``secinfra.cache.result``. Each attempt is a span, kind CLIENT, named by
    its HTTP method, a child of the call's, with ``rpc.service``,
    ``rpc.method``, ``http.request.method``, ``server.address``,
    ``server.port``, ``secinfra.attempt``,
    ``http.response.status_code`` when answered and ``error.type`` when it
    failed; its context goes out as the attempt's ``traceparent`` (and
    ``tracestate``), so the server's span is its child.

    Counters (spec 14.4): ``secinfra.client.calls``,
    ``secinfra.client.attempts``, ``secinfra.client.cache.lookups`` and,
    once :meth:`on_rotation` is subscribed (``client.on_rotation(observer.on_rotation)``),
    ``secinfra.client.renewals``; each by ``rpc.service`` and ``rpc.method``
    (renewals: not), and by ``error.type`` when what it counts failed.
    """

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        version = secinfra.__version__
        self._tracing = Tracing(
            trace.get_tracer(INSTRUMENTATION_SCOPE, version, tracer_provider=tracer_provider)
        )
        self._metrics = Metrics(
            metrics.get_meter(INSTRUMENTATION_SCOPE, version, meter_provider=meter_provider)
        )

    def call_started(self, event: secinfra.CallStarted) -> None:
        self._tracing.call_started(event)

    def cache(self, event: secinfra.CacheLookup) -> None:
        self._tracing.cache(event)
        self._metrics.cache(event)

    def attempt_started(self, event: secinfra.AttemptStarted) -> secinfra.TraceContext | None:
        return self._tracing.attempt_started(event)

    def attempt_finished(self, event: secinfra.AttemptFinished) -> None:
        self._tracing.attempt_finished(event)
        self._metrics.attempt_finished(event)

    def call_finished(self, event: secinfra.CallFinished) -> None:
        self._tracing.call_finished(event)
        self._metrics.call_finished(event)

    def on_rotation(self, event: secinfra.RotationEvent) -> None:
        """Count renewals (a rotation subscriber: ``client.on_rotation(observer.on_rotation)``)."""
        self._metrics.rotation(event)
