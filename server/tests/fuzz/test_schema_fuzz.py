"""Schema-driven fuzzing of every operation in the server's OpenAPI document.

schemathesis (pinned in constraints.txt) generates requests from
``docs/api/openapi.json`` (written by codegen), both fitting the schema and
breaking it, and sends them to a real server over real TLS: once per
operation with the admin's mTLS identity, and once more without a client
certificate for the operations that need none (enrolment, bundle, CRL) and
for a sample of those that do. Every answer must be below 500, and every
error the JSON envelope with a ``Request-Id`` equal to its ``request_id``.

Bounded and repeatable: a fixed number of examples per operation and mode,
derandomized (the same inputs on every run), no example database, no shrinking
beyond the first failure, and a time cap per operation. The counts go to
``reports/fuzz/schema-fuzz.json`` and the test log.
"""

from __future__ import annotations

import json
import ssl
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import hypothesis.errors
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from integration.harness import RunningServer
from requests.adapters import HTTPAdapter
from schemathesis import GenerationMode

ROOT = Path(__file__).resolve().parents[3]
OPENAPI = ROOT / "docs" / "api" / "openapi.json"
REPORT = ROOT / "reports" / "fuzz" / "schema-fuzz.json"
#: Examples per operation and generation mode (positive, negative).
EXAMPLES = 12
#: Wall-clock cap per operation and mode; hypothesis stops generating past it.
CAP_SECONDS = 4.0
REQUEST_TIMEOUT_SECONDS = 15

SCHEMA = schemathesis.openapi.from_path(str(OPENAPI))
OPERATIONS = {
    result.ok().definition.raw["operationId"]: result.ok() for result in SCHEMA.get_all_operations()
}
NO_CLIENT_CERT = sorted(
    op_id for op_id, op in OPERATIONS.items() if op.definition.raw.get("security") == []
)


@dataclass
class Tally:
    """What the fuzzer sent and got, over the whole module."""

    requests: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)


TALLY = Tally()


class _Tls(HTTPAdapter):
    """requests over the server's TLS: trust the current bundle, present the
    admin identity or nothing; the server's address is its IP SAN."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One server for the whole fuzz run; enrolment limits high enough that
    the fuzzer reaches the enrolment checks rather than only the 429."""
    running = RunningServer(
        tmp_path_factory.mktemp("fuzz") / "data",
        enrolment_source_burst=100_000,
        enrolment_source_per_minute=100_000,
    ).start()
    try:
        yield running
    finally:
        running.stop()
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(
            json.dumps(
                {
                    "requests": TALLY.requests,
                    "server_errors": len(TALLY.server_errors),
                    "by_status": {str(k): v for k, v in sorted(TALLY.by_status.items())},
                    "operations": len(OPERATIONS),
                    "examples_per_operation_and_mode": EXAMPLES,
                },
                indent=2,
            )
            + "\n"
        )


def _session(server: RunningServer, tmp: Path, *, admin: bool) -> requests.Session:
    # The bundle is read for every session: a fuzzed ca:prepare/activate may
    # rotate the CA, and the serving certificate with it.
    context = ssl.create_default_context(cadata=server.bundle_pem())
    if admin:
        tmp.mkdir(parents=True, exist_ok=True)
        identity = server.admin
        (tmp / "cert.pem").write_bytes(identity.cert_pem)
        (tmp / "key.pem").write_bytes(identity.key_pem)
        context.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    session = requests.Session()
    session.mount("https://", _Tls(context))
    return session


def _header(response: Any, name: str) -> str | None:
    """A response header (schemathesis keeps them lowercased, as lists)."""
    values = response.headers.get(name.lower())
    return str(values[0]) if values else None


def _check(case: Any, response: Any, label: str) -> None:
    status = response.status_code
    TALLY.requests += 1
    TALLY.by_status[status] += 1
    where = f"{label}: {case.method} {case.formatted_path}"
    if status >= 500:
        TALLY.server_errors.append(where)
    assert status < 500, f"{where} answered {status}: {response.text_lossy[:500]}"
    request_id = _header(response, "Request-Id")
    assert request_id, f"{where} answered {status} without a Request-Id"
    if status < 400:
        return
    content_type = _header(response, "Content-Type") or ""
    assert content_type.startswith("application/json"), (
        f"{where} answered {status} with {content_type!r}: {response.text_lossy[:200]}"
    )
    error = response.json()["error"]
    assert isinstance(error["code"], str), where
    assert isinstance(error["message"], str), where
    assert error["message"].startswith("secinfra: "), (where, error["message"])
    assert error["request_id"] == request_id, where


def _fuzz(
    server: RunningServer, tmp: Path, operation_id: str, mode: GenerationMode, *, admin: bool
) -> None:
    operation = OPERATIONS[operation_id]
    label = f"{operation_id} ({mode.value}, {'admin' if admin else 'no client certificate'})"
    started = time.monotonic()
    base_url = f"https://127.0.0.1:{server.port}"
    sessions = [_session(server, tmp, admin=admin)]
    sent = 0

    def call(case: Any) -> Any:
        try:
            return case.call(
                base_url=base_url, session=sessions[0], timeout=REQUEST_TIMEOUT_SECONDS
            )
        except requests.exceptions.SSLError:
            # A fuzzed ca:activate moved the serving certificate to a new CA:
            # trust the bundle as it is now, once.
            sessions[0].close()
            sessions[0] = _session(server, tmp, admin=admin)
            return case.call(
                base_url=base_url, session=sessions[0], timeout=REQUEST_TIMEOUT_SECONDS
            )

    @hypothesis.settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        nonlocal sent
        if time.monotonic() - started > CAP_SECONDS:
            return
        sent += 1
        _check(case, call(case), label)

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        if sent:
            raise
        pytest.skip(f"{operation_id} has no input that breaks its schema (no negative case)")
    finally:
        sessions[0].close()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize("operation_id", sorted(OPERATIONS))
def test_every_operation_as_the_admin(
    operation_id: str, mode: GenerationMode, fuzzed: RunningServer, tmp_path: Path
) -> None:
    _fuzz(fuzzed, tmp_path, operation_id, mode, admin=True)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize("operation_id", sorted(OPERATIONS))
def test_every_operation_without_a_client_certificate(
    operation_id: str, mode: GenerationMode, fuzzed: RunningServer, tmp_path: Path
) -> None:
    _fuzz(fuzzed, tmp_path, operation_id, mode, admin=False)


def test_the_fuzzer_covered_every_operation() -> None:
    """The document has the operations this test expects to fuzz, and the
    ones without a client certificate are exactly the AUTH_NONE RPCs."""
    assert len(OPERATIONS) >= 29
    assert NO_CLIENT_CERT == [
        "IdentityService_GetCrl",
        "IdentityService_GetLoginConfig",
        "IdentityService_GetTrustBundle",
        "IdentityService_IssueCertificate",
    ]
