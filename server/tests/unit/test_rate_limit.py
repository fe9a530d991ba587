"""Token buckets by key (refill, give-back, bounded memory) and how enrolment
sources are keyed, on a fake monotonic clock: no sleeps."""

from __future__ import annotations

import pytest

from secinfra_server._enrolment_guard import source_of
from secinfra_server._rate_limit import TokenBuckets, retry_after_seconds


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _buckets(
    clock: FakeMonotonic, *, burst: int = 3, per_minute: float = 6, keys: int = 10
) -> TokenBuckets:
    return TokenBuckets(burst=burst, per_minute=per_minute, max_keys=keys, monotonic=clock)


def test_a_burst_then_a_wait_that_refills_at_the_rate() -> None:
    clock = FakeMonotonic()
    buckets = _buckets(clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(10.0)  # 6 a minute: one every 10 s
    clock.now += 4
    assert buckets.take("a") == pytest.approx(6.0)
    clock.now += 6
    assert buckets.take("a") == 0.0
    assert buckets.take("b") == 0.0, "keys have their own buckets"


def test_refill_stops_at_the_burst() -> None:
    clock = FakeMonotonic()
    buckets = _buckets(clock)
    buckets.take("a")
    clock.now += 3600
    assert [buckets.take("a") for _ in range(4)][-1] > 0, "an hour idle buys one burst, no more"


def test_give_back_and_charge() -> None:
    clock = FakeMonotonic()
    buckets = _buckets(clock, burst=1)
    assert buckets.take("a") == 0.0
    buckets.give_back("a")
    assert buckets.take("a") == 0.0
    buckets.give_back("a")
    buckets.give_back("a")
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0, "give_back never fills past the burst"
    buckets.charge("b")
    buckets.charge("b")
    assert buckets.wait("b") == pytest.approx(20.0), "a charge may go below zero"


def test_memory_is_bounded_least_recently_used_first() -> None:
    clock = FakeMonotonic()
    buckets = _buckets(clock, burst=1, keys=3)
    for key in ("a", "b", "c"):
        buckets.take(key)
    buckets.wait("a")  # a is used again: b is now the oldest
    buckets.take("d")
    assert len(buckets) == 3
    assert buckets.wait("a") > 0, "a was kept"
    assert buckets.wait("b") == 0.0, "b was evicted and starts full"


@pytest.mark.parametrize(
    ("burst", "per_minute", "keys"), [(0, 1, 1), (1, 0, 1), (1, 1, 0), (1, -1, 1)]
)
def test_nonsense_limits_are_refused(burst: int, per_minute: float, keys: int) -> None:
    with pytest.raises(ValueError, match="burst"):
        TokenBuckets(burst=burst, per_minute=per_minute, max_keys=keys)


@pytest.mark.parametrize(("wait", "header"), [(0.01, 1), (1.0, 1), (1.2, 2), (59.9, 60)])
def test_retry_after_is_whole_seconds_rounded_up(wait: float, header: int) -> None:
    assert retry_after_seconds(wait) == header


@pytest.mark.parametrize(
    ("remote", "source"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("fe80::1%eth0", "fe80::/64"),
        (None, "unknown"),
        ("", "unknown"),
        ("not an address", "unknown"),
    ],
)
def test_sources_are_addresses_and_ipv6_counts_by_its_64(remote: str | None, source: str) -> None:
    assert source_of(remote) == source
