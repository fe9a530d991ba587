"""Retries against scripted failures, observed in the server's request log."""

from __future__ import annotations

import re
import time
import uuid

import pytest

import secinfra
from secinfra.errors import (
    DeadlineExceeded,
    InternalError,
    InvalidArgument,
    RateLimited,
    Unavailable,
)
from secinfra.testing import ReferenceServer

from .support import Log, header

UA = re.compile(r"^secinfra-python/\d+\.\d+\.\d+\S* \(CPython/\d+\.\d+\.\d+\S*\)$")


def test_two_503s_then_success_is_three_attempts_with_one_key(
    server: ReferenceServer, admin: secinfra.Client, unique: str, log: Log
) -> None:
    server.script("PutSecret", {"status": 503}, {"status": 503})
    with secinfra.capture() as meta:
        info = admin.secrets.put_secret(name=f"{unique}/k", value=b"v")
    assert info.version == 1
    assert meta.last.attempts == 3
    assert meta.last.request_id
    entries = log.entries("PutSecret")
    assert [e["status"] for e in entries] == [503, 503, 200]
    assert [header(e, "Secinfra-Attempt") for e in entries] == ["1", "2", "3"]
    keys = {header(e, "Idempotency-Key") for e in entries}
    assert len(keys) == 1
    (key,) = keys
    assert key is not None
    assert uuid.UUID(key).version == 4
    assert all(UA.match(header(e, "User-Agent") or "") for e in entries)


def test_each_call_gets_a_new_idempotency_key(
    admin: secinfra.Client, unique: str, log: Log
) -> None:
    admin.secrets.put_secret(name=f"{unique}/a", value=b"1")
    admin.secrets.put_secret(name=f"{unique}/a", value=b"2")
    entries = log.entries("PutSecret")
    keys = [header(e, "Idempotency-Key") for e in entries]
    assert len(keys) == 2
    assert keys[0] != keys[1]
    assert all(header(e, "Secinfra-Attempt") == "1" for e in entries)


def test_read_only_calls_carry_no_idempotency_key(
    admin: secinfra.Client, unique: str, log: Log
) -> None:
    admin.identity.get_caller_identity()
    [entry] = log.entries("GetCallerIdentity")
    assert header(entry, "Idempotency-Key") is None
    assert header(entry, "Secinfra-Attempt") == "1"


def test_400_is_not_retried(server: ReferenceServer, admin: secinfra.Client, log: Log) -> None:
    server.script("GetCallerIdentity", {"status": 400})
    with pytest.raises(InvalidArgument):
        admin.identity.get_caller_identity()
    assert len(log.entries("GetCallerIdentity")) == 1


def test_retry_after_is_honoured(server: ReferenceServer, admin: secinfra.Client, log: Log) -> None:
    server.script("GetCallerIdentity", {"status": 503, "headers": {"Retry-After": "1"}})
    admin.identity.get_caller_identity()
    first, second = log.entries("GetCallerIdentity")
    gap = float(second["received_monotonic"]) - float(first["received_monotonic"])
    assert 0.9 <= gap < 3.0


def test_a_retry_after_past_the_deadline_ends_the_call(
    server: ReferenceServer, admin: secinfra.Client, log: Log
) -> None:
    server.script("GetCallerIdentity", {"status": 429, "headers": {"Retry-After": "5"}})
    started = time.monotonic()
    with pytest.raises(RateLimited) as caught:
        admin.identity.get_caller_identity(call_options=secinfra.CallOptions(deadline=2))
    assert time.monotonic() - started < 1.5
    assert caught.value.retry_after == 5
    assert len(log.entries("GetCallerIdentity")) == 1


def test_503_until_attempts_run_out(
    server: ReferenceServer, admin: secinfra.Client, log: Log
) -> None:
    server.script("GetCallerIdentity", *[{"status": 503}] * 4)
    with pytest.raises(Unavailable) as caught:
        admin.identity.get_caller_identity()
    assert caught.value.retryable
    assert caught.value.status == 503
    assert len(log.entries("GetCallerIdentity")) == 4


