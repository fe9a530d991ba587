"""The clocks the runtime reads: DESIGN.md "Client behaviour" (every time-based rule).

`FakeClock` is public as ``secinfra.testing.FakeClock``; the tests use that name.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

import secinfra.testing
from secinfra._runtime._clock import FAKE_CLOCK_EPOCH, Clock, SystemClock
from secinfra.testing import FakeClock


def test_fake_clock_is_exported_by_secinfra_testing() -> None:
    assert "FakeClock" in secinfra.testing.__all__
    assert FakeClock.__module__ == "secinfra._runtime._clock"


def test_fake_clock_is_a_clock() -> None:
    assert isinstance(FakeClock(), Clock)
    assert isinstance(SystemClock(), Clock)


def test_fake_clock_sleep_advances_and_records() -> None:
    clock = FakeClock()
    clock.sleep(0.25)
    clock.sleep(1.5)
    assert list(clock.sleeps) == [0.25, 1.5]
    assert clock.slept == 1.75
    assert clock.monotonic() == 1.75
    assert clock.now() == FAKE_CLOCK_EPOCH + timedelta(seconds=1.75)
    clock.clear_sleeps()
    assert not clock.sleeps
    assert clock.monotonic() == 1.75


def test_fake_clock_advance_is_not_a_sleep() -> None:
    clock = FakeClock(datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC), monotonic=100.0)
    clock.advance(timedelta(minutes=2))
    clock.advance(0.5)
    assert clock.monotonic() == 220.5
    assert clock.now() == datetime(2031, 5, 6, 7, 10, 9, 500_000, tzinfo=UTC)
    assert not clock.sleeps


def test_fake_clock_wall_time_is_utc() -> None:
    clock = FakeClock(datetime(2030, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2))))
    assert clock.now() == datetime(2030, 1, 1, tzinfo=UTC)
    assert clock.now().tzinfo is UTC


def test_fake_clock_shift_wall_leaves_monotonic_alone() -> None:
    clock = FakeClock()
    clock.shift_wall(-3600)
    assert clock.monotonic() == 0.0
    assert clock.now() == FAKE_CLOCK_EPOCH - timedelta(hours=1)


@pytest.mark.parametrize("seconds", [-1.0, float("nan"), float("inf")])
def test_fake_clock_never_goes_backwards(seconds: float) -> None:
    clock = FakeClock()
    with pytest.raises(ValueError, match="secinfra: clock"):
        clock.advance(seconds)
    with pytest.raises(ValueError, match="secinfra: clock"):
        clock.sleep(seconds)
    assert clock.monotonic() == 0.0


def test_fake_clock_needs_an_aware_start() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        FakeClock(datetime(2030, 1, 1))


def test_system_clock() -> None:
    clock = SystemClock()
    before = clock.monotonic()
    clock.sleep(0)
    assert clock.monotonic() >= before
    assert clock.now().tzinfo is UTC
