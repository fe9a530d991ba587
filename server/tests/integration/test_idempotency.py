"""Idempotency-Key on every call that is not read-only (the replay tests on
each storage backend, duplicates in one process and on two replicas of one
PostgreSQL). What a crash at each point of the path does is in
``test_idempotency_crash.py``."""

from __future__ import annotations

import asyncio
import base64
import logging
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from backends import ON_EACH_BACKEND

from secinfra_server._gen.routes import ROUTES
from secinfra_server._rpc import Handler, RequestContext, ServiceContext
from secinfra_server.server import Server
from secinfra_server.storage import to_ms

from .harness import Client, Identity, Response, RunningServer, csr_pem, key_pem, new_key

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


class _SlowPuts(Server):
    """Every PutSecret waits before it writes, so duplicates overlap."""

    def service_handlers(self, ctx: ServiceContext) -> dict[str, Handler]:
        handlers = super().service_handlers(ctx)
        original = handlers["put_secret"]

        async def slow(context: RequestContext, req: object) -> object:
            await asyncio.sleep(0.3)
            return await original(context, req)

        handlers["put_secret"] = slow
        return handlers


#: Bounds the two-replica test: this many keys, each sent to both at once.
REPLICA_DUPLICATES = 4


def _at_once(
    tmp: Path, servers: tuple[RunningServer, ...], path: str, body: object, key: dict[str, str]
) -> list[Response]:
    """PUT the same keyed request to every server at the same moment."""
    start = threading.Barrier(len(servers), timeout=10)
    answers: dict[int, Response] = {}

    def send(index: int, server: RunningServer) -> None:
        client = Client(server.port, server.bundle_pem(), server.admin, tmp / f"c{index}")
        client.connect().connect()
        start.wait()
        answers[index] = client.request("PUT", path, body, headers=key)
        client.close()

    threads = [threading.Thread(target=send, args=pair) for pair in enumerate(servers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(answers) == list(range(len(servers))), "every request was answered"
    return [answers[index] for index in sorted(answers)]


def test_duplicates_on_two_replicas_of_one_postgresql_apply_once(
    tmp_path: Path, postgres_dsn: str
) -> None:
    """Both replicas run the call up to its write; writes are serialised and
    the later one finds the first's answer, rolls back its own version and
    replays that answer."""
    settings = {"database_dsn": postgres_dsn, "migrate": True}
    first = RunningServer(tmp_path / "data", server_class=_SlowPuts, **settings).start()
    second = RunningServer(tmp_path / "data", server_class=_SlowPuts, **settings).start()
    try:
        for i in range(REPLICA_DUPLICATES):
            name = f"replicas/s{i}"
            body = {"value": base64.b64encode(f"value {i}".encode()).decode()}
            key = {"Idempotency-Key": str(uuid.uuid4())}
            answers = _at_once(tmp_path, (first, second), f"/v1/secrets/{name}", body, key)
            assert [a.status for a in answers] == [200, 200], answers
            assert answers[0].body == answers[1].body
            replayed = [a.headers.get("idempotent-replayed") == "true" for a in answers]
            assert sorted(replayed) == [False, True], "one ran it, the other replayed it"
            admin = Client(first.port, first.bundle_pem(), first.admin, tmp_path / "reader")
            metadata = admin.request("GET", f"/v1/secrets/{name}:metadata").json()
            admin.close()
            assert [v["version"] for v in metadata["versions"]] == [1], "one version per key"
    finally:
        second.stop()
        first.stop()


def test_an_in_progress_record_left_by_an_older_server_blocks_nothing(tmp_path: Path) -> None:
    """Servers before the answer committed with the effect wrote an *in
    progress* claim that a crash could leave behind; such a record is ignored
    and replaced by the call's answer."""
    server = RunningServer(tmp_path / "data").start()
    try:
        key = str(uuid.uuid4())
        conn = sqlite3.connect(server.config.database_path, timeout=10)
        with conn:
            conn.execute(
                "INSERT INTO idempotency (caller, key, fingerprint, state, created_ms)"
                " VALUES (?, ?, 'left-by-a-crash', 'in_progress', ?)",
                (server.config.admin_spiffe_id, key, to_ms(server.server.clock.now())),
            )
        conn.close()
        admin = Client(server.port, server.bundle_pem(), server.admin, tmp_path / "admin")
        first = _create(admin, key)
        again = _create(admin, key)
        admin.close()
        assert first.status == 200, first.body
        assert "idempotent-replayed" not in first.headers
        assert again.headers.get("idempotent-replayed") == "true"
        assert again.json()["token"] == first.json()["token"]
    finally:
        server.stop()


DOCS_DSL = """model
  schema 1.1

type document
  relations
    define owner: [workload]
"""


@ON_EACH_BACKEND
def test_every_keyed_rpc_answers_inside_its_write(
    server: RunningServer, admin: Client, anon: Client, tmp_path: Path, caplog: Any
) -> None:
    """Each RPC that takes a key, called with one and then again: the second
    call replays the first answer, and no answer was stored after its write
    (the dispatcher says so in a warning when a handler did not answer inside
    its transaction)."""
    caplog.set_level(logging.INFO)
    td = server.config.trust_domain
    done: list[str] = []

    def twice(client: Client, rpc: str, method: str, path: str, body: Any = None) -> Any:
        key = {"Idempotency-Key": str(uuid.uuid4())}
        first = client.request(method, path, body, headers=key)
        assert first.status == 200, (rpc, first.body)
        again = client.request(method, path, body, headers=key)
        assert again.headers.get("idempotent-replayed") == "true", rpc
        assert again.body == first.body, rpc
        done.append(rpc)
        return first.json()

    twice(admin, "PutSecret", "PUT", "/v1/secrets/app/x", {"value": "dmFsdWU="})
    twice(admin, "DeleteSecret", "DELETE", "/v1/secrets/app/x")
    twice(admin, "UndeleteSecret", "POST", "/v1/secrets/app/x:undelete", {"versions": [1]})
    twice(admin, "DestroySecretVersions", "POST", "/v1/secrets/app/x:destroy", {"versions": [1]})
    twice(admin, "WriteAuthorizationModel", "POST", "/v1/authz/models", {"dsl": DOCS_DSL})
    owner = {"object": "document:d1", "relation": "owner", "user": f"workload:spiffe://{td}/w/a"}
    twice(admin, "WriteTuples", "POST", "/v1/authz/tuples:write", {"writes": [owner]})
    created = twice(
        admin, "CreateJoinToken", "POST", "/v1/join-tokens", {"spiffe_id": f"spiffe://{td}/w/k"}
    )
    key = new_key()
    issued = twice(
        anon,
        "IssueCertificate",
        "POST",
        "/v1/identity:issue",
        {"csr_pem": csr_pem(key), "join_token": created["token"]},
    )
    workload = Client(
        server.port,
        server.bundle_pem(),
        Identity(issued["svid"]["cert_chain_pem"].encode(), key_pem(key)),
        tmp_path / "workload",
    )
    renewed = twice(
        workload, "RenewCertificate", "POST", "/v1/identity:renew", {"csr_pem": csr_pem(new_key())}
    )
    # A registration entry whose parent is this workload (as a node): it may
    # have SVIDs signed for it.
    entry = twice(
        admin,
        "CreateEntry",
        "POST",
        "/v1/entries",
        {
            "spiffe_id": f"spiffe://{td}/w/entry",
            "parent_id": f"spiffe://{td}/w/k",
            "selectors": [{"type": "unix", "value": "uid:1000"}],
        },
    )
    twice(
        workload,
        "SignWorkloadSvid",
        "POST",
        f"/v1/entries/{entry['id']}:sign",
        {"csr_pem": csr_pem(new_key())},
    )
    twice(admin, "DeleteEntry", "DELETE", f"/v1/entries/{entry['id']}")
    workload.close()
    spare = _create(admin, str(uuid.uuid4())).json()["join_token"]["id"]
    twice(admin, "RevokeJoinToken", "DELETE", f"/v1/join-tokens/{spare}")
    twice(admin, "Revoke", "POST", "/v1/revocations", {"serial": renewed["svid"]["serial"]})
    lifted = f"spiffe://{td}/w/lifted"
    assert admin.request("POST", "/v1/revocations", {"spiffe_id": lifted}).status == 200
    twice(admin, "LiftRevocation", "POST", "/v1/revocations:lift", {"spiffe_id": lifted})
    old_ca = next(
        a["id"]
        for a in admin.request("GET", "/v1/ca").json()["authorities"]
        if a["state"] == "active"
    )
    twice(admin, "PrepareCaRotation", "POST", "/v1/ca:prepare", {})
    admin.bundle_pem = server.bundle_pem()
    admin.close()
    twice(admin, "ActivateCa", "POST", "/v1/ca:activate", {})
    # Last: a forced retirement ends the admin certificate (the old CA's), so
    # it is called once; its answer must still have been written in its write.
    retire = admin.request(
        "POST",
        "/v1/ca:retire",
        {"ca_id": old_ca, "force": True},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    assert retire.status == 200, retire.body
    done.append("RetireCa")

    keyed = {route.rpc for route in ROUTES if route.idempotency != "read_only"}
    assert sorted(done) == sorted(keyed), "every keyed RPC was called"
    messages = [record.getMessage() for record in caplog.records]
    assert "certificate issued" in messages, "the server's log records are captured"
    assert "keyed answer stored after its write" not in messages
