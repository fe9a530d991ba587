from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import Client, RunningServer


@pytest.fixture
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningServer]:
    """A running server on SQLite; a module that marks
    ``pytest.mark.parametrize("server", BACKENDS, indirect=True)`` gets one per
    storage backend (PostgreSQL on a fresh database of the session's cluster)."""
    settings: dict[str, object] = {}
    if getattr(request, "param", "sqlite") == "postgres":
        settings = {"database_dsn": request.getfixturevalue("postgres_dsn"), "migrate": True}
    running = RunningServer(tmp_path / "data", **settings).start()
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
