"""OpenTelemetry tracing and metrics for secinfra clients (spec 14.5, 14.4).

Needs the extra: ``pip install 'secinfra[otel]'`` (opentelemetry-api; the
application brings opentelemetry-sdk, or any other implementation, and its
exporters). The SDK itself imports nothing from OpenTelemetry: this module
is an :class:`secinfra.Observer` like any other::

    import secinfra
    import secinfra.otel

    telemetry = secinfra.otel.Observer()  # the global tracer and meter providers
    client = secinfra.Client.enrol(
        url, join_token=token, bundle_file="bundle.pem", observers=[telemetry]
    )
    client.on_rotation(telemetry.on_rotation)  # the renewals counter

Each call is a span (kind INTERNAL) named by the RPC's full name, a child of
the span current where the call is made; each attempt a CLIENT span below it,
whose context the attempt carries as its ``traceparent``, so the server's
span is the attempt's child. The counters are in :class:`Observer`.
"""

from __future__ import annotations

try:
    import opentelemetry.trace  # noqa: F401
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise ImportError(
        "secinfra: otel: needs OpenTelemetry's API: pip install 'secinfra[otel]'"
    ) from exc

from ._observer import (
    ATTEMPTS_COUNTER,
    CACHE_LOOKUPS_COUNTER,
    CALLS_COUNTER,
    INSTRUMENTATION_SCOPE,
    RENEWALS_COUNTER,
    Observer,
)

__all__ = [
    "ATTEMPTS_COUNTER",
    "CACHE_LOOKUPS_COUNTER",
    "CALLS_COUNTER",
    "INSTRUMENTATION_SCOPE",
    "RENEWALS_COUNTER",
    "Observer",
]
