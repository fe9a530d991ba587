"""Clock helpers: every time is passed in, timezone-aware, and compared in UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def require_aware(value: datetime, name: str = "now") -> datetime:
    """Return ``value`` in UTC; a naive datetime is a programming error."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise TypeError(f"secinfra: ca: {name} must be a timezone-aware datetime")
    return value.astimezone(UTC)
