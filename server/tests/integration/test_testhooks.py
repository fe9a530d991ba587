"""Test mode: the conformance control API."""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from secinfra_server.server import admin_files

from .harness import Client, RunningServer, enrol


@pytest.fixture
def hooked(tmp_path: Path) -> Iterator[RunningServer]:
    server = RunningServer(tmp_path / "data", test_hooks=True).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def control(hooked: RunningServer, tmp_path: Path) -> Iterator[Client]:
    client = Client(hooked.port, hooked.bundle_pem(), hooked.admin, tmp_path / "control")
    yield client
    client.close()


def _script(control: Client, rpc: str, *steps: dict[str, object]) -> None:
    resp = control.request("POST", "/_test/scripts", {"rpc": rpc, "steps": list(steps)})
    assert resp.status == 200, resp.body


def test_scripted_statuses_then_the_real_handler(hooked: RunningServer, control: Client) -> None:
    _script(
        control,
        "GetTrustBundle",
        {"status": 503, "headers": {"Retry-After": "1", "Secinfra-Should-Retry": "true"}},
        {"status": 429, "body": {"error": {"code": "rate_limited", "message": "slow down"}}},
    )
    anon = Client(hooked.port, hooked.bundle_pem())
    first = anon.request("GET", "/v1/bundle", headers={"Secinfra-Attempt": "1"})
    second = anon.request("GET", "/v1/bundle", headers={"Secinfra-Attempt": "2"})
    third = anon.request("GET", "/v1/bundle", headers={"Secinfra-Attempt": "3"})
    anon.close()
    assert (first.status, second.status, third.status) == (503, 429, 200)
    assert first.headers["retry-after"] == "1"
    assert first.headers["secinfra-should-retry"] == "true"
    assert second.json()["error"]["code"] == "rate_limited"
    assert "keys" in third.json()
    log = control.request("GET", "/_test/requests?rpc=GetTrustBundle").json()["requests"]
    assert [e["status"] for e in log] == [503, 429, 200]
    assert [e["scripted"] for e in log] == [True, True, False]
    assert [e["headers"]["Secinfra-Attempt"] for e in log] == ["1", "2", "3"]
    assert log[0]["received_monotonic"] < log[1]["received_monotonic"]
    datetime.fromisoformat(log[0]["received_at"])


def test_pass_step_and_delay(hooked: RunningServer, control: Client) -> None:
    _script(control, "GetTrustBundle", {"pass": True}, {"status": 200, "delay_ms": 300})
    anon = Client(hooked.port, hooked.bundle_pem())
    assert "keys" in anon.request("GET", "/v1/bundle").json()
    started = time.monotonic()
    delayed = anon.request("GET", "/v1/bundle")
    anon.close()
    assert time.monotonic() - started >= 0.3
    assert delayed.status == 200
    assert delayed.body == b""


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("before_headers", http.client.RemoteDisconnected),
        ("after_headers", http.client.IncompleteRead),
    ],
)
def test_connection_resets(
    mode: str, error: type[Exception], hooked: RunningServer, control: Client
) -> None:
    _script(control, "GetTrustBundle", {"status": 200, "body": {"keys": []}, "reset": mode})
    anon = Client(hooked.port, hooked.bundle_pem())
    with pytest.raises(error):
        anon.request("GET", "/v1/bundle")
    anon.close()
    # The server is fine afterwards and logged the attempt.
    assert Client(hooked.port, hooked.bundle_pem()).request("GET", "/v1/bundle").status == 200
    log = control.request("GET", "/_test/requests?rpc=GetTrustBundle").json()["requests"]
    assert log[0]["scripted"] is True


def test_the_log_shows_the_client_certificate(
    hooked: RunningServer, control: Client, tmp_path: Path
) -> None:
    identity = enrol(hooked, tmp_path)
    me = Client(hooked.port, hooked.bundle_pem(), identity, tmp_path / "me")
    me.request("GET", "/v1/identity:whoami", headers={"Idempotency-Key": "k1"})
    me.close()
    (entry,) = control.request("GET", "/_test/requests?rpc=GetCallerIdentity").json()["requests"]
    assert entry["client_spiffe_id"] == "spiffe://secinfra.local/workload/a"
    assert entry["client_serial"] == f"{identity.cert.serial_number:x}"
    assert entry["headers"]["Idempotency-Key"] == "k1"
    assert control.request("DELETE", "/_test/requests").status == 200
    assert control.request("GET", "/_test/requests").json()["requests"] == []


