"""W3C trace context an observer hands the client for one attempt (spec 14.3).

An observer's ``attempt_started`` may return a `TraceContext`; the client
sends it as that attempt's ``traceparent`` and ``tracestate`` headers only
if `valid_traceparent` accepts it (14.3.2), and never any other header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = ["MAX_TRACESTATE", "TraceContext", "valid_traceparent", "valid_tracestate"]

#: The one traceparent shape the client sends: version 00, lower-case hex (spec 14.3.2).
_TRACEPARENT: Final = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
_ZERO_TRACE_ID: Final = "0" * 32
_ZERO_PARENT_ID: Final = "0" * 16

MAX_TRACESTATE: Final = 512
"""Characters: a longer ``tracestate`` is not sent (W3C Trace Context, 3.3.1.5)."""
#: A tracestate is printable ASCII (W3C list-members, spaces and commas).
_TRACESTATE: Final = re.compile(r"[\x20-\x7e]*")


@dataclass(frozen=True, slots=True)
class TraceContext:
    """W3C trace context for one attempt: returned by
    :meth:`Observer.attempt_started`, sent as the ``traceparent`` and
    ``tracestate`` headers (spec 14.3.1).

    A ``traceparent`` not of the form
    ``00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`` (lower case),
    or whose trace id or parent id is all zeros, is not sent, and neither is
    its ``tracestate``; the attempt goes out without them (14.3.2). An empty
    ``tracestate`` is not sent.
    """

    traceparent: str
    """E.g. ``00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01``."""
    tracestate: str = ""
    """Vendor entries, e.g. ``vendor=value``; empty: no ``tracestate`` header."""


def valid_traceparent(value: object) -> bool:
    """Whether ``value`` is a traceparent the client may send (spec 14.3.2)."""
    if not isinstance(value, str):
        return False
    match = _TRACEPARENT.fullmatch(value)
    if match is None:
        return False
    trace_id, parent_id = match.groups()
    return trace_id != _ZERO_TRACE_ID and parent_id != _ZERO_PARENT_ID


def valid_tracestate(value: object) -> bool:
    """Whether ``value`` can go out as a ``tracestate`` header: printable ASCII
    (no line break could split the request), at most `MAX_TRACESTATE` long."""
    return (
        isinstance(value, str)
        and len(value) <= MAX_TRACESTATE
        and _TRACESTATE.fullmatch(value) is not None
    )
