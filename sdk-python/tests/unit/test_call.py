"""The call pipeline: deadline, single-flight, the cache switch and close, without a server."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from secinfra._rpc import CallOptions
from secinfra._runtime._call import CallPipeline
from secinfra._runtime._clock import FakeClock
from secinfra._runtime._endpoints import EndpointSet
from secinfra._runtime._transport import HttpAnswer, ServerRejected
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
        # A generator of steps, as _send is; it fails before yielding one.
        entered.set()
        release.wait(5)
        raise TransportError("leader gave up")
        yield  # pragma: no cover

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
        yield  # pragma: no cover  (a generator of steps, as _send is)

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


# --- a chain the server's CA does not verify: one refresh (spec 10.3) -----------------


class RejectingOnce:
    """A transport whose first attempt fails chain verification under ``held``."""

    endpoints = EndpointSet("https://transport.test")

    def __init__(self, held: str) -> None:
        self.held = held
        self.attempts: list[str] = []

    def send(self, *args: Any, **kwargs: Any) -> HttpAnswer:
        headers = args[2]
        self.attempts.append(headers["Secinfra-Attempt"])
        if len(self.attempts) == 1:
            raise ServerRejected("the chain does not verify", chain=True, bundle_pem=self.held)
        return HttpAnswer(200, {}, b'{"name": "ok"}')

    def close(self) -> None:
        pass


class RefreshingSource(Source):
    """A source whose bundle is ``now`` and whose refresh finds ``changed``."""

    def __init__(self, now: str, *, changed: bool) -> None:
        super().__init__(now)
        self.changed = changed
        self.refreshes = 0

    def refresh_bundle(self) -> bool:
        self.refreshes += 1
        return self.changed


@pytest.mark.parametrize(
    ("held_by_attempt", "held_now", "refresh_changed"),
    [
        pytest.param("old", "new", True, id="the-refresh-got-a-new-bundle"),
        pytest.param("old", "new", False, id="rotation-got-it-meanwhile"),
    ],
)
def test_a_chain_failure_is_repeated_once_under_a_newer_bundle(
    held_by_attempt: str, held_now: str, refresh_changed: bool
) -> None:
    source = RefreshingSource(held_now, changed=refresh_changed)
    transport = RejectingOnce(held_by_attempt)
    pipeline = CallPipeline(transport, source)  # type: ignore[arg-type]
    answer = pipeline.invoke(descriptor(), Request(), Echo, None)
    assert answer.data == {"name": "ok"}
    assert transport.attempts == ["1", "1"]  # the same attempt, repeated
    assert source.refreshes == 1


def test_a_chain_failure_under_the_bundle_still_held_ends_the_call() -> None:
    source = RefreshingSource("same", changed=False)
    transport = RejectingOnce("same")
    pipeline = CallPipeline(transport, source)  # type: ignore[arg-type]
    with pytest.raises(TransportError, match="the chain does not verify") as caught:
        pipeline.invoke(descriptor(), Request(), Echo, None)
    assert caught.value.attempts == 1
    assert not caught.value.retryable
    assert source.refreshes == 1
    assert len(transport.attempts) == 1
