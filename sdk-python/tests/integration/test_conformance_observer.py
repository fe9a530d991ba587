"""The conformance client's observer feature, driven over its JSON-lines protocol.

The conformance suite's cases (conformance/cases) test the SDKs through
their clients; this test holds the Python client's side of the protocol:
``configure.observer`` registers the recording observer (and the failing one
first), and ``observations`` answers what it recorded, then forgets it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from secinfra.testing import ReferenceServer

from .support import TRUST_DOMAIN, Log, header

CLIENT = Path(__file__).parents[2] / "conformance" / "client.py"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


class Driver:
    """The conformance client as a subprocess: one request line in, one answer out."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(CLIENT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.hello = self._read()["hello"]
        self._ids = 0

    def _read(self) -> Any:
        assert self.process.stdout is not None
        return json.loads(self.process.stdout.readline())

    def ask(self, op: str, **fields: Any) -> Any:
        assert self.process.stdin is not None
        self._ids += 1
        self.process.stdin.write(json.dumps({"id": self._ids, "op": op, **fields}) + "\n")
        self.process.stdin.flush()
        answer = self._read()
        assert answer["id"] == self._ids
        return answer

    def close(self) -> None:
        self.ask("shutdown")
        self.process.wait(timeout=30)


@pytest.fixture
def driver() -> Iterator[Driver]:
    running = Driver()
    yield running
    running.close()


def _configure(driver: Driver, server: ReferenceServer, unique: str, observer: Any) -> None:
    answer = driver.ask(
        "configure",
        server_url=server.url,
        bundle_pem=server.bundle_file.read_text(),
        join_token=server.join_token(f"spiffe://{TRUST_DOMAIN}/{unique}"),
        observer=observer,
    )
    assert answer["ok"], answer


def test_the_hello_declares_the_observer_feature_and_op(driver: Driver) -> None:
    assert "observer" in driver.hello["features"]
    assert "observations" in driver.hello["ops"]


def test_observations_are_recorded_from_enrolment_on_and_cleared(
    driver: Driver, server: ReferenceServer, unique: str, log: Log
) -> None:
    _configure(
        driver,
        server,
        unique,
        {
            "traceparent": f"00-{TRACE_ID}-{{attempt}}-01",
            "tracestate": "conf=1",
            "failing_first": True,
        },
    )
    enrolment = driver.ask("observations")
    assert enrolment["ok"], enrolment
    rpcs = {o["rpc"] for o in enrolment["result"]["observations"]}
    assert "secinfra.v1.IdentityService/IssueCertificate" in rpcs

    call = driver.ask("call", rpc="GetCallerIdentity", request={}, call_options={"max_attempts": 1})
    assert call["ok"], call
    observed = driver.ask("observations")["result"]["observations"]
    rpc = "secinfra.v1.IdentityService/GetCallerIdentity"
    assert observed == [
        {"kind": "call_started", "rpc": rpc, "idempotency": "read_only"},
        {"kind": "attempt_started", "rpc": rpc, "attempt": 1, "endpoint": server.url},
        {"kind": "attempt_finished", "rpc": rpc, "attempt": 1, "status": 200},
        {"kind": "call_finished", "rpc": rpc, "ok": True, "meta": call["meta"]},
    ]
    [entry] = log.entries("GetCallerIdentity")
    assert header(entry, "traceparent") == f"00-{TRACE_ID}-{1:016x}-01"
    assert header(entry, "tracestate") == "conf=1"
    assert driver.ask("observations")["result"]["observations"] == []


def test_without_observer_setup_observations_is_an_adapter_error(
    driver: Driver, server: ReferenceServer, unique: str
) -> None:
    answer = driver.ask(
        "configure",
        server_url=server.url,
        bundle_pem=server.bundle_file.read_text(),
        join_token=server.join_token(f"spiffe://{TRUST_DOMAIN}/{unique}"),
    )
    assert answer["ok"], answer
    refused = driver.ask("observations")
    assert not refused["ok"]
    assert refused["error"]["type"] == "AdapterError"
