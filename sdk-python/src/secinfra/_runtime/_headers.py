"""HTTP header names the runtime sends and reads, and a case-insensitive lookup."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

ATTEMPT_HEADER: Final = "Secinfra-Attempt"
"""The 1-based number of the attempt (spec 2.4)."""
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
"""One UUIDv4 per call that is not read-only, the same on every attempt (4.2)."""
REQUEST_ID_HEADER: Final = "Request-Id"
"""The server's id of the request, in every answer (11.5)."""
IF_NONE_MATCH_HEADER: Final = "If-None-Match"
"""The cached ETag a conditional request carries (7.5)."""
TRACEPARENT_HEADER: Final = "traceparent"
"""W3C trace context an observer returned for the attempt (14.3)."""
TRACESTATE_HEADER: Final = "tracestate"
"""The vendor part of that trace context, sent only beside a valid traceparent."""


def header(headers: Mapping[str, str], name: str) -> str | None:
    """``headers[name]``, matching the name case-insensitively."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, candidate in headers.items():
        if key.lower() == lowered:
            return candidate
    return None
