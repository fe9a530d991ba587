"""Structured JSON logs on stderr.

Log lines carry fixed fields (time, level, logger, message) plus whatever the
caller passes in ``extra={"fields": {...}}``. Callers pass identifiers (request
id, route template, SPIFFE ID, serial, status), never request bodies, query
strings, tokens, keys or secret values; the formatter also drops any field whose
name says it holds one, as a second line of defence.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Final

#: Field names that are never written, whatever a caller passes.
REDACTED_FIELDS: Final = frozenset(
    {"token", "join_token", "jwt", "secret", "value", "key", "private_key", "password", "body"}
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for name, value in fields.items():
                if name not in REDACTED_FIELDS:
                    entry[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__name__
            # Server-side only; messages of our errors never hold secret material.
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, separators=(",", ":"))


def configure(level: str) -> None:
    """Send every ``secinfra`` logger to stderr as JSON at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("secinfra")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    logging.getLogger("aiohttp.access").disabled = True
