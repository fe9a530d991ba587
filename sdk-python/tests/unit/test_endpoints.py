"""Choosing an attempt's endpoint (spec 12): the order, cooldowns, failover in the pipeline."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from secinfra._rpc import Auth, Idempotency, MethodDescriptor
from secinfra._runtime._budget import RetryBudget
from secinfra._runtime._call import CallPipeline
from secinfra._runtime._clock import FakeClock
from secinfra._runtime._endpoints import (
    ENDPOINT_COOLDOWN,
    ENDPOINT_COOLDOWN_MAX,
    EndpointSet,
    is_endpoint_failure,
)
from secinfra._runtime._transport import HttpAnswer, NoAnswer, ServerRejected
from secinfra.errors import TransportError, Unavailable

from .support import Echo, Request, Source, descriptor

A, B, C = "https://a.test:8443", "https://b.test:8443", "https://c.test:8443"

# --- the endpoint order (12.1, 12.2) ----------------------------------------------------


def test_one_url_is_a_list_of_one() -> None:
    assert EndpointSet(A + "/").urls == (A,)
    assert EndpointSet([A]).home == A


def test_listed_order_keeps_the_list() -> None:
    assert EndpointSet([A, B, C], order="listed").urls == (A, B, C)


@pytest.mark.parametrize("seed", range(6))
def test_random_home_rotates_the_list(seed: int) -> None:
    expected_home = [A, B, C][random.Random(seed).randrange(3)]
    urls = EndpointSet([A, B, C], rng=random.Random(seed)).urls
    assert urls[0] == expected_home
    start = [A, B, C].index(expected_home)
    assert urls == tuple([A, B, C][start:] + [A, B, C][:start])


def test_random_homes_spread_over_the_list() -> None:
    rng = random.Random(7)
    homes = [EndpointSet([A, B, C], rng=rng).home for _ in range(300)]
    assert {url: homes.count(url) for url in (A, B, C)} == {
        A: pytest.approx(100, abs=30),
        B: pytest.approx(100, abs=30),
        C: pytest.approx(100, abs=30),
    }


@pytest.mark.parametrize(
    ("urls", "settings", "message"),
    [
        pytest.param([], {}, "give at least one URL", id="empty"),
        pytest.param(["http://a.test"], {}, "must be https://", id="plain-http"),
        pytest.param([A, A + "/"], {}, "listed twice", id="duplicate"),
        pytest.param(["https://"], {}, "names no host", id="no-host"),
        pytest.param(["https://u:pw@a.test"], {}, "must not carry user-info", id="user-info"),
        pytest.param([A], {"order": "nearest"}, "endpoint_order must be one of", id="order"),
        pytest.param([A], {"cooldown": 0.0}, "endpoint_cooldown must be", id="zero-cooldown"),
        pytest.param([A], {"cooldown": math.nan}, "endpoint_cooldown must be", id="nan"),
        pytest.param(
            [A], {"cooldown": 5.0, "cooldown_max": 2.0}, "at least endpoint_cooldown", id="max"
        ),
    ],
)
def test_invalid_settings_fail_at_creation(
    urls: list[str], settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        EndpointSet(urls, **settings)
    assert "pw" not in str(caught.value)  # a password in user-info is never echoed


# --- choosing and cooling down (12.3, 12.4) ---------------------------------------------


def listed(*urls: str, clock: FakeClock, **settings: Any) -> EndpointSet:
    return EndpointSet(list(urls), order="listed", clock=clock, **settings)


def test_home_while_it_works_then_the_next_not_cooling() -> None:
    clock = FakeClock()
    endpoints = listed(A, B, C, clock=clock)
    assert endpoints.choose() == A
    endpoints.record(A, failed=True)
    assert endpoints.choose() == B
    endpoints.record(B, failed=True)
    assert endpoints.choose() == C


def test_cooldown_doubles_per_failure_in_a_row_up_to_the_max() -> None:
    clock = FakeClock()
    endpoints = listed(A, B, clock=clock)
    waits = []
    for _ in range(7):
        endpoints.record(A, failed=True)
        (state, _) = endpoints.states()
        assert state.cooling_until is not None
        waits.append(state.cooling_until - clock.monotonic())
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, ENDPOINT_COOLDOWN_MAX, ENDPOINT_COOLDOWN_MAX]
    assert ENDPOINT_COOLDOWN == 1.0


def test_home_again_once_its_cooldown_ends() -> None:
    clock = FakeClock()
    endpoints = listed(A, B, clock=clock, cooldown=4.0)
    endpoints.record(A, failed=True)
    clock.advance(3.9)
    assert endpoints.choose() == B
    clock.advance(0.1)
    assert endpoints.choose() == A


def test_another_outcome_ends_the_cooldown_and_the_count() -> None:
    clock = FakeClock()
    endpoints = listed(A, B, clock=clock)
    endpoints.record(A, failed=True)
    endpoints.record(A, failed=True)
    endpoints.record(A, failed=False)
    assert endpoints.states()[0].failures == 0
    assert endpoints.states()[0].cooling_until is None
    endpoints.record(A, failed=True)
    assert endpoints.states()[0].cooling_until == pytest.approx(clock.monotonic() + 1.0)


def test_all_cooling_picks_the_oldest_failure_never_none() -> None:
    clock = FakeClock()
    endpoints = listed(A, B, C, clock=clock, cooldown=30.0)
    endpoints.record(B, failed=True)
    clock.advance(1)
    endpoints.record(C, failed=True)
    clock.advance(1)
    endpoints.record(A, failed=True)
    assert endpoints.choose() == B


def test_one_endpoint_is_always_chosen() -> None:
    clock = FakeClock()
    endpoints = listed(A, clock=clock)
    endpoints.record(A, failed=True)
    assert endpoints.choose() == A


@pytest.mark.parametrize(
    ("status", "failure"),
    [(None, True), (502, True), (503, True), (504, True), (500, False), (429, False), (404, False)],
)
def test_which_outcomes_are_endpoint_failures(status: int | None, failure: bool) -> None:
    assert is_endpoint_failure(status) is failure


# --- failover in the call pipeline (12.5, 12.6, 12.8) -----------------------------------


class TwoEndpointWire:
    """A transport stand-in: answers per endpoint from a queue; records every attempt."""

    def __init__(self, answers: dict[str, list[Any]]) -> None:
        self.endpoints = EndpointSet([A, B], order="listed")
        self.answers = answers
        self.sent: list[tuple[str, dict[str, str]]] = []

    def send(self, *args: Any, endpoint: str | None = None, **kwargs: Any) -> HttpAnswer:
        assert endpoint is not None
        self.sent.append((endpoint, dict(args[2])))
        answer = self.answers[endpoint].pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def close(self) -> None:
        pass


def write_descriptor() -> MethodDescriptor:
    return MethodDescriptor(
        service="test.v1.Test",
        name="Put",
        http_method="PUT",
        path="/v1/thing",
        path_params=(),
        query_params=(),
        body_fields=("name",),
        idempotency=Idempotency.NON_IDEMPOTENT,
        auth=Auth.NONE,
        cache=None,
        invalidates=None,
        admin=False,
    )


OK = HttpAnswer(200, {}, b'{"name": "ok"}')
RESET = NoAnswer("connection reset", sent=True, timeout=False)


def pipeline_over(wire: TwoEndpointWire, **settings: Any) -> CallPipeline:
    clock = FakeClock()
    wire.endpoints = EndpointSet([A, B], order="listed", clock=clock)
    return CallPipeline(wire, Source(), clock=clock, rng=random.Random(1), **settings)  # type: ignore[arg-type]


def test_a_write_moves_with_the_same_key_as_a_retry() -> None:
    wire = TwoEndpointWire({A: [RESET], B: [OK]})
    budget = RetryBudget(capacity=20)
    pipeline = pipeline_over(wire, budget=budget)
    assert pipeline.invoke(write_descriptor(), Request({"name": "x"}), Echo, None).data == {
        "name": "ok"
    }
    assert [e for e, _ in wire.sent] == [A, B]
    assert [h["Secinfra-Attempt"] for _, h in wire.sent] == ["1", "2"]
    assert len({h["Idempotency-Key"] for _, h in wire.sent}) == 1
    assert budget.tokens == 20 - 5 + 1  # a move is a retry: paid, then the success refund


def test_a_move_waits_the_backoff() -> None:
    clock = FakeClock()
    wire = TwoEndpointWire({A: [HttpAnswer(503, {}, b"")], B: [OK]})
    wire.endpoints = EndpointSet([A, B], order="listed", clock=clock)
    pipeline = CallPipeline(wire, Source(), clock=clock, rng=random.Random(3))  # type: ignore[arg-type]
    pipeline.invoke(descriptor(), Request(), Echo, None)
    (wait,) = clock.sleeps
    assert 0.0 <= wait <= 0.1  # the first retry's full-jitter ceiling (3.5)


def test_max_attempts_one_never_moves_and_the_error_names_the_endpoint() -> None:
    from secinfra._runtime._retry import RetryPolicy

    wire = TwoEndpointWire({A: [HttpAnswer(503, {}, b"")], B: [OK]})
    pipeline = pipeline_over(wire, policy=RetryPolicy(max_attempts=1))
    with pytest.raises(Unavailable) as caught:
        pipeline.invoke(descriptor(), Request(), Echo, None)
    assert caught.value.attempts == 1
    assert caught.value.endpoint == A
    assert [e for e, _ in wire.sent] == [A]
    # the endpoint failure counted all the same (12.4.4): the next call goes to B
    pipeline.invoke(descriptor(), Request(), Echo, None)
    assert wire.sent[-1][0] == B


def test_a_transport_error_names_the_endpoint_of_the_last_attempt() -> None:
    wire = TwoEndpointWire({A: [RESET, RESET], B: [RESET, RESET]})
    pipeline = pipeline_over(wire)
    with pytest.raises(TransportError) as caught:
        pipeline.invoke(descriptor(), Request(), Echo, None)
    assert caught.value.attempts == 4
    assert [e for e, _ in wire.sent] == [A, B, A, B]
    assert caught.value.endpoint == B
    assert B in str(caught.value)


def test_a_verification_failure_never_moves() -> None:
    rejected = ServerRejected("the server presented another SPIFFE ID", chain=False, bundle_pem="")
    wire = TwoEndpointWire({A: [rejected, OK], B: [OK]})
    pipeline = pipeline_over(wire)
    with pytest.raises(TransportError, match="another SPIFFE ID") as caught:
        pipeline.invoke(descriptor(), Request(), Echo, None)
    assert caught.value.endpoint == A
    assert A in str(caught.value)
    assert [e for e, _ in wire.sent] == [A]
    # not an endpoint failure: the next call goes to A again (12.6.1)
    pipeline.invoke(descriptor(), Request(), Echo, None)
    assert wire.sent[-1][0] == A
