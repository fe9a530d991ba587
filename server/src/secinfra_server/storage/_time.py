"""Timestamps as the tables store them: integer milliseconds since the epoch."""

from __future__ import annotations

from datetime import UTC, datetime


def to_ms(moment: datetime) -> int:
    """A timezone-aware datetime as integer milliseconds since the epoch."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return int(moment.timestamp() * 1000)


def from_ms(value: int) -> datetime:
    """Integer epoch milliseconds as an aware UTC datetime."""
    return datetime.fromtimestamp(value / 1000, tz=UTC)
