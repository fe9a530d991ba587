from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import Client, RunningServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    running = RunningServer(tmp_path / "data").start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def admin(server: RunningServer, tmp_path: Path) -> Iterator[Client]:
    client = Client(server.port, server.bundle_pem(), server.admin, tmp_path / "admin-client")
    yield client
    client.close()


@pytest.fixture
def anon(server: RunningServer) -> Iterator[Client]:
    client = Client(server.port, server.bundle_pem())
    yield client
    client.close()
