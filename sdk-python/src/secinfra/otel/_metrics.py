"""Counters of calls, attempts, cache lookups and renewals (spec 14.4).

Built on the notifications and on rotation events (9.8); the instruments
come from an OpenTelemetry meter, so any metrics SDK or exporter reads them.
"""

from __future__ import annotations

from typing import Final

from opentelemetry import metrics

import secinfra
from secinfra.errors import SecinfraError

from ._tracing import (
    CACHE_RESULT,
    ERROR_TYPE,
    HTTP_RESPONSE_STATUS_CODE,
    rpc_attributes,
)

__all__ = [
    "ATTEMPTS_COUNTER",
    "CACHE_LOOKUPS_COUNTER",
    "CALLS_COUNTER",
    "RENEWALS_COUNTER",
    "Metrics",
]

CALLS_COUNTER: Final = "secinfra.client.calls"
"""Calls by ``rpc.service``, ``rpc.method`` and, when they failed, ``error.type`` (the code)."""
ATTEMPTS_COUNTER: Final = "secinfra.client.attempts"
"""Attempts by RPC, ``http.response.status_code`` (when answered) and ``error.type``
(when failed)."""
CACHE_LOOKUPS_COUNTER: Final = "secinfra.client.cache.lookups"
"""Cache lookups by RPC and ``secinfra.cache.result`` (``hit``, ``miss``, ``revalidate``)."""
RENEWALS_COUNTER: Final = "secinfra.client.renewals"
"""Renewals, and by ``error.type`` the failed ones (rotation events ``renewed`` and
``renewal_failed``)."""


class Metrics:
    """The counters; their attributes carry no secret (spec 14.2.5)."""

    def __init__(self, meter: metrics.Meter) -> None:
        self._calls = meter.create_counter(
            CALLS_COUNTER, unit="{call}", description="secinfra calls made"
        )
        self._attempts = meter.create_counter(
            ATTEMPTS_COUNTER, unit="{attempt}", description="HTTP attempts of secinfra calls"
        )
        self._lookups = meter.create_counter(
            CACHE_LOOKUPS_COUNTER,
            unit="{lookup}",
            description="response cache lookups of cacheable secinfra calls",
        )
        self._renewals = meter.create_counter(
            RENEWALS_COUNTER, unit="{renewal}", description="client certificate renewals"
        )

    def cache(self, event: secinfra.CacheLookup) -> None:
        self._lookups.add(1, {**rpc_attributes(event.rpc), CACHE_RESULT: str(event.result)})

    def attempt_finished(self, event: secinfra.AttemptFinished) -> None:
        attributes: dict[str, str | int] = {**rpc_attributes(event.rpc)}
        if event.status is not None:
            attributes[HTTP_RESPONSE_STATUS_CODE] = event.status
        if event.code is not None:
            attributes[ERROR_TYPE] = event.code
        self._attempts.add(1, attributes)

    def call_finished(self, event: secinfra.CallFinished) -> None:
        attributes = rpc_attributes(event.rpc)
        if event.code is not None:
            attributes = {**attributes, ERROR_TYPE: event.code}
        self._calls.add(1, attributes)

    def rotation(self, event: secinfra.RotationEvent) -> None:
        if event.kind is secinfra.RotationKind.RENEWED:
            self._renewals.add(1)
        elif event.kind is secinfra.RotationKind.RENEWAL_FAILED:
            self._renewals.add(1, {ERROR_TYPE: _error_type(event.error)})


def _error_type(error: Exception | None) -> str:
    """A failed renewal's ``error.type``: the SDK error's code, else the exception's class."""
    if isinstance(error, SecinfraError):
        return error.code
    return type(error).__name__ if error is not None else "renewal_failed"
