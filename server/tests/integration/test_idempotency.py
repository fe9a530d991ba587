"""Idempotency-Key on every call that is not read-only (the replay tests on
each storage backend)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from pathlib import Path

import pytest
from backends import ON_EACH_BACKEND

from secinfra_server._rpc import Handler, RequestContext, ServiceContext
from secinfra_server.server import Server

from .harness import Client, Response, RunningServer, csr_pem, new_key

WORKLOAD = "spiffe://secinfra.local/workload/idem"


def _create(admin: Client, key: str, spiffe_id: str = WORKLOAD) -> Response:
    return admin.request(
        "POST", "/v1/join-tokens", {"spiffe_id": spiffe_id}, headers={"Idempotency-Key": key}
    )


@ON_EACH_BACKEND
def test_same_key_same_request_replays_the_response(admin: Client) -> None:
    key = str(uuid.uuid4())
    first = _create(admin, key)
    again = _create(admin, key)
    assert first.status == again.status == 200
    assert again.json()["token"] == first.json()["token"]
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.headers["request-id"] != first.headers["request-id"]
    tokens = admin.request("GET", "/v1/join-tokens").json()["join_tokens"]
    assert len(tokens) == 1, "the call took effect once"
    # A new key is a new call.
    assert _create(admin, str(uuid.uuid4())).json()["token"] != first.json()["token"]


@ON_EACH_BACKEND
def test_same_key_different_request_is_422(admin: Client) -> None:
    key = str(uuid.uuid4())
    assert _create(admin, key).status == 200
    other = _create(admin, key, "spiffe://secinfra.local/workload/other")
    assert other.status == 422
    assert other.code == "idempotency_key_reused"


@ON_EACH_BACKEND
def test_client_errors_are_replayed_too(admin: Client) -> None:
    key = str(uuid.uuid4())
    bad = _create(admin, key, "spiffe://elsewhere/x")
    again = _create(admin, key, "spiffe://elsewhere/x")
    assert bad.status == again.status == 400
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json()["error"]["code"] == "invalid_argument"


@ON_EACH_BACKEND
def test_enrolment_retry_with_the_key_gets_the_same_certificate(
    admin: Client, anon: Client
) -> None:
    token = admin.request("POST", "/v1/join-tokens", {"spiffe_id": WORKLOAD}).json()["token"]
    body = {"csr_pem": csr_pem(new_key()), "join_token": token}
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = anon.request("POST", "/v1/identity:issue", body, headers=key)
    again = anon.request("POST", "/v1/identity:issue", body, headers=key)
    assert first.status == again.status == 200
    assert again.json()["svid"]["serial"] == first.json()["svid"]["serial"]
    # Without the key, the spent token is refused.
    assert anon.request("POST", "/v1/identity:issue", body).status == 401


@pytest.mark.parametrize("key", ["has space", "", "x" * 256, "tab\tkey"])
def test_malformed_keys_are_rejected(key: str, admin: Client) -> None:
    resp = _create(admin, key)
    assert resp.status == 400
    assert "Idempotency-Key" in resp.json()["error"]["message"]
    assert admin.request("GET", "/v1/join-tokens").json()["join_tokens"] == []


@ON_EACH_BACKEND
def test_read_only_calls_ignore_the_key(admin: Client) -> None:
    headers = {"Idempotency-Key": "not checked on reads"}
    assert admin.request("GET", "/v1/join-tokens", headers=headers).status == 200


def test_stored_responses_are_encrypted_at_rest(tmp_path: Path) -> None:
    server = RunningServer(tmp_path / "data").start()
    admin = Client(server.port, server.bundle_pem(), server.admin, tmp_path / "admin")
    token = _create(admin, str(uuid.uuid4())).json()["token"]
    admin.close()
    server.stop()
    secret_part = token.split(".", 1)[1].encode()
    for path in (tmp_path / "data").glob("secinfra.db*"):
        assert secret_part not in path.read_bytes(), path


class _SlowJoinTokens(Server):
    def service_handlers(self, ctx: ServiceContext) -> dict[str, Handler]:
        handlers = super().service_handlers(ctx)
        original = handlers["create_join_token"]

        async def slow(context: RequestContext, req: object) -> object:
            await asyncio.sleep(1.0)
            return await original(context, req)

        handlers["create_join_token"] = slow
        return handlers


def test_concurrent_use_of_a_key_is_409_with_should_retry(tmp_path: Path) -> None:
    server = RunningServer(tmp_path / "data", server_class=_SlowJoinTokens).start()
    try:
        key = str(uuid.uuid4())
        results: list[int] = []

        def first() -> None:
            c = Client(server.port, server.bundle_pem(), server.admin, tmp_path / "a")
            results.append(_create(c, key).status)
            c.close()

        thread = threading.Thread(target=first)
        thread.start()
        time.sleep(0.4)
        second = Client(server.port, server.bundle_pem(), server.admin, tmp_path / "b")
        resp = _create(second, key)
        second.close()
        thread.join(10)
        assert resp.status == 409
        assert resp.code == "conflict"
        assert resp.headers["secinfra-should-retry"] == "true"
        assert results == [200]
    finally:
        server.stop()
