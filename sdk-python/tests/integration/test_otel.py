"""secinfra.otel against the real server: spans, the traceparent the server
receives, and the counters (spec 14.4, 14.5), read with OpenTelemetry's SDK."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import secinfra
import secinfra.otel
from secinfra.errors import NotFound
from secinfra.testing import ReferenceServer

from .support import TRUST_DOMAIN, Log, header

GET = "secinfra.v1.SecretsService/GetSecret"
PUT = "secinfra.v1.SecretsService/PutSecret"


@dataclass
class Telemetry:
    observer: secinfra.otel.Observer
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    tracer: trace.Tracer

    def finished(self, name: str | None = None) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if name is None or s.name == name]

    def counts(self, metric: str) -> dict[frozenset[tuple[str, Any]], int]:
        """The counter's value per attribute set."""
        data = self.metrics.get_metrics_data()
        found: dict[frozenset[tuple[str, Any]], int] = {}
        if data is None:
            return found
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for each in scope.metrics:
                    if each.name == metric:
                        for point in each.data.data_points:
                            found[frozenset((point.attributes or {}).items())] = int(
                                point.value  # type: ignore[union-attr]
                            )
        return found


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    observer = secinfra.otel.Observer(
        tracer_provider=tracer_provider, meter_provider=meter_provider
    )
    yield Telemetry(observer, spans, reader, tracer_provider.get_tracer("app"))
    tracer_provider.shutdown()
    meter_provider.shutdown()


@pytest.fixture
def traced(server: ReferenceServer, telemetry: Telemetry) -> Iterator[secinfra.Client]:
    with server.admin_client(observers=[telemetry.observer]) as client:
        yield client


def _parent_of(traceparent: str | None) -> tuple[int, int]:
    """(trace id, parent span id) of a traceparent header."""
    assert traceparent is not None
    _, trace_id, span_id, _ = traceparent.split("-")
    return int(trace_id, 16), int(span_id, 16)


def test_a_call_span_is_a_child_of_the_current_span_and_the_attempt_of_the_call(
    traced: secinfra.Client, telemetry: Telemetry, server: ReferenceServer, log: Log, unique: str
) -> None:
    with telemetry.tracer.start_as_current_span("app") as app:
        traced.secrets.put_secret(name=f"{unique}/k", value=b"v")
    [call] = telemetry.finished(PUT)
    [attempt] = telemetry.finished("PUT")
    assert call.kind is SpanKind.INTERNAL
    assert call.parent is not None
    assert call.parent.span_id == app.get_span_context().span_id
    assert call.context.trace_id == app.get_span_context().trace_id
    assert call.attributes is not None
    assert call.attributes["rpc.service"] == "secinfra.v1.SecretsService"
    assert call.attributes["rpc.method"] == "PutSecret"
    assert call.attributes["secinfra.attempts"] == 1
    assert call.status.status_code is StatusCode.UNSET
    assert attempt.kind is SpanKind.CLIENT
    assert attempt.parent is not None
    assert attempt.parent.span_id == call.context.span_id
    host, port = server.url.removeprefix("https://").rsplit(":", 1)
    assert dict(attempt.attributes or {}) == {
        "rpc.service": "secinfra.v1.SecretsService",
        "rpc.method": "PutSecret",
        "http.request.method": "PUT",
        "server.address": host,
        "server.port": int(port),
        "secinfra.attempt": 1,
        "http.response.status_code": 200,
    }
    # The server's span would be the attempt's child (spec 14.5.2).
    [entry] = log.entries("PutSecret")
    assert _parent_of(header(entry, "traceparent")) == (
        attempt.context.trace_id,
        attempt.context.span_id,
    )


def test_each_retry_is_an_attempt_span_and_carries_its_own_context(
    traced: secinfra.Client, telemetry: Telemetry, server: ReferenceServer, log: Log, unique: str
) -> None:
    server.script("PutSecret", {"status": 503})
    traced.secrets.put_secret(name=f"{unique}/k", value=b"v")
    attempts = sorted(telemetry.finished("PUT"), key=lambda s: s.start_time or 0)
    assert [(s.attributes or {}).get("http.response.status_code") for s in attempts] == [503, 200]
    first, second = attempts
    assert (first.attributes or {})["error.type"] == "unavailable"
    assert first.status.status_code is StatusCode.ERROR
    assert "error.type" not in (second.attributes or {})
    assert [_parent_of(header(e, "traceparent")) for e in log.entries("PutSecret")] == [
        (s.context.trace_id, s.context.span_id) for s in attempts
    ]
    [call] = telemetry.finished(PUT)
    assert (call.attributes or {})["secinfra.attempts"] == 2
    assert call.status.status_code is StatusCode.UNSET


