"""Observers and trace context in the call pipeline, without a server (spec 14)."""

from __future__ import annotations

from typing import Any

import pytest

import secinfra
from secinfra._runtime._call import CallPipeline
from secinfra._runtime._endpoints import EndpointSet
from secinfra._runtime._trace_context import valid_traceparent, valid_tracestate
from secinfra._runtime._transport import HttpAnswer, NoAnswer, ServerRejected
from secinfra.errors import TransportError

from .support import Echo, Request, Source, descriptor

TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (TRACE, True),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", True),
        ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", False),
        ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", False),
        ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", False),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", False),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", False),
        ("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", False),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", False),
        (TRACE + "\n", False),
        (" " + TRACE, False),
        ("", False),
        (None, False),
        (b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", False),
    ],
)
def test_traceparent_validation(value: object, valid: bool) -> None:
    assert valid_traceparent(value) is valid


@pytest.mark.parametrize(
    ("value", "valid"),
    [("", True), ("a=1,b=2", True), ("a=1\r\nX: y", False), ("x" * 513, False), (7, False)],
)
def test_tracestate_validation(value: object, valid: bool) -> None:
    assert valid_tracestate(value) is valid


class Scripted:
    """A transport answering from ``steps``: a status, or an exception to raise."""

    endpoints = EndpointSet("https://transport.test")

    def __init__(self, *steps: int | Exception) -> None:
        self.steps = list(steps)
        self.sent: list[dict[str, str]] = []

    def send(self, *args: Any, **kwargs: Any) -> HttpAnswer:
        self.sent.append(dict(args[2]))
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        return HttpAnswer(step, {}, b'{"name": "ok"}' if step < 300 else b"{}")

    def close(self) -> None:
        pass


class Returning(secinfra.Observer):
    """Returns ``contexts[n]`` at attempt n (1-based); keeps what it is told."""

    def __init__(self, *contexts: Any) -> None:
        self.contexts = contexts
        self.events: list[Any] = []

    def attempt_started(self, event: secinfra.AttemptStarted) -> Any:
        self.events.append(event)
        started = sum(isinstance(e, secinfra.AttemptStarted) for e in self.events)
        return self.contexts[min(started, len(self.contexts)) - 1]

    def attempt_finished(self, event: secinfra.AttemptFinished) -> None:
        self.events.append(event)


def _pipeline(transport: Scripted, *observers: secinfra.Observer) -> CallPipeline:
    return CallPipeline(transport, Source(), observers=observers)  # type: ignore[arg-type]


def test_each_attempt_carries_only_its_own_trace_context() -> None:
    transport = Scripted(503, 503, 200)
    observer = Returning(secinfra.TraceContext(TRACE, "a=1"), None, secinfra.TraceContext(TRACE))
    _pipeline(transport, observer).invoke(descriptor(), Request(), Echo, None)
    assert [(h.get("traceparent"), h.get("tracestate")) for h in transport.sent] == [
        (TRACE, "a=1"),
        (None, None),
        (TRACE, None),
    ]


def test_a_tracestate_that_cannot_be_sent_is_dropped_the_traceparent_kept() -> None:
    transport = Scripted(200)
    observer = Returning(secinfra.TraceContext(TRACE, "a=1\r\nX-Evil: 1"))
    _pipeline(transport, observer).invoke(descriptor(), Request(), Echo, None)
    assert transport.sent[0]["traceparent"] == TRACE
    assert "tracestate" not in transport.sent[0]


def test_anything_but_a_trace_context_is_ignored() -> None:
    transport = Scripted(200)
    observer = Returning({"traceparent": TRACE, "X-Other": "1"})
    _pipeline(transport, observer).invoke(descriptor(), Request(), Echo, None)
    assert "traceparent" not in transport.sent[0]
    assert "X-Other" not in transport.sent[0]


def test_no_observer_sends_no_trace_headers() -> None:
    transport = Scripted(200)
    _pipeline(transport).invoke(descriptor(), Request(), Echo, None)
    assert not {"traceparent", "tracestate"} & set(transport.sent[0])


def test_the_repeat_after_a_bundle_refresh_is_an_attempt_of_its_own() -> None:
    class Refreshing(Source):
        def refresh_bundle(self) -> bool:
            return True

    rejected = ServerRejected("the chain does not verify", chain=True, bundle_pem="")
    transport = Scripted(rejected, 200)
    observer = Returning(None)
    pipeline = CallPipeline(transport, Refreshing(), observers=[observer])  # type: ignore[arg-type]
    pipeline.invoke(descriptor(), Request(), Echo, None)
    assert [(type(e).__name__, e.attempt, getattr(e, "status", "-")) for e in observer.events] == [
        ("AttemptStarted", 1, "-"),
        ("AttemptFinished", 1, None),
        ("AttemptStarted", 1, "-"),
        ("AttemptFinished", 1, 200),
    ]
    assert observer.events[1].code == "unavailable"


def test_an_unexpected_answer_is_a_failed_attempt() -> None:
    transport = Scripted(302)
    observer = Returning(None)
    with pytest.raises(secinfra.errors.InternalError):
        _pipeline(transport, observer).invoke(descriptor(), Request(), Echo, None)
    assert (observer.events[1].status, observer.events[1].code) == (302, "internal")


def test_the_base_observer_does_nothing() -> None:
    transport = Scripted(NoAnswer("refused", sent=False, timeout=False), 200)
    _pipeline(transport, secinfra.Observer()).invoke(descriptor(), Request(), Echo, None)
    assert "traceparent" not in transport.sent[1]


def test_an_observer_raising_at_call_finished_does_not_change_the_error() -> None:
    class Broken(secinfra.Observer):
        def call_finished(self, event: secinfra.CallFinished) -> None:
            raise ValueError("bug")

    transport = Scripted(NoAnswer("refused", sent=False, timeout=False))
    pipeline = CallPipeline(
        transport,  # type: ignore[arg-type]
        Source(),
        policy=secinfra.RetryPolicy(max_attempts=1),
        observers=[Broken()],
    )
    with pytest.raises(TransportError, match="refused"):
        pipeline.invoke(descriptor(), Request(), Echo, None)
