"""The server's clock: wall time plus an offset that test mode may shift."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class Clock:
    """Wall-clock time in UTC with a settable offset.

    Every time-dependent decision on the server (certificate validity, token
    expiry, cache lifetimes) reads this clock, never ``datetime.now`` directly,
    so test mode can shift time without touching the machine's clock.
    """

    def __init__(self) -> None:
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The current time, shifted by the offset."""
        with self._lock:
            offset = self._offset
        return datetime.now(UTC) + offset

    @property
    def offset(self) -> timedelta:
        """The current shift from wall time."""
        with self._lock:
            return self._offset

    def shift(self, delta: timedelta) -> None:
        """Move the clock by ``delta`` (test mode only)."""
        with self._lock:
            self._offset += delta

    def reset(self) -> None:
        """Go back to wall time."""
        with self._lock:
            self._offset = timedelta(0)
