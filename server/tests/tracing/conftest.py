"""Fixtures of the tracing tests: a real server on loopback whose spans go to
the OpenTelemetry SDK's in-memory exporter.

These tests need the server's ``otel`` extra. Without it they skip, unless
``SECINFRA_REQUIRE_OTEL=1`` (set by ``nox -s tests-server-otel``), when
collecting them fails; ``nox -s tests-server`` runs without the extra.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from integration.harness import Client, RunningServer

from secinfra_server._tracing import Tracing
from secinfra_server.config import ServerConfig
from secinfra_server.server import Server

REQUIRE_OTEL = os.environ.get("SECINFRA_REQUIRE_OTEL") == "1"
try:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    OTEL_INSTALLED = True
except ImportError:
    if REQUIRE_OTEL:
        raise
    OTEL_INSTALLED = False


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    """Without the extra, only test_extra.py is collected: it skips and says why."""
    if OTEL_INSTALLED or collection_path.name == "test_extra.py":
        return None
    return collection_path.suffix == ".py" and collection_path.name.startswith("test_")


class Spans:
    """What a traced server exported, by request."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def all(self) -> list[Any]:
        return list(self.exporter.get_finished_spans())

    def clear(self) -> None:
        self.exporter.clear()

    def request(self, request_id: str) -> Any:
        """The SERVER span of the request answered with ``request_id``."""
        found = [s for s in self.all() if s.attributes.get("secinfra.request_id") == request_id]
        assert len(found) == 1, [s.name for s in self.all()]
        return found[0]

    def trace_of(self, request_id: str) -> list[Any]:
        """Every span of that request's trace, in the order they ended."""
        root = self.request(request_id)
        return [s for s in self.all() if s.context.trace_id == root.context.trace_id]


def traced(tracing: Tracing) -> type[Server]:
    """A Server class that traces through ``tracing``."""

    class TracedServer(Server):
        def __init__(self, config: ServerConfig) -> None:
            super().__init__(config, tracing=tracing)

    return TracedServer


@pytest.fixture
def spans() -> Spans:
    return Spans()


@pytest.fixture(params=["sqlite"])
def traced_server(
    request: pytest.FixtureRequest, spans: Spans, tmp_path: Path
) -> Iterator[RunningServer]:
    """A running server that traces into ``spans``; a module that marks
    ``pytest.mark.parametrize("traced_server", BACKENDS, indirect=True)``
    gets one per storage backend."""
    settings: dict[str, object] = {}
    if request.param == "postgres":
        settings = {"database_dsn": request.getfixturevalue("postgres_dsn"), "migrate": True}
    running = RunningServer(
        tmp_path / "data", server_class=traced(Tracing(spans.provider)), **settings
    ).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def admin(traced_server: RunningServer, tmp_path: Path) -> Iterator[Client]:
    client = Client(
        traced_server.port, traced_server.bundle_pem(), traced_server.admin, tmp_path / "admin"
    )
    yield client
    client.close()
