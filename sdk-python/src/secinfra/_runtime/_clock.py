"""Time as the runtime sees it: one small interface, a real clock and a fake one.

Every time-dependent decision in the runtime (retry delays, deadlines, cache
ages, certificate renewal) reads a `Clock`, never `time` or `datetime.now`
directly, so tests can drive time by hand with `FakeClock` instead of sleeping.

Two kinds of time, never mixed:

- ``monotonic()`` measures durations (deadlines, cache ages). It never jumps
  when the machine's wall clock is set.
- ``now()`` is wall time in UTC, for things the outside world dates
  (certificate validity, ``Retry-After`` HTTP-dates).
"""

from __future__ import annotations

import math
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

__all__ = ["FAKE_CLOCK_EPOCH", "Clock", "FakeClock", "SystemClock"]

FAKE_CLOCK_EPOCH = datetime(2030, 1, 1, tzinfo=UTC)
"""Where a `FakeClock`'s wall time starts unless told otherwise."""


@runtime_checkable
class Clock(Protocol):
    """The source of time the runtime asks for every decision."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary fixed point; never goes backwards."""
        ...

    def now(self) -> datetime:
        """The current wall time, timezone-aware, in UTC."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for ``seconds`` (a fake clock just moves on)."""
        ...


class SystemClock:
    """The machine's clocks: `time.monotonic`, `datetime.now(UTC)`, `time.sleep`."""

    __slots__ = ()

    def monotonic(self) -> float:
        """Seconds from `time.monotonic`'s fixed point."""
        return time.monotonic()

    def now(self) -> datetime:
        """The current wall time in UTC."""
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        """Block for ``seconds``; a negative value raises `ValueError`."""
        _check_not_negative(seconds, "sleep")
        time.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


class FakeClock:
    """A clock that moves only when told to, for deterministic tests.

    `sleep` returns at once: it records the requested duration and moves time
    forward by it, so code that waits (retry backoff, renewal timers) runs
    instantly while still seeing time pass. `advance` moves time by hand.
    Both clocks move together; `shift_wall` moves only the wall clock, to test
    code that must not be fooled by a wall-clock step.

    Safe to share between threads.

    >>> clock = FakeClock()
    >>> clock.sleep(1.5)
    >>> clock.monotonic(), clock.sleeps
    (1.5, (1.5,))
    >>> clock.advance(timedelta(minutes=1))
    >>> clock.now().isoformat()
    '2030-01-01T00:01:01.500000+00:00'
    """

    def __init__(self, start: datetime = FAKE_CLOCK_EPOCH, *, monotonic: float = 0.0) -> None:
        """Start the wall clock at ``start`` and the monotonic clock at ``monotonic``.

        ``start`` must be timezone-aware; it is converted to UTC.
        """
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError("secinfra: testing: FakeClock start must be timezone-aware")
        self._lock = threading.Lock()
        self._wall = start.astimezone(UTC)
        self._monotonic = float(monotonic)
        self._sleeps: list[float] = []

    def monotonic(self) -> float:
        """The fake monotonic time in seconds."""
        with self._lock:
            return self._monotonic

    def now(self) -> datetime:
        """The fake wall time, in UTC."""
        with self._lock:
            return self._wall

    def sleep(self, seconds: float) -> None:
        """Record the sleep and advance both clocks by it, without blocking."""
        _check_not_negative(seconds, "sleep")
        with self._lock:
            self._sleeps.append(float(seconds))
            self._move(float(seconds))

    def advance(self, seconds: float | timedelta) -> None:
        """Move both clocks forward by ``seconds`` (a number or a `timedelta`).

        Not recorded as a sleep. Moving backwards (or by NaN or infinity)
        raises `ValueError`: a monotonic clock never does.
        """
        amount = seconds.total_seconds() if isinstance(seconds, timedelta) else float(seconds)
        _check_not_negative(amount, "advance")
        with self._lock:
            self._move(amount)

    def shift_wall(self, seconds: float | timedelta) -> None:
        """Step only the wall clock, forwards or backwards (an NTP step, say).

        The monotonic clock does not move, as a real one would not.
        """
        delta = seconds if isinstance(seconds, timedelta) else timedelta(seconds=seconds)
        with self._lock:
            self._wall += delta

    @property
    def sleeps(self) -> tuple[float, ...]:
        """Every duration passed to `sleep`, oldest first."""
        with self._lock:
            return tuple(self._sleeps)

    @property
    def slept(self) -> float:
        """The total of all sleeps."""
        with self._lock:
            return sum(self._sleeps)

    def clear_sleeps(self) -> None:
        """Forget recorded sleeps (time itself is not moved back)."""
        with self._lock:
            self._sleeps.clear()

    def _move(self, seconds: float) -> None:
        # Caller holds the lock.
        self._monotonic += seconds
        self._wall += timedelta(seconds=seconds)

    def __repr__(self) -> str:
        with self._lock:
            return f"FakeClock(now={self._wall.isoformat()}, monotonic={self._monotonic!r})"


def _check_not_negative(seconds: float, what: str) -> None:
    if not 0.0 <= seconds < math.inf:  # also rejects NaN
        raise ValueError(f"secinfra: clock: cannot {what} by {seconds!r} s")