def test_the_log_numbers_connections_and_shows_presented_certificates(
    hooked: RunningServer, control: Client, tmp_path: Path
) -> None:
    identity = enrol(hooked, tmp_path)
    serial = f"{identity.cert.serial_number:x}"
    me = Client(hooked.port, hooked.bundle_pem(), identity, tmp_path / "me")
    assert me.request("GET", "/v1/identity:whoami").status == 200
    assert me.request("GET", "/v1/identity:whoami").status == 200  # same keep-alive connection
    me.close()
    assert me.request("GET", "/v1/identity:whoami").status == 200  # a new connection
    revoked = control.request("POST", "/v1/revocations", {"serial": serial, "reason": "test"})
    assert revoked.status == 200, revoked.body
    # The deny-list applies to the open connection's next request.
    refused = me.request("GET", "/v1/identity:whoami")
    me.close()
    assert refused.status in (401, 403)
    anon = Client(hooked.port, hooked.bundle_pem())
    assert anon.request("GET", "/v1/bundle").status == 200
    anon.close()

    log = control.request("GET", "/_test/requests").json()["requests"]
    mine = [e for e in log if e["rpc"] == "GetCallerIdentity"]
    connections = [e["connection"] for e in mine]
    assert connections[0] == connections[1] != connections[2] == connections[3]
    assert all(isinstance(c, int) for c in connections)
    # The presented certificate is logged even when the server refuses it.
    assert [e["client_serial"] for e in mine] == [serial] * 4
    assert mine[3]["status"] == refused.status
    assert mine[3]["client_spiffe_id"] == "spiffe://secinfra.local/workload/a"
    not_after = datetime.fromisoformat(mine[0]["client_not_after"])
    assert not_after == identity.cert.not_valid_after_utc
    assert mine[0]["client_issuer"] == identity.cert.issuer.rfc4514_string()
    (bundle,) = [e for e in log if e["rpc"] == "GetTrustBundle"]
    assert bundle["client_serial"] is None
    assert bundle["client_not_after"] is None
    assert bundle["connection"] not in connections


def test_admin_identity_is_reissued_from_the_active_ca(
    hooked: RunningServer, control: Client, tmp_path: Path
) -> None:
    old = hooked.admin.cert
    assert control.request("POST", "/_test/ca/rotate", {}).status == 200
    answer = control.request("POST", "/_test/admin-identity", {})
    control.close()
    assert answer.status == 200, answer.body
    new = hooked.admin.cert
    assert answer.json()["serial"] == f"{new.serial_number:x}"
    assert new.serial_number != old.serial_number
    assert new.issuer != old.issuer  # signed by the CA the rotation activated
    _, key_path, bundle_path = admin_files(hooked.config.data_dir)
    assert key_path.stat().st_mode & 0o777 == 0o600
    assert bundle_path.read_text() == hooked.bundle_pem()
    renewed = Client(hooked.port, hooked.bundle_pem(), hooked.admin, tmp_path / "renewed")
    assert renewed.request("GET", "/_test/requests").status == 200
    renewed.close()
    workload = Client(hooked.port, hooked.bundle_pem(), enrol(hooked, tmp_path), tmp_path / "w")
    assert workload.request("POST", "/_test/admin-identity", {}).status == 403
    workload.close()


def test_leaf_ttl_clock_and_rotation_controls(
    hooked: RunningServer, control: Client, tmp_path: Path
) -> None:
    assert control.request("POST", "/_test/ca/leaf-ttl", {"seconds": 1}).status == 400
    assert control.request("POST", "/_test/ca/leaf-ttl", {"seconds": 5}).status == 200
    identity = enrol(hooked, tmp_path)
    cert = identity.cert
    # 5 s of validity plus the 60 s NotBefore backdating.
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= timedelta(seconds=65)
    me = Client(hooked.port, hooked.bundle_pem(), identity, tmp_path / "me")
    assert me.request("GET", "/v1/identity:whoami").status == 200
    shifted = control.request("POST", "/_test/clock", {"shift_seconds": 3600})
    assert shifted.json()["offset_seconds"] == 3600
    assert me.request("GET", "/v1/identity:whoami").status == 401
    assert control.request("DELETE", "/_test/clock").json() == {"offset_seconds": 0.0}
    me.close()

    before = control.request("GET", "/v1/bundle").json()
    rotated = control.request("POST", "/_test/ca/rotate", {})
    assert rotated.status == 200
    after = Client(hooked.port, hooked.bundle_pem()).request("GET", "/v1/bundle").json()
    assert after["spiffe_sequence"] > before["spiffe_sequence"]
    assert len(after["keys"]) == 2

    old_serial = Client(hooked.port, hooked.bundle_pem()).peer_certificate().serial_number
    assert control.request("POST", "/_test/server-certificate/rotate", {}).status == 200
    new_cert: x509.Certificate = Client(hooked.port, hooked.bundle_pem()).peer_certificate()
    assert new_cert.serial_number != old_serial


def test_control_api_needs_the_admin(hooked: RunningServer, tmp_path: Path) -> None:
    me = Client(hooked.port, hooked.bundle_pem(), enrol(hooked, tmp_path), tmp_path / "me")
    assert me.request("GET", "/_test/requests").status == 403
    me.close()
    anon = Client(hooked.port, hooked.bundle_pem())
    assert anon.request("GET", "/_test/requests").status == 401
    anon.close()


@pytest.mark.parametrize(
    "body",
    [
        {"rpc": "NoSuchRpc", "steps": [{}]},
        {"rpc": "GetSecret", "steps": []},
        {"rpc": "GetSecret", "steps": [{"status": 99}]},
        {"rpc": "GetSecret", "steps": [{"reset": "sometimes"}]},
        {"rpc": "GetSecret", "steps": [{"surprise": 1}]},
    ],
)
def test_bad_scripts_are_rejected(body: dict[str, object], control: Client) -> None:
    resp = control.request("POST", "/_test/scripts", body)
    assert resp.status == 400
    assert resp.json()["error"]["code"] == "invalid_argument"


def test_hooks_are_off_by_default(admin: Client) -> None:
    resp = admin.request("GET", "/_test/requests")
    assert resp.status == 404