def test_a_failed_call_has_status_error_and_its_code(
    traced: secinfra.Client, telemetry: Telemetry, unique: str
) -> None:
    with pytest.raises(NotFound):
        traced.secrets.get_secret(name=f"{unique}/missing")
    [call] = telemetry.finished(GET)
    assert call.status.status_code is StatusCode.ERROR
    assert (call.attributes or {})["error.type"] == "not_found"


def test_the_cache_answer_is_an_event_of_the_call_span(
    traced: secinfra.Client, admin: secinfra.Client, telemetry: Telemetry, unique: str
) -> None:
    admin.secrets.put_secret(name=f"{unique}/c", value=b"v")
    traced.secrets.get_secret(name=f"{unique}/c")
    traced.secrets.get_secret(name=f"{unique}/c")
    calls = sorted(telemetry.finished(GET), key=lambda s: s.start_time or 0)
    assert [[(e.name, dict(e.attributes or {})) for e in s.events] for s in calls] == [
        [("cache", {"secinfra.cache.result": "miss"})],
        [("cache", {"secinfra.cache.result": "hit"})],
    ]
    assert len(telemetry.finished("GET")) == 1  # the hit made no attempt
    assert (calls[1].attributes or {})["secinfra.from_cache"] is True


def test_the_counters_count_calls_attempts_and_cache_lookups(
    traced: secinfra.Client,
    admin: secinfra.Client,
    telemetry: Telemetry,
    server: ReferenceServer,
    unique: str,
) -> None:
    admin.secrets.put_secret(name=f"{unique}/c", value=b"v")
    server.script("GetSecret", {"status": 503})
    traced.secrets.get_secret(name=f"{unique}/c")
    traced.secrets.get_secret(name=f"{unique}/c")
    with pytest.raises(NotFound):
        traced.secrets.get_secret(name=f"{unique}/missing")
    rpc = {("rpc.service", "secinfra.v1.SecretsService"), ("rpc.method", "GetSecret")}
    assert telemetry.counts("secinfra.client.calls") == {
        frozenset(rpc): 2,
        frozenset(rpc | {("error.type", "not_found")}): 1,
    }
    assert telemetry.counts("secinfra.client.attempts") == {
        frozenset(rpc | {("http.response.status_code", 503), ("error.type", "unavailable")}): 1,
        frozenset(rpc | {("http.response.status_code", 200)}): 1,
        frozenset(rpc | {("http.response.status_code", 404), ("error.type", "not_found")}): 1,
    }
    assert telemetry.counts("secinfra.client.cache.lookups") == {
        frozenset(rpc | {("secinfra.cache.result", "miss")}): 2,
        frozenset(rpc | {("secinfra.cache.result", "hit")}): 1,
    }


def test_renewals_are_counted_from_rotation_events(
    own_server: Callable[..., ReferenceServer], telemetry: Telemetry
) -> None:
    server = own_server()
    server.control("POST", "/_test/ca/leaf-ttl", {"seconds": 3})
    with server.enrol(
        f"spiffe://{TRUST_DOMAIN}/otel-renewing", observers=[telemetry.observer]
    ) as client:
        client.on_rotation(telemetry.observer.on_rotation)
        assert server.wait_until(
            lambda: telemetry.counts("secinfra.client.renewals").get(frozenset(), 0) >= 1,
            timeout=10,
        )
    # The renewal is a call of the client's own, traced like any other (spec 14.2.4).
    assert telemetry.finished("secinfra.v1.IdentityService/RenewCertificate")


def test_the_observer_sends_no_traceparent_without_a_tracer(
    server: ReferenceServer, log: Log
) -> None:
    no_op = secinfra.otel.Observer(tracer_provider=trace.NoOpTracerProvider())
    with server.admin_client(observers=[no_op]) as client:
        client.identity.get_caller_identity()
    [entry] = log.entries("GetCallerIdentity")
    assert header(entry, "traceparent") is None
