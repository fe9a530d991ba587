"""The call pipeline: deadline, single-flight, the cache switch and close, without a server."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from secinfra._rpc import CallOptions
from secinfra._runtime._clock import FakeClock
from secinfra.errors import DeadlineExceeded, TransportError

from .support import Echo, Request, Source, descriptor, make_pipeline

# --- the deadline starts when the call does ------------------------------------------


def test_the_deadline_counts_from_the_call_not_from_sending() -> None:
    clock = FakeClock()
    pipeline = make_pipeline("https://127.0.0.1:9", Source(), clock=clock)
    slow_encoding = Request(on_encode=lambda: clock.advance(31.0))
    with pytest.raises(DeadlineExceeded) as caught:
        pipeline.invoke(descriptor(), slow_encoding, Echo, None)
    assert caught.value.attempts == 0


def test_a_single_flight_waiter_ends_by_its_own_deadline() -> None:
    pipeline = make_pipeline("https://127.0.0.1:9", Source())
    release = threading.Event()
    entered = threading.Event()
    results: list[Any] = []

    def slow_send(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(5)
        raise TransportError("leader gave up")

    pipeline._send = slow_send  # type: ignore[method-assign]

    def leader() -> None:
        try:
            pipeline.invoke(descriptor(cacheable=True), Request({"name": "a"}), Echo, None)
        except TransportError as exc:
            results.append(exc)

    thread = threading.Thread(target=leader)
    thread.start()
    assert entered.wait(5)
    started = time.monotonic()
    try:
        with pytest.raises(DeadlineExceeded) as caught:
            pipeline.invoke(
                descriptor(cacheable=True), Request({"name": "a"}), Echo, CallOptions(deadline=0.3)
            )
        waited = time.monotonic() - started
    finally:
        release.set()
        thread.join(5)
    assert 0.25 <= waited < 0.3 + 0.25
    assert caught.value.attempts == 0
    assert len(results) == 1


# --- client-wide use_cache, close ----------------------------------------------------


def test_use_cache_false_on_the_pipeline_sends_every_cacheable_call() -> None:
    pipeline = make_pipeline("https://127.0.0.1:9", Source(), use_cache=False)
    sent: list[Any] = []
    joined: list[str] = []

    def send(*args: Any, **kwargs: Any) -> Any:
        sent.append(args)
        raise TransportError("no server")

    pipeline._send = send  # type: ignore[method-assign]
    pipeline._flights.do = lambda key, fn, **kw: joined.append(key)  # type: ignore[method-assign,assignment,misc]
    for _ in range(2):
        with pytest.raises(TransportError):
            pipeline.invoke(descriptor(cacheable=True), Request({"name": "a"}), Echo, None)
    assert len(sent) == 2
    assert joined == []  # never joined a single flight (spec 7.12.1)
    assert not pipeline.use_cache


def test_per_call_use_cache_true_wins_over_the_client_default() -> None:
    pipeline = make_pipeline("https://127.0.0.1:9", Source(), use_cache=False)
    joined: list[str] = []

    def do(key: str, fn: Any, **kwargs: Any) -> Any:
        joined.append(key)
        return Echo({}), _meta()

    pipeline._flights.do = do  # type: ignore[method-assign]
    pipeline.invoke(
        descriptor(cacheable=True), Request({"name": "a"}), Echo, CallOptions(use_cache=True)
    )
    assert len(joined) == 1


def _meta() -> Any:
    from secinfra._runtime._meta import ResponseMeta

    return ResponseMeta("test.v1.Test/Get", None, 0, True, False)


def test_closing_the_pipeline_drops_every_cache_entry() -> None:
    pipeline = make_pipeline("https://127.0.0.1:9", Source())
    pipeline.cache.store(
        "k", object(), {"Cache-Control": "max-age=60"}, resource="secret", secret=True
    )
    assert len(pipeline.cache) == 1
    pipeline.close()
    assert len(pipeline.cache) == 0
