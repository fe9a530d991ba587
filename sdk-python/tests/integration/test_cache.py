"""The response cache against the real server: fresh, revalidated, stale-if-error."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable

import pytest

import secinfra
from secinfra._gen.secrets import SecretPolicy
from secinfra.errors import TransportError
from secinfra.testing import ReferenceServer

from .support import Log, header

ServerFactory = Callable[..., ReferenceServer]

SHORT = SecretPolicy(cache_max_age_seconds=1, stale_if_error_seconds=300)


def test_a_second_read_is_served_from_the_cache(
    admin: secinfra.Client, unique: str, log: Log
) -> None:
    admin.secrets.put_secret(name=f"{unique}/s", value=b"v1")
    with secinfra.capture() as meta:
        first = admin.secrets.get_secret(name=f"{unique}/s")
        second = admin.secrets.get_secret(name=f"{unique}/s")
    assert first.value == second.value == b"v1"
    assert [(m.from_cache, m.attempts) for m in meta.calls] == [(False, 1), (True, 0)]
    assert meta.calls[0].request_id
    assert len(log.entries("GetSecret")) == 1


def test_a_stale_entry_is_revalidated_with_a_304(
    admin: secinfra.Client, unique: str, log: Log
) -> None:
    admin.secrets.put_secret(name=f"{unique}/s", value=b"v1", policy=SHORT)
    admin.secrets.get_secret(name=f"{unique}/s")
    time.sleep(1.1)
    with secinfra.capture() as meta:
        again = admin.secrets.get_secret(name=f"{unique}/s")
        fresh_again = admin.secrets.get_secret(name=f"{unique}/s")
    assert again.value == fresh_again.value == b"v1"
    assert meta.calls[0].status == 304
    assert meta.calls[0].from_cache
    assert not meta.calls[0].stale
    assert meta.calls[1].attempts == 0  # the 304 made the entry fresh again
    first, second = log.entries("GetSecret")
    assert header(first, "If-None-Match") is None
    assert header(second, "If-None-Match")
    assert second["status"] == 304


def test_a_clients_own_write_invalidates_its_entry(
    admin: secinfra.Client, unique: str, log: Log
) -> None:
    admin.secrets.put_secret(name=f"{unique}/s", value=b"v1")
    assert admin.secrets.get_secret(name=f"{unique}/s").value == b"v1"
    admin.secrets.put_secret(name=f"{unique}/s", value=b"v2")
    with secinfra.capture() as meta:
        assert admin.secrets.get_secret(name=f"{unique}/s").value == b"v2"
    assert not meta.last.from_cache
    assert len(log.entries("GetSecret")) == 2


def test_a_stale_value_stands_in_when_the_server_fails(
    server: ReferenceServer, admin: secinfra.Client, unique: str, log: Log
) -> None:
    admin.secrets.put_secret(name=f"{unique}/s", value=b"v1", policy=SHORT)
    admin.secrets.get_secret(name=f"{unique}/s")
    time.sleep(1.1)
    server.script("GetSecret", *[{"status": 503}] * 4)
    with secinfra.capture() as meta:
        value = admin.secrets.get_secret(name=f"{unique}/s")
    assert value.value == b"v1"
    assert meta.last.stale
    assert meta.last.from_cache
    assert meta.last.attempts == 4
    assert [e["status"] for e in log.entries("GetSecret")] == [200, 503, 503, 503, 503]


def test_concurrent_misses_make_one_request(
    server: ReferenceServer, admin: secinfra.Client, unique: str, log: Log
) -> None:
    name = f"{unique}/s"
    body = {"name": name, "version": 1, "value": base64.b64encode(b"v1").decode()}
    server.script(
        "GetSecret",
        {
            "status": 200,
            "body": body,
            "headers": {"Cache-Control": "private, max-age=60", "ETag": '"x"'},
            "delay_ms": 500,
        },
    )
    start = threading.Barrier(20)
    values: list[bytes] = []
    errors: list[BaseException] = []

    def read() -> None:
        start.wait()
        try:
            values.append(admin.secrets.get_secret(name=name).value)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not errors
    assert values == [b"v1"] * 20
    assert len(log.entries("GetSecret")) == 1


def test_a_stale_value_stands_in_when_the_server_is_down(own_server: ServerFactory) -> None:
    server = own_server()
    with server.admin_client() as admin:
        admin.secrets.put_secret(name="down/s", value=b"v1", policy=SHORT)
        admin.secrets.get_secret(name="down/s")
        server.kill()
        time.sleep(1.1)
        with secinfra.capture() as meta:
            value = admin.secrets.get_secret(name="down/s")
        assert value.value == b"v1"
        assert meta.last.stale
        with pytest.raises(TransportError) as caught:
            admin.secrets.get_secret(name="down/other")
        assert caught.value.attempts == 4
