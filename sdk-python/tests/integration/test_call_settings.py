"""Client-wide and per-call settings, deadlines and timeouts, against the real server."""

from __future__ import annotations

import base64
import threading
import time

import pytest

import secinfra
from secinfra.errors import DeadlineExceeded, Unavailable
from secinfra.testing import ReferenceServer

from .support import Log

#: The scheduling allowance of spec 5.1.4.
ALLOWANCE = 0.25


def test_the_budget_is_shaped_per_client(server: ReferenceServer, unique: str, log: Log) -> None:
    # The spec 6.5 example: 12 tokens, retries cost 5, so the third retry is refused.
    with server.admin_client(budget_capacity=12, retry_cost=5) as client:
        assert client.budget.capacity == 12
        assert client.budget.tokens == 12
        server.script("GetCallerIdentity", *[{"status": 503}] * 4)
        with pytest.raises(Unavailable) as caught:
            client.identity.get_caller_identity(call_options=secinfra.CallOptions(base_backoff=0.0))
        assert caught.value.attempts == 3
        assert client.budget.tokens == 2
    assert len(log.entries("GetCallerIdentity")) == 3


def test_each_client_gets_a_budget_of_its_own(server: ReferenceServer) -> None:
    with server.admin_client() as one, server.admin_client() as two:
        assert one.budget is not two.budget
        assert one.budget.capacity == 500


def test_per_call_max_retry_after_wins(
    server: ReferenceServer, admin: secinfra.Client, log: Log
) -> None:
    server.script("GetCallerIdentity", {"status": 503, "headers": {"Retry-After": "2"}})
    started = time.monotonic()
    with pytest.raises(Unavailable) as caught:
        admin.identity.get_caller_identity(call_options=secinfra.CallOptions(max_retry_after=1.0))
    assert time.monotonic() - started < 1.0
    assert caught.value.retry_after == 2
    assert len(log.entries("GetCallerIdentity")) == 1


def test_use_cache_false_for_the_client_and_true_for_one_call(
    server: ReferenceServer, admin: secinfra.Client, unique: str, log: Log
) -> None:
    name = f"{unique}/s"
    admin.secrets.put_secret(name=name, value=b"v1")
    with server.admin_client(use_cache=False) as client:
        client.secrets.get_secret(name=name)
        client.secrets.get_secret(name=name)
        assert len(log.entries("GetSecret")) == 2
        assert len(client.cache) == 0
        cached = secinfra.CallOptions(use_cache=True)
        client.secrets.get_secret(name=name, call_options=cached)
        with secinfra.capture() as meta:
            client.secrets.get_secret(name=name, call_options=cached)
        assert meta.last.from_cache
    assert len(log.entries("GetSecret")) == 3


def test_closing_the_client_drops_cached_secrets(server: ReferenceServer, unique: str) -> None:
    name = f"{unique}/s"
    client = server.admin_client()
    client.secrets.put_secret(name=name, value=b"v1")
    client.secrets.get_secret(name=name)
    assert len(client.cache) == 1
    client.close()
    assert len(client.cache) == 0


def test_an_answer_slower_than_the_attempt_timeout_is_a_timeout(
    server: ReferenceServer, admin: secinfra.Client, log: Log
) -> None:
    server.script("GetCallerIdentity", {"status": 200, "body": {}, "delay_ms": 400})
    started = time.monotonic()
    with secinfra.capture() as meta:
        me = admin.identity.get_caller_identity(
            call_options=secinfra.CallOptions(attempt_timeout=0.3)
        )
    assert me.admin  # the second attempt reached the real handler
    assert meta.last.attempts == 2
    assert time.monotonic() - started < 0.3 + 0.4 + ALLOWANCE
    assert len(log.entries("GetCallerIdentity")) == 2


def test_an_answer_slower_than_the_deadline_ends_the_call_on_time(
    server: ReferenceServer, admin: secinfra.Client
) -> None:
    server.script("GetCallerIdentity", {"status": 200, "body": {}, "delay_ms": 400})
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as caught:
        admin.identity.get_caller_identity(call_options=secinfra.CallOptions(deadline=0.3))
    assert time.monotonic() - started < 0.3 + ALLOWANCE
    assert caught.value.attempts == 1


def test_a_single_flight_waiter_ends_by_its_own_deadline(
    server: ReferenceServer, admin: secinfra.Client, unique: str, log: Log
) -> None:
    name = f"{unique}/s"
    body = {"name": name, "version": 1, "value": base64.b64encode(b"v1").decode()}
    server.script(
        "GetSecret",
        {
            "status": 200,
            "body": body,
            "headers": {"Cache-Control": "private, max-age=60"},
            "delay_ms": 1200,
        },
    )
    values: list[bytes] = []
    leader = threading.Thread(
        target=lambda: values.append(admin.secrets.get_secret(name=name).value)
    )
    leader.start()
    assert server.wait_until(lambda: len(log.entries("GetSecret")) == 1, timeout=5)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as caught:
        admin.secrets.get_secret(name=name, call_options=secinfra.CallOptions(deadline=0.3))
    waited = time.monotonic() - started
    leader.join(5)
    assert waited < 0.3 + ALLOWANCE
    assert caught.value.attempts == 0
    assert values == [b"v1"]
    assert len(log.entries("GetSecret")) == 1
