"""Retry budget: DESIGN.md "Client behaviour" -> Retries (token bucket per client)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from secinfra._runtime._budget import (
    BUDGET_CAPACITY,
    RETRY_COST,
    SUCCESS_REFUND,
    TIMEOUT_RETRY_COST,
    RetryBudget,
)


def test_defaults_match_design() -> None:
    assert (BUDGET_CAPACITY, RETRY_COST, TIMEOUT_RETRY_COST, SUCCESS_REFUND) == (500, 5, 10, 1)
    budget = RetryBudget()
    assert (budget.capacity, budget.tokens) == (500, 500)
    assert (budget.cost(timeout=False), budget.cost(timeout=True)) == (5, 10)


@pytest.mark.parametrize(
    ("timeout", "retries"),
    [pytest.param(False, 100, id="retries"), pytest.param(True, 50, id="timeout-retries")],
)
def test_exhaustion_stops_retries(timeout: bool, retries: int) -> None:
    budget = RetryBudget()
    cost = budget.cost(timeout=timeout)
    granted = 0
    while budget.try_acquire(cost):
        granted += 1
    assert granted == retries
    assert budget.tokens == 0
    assert not budget.try_acquire(cost)


def test_a_refused_acquire_spends_nothing() -> None:
    budget = RetryBudget(capacity=7)
    assert not budget.try_acquire(TIMEOUT_RETRY_COST)
    assert budget.tokens == 7
    assert budget.try_acquire(RETRY_COST)
    assert budget.tokens == 2


def test_successes_refill_the_bucket() -> None:
    budget = RetryBudget()
    while budget.try_acquire(RETRY_COST):
        pass
    for _ in range(RETRY_COST - 1):
        budget.record_success()
    assert not budget.try_acquire(RETRY_COST)
    budget.record_success()
    assert budget.try_acquire(RETRY_COST)
    assert budget.tokens == 0


def test_refunds_stop_at_capacity() -> None:
    budget = RetryBudget()
    budget.try_acquire(RETRY_COST)
    for _ in range(100):
        budget.record_success()
    assert budget.tokens == BUDGET_CAPACITY


def test_zero_cost_is_always_granted() -> None:
    budget = RetryBudget(capacity=0)
    assert budget.try_acquire(0)


@pytest.mark.parametrize(
    "make",
    [
        lambda: RetryBudget(capacity=-1),
        lambda: RetryBudget(retry_cost=-1),
        lambda: RetryBudget(timeout_retry_cost=-1),
        lambda: RetryBudget(success_refund=-1),
        lambda: RetryBudget().try_acquire(-1),
    ],
    ids=["capacity", "retry_cost", "timeout_retry_cost", "success_refund", "acquire"],
)
def test_negative_amounts_are_rejected(make: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        make()


def run_together(threads: int, work: Callable[[], None]) -> None:
    """Start ``threads`` threads on ``work`` at once and wait for them (bounded)."""
    barrier = threading.Barrier(threads)

    def body() -> None:
        barrier.wait(timeout=10)
        work()

    workers = [threading.Thread(target=body) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=10)
    assert not any(worker.is_alive() for worker in workers)


def test_concurrent_acquires_never_overspend() -> None:
    budget = RetryBudget(capacity=10_000)
    granted: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        mine = sum(budget.try_acquire(1) for _ in range(2_000))
        with lock:
            granted.append(mine)

    run_together(8, work)
    assert sum(granted) == 10_000  # 16 000 asked for, exactly the capacity granted
    assert budget.tokens == 0


def test_concurrent_refunds_are_never_lost() -> None:
    budget = RetryBudget(capacity=10_000)
    assert budget.try_acquire(10_000)

    def work() -> None:
        for _ in range(1_000):
            budget.record_success()

    run_together(8, work)
    assert budget.tokens == 8_000


def test_concurrent_mixed_use_stays_within_bounds() -> None:
    budget = RetryBudget(capacity=50)
    seen: list[int] = []

    def work() -> None:
        for i in range(1_000):
            if i % 3:
                budget.record_success()
            else:
                budget.try_acquire(TIMEOUT_RETRY_COST)
            seen.append(budget.tokens)

    run_together(8, work)
    assert all(0 <= tokens <= 50 for tokens in seen)
