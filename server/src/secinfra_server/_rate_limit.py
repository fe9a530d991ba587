"""Token buckets by key, in memory and bounded.

Each key (a source address, a join token id) has a bucket of ``burst`` tokens
that refills at ``per_minute`` tokens a minute. :meth:`TokenBuckets.take`
spends one token or says how long until one is there; :meth:`TokenBuckets.give_back`
returns a token (a request that turned out not to count).

Memory is bounded: at most ``max_keys`` buckets are kept, least recently used
evicted first. An evicted bucket starts full if its key comes back, so the
bound trades precision for memory only when more than ``max_keys`` keys are
active at once (each of which then still gets at most one burst per refill).
Time is read from a monotonic clock, never the server's shiftable wall clock.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """Token buckets by key; see the module docstring."""

    def __init__(
        self,
        *,
        burst: int,
        per_minute: float,
        max_keys: int,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if burst < 1 or per_minute <= 0 or max_keys < 1:
            raise ValueError("burst and max_keys must be at least 1 and per_minute positive")
        self._burst = float(burst)
        self._per_second = per_minute / 60.0
        self._max_keys = max_keys
        self._monotonic = monotonic
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _bucket(self, key: str) -> _Bucket:
        now = self._monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(self._burst, now)
            self._buckets[key] = bucket
            while len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(self._burst, bucket.tokens + elapsed * self._per_second)
            bucket.updated = now
        return bucket

    def wait(self, key: str) -> float:
        """Seconds until ``key`` has a token (0: it has one now). Spends nothing."""
        bucket = self._bucket(key)
        if bucket.tokens >= 1.0:
            return 0.0
        return (1.0 - bucket.tokens) / self._per_second

    def take(self, key: str) -> float:
        """Spend one of ``key``'s tokens and return 0, or spend nothing and
        return the seconds until a token is there."""
        waiting = self.wait(key)
        if waiting == 0.0:
            self._buckets[key].tokens -= 1.0
        return waiting

    def charge(self, key: str) -> None:
        """Spend one of ``key``'s tokens, whatever is left (a bucket may go
        below zero, which makes its key wait longer)."""
        bucket = self._bucket(key)
        bucket.tokens = max(bucket.tokens - 1.0, -self._burst)

    def give_back(self, key: str) -> None:
        """Return one token to ``key`` (never more than the burst)."""
        bucket = self._bucket(key)
        bucket.tokens = min(self._burst, bucket.tokens + 1.0)


def retry_after_seconds(wait: float) -> int:
    """A wait as the whole seconds of a ``Retry-After`` header (at least 1)."""
    return max(1, math.ceil(wait))
