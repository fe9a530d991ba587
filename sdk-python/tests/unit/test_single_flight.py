"""Single-flight: concurrent misses of one key make one request (spec 7.8)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from secinfra._runtime._single_flight import SingleFlight

THREADS = 20


def run_concurrently(target: Callable[[], None], threads: int) -> list[threading.Thread]:
    workers = [threading.Thread(target=target) for _ in range(threads)]
    for worker in workers:
        worker.start()
    return workers


def join_all(workers: list[threading.Thread]) -> None:
    for worker in workers:
        worker.join(timeout=10)
    assert not any(worker.is_alive() for worker in workers)


def until_all_others_wait(flight: SingleFlight, key: str) -> None:
    """Block the leader until the other THREADS - 1 callers wait on its call (bounded)."""
    gate = threading.Event()
    for _ in range(10_000):
        if flight.waiting(key) == THREADS - 1:
            return
        gate.wait(0.001)
    pytest.fail("the other callers never joined the call")


def test_concurrent_misses_make_one_call_and_share_its_result() -> None:
    flight = SingleFlight()
    barrier = threading.Barrier(THREADS)
    calls: list[int] = []
    results: list[object] = []
    lock = threading.Lock()

    def fetch() -> object:
        calls.append(1)
        until_all_others_wait(flight, "k")
        return object()

    def caller() -> None:
        barrier.wait(timeout=10)
        result = flight.do("k", fetch)
        with lock:
            results.append(result)

    join_all(run_concurrently(caller, THREADS))
    assert len(calls) == 1
    assert len(results) == THREADS
    assert all(result is results[0] for result in results)
    assert flight.in_flight() == 0


def test_concurrent_misses_share_the_exception() -> None:
    flight = SingleFlight()
    barrier = threading.Barrier(THREADS)
    calls: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def fetch() -> object:
        calls.append(1)
        until_all_others_wait(flight, "k")
        raise ConnectionError("server down")

    def caller() -> None:
        barrier.wait(timeout=10)
        try:
            flight.do("k", fetch)
        except ConnectionError as exc:
            with lock:
                errors.append(exc)

    join_all(run_concurrently(caller, THREADS))
    assert len(calls) == 1
    assert len(errors) == THREADS
    assert all(error is errors[0] for error in errors)


def test_single_flight_caches_nothing() -> None:
    flight = SingleFlight()
    results = iter([1, 2])
    assert flight.do("k", lambda: next(results)) == 1
    assert flight.do("k", lambda: next(results)) == 2
    assert (flight.in_flight(), flight.waiting("k")) == (0, 0)


def test_different_keys_do_not_share_a_call() -> None:
    flight = SingleFlight()
    inner: list[str] = []

    def outer() -> str:
        inner.append(flight.do("b", lambda: "b"))  # would deadlock if keys were shared
        return "a"

    assert flight.do("a", outer) == "a"
    assert inner == ["b"]
