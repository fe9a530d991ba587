"""secinfra.aio against a real reference server: the sync client's behaviour on asyncio.

Same server, TLS and CA as the sync tests; what is checked is what an
asyncio service sees and what the server logged: attempts and their keys,
one request for concurrent misses, a cancelled call leaving nothing behind,
the server's SPIFFE ID checked before a byte is sent, renewal in a task.
"""

from __future__ import annotations

import asyncio
import base64
import re
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

import secinfra
import secinfra.aio
from secinfra import CallOptions, RotationEvent, RotationKind
from secinfra.errors import DeadlineExceeded, NotFound, TransportError
from secinfra.testing import ReferenceServer

from .support import TRUST_DOMAIN, Log, header

UA = re.compile(r"^secinfra-python/\d+\.\d+\.\d+\S* \(CPython/\d+\.\d+\.\d+\S*\)$")
ServerFactory = Callable[..., ReferenceServer]


def _admin(server: ReferenceServer, **settings: object) -> secinfra.aio.Client:
    folder = server.data_dir / "admin"
    return secinfra.aio.Client.from_files(
        server.url,
        cert_file=folder / "cert.pem",
        key_file=folder / "key.pem",
        bundle_file=server.bundle_file,
        **settings,  # type: ignore[arg-type]
    )


@pytest.fixture
async def admin(server: ReferenceServer) -> AsyncIterator[secinfra.aio.Client]:
    async with _admin(server) as client:
        yield client


def _cached_secret(name: str, *, delay_ms: int = 0) -> dict[str, object]:
    body = {"name": name, "version": 1, "value": base64.b64encode(b"v1").decode()}
    return {
        "status": 200,
        "body": body,
        "headers": {"Cache-Control": "private, max-age=60", "ETag": '"x"'},
        "delay_ms": delay_ms,
    }


async def test_enrol_write_read_and_a_cache_hit(server: ReferenceServer, unique: str) -> None:
    spiffe_id = f"spiffe://{TRUST_DOMAIN}/{unique}"
    server.grant(spiffe_id, "writer", f"folder:{unique}/")
    server.grant(spiffe_id, "reader", f"folder:{unique}/")
    token = server.join_token(spiffe_id)
    async with await secinfra.aio.Client.enrol(
        server.url, join_token=token, bundle_file=server.bundle_file
    ) as client:
        identity = client.source.identity()
        assert identity is not None
        assert identity.spiffe_id == spiffe_id
        await client.secrets.put_secret(name=f"{unique}/s", value=b"hello")
        with secinfra.capture() as meta:
            first = await client.secrets.get_secret(name=f"{unique}/s")
            second = await client.secrets.get_secret(name=f"{unique}/s")
        assert first.value == second.value == b"hello"
        assert [m.from_cache for m in meta.calls] == [False, True]
        assert meta.calls[0].attempts == 1
        assert meta.calls[0].request_id
        with pytest.raises(NotFound) as caught:
            await client.secrets.get_secret(name=f"{unique}/missing")
        assert caught.value.status == 404
        assert caught.value.request_id


async def test_two_503s_then_success_is_three_attempts_with_one_key(
    server: ReferenceServer, admin: secinfra.aio.Client, unique: str, log: Log
) -> None:
    server.script("PutSecret", {"status": 503}, {"status": 503})
    with secinfra.capture() as meta:
        info = await admin.secrets.put_secret(name=f"{unique}/k", value=b"v")
    assert info.version == 1
    assert meta.last.attempts == 3
    entries = log.entries("PutSecret")
    assert [e["status"] for e in entries] == [503, 503, 200]
    assert [header(e, "Secinfra-Attempt") for e in entries] == ["1", "2", "3"]
    keys = {header(e, "Idempotency-Key") for e in entries}
    assert len(keys) == 1
    (key,) = keys
    assert key is not None
    assert uuid.UUID(key).version == 4
    assert all(UA.match(header(e, "User-Agent") or "") for e in entries)
    # The one budget: two retries paid, one success refunded.
    assert admin.budget.tokens == admin.budget.capacity - 2 * 5 + 1


async def test_concurrent_misses_make_one_request(
    server: ReferenceServer, admin: secinfra.aio.Client, unique: str, log: Log
) -> None:
    name = f"{unique}/s"
    server.script("GetSecret", _cached_secret(name, delay_ms=300))
    values = await asyncio.gather(*(admin.secrets.get_secret(name=name) for _ in range(20)))
    assert [v.value for v in values] == [b"v1"] * 20
    assert len(log.entries("GetSecret")) == 1


