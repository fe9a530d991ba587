"""The ``tracing`` setting: spans reach a collector over OTLP/HTTP as the
standard OTEL_* variables say, and a missing exporter is named."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from integration.harness import Client, RunningServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export import ConsoleSpanExporter

from secinfra_server._tracing import TracingUnavailable, exporters_from_environment


class Collector(http.server.ThreadingHTTPServer):
    """An OTLP/HTTP trace receiver on loopback: keeps every export request."""

    def __init__(self) -> None:
        self.received: list[ExportTraceServiceRequest] = []
        super().__init__(("127.0.0.1", 0), _Receiver)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Receiver(http.server.BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        assert self.path == "/v1/traces"
        message = ExportTraceServiceRequest()
        message.ParseFromString(body)
        self.server.received.append(message)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_the_setting_sends_spans_to_the_otlp_endpoint(
    collector: Collector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "secinfra-under-test")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint)
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)  # default: otlp
    server = RunningServer(tmp_path / "data", tracing=True).start()
    try:
        assert server.server.tracing.enabled
        client = Client(server.port, server.bundle_pem(), server.admin, tmp_path / "admin")
        response = client.request("GET", "/v1/identity:whoami")
        client.close()
    finally:
        server.stop()  # flushes the batch processor
    assert response.status == 200
    spans = [
        (resource_spans.resource, span)
        for message in collector.received
        for resource_spans in message.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    ]
    named = [(r, s) for r, s in spans if s.name == "secinfra.v1.IdentityService/GetCallerIdentity"]
    assert len(named) == 1
    resource, span = named[0]
    attributes = {a.key: a.value for a in resource.attributes}
    assert attributes["service.name"].string_value == "secinfra-under-test"
    assert {a.key: a.value for a in span.attributes}[
        "secinfra.request_id"
    ].string_value == response.headers["request-id"]


def test_the_service_name_defaults_to_secinfra_server(
    collector: Collector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{collector.endpoint}/v1/traces")
    server = RunningServer(tmp_path / "data", tracing=True).start()
    try:
        anon = Client(server.port, server.bundle_pem())
        assert anon.request("GET", "/healthz").status == 200
        anon.close()
    finally:
        server.stop()
    names = {
        a.value.string_value
        for message in collector.received
        for resource_spans in message.resource_spans
        for a in resource_spans.resource.attributes
        if a.key == "service.name"
    }
    assert names == {"secinfra-server"}


@pytest.mark.parametrize(
    ("environ", "kinds"),
    [
        ({"OTEL_TRACES_EXPORTER": "none"}, []),
        ({"OTEL_TRACES_EXPORTER": "console"}, [ConsoleSpanExporter]),
        ({"OTEL_TRACES_EXPORTER": "console,none"}, []),
    ],
)
def test_exporters_follow_otel_traces_exporter(environ: dict[str, str], kinds: list[type]) -> None:
    assert [type(e) for e in exporters_from_environment(environ)] == kinds


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "'zipkin'"),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "opentelemetry-exporter-otlp-proto-grpc",
        ),
        ({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"}, "'http/json'"),
    ],
)
def test_a_missing_exporter_is_named(environ: dict[str, str], named: str) -> None:
    with pytest.raises(TracingUnavailable, match=named):
        exporters_from_environment(environ)


def test_a_missing_exporter_stops_the_server_before_it_opens_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    server = RunningServer(tmp_path / "data", tracing=True)
    with pytest.raises(TracingUnavailable, match="zipkin"):
        server.start()
    assert server.server.storage is None
    server.stop()
