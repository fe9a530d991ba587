"""Fixtures for tests against the real reference server (real TLS, real CA).

One server is shared by the whole session for tests that only add state of
their own (every test uses its own SPIFFE IDs and secret names, and reads the
request log from its own starting point). Tests that change the server itself
(leaf TTL, CA rotation, clock shifts) start their own with ``own_server``.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import secinfra
from secinfra.testing import ReferenceServer

from .support import TRUST_DOMAIN, Log

_names = itertools.count(1)


@pytest.fixture(scope="session")
def server() -> Iterator[ReferenceServer]:
    """The reference server shared by every test that leaves it as it found it."""
    with ReferenceServer() as running:
        yield running


@pytest.fixture(autouse=True)
def _no_leftover_scripts(request: pytest.FixtureRequest) -> Iterator[None]:
    """Scripts are per RPC and server-wide: never let one leak into the next test."""
    yield
    if "server" in request.fixturenames:
        shared: ReferenceServer = request.getfixturevalue("server")
        shared.control("DELETE", "/_test/scripts")


@pytest.fixture
def own_server() -> Iterator[Callable[..., ReferenceServer]]:
    """Start a server of this test's own, with the given settings."""
    started: list[ReferenceServer] = []

    def start(**settings: Any) -> ReferenceServer:
        running = ReferenceServer(**settings).start()
        started.append(running)
        return running

    yield start
    for running in started:
        running.close()


@pytest.fixture
def unique() -> str:
    """A name no other test uses (SPIFFE ID paths, secret folders)."""
    return f"t{next(_names)}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def admin(server: ReferenceServer) -> Iterator[secinfra.Client]:
    """A client with the shared server's admin identity."""
    with server.admin_client() as client:
        yield client


@pytest.fixture
def workload(server: ReferenceServer, unique: str) -> Iterator[secinfra.Client]:
    """A client enrolled with a join token as ``spiffe://secinfra.local/<unique>``."""
    client = server.enrol(f"spiffe://{TRUST_DOMAIN}/{unique}")
    yield client
    client.close()


@pytest.fixture
def log(server: ReferenceServer) -> Log:
    """The shared server's request log, from the start of this test."""
    return Log(server)