async def test_a_joiner_waits_no_longer_than_its_own_deadline(
    server: ReferenceServer, admin: secinfra.aio.Client, unique: str, log: Log
) -> None:
    name = f"{unique}/s"
    server.script("GetSecret", _cached_secret(name, delay_ms=800))
    leader = asyncio.ensure_future(admin.secrets.get_secret(name=name))
    await asyncio.sleep(0.1)
    with pytest.raises(DeadlineExceeded) as caught:
        await admin.secrets.get_secret(name=name, call_options=CallOptions(deadline=0.2))
    assert caught.value.attempts == 0
    assert (await leader).value == b"v1"
    assert len(log.entries("GetSecret")) == 1


async def test_a_cancelled_call_leaves_nothing_behind(
    server: ReferenceServer, admin: secinfra.aio.Client, unique: str, log: Log
) -> None:
    name = f"{unique}/s"
    server.script("GetSecret", _cached_secret(name, delay_ms=1000))
    call = asyncio.ensure_future(admin.secrets.get_secret(name=name))
    await asyncio.sleep(0.2)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    # No entry from a half-read answer, no flight left to join: the next call
    # reaches the server (the real secret does not exist).
    assert len(admin.cache) == 0
    with pytest.raises(NotFound):
        await admin.secrets.get_secret(name=name)
    assert len(log.entries("GetSecret")) == 2


async def test_a_cancelled_leader_does_not_fail_its_joiners(
    server: ReferenceServer, admin: secinfra.aio.Client, unique: str, log: Log
) -> None:
    name = f"{unique}/s"
    server.script("GetSecret", _cached_secret(name, delay_ms=500))
    leader = asyncio.ensure_future(admin.secrets.get_secret(name=name))
    await asyncio.sleep(0.05)
    joiner = asyncio.ensure_future(admin.secrets.get_secret(name=name))
    await asyncio.sleep(0.05)
    leader.cancel()
    assert (await joiner).value == b"v1"
    assert leader.cancelled()
    assert len(log.entries("GetSecret")) == 1


async def test_a_server_with_another_spiffe_id_gets_no_request(
    server: ReferenceServer, unique: str, log: Log
) -> None:
    wrong = f"spiffe://{TRUST_DOMAIN}/not-the-server"
    folder = server.data_dir / "admin"
    client = secinfra.aio.Client.from_files(
        server.url,
        cert_file=folder / "cert.pem",
        key_file=folder / "key.pem",
        bundle_file=server.bundle_file,
        server_id=wrong,
    )
    async with client:
        with pytest.raises(
            TransportError, match=r"expected spiffe://secinfra\.local/not-the-server"
        ):
            await client.secrets.get_secret(name=f"{unique}/s")
    assert log.entries("GetSecret") == []


async def test_observers_hear_every_attempt_and_a_cancellation(
    server: ReferenceServer, unique: str
) -> None:
    seen: list[object] = []

    class Recorder(secinfra.Observer):
        def call_started(self, event: secinfra.CallStarted) -> None:
            seen.append(event)

        def attempt_started(self, event: secinfra.AttemptStarted) -> None:
            seen.append(event)
            return

        def attempt_finished(self, event: secinfra.AttemptFinished) -> None:
            seen.append(event)

        def cache(self, event: secinfra.CacheLookup) -> None:
            seen.append(event)

        def call_finished(self, event: secinfra.CallFinished) -> None:
            seen.append(event)

    server.script("GetCallerIdentity", {"status": 503}, {"status": 200, "delay_ms": 2000})
    async with _admin(server, observers=[Recorder()]) as client:
        call = asyncio.ensure_future(client.identity.get_caller_identity())
        await asyncio.sleep(0.6)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    kinds = [type(e).__name__ for e in seen]
    assert kinds == [
        "CallStarted",
        "AttemptStarted",
        "AttemptFinished",
        "AttemptStarted",
        "CallFinished",
    ]
    finished = seen[-1]
    assert isinstance(finished, secinfra.CallFinished)
    assert finished.error is not None


async def test_renewals_run_in_a_task_and_calls_keep_working(
    own_server: ServerFactory,
) -> None:
    server = own_server()
    server.control("POST", "/_test/ca/leaf-ttl", {"seconds": 3})
    spiffe_id = f"spiffe://{TRUST_DOMAIN}/aio-renewing"
    events: list[RotationEvent] = []
    async with await secinfra.aio.Client.enrol(
        server.url, join_token=server.join_token(spiffe_id), bundle_file=server.bundle_file
    ) as client:
        client.on_rotation(events.append)
        serials: set[str] = set()
        for _ in range(60):
            serials.add((await client.identity.get_caller_identity()).serial)
            await asyncio.sleep(0.1)
    assert len(serials) >= 3, "expected at least two renewals in 6 s of a 3 s certificate"
    kinds = [e.kind for e in events]
    assert kinds.count(RotationKind.RENEWED) >= 2
    assert RotationKind.RENEWAL_FAILED not in kinds
