"""The spans a real server makes (TLS on loopback, a real database), read
from the OpenTelemetry SDK's in-memory exporter."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from backends import BACKENDS
from cryptography import x509
from integration.harness import Client, RunningServer, csr_pem, enrol, key_pem, new_key
from opentelemetry import trace as trace_api

from secinfra_server._tracing import Tracing
from secinfra_server.server import Server

from .conftest import Spans

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
SECRET_VALUE = b"tracing-must-never-see-this-value"


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def children(spans: list[Any], parent: Any) -> list[Any]:
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


def every_text(spans: list[Any]) -> list[str]:
    """Every string a span carries: names, attribute values, events, status."""
    texts: list[str] = []
    for span in spans:
        texts.append(span.name)
        texts.extend(str(v) for v in span.attributes.values())
        texts.append(str(span.status.description or ""))
        for event in span.events:
            texts.append(event.name)
            texts.extend(str(v) for v in event.attributes.values())
    return texts


def test_a_traceparent_makes_the_server_span_its_child(
    traced_server: RunningServer, admin: Client, spans: Spans
) -> None:
    response = admin.request(
        "GET",
        "/v1/identity:whoami",
        headers={
            "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01",
            "tracestate": "vendor=opaque",
        },
    )
    assert response.status == 200
    span = spans.request(response.headers["request-id"])
    assert span.kind == trace_api.SpanKind.SERVER
    assert span.name == "secinfra.v1.IdentityService/GetCallerIdentity"
    assert f"{span.context.trace_id:032x}" == TRACE_ID
    assert span.parent is not None
    assert span.parent.is_remote
    assert f"{span.parent.span_id:016x}" == PARENT_ID
    assert span.context.trace_state.get("vendor") == "opaque"
    assert dict(span.attributes) == {
        "http.request.method": "GET",
        "url.scheme": "https",
        "server.address": "127.0.0.1",
        "server.port": traced_server.port,
        "client.address": "127.0.0.1",
        "http.route": "/v1/identity:whoami",
        "rpc.system": "secinfra",
        "rpc.service": "secinfra.v1.IdentityService",
        "rpc.method": "GetCallerIdentity",
        "secinfra.caller.spiffe_id": traced_server.config.admin_spiffe_id,
        "http.response.status_code": 200,
        "secinfra.request_id": response.headers["request-id"],
    }
    assert span.status.status_code == trace_api.StatusCode.UNSET


def test_without_a_traceparent_the_request_starts_a_trace(admin: Client, spans: Spans) -> None:
    response = admin.request("GET", "/v1/identity:whoami")
    span = spans.request(response.headers["request-id"])
    assert span.parent is None


@pytest.mark.parametrize("traced_server", BACKENDS, indirect=True)
def test_get_secret_is_request_then_authz_check_then_storage(
    traced_server: RunningServer, admin: Client, spans: Spans
) -> None:
    assert admin.request("PUT", "/v1/secrets/app/db", {"value": b64(SECRET_VALUE)}).status == 200
    spans.clear()
    response = admin.request("GET", "/v1/secrets/app/db")
    assert response.status == 200
    request_id = response.headers["request-id"]
    trace = spans.trace_of(request_id)
    root = spans.request(request_id)
    assert root.name == "secinfra.v1.SecretsService/GetSecret"
    assert root.attributes["http.route"] == "/v1/secrets/{name=**}"
    checks = [s for s in children(trace, root) if s.name == "authz.check"]
    assert len(checks) == 1
    check = checks[0]
    assert dict(check.attributes) == {
        "secinfra.authz.object_type": "secret",
        "secinfra.authz.relation": "reader",
        "secinfra.authz.allowed": True,
    }
    system = "postgresql" if traced_server.config.database_dsn else "sqlite"
    under_check = children(trace, check)
    assert under_check, "the check reads its snapshot in a storage span"
    for span in under_check:
        assert span.name == "storage.read"
        assert span.kind == trace_api.SpanKind.CLIENT
        assert span.attributes["db.system.name"] == system
        assert span.attributes["db.operation.name"] == "read"
    reads = [s for s in children(trace, root) if s.name == "storage.read"]
    assert reads, "the secret itself is read in a storage span under the request"
    assert all(s.attributes["db.system.name"] == system for s in reads)
    # The check ends before the secret is read.
    assert check.end_time <= min(s.start_time for s in reads)
    assert not any(SECRET_VALUE.decode() in text for text in every_text(spans.all()))


def test_issuance_has_a_signing_span_and_no_token_or_csr(
    traced_server: RunningServer, admin: Client, spans: Spans, tmp_path: Path
) -> None:
    token = admin.request(
        "POST",
        "/v1/join-tokens",
        {"spiffe_id": f"spiffe://{traced_server.config.trust_domain}/workload/a"},
    ).json()["token"]
    key = new_key()
    csr = csr_pem(key)
    anon = Client(traced_server.port, traced_server.bundle_pem())
    response = anon.request("POST", "/v1/identity:issue", {"csr_pem": csr, "join_token": token})
    anon.close()
    assert response.status == 200, response.body
    request_id = response.headers["request-id"]
    root = spans.request(request_id)
    assert root.name == "secinfra.v1.IdentityService/IssueCertificate"
    assert "secinfra.caller.spiffe_id" not in root.attributes  # no client certificate
    signing = [s for s in spans.trace_of(request_id) if s.name == "ca.sign"]
    assert len(signing) == 1
    sign = signing[0]
    assert sign.parent is not None
    assert sign.parent.span_id == root.context.span_id
    assert traced_server.server.ca_runtime is not None
    active = [a for a in traced_server.server.ca_runtime.authorities if a.state == "active"]
    issued = response.json()["svid"]
    cert = x509.load_pem_x509_certificate(issued["cert_chain_pem"].encode())
    assert dict(sign.attributes) == {
        "secinfra.ca.id": active[0].id,
        "secinfra.certificate.kind": "issue",
        "secinfra.certificate.spiffe_id": f"spiffe://{traced_server.config.trust_domain}/workload/a",
        "secinfra.certificate.serial": f"{cert.serial_number:x}",
    }
    token_secret = token.split(".", 1)[1]
    forbidden = [token, token_secret, csr, key_pem(key).decode()]
    for text in every_text(spans.all()):
        for value in forbidden:
            assert value not in text
        assert "PRIVATE KEY" not in text
        assert "CERTIFICATE REQUEST" not in text


def test_a_refused_call_carries_its_error_code(
    traced_server: RunningServer, admin: Client, spans: Spans, tmp_path: Path
) -> None:
    assert admin.request("PUT", "/v1/secrets/app/db", {"value": b64(SECRET_VALUE)}).status == 200
    workload = Client(
        traced_server.port,
        traced_server.bundle_pem(),
        enrol(traced_server, tmp_path),
        tmp_path / "workload",
    )
    response = workload.request("GET", "/v1/secrets/app/db")
    workload.close()
    assert response.status == 403
    request_id = response.headers["request-id"]
    root = spans.request(request_id)
    assert root.attributes["error.type"] == "permission_denied"
    assert root.attributes["secinfra.error.code"] == "permission_denied"
    assert root.attributes["http.response.status_code"] == 403
    # HTTP semantic conventions: a 4xx leaves a SERVER span's status unset.
    assert root.status.status_code == trace_api.StatusCode.UNSET
    (check,) = [s for s in spans.trace_of(request_id) if s.name == "authz.check"]
    assert check.attributes["secinfra.authz.allowed"] is False


class _FailingWhoAmI(Server):
    def extra_handlers(self) -> dict[str, Any]:
        async def fail(_context: Any, _request: Any) -> Any:
            raise RuntimeError("boom with a detail that must stay out of spans")

        return {"get_caller_identity": fail}


def test_a_failed_call_has_status_error_and_the_error_code(spans: Spans, tmp_path: Path) -> None:
    tracing = Tracing(spans.provider)

    class Failing(_FailingWhoAmI):
        def __init__(self, config: Any) -> None:
            super().__init__(config, tracing=tracing)

    server = RunningServer(tmp_path / "data", server_class=Failing).start()
    try:
        client = Client(server.port, server.bundle_pem(), server.admin, tmp_path / "admin")
        response = client.request("GET", "/v1/identity:whoami")
        client.close()
    finally:
        server.stop()
    assert response.status == 500
    root = spans.request(response.headers["request-id"])
    assert root.status.status_code == trace_api.StatusCode.ERROR
    assert root.status.description == "internal"
    assert root.attributes["error.type"] == "internal"
    assert root.attributes["secinfra.error.code"] == "internal"
    assert not any("boom" in text for text in every_text(spans.all()))


def test_endpoints_outside_the_api_are_named_by_route(
    traced_server: RunningServer, admin: Client, spans: Spans
) -> None:
    anon = Client(traced_server.port, traced_server.bundle_pem())
    assert anon.request("GET", "/healthz").status == 200
    missing = anon.request("GET", "/v1/nothing-here")
    anon.close()
    assert missing.status == 404
    health = [s for s in spans.all() if s.name == "GET /healthz"]
    assert len(health) == 1
    assert health[0].attributes["http.route"] == "/healthz"
    unmatched = spans.request(missing.headers["request-id"])
    assert unmatched.name == "GET"  # no route: the method alone, never the raw path
    assert "http.route" not in unmatched.attributes
    assert unmatched.attributes["error.type"] == "not_found"


def test_background_work_makes_no_traces_of_its_own(
    traced_server: RunningServer, admin: Client, spans: Spans
) -> None:
    assert admin.request("PUT", "/v1/secrets/app/x", {"value": b64(b"v")}).status == 200
    assert admin.request("GET", "/v1/secrets/app/x").status == 200  # a batched audit entry
    traced_server.call(traced_server.server.stop())  # flushes the audit queue
    servers = {s.context.trace_id for s in spans.all() if s.kind == trace_api.SpanKind.SERVER}
    assert servers
    assert {s.context.trace_id for s in spans.all()} == servers


def test_tracing_off_makes_no_spans(spans: Spans, tmp_path: Path) -> None:
    server = RunningServer(tmp_path / "data").start()
    try:
        assert server.server.tracing.enabled is False
        client = Client(server.port, server.bundle_pem(), server.admin, tmp_path / "admin")
        assert client.request("GET", "/v1/identity:whoami").status == 200
        client.close()
    finally:
        server.stop()
    assert spans.all() == []


def test_the_check_rpc_has_an_authz_check_span(
    traced_server: RunningServer, admin: Client, spans: Spans
) -> None:
    spans.clear()
    body = {
        "tuple_key": {
            "user": "workload:spiffe://secinfra.local/x",
            "relation": "reader",
            "object": "folder:app/",
        }
    }
    response = admin.request("POST", "/v1/authz:check", body)
    assert response.status == 200, response.body
    request_id = response.headers["request-id"]
    root = spans.request(request_id)
    assert root.name == "secinfra.v1.AuthzService/Check"
    answered = [
        s
        for s in children(spans.trace_of(request_id), root)
        if s.name == "authz.check" and s.attributes["secinfra.authz.object_type"] == "folder"
    ]
    assert len(answered) == 1
    assert dict(answered[0].attributes) == {
        "secinfra.authz.object_type": "folder",
        "secinfra.authz.relation": "reader",
        "secinfra.authz.allowed": False,
    }
