"""The retry budget: a token bucket per client that stops retry storms.

When a server is overloaded, every client retrying every failed call
multiplies its load by the number of attempts. The budget caps that: each
retry spends tokens, each success earns one back, and when the bucket is
empty the client stops retrying (first attempts still go out) until enough
calls succeed again. With the defaults a healthy client keeps a full bucket
and a client whose calls all fail gets at most 100 retries in a row.

One `RetryBudget` is shared by every call of one client; it is thread-safe.
"""

from __future__ import annotations

import threading

__all__ = [
    "BUDGET_CAPACITY",
    "RETRY_COST",
    "SUCCESS_REFUND",
    "TIMEOUT_RETRY_COST",
    "RetryBudget",
]

BUDGET_CAPACITY = 500
"""Tokens a full bucket holds; a new client starts full."""

RETRY_COST = 5
"""Tokens one retry spends."""

TIMEOUT_RETRY_COST = 10
"""Tokens a retry after an attempt that timed out spends: a timed-out attempt
held server resources for the whole attempt timeout, so it costs double."""

SUCCESS_REFUND = 1
"""Tokens each successful call earns back (never above the capacity)."""


class RetryBudget:
    """A thread-safe token bucket of retries.

    >>> budget = RetryBudget(capacity=10)
    >>> budget.try_acquire(budget.retry_cost), budget.tokens
    (True, 5)
    >>> budget.try_acquire(budget.timeout_retry_cost), budget.tokens
    (False, 5)
    >>> budget.record_success(); budget.tokens
    6
    """

    __slots__ = (
        "_capacity",
        "_lock",
        "_retry_cost",
        "_success_refund",
        "_timeout_retry_cost",
        "_tokens",
    )

    def __init__(
        self,
        *,
        capacity: int = BUDGET_CAPACITY,
        retry_cost: int = RETRY_COST,
        timeout_retry_cost: int = TIMEOUT_RETRY_COST,
        success_refund: int = SUCCESS_REFUND,
    ) -> None:
        """Create a full bucket. All amounts are whole tokens, none negative."""
        for name, amount in (
            ("capacity", capacity),
            ("retry_cost", retry_cost),
            ("timeout_retry_cost", timeout_retry_cost),
            ("success_refund", success_refund),
        ):
            if amount < 0:
                raise ValueError(f"secinfra: retry budget: {name} must not be negative")
        self._lock = threading.Lock()
        self._capacity = capacity
        self._retry_cost = retry_cost
        self._timeout_retry_cost = timeout_retry_cost
        self._success_refund = success_refund
        self._tokens = capacity

    @property
    def capacity(self) -> int:
        """Tokens a full bucket holds."""
        return self._capacity

    @property
    def retry_cost(self) -> int:
        """Tokens one ordinary retry spends."""
        return self._retry_cost

    @property
    def timeout_retry_cost(self) -> int:
        """Tokens a retry after a timed-out attempt spends."""
        return self._timeout_retry_cost

    @property
    def tokens(self) -> int:
        """Tokens left now (a snapshot: other threads may change it at once)."""
        with self._lock:
            return self._tokens

    def cost(self, *, timeout: bool) -> int:
        """What a retry costs: `timeout_retry_cost` after a timeout, else `retry_cost`."""
        return self._timeout_retry_cost if timeout else self._retry_cost

    def try_acquire(self, cost: int) -> bool:
        """Spend ``cost`` tokens if the bucket holds that many.

        Returns False, spending nothing, when it does not: the caller must
        not retry.
        """
        if cost < 0:
            raise ValueError("secinfra: retry budget: cost must not be negative")
        with self._lock:
            if self._tokens < cost:
                return False
            self._tokens -= cost
            return True

    def record_success(self) -> None:
        """Earn back the success refund, up to the capacity."""
        with self._lock:
            self._tokens = min(self._capacity, self._tokens + self._success_refund)

    def __repr__(self) -> str:
        return f"RetryBudget(tokens={self.tokens}, capacity={self._capacity})"