def test_a_connection_reset_before_headers_is_retried(
    server: ReferenceServer, admin: secinfra.Client, unique: str, log: Log
) -> None:
    server.script("PutSecret", {"reset": "before_headers"})
    with secinfra.capture() as meta:
        admin.secrets.put_secret(name=f"{unique}/reset", value=b"v")
    assert meta.last.attempts == 2
    entries = log.entries("PutSecret")
    assert len(entries) == 2
    assert len({header(e, "Idempotency-Key") for e in entries}) == 1
    assert admin.secrets.get_secret(name=f"{unique}/reset").version == 1


def test_a_reset_after_headers_is_retried_for_reads(
    server: ReferenceServer, admin: secinfra.Client, log: Log
) -> None:
    server.script("GetCallerIdentity", {"reset": "after_headers", "body": {"spiffe_id": "x"}})
    me = admin.identity.get_caller_identity()
    assert me.admin
    assert len(log.entries("GetCallerIdentity")) == 2


def test_per_call_max_attempts_wins(
    server: ReferenceServer, admin: secinfra.Client, log: Log
) -> None:
    server.script("GetCallerIdentity", {"status": 503}, {"status": 503})
    with pytest.raises(Unavailable):
        admin.identity.get_caller_identity(call_options=secinfra.CallOptions(max_attempts=2))
    assert len(log.entries("GetCallerIdentity")) == 2


def test_the_server_can_say_do_not_retry(
    server: ReferenceServer, admin: secinfra.Client, log: Log
) -> None:
    server.script(
        "GetCallerIdentity", {"status": 503, "headers": {"Secinfra-Should-Retry": "false"}}
    )
    with pytest.raises(Unavailable) as caught:
        admin.identity.get_caller_identity()
    assert caught.value.attempts == 1
    assert len(log.entries("GetCallerIdentity")) == 1


def test_a_slow_attempt_times_out_and_is_retried(
    server: ReferenceServer, admin: secinfra.Client, log: Log
) -> None:
    server.script("GetCallerIdentity", {"status": 503, "delay_ms": 2000})
    started = time.monotonic()
    with secinfra.capture() as meta:
        me = admin.identity.get_caller_identity(
            call_options=secinfra.CallOptions(attempt_timeout=0.5)
        )
    assert me.admin
    assert meta.last.attempts == 2
    assert time.monotonic() - started < 1.9
    assert len(log.entries("GetCallerIdentity")) == 2


def test_the_deadline_bounds_every_attempt(
    server: ReferenceServer, admin: secinfra.Client, log: Log
) -> None:
    server.script("GetCallerIdentity", *[{"status": 503, "delay_ms": 2000}] * 4)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as caught:
        admin.identity.get_caller_identity(
            call_options=secinfra.CallOptions(deadline=1.0, attempt_timeout=0.4)
        )
    assert time.monotonic() - started < 1.6
    assert caught.value.attempts >= 2
    assert caught.value.retryable


def test_an_unexpected_redirect_is_an_internal_error_not_a_result(
    server: ReferenceServer, admin: secinfra.Client, log: Log
) -> None:
    server.script("GetCallerIdentity", {"status": 302, "headers": {"Location": "/elsewhere"}})
    with pytest.raises(InternalError) as raised:
        admin.identity.get_caller_identity()
    assert raised.value.status == 302
    assert len(log.entries("GetCallerIdentity")) == 1


def test_a_long_retry_after_ends_the_call_with_its_own_code_and_retryable(
    server: ReferenceServer, admin: secinfra.Client, unique: str
) -> None:
    server.script(
        "PutSecret",
        {
            "status": 409,
            "headers": {"Secinfra-Should-Retry": "true", "Retry-After": "120"},
            "body": {"error": {"code": "conflict", "message": "busy", "request_id": "r"}},
        },
    )
    with pytest.raises(Unavailable) as raised:
        admin.secrets.put_secret(name=f"{unique}/k", value=b"v")
    assert raised.value.code == "unavailable"
    assert raised.value.retryable is True
    assert raised.value.retry_after == 120
