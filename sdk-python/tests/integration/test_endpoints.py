"""Several endpoints against real servers (spec 12): a dead endpoint is passed
over, and a replica killed in the middle of a call loses nothing.

Two reference servers on one data dir share one CA, one SQLite database (WAL,
several processes) and one KEK: replicas enough for failover, which needs
only that both serve the same trust domain and the same data. (Replicas on
PostgreSQL, the deployment issue #15 targets, are what the conformance suite's
``endpoints`` cases run.)
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import secinfra
from secinfra.testing import ReferenceServer

from .support import TRUST_DOMAIN, header

#: How long the watcher waits for the request it kills the server under.
WATCH_SECONDS = 20.0


def closed_port_url() -> str:
    """An https URL on a loopback port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"https://127.0.0.1:{port}"


def test_a_refused_endpoint_is_passed_over_at_enrolment_and_after(
    server: ReferenceServer, unique: str
) -> None:
    dead = closed_port_url()
    spiffe_id = f"spiffe://{TRUST_DOMAIN}/{unique}"
    with secinfra.Client.enrol(
        [dead, server.url],
        join_token=server.join_token(spiffe_id),
        bundle_file=server.bundle_file,
        endpoint_order="listed",
        endpoint_cooldown=30.0,
    ) as client:
        with secinfra.capture() as meta:
            assert client.identity.get_caller_identity().spiffe_id == spiffe_id
        assert meta.last.endpoint == server.url
        assert meta.last.attempts == 1  # the dead home is cooling down: no attempt there
        home, other = client.endpoints
        assert (home.url, home.failures) == (dead, 1)
        assert home.cooling_until is not None
        assert (other.url, other.failures, other.cooling_until) == (server.url, 0, None)


@pytest.fixture
def replicas() -> Iterator[Callable[[], tuple[ReferenceServer, ReferenceServer]]]:
    """Two servers on one fresh data dir: ``a`` made it, ``b`` serves it too."""
    started: list[ReferenceServer] = []

    def start() -> tuple[ReferenceServer, ReferenceServer]:
        a = ReferenceServer().start()
        started.append(a)
        b = ReferenceServer(data_dir=a.data_dir).start()
        started.insert(0, b)  # closed first: a removes the data dir
        return a, b

    yield start
    for running in started:
        running.close()


def kill_when_it_arrives(
    target: ReferenceServer, rpc: str
) -> tuple[threading.Thread, list[dict[str, Any]]]:
    """SIGKILL ``target`` once a request of ``rpc`` has reached it (bounded wait);
    the list gets that request's log entry."""
    log = target.requests_log()
    since = log[-1]["seq"] if log else 0
    seen: list[dict[str, Any]] = []

    def watch() -> None:
        deadline = time.monotonic() + WATCH_SECONDS
        while time.monotonic() < deadline:
            arrived = [e for e in target.requests_log(rpc) if e["seq"] > since]
            if arrived:
                seen.extend(arrived)
                target.kill()
                return
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    return watcher, seen


def test_a_keyed_write_survives_its_replica_killed_mid_call(
    replicas: Callable[[], tuple[ReferenceServer, ReferenceServer]], unique: str
) -> None:
    a, b = replicas()
    spiffe_id = f"spiffe://{TRUST_DOMAIN}/{unique}"
    a.grant(spiffe_id, "writer", f"folder:{unique}/")
    with secinfra.Client.enrol(
        [a.url, b.url],
        join_token=a.join_token(spiffe_id),
        bundle_file=a.bundle_file,
        endpoint_order="listed",
    ) as client:
        # a holds the write (a delayed scripted answer) and dies while it does.
        a.script("PutSecret", {"status": 200, "body": {}, "delay_ms": 30_000})
        watcher, on_a = kill_when_it_arrives(a, "PutSecret")
        with secinfra.capture() as meta:
            info = client.secrets.put_secret(name=f"{unique}/db", value=b"hunter2")
        watcher.join(WATCH_SECONDS)
        assert not watcher.is_alive()
        assert info.version == 1
        assert (meta.last.endpoint, meta.last.attempts) == (b.url, 2)
        (killed,) = on_a
        (landed,) = b.requests_log("PutSecret")
        assert header(killed, "Secinfra-Attempt") == "1"
        assert header(landed, "Secinfra-Attempt") == "2"
        assert header(landed, "Idempotency-Key") == header(killed, "Idempotency-Key")
        assert landed["status"] == 200
        with b.admin_client() as admin:
            stored = admin.secrets.get_secret(name=f"{unique}/db")
        assert (stored.version, stored.value) == (1, b"hunter2")
