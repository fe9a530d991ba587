"""Test mode: the conformance control API."""

from __future__ import annotations

import http.client
import json
import socket
import sqlite3
import ssl
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec

from secinfra_server.config import admin_files

from .harness import Client, Identity, RunningServer, csr_pem, enrol, key_pem, new_key


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


OTHER_ID = "spiffe://secinfra.local/workload/other"


def _spiffe_id(cert: x509.Certificate) -> str:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    (uri,) = san.get_values_for_type(x509.UniformResourceIdentifier)
    return str(uri)


def _chains_to(cert: x509.Certificate, bundle_pem: str) -> bool:
    """Whether ``cert`` is signed by one of the bundle's CAs (signature checked)."""
    for authority in x509.load_pem_x509_certificates(bundle_pem.encode()):
        try:
            cert.verify_directly_issued_by(authority)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return True
    return False


def _renew(hooked: RunningServer, identity: Identity, tmp: Path) -> tuple[Identity, int]:
    """Renew ``identity`` with a fresh key; the new identity and the answer's status."""
    key = new_key()
    me = Client(hooked.port, hooked.bundle_pem(), identity, tmp)
    resp = me.request("POST", "/v1/identity:renew", {"csr_pem": csr_pem(key)})
    me.close()
    assert resp.status == 200, resp.body
    svid = resp.json()["svid"]
    renewed = Identity(svid["cert_chain_pem"].encode(), key_pem(key))
    assert svid["spiffe_id"] == _spiffe_id(renewed.cert)
    assert isinstance(renewed.cert.public_key(), ec.EllipticCurvePublicKey)
    assert renewed.cert.public_key() == key.public_key()  # still the CSR's key
    return renewed, resp.status


def _issued_ids(hooked: RunningServer, serial: int) -> tuple[str, str]:
    """(issued_certificates.spiffe_id, the audit entry's resource) for one serial."""
    conn = sqlite3.connect(hooked.config.database_path)
    try:
        (recorded,) = conn.execute(
            "SELECT spiffe_id FROM issued_certificates WHERE serial = ?", (f"{serial:x}",)
        ).fetchone()
        deadline = time.monotonic() + 10  # the audit log is written in the background
        while True:
            row = conn.execute(
                "SELECT resource FROM audit_log WHERE details LIKE ?", (f'%"{serial:x}"%',)
            ).fetchone()
            if row is not None or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        conn.close()
    assert row is not None, "the issuance was not audited"
    return str(recorded), str(row[0])


def test_next_renewal_certifies_another_spiffe_id(
    hooked: RunningServer, control: Client, tmp_path: Path
) -> None:
    identity = enrol(hooked, tmp_path)
    armed = control.request("POST", "/_test/ca/next-issuance", {"spiffe_id": OTHER_ID})
    assert armed.status == 200, armed.body
    assert armed.json() == {"pending": 1}

    altered, _ = _renew(hooked, identity, tmp_path / "first")
    assert _spiffe_id(altered.cert) == OTHER_ID
    assert _chains_to(altered.cert, hooked.bundle_pem())
    assert _issued_ids(hooked, altered.cert.serial_number) == (OTHER_ID, OTHER_ID)

    # One answer only (times defaults to 1): the next renewal is as usual.
    again, _ = _renew(hooked, identity, tmp_path / "second")
    assert _spiffe_id(again.cert) == "spiffe://secinfra.local/workload/a"
    assert control.request("DELETE", "/_test/ca/next-issuance").json() == {"pending": 0}


def test_next_issuances_are_signed_by_a_ca_in_no_bundle(
    hooked: RunningServer, control: Client, tmp_path: Path
) -> None:
    armed = control.request("POST", "/_test/ca/next-issuance", {"untrusted_ca": True, "times": 2})
    assert armed.json() == {"pending": 2}
    # Neither the admin identity control nor the serving certificate uses it up.
    assert control.request("POST", "/_test/admin-identity", {}).status == 200
    assert _chains_to(hooked.admin.cert, hooked.bundle_pem())
    assert control.request("POST", "/_test/server-certificate/rotate", {}).status == 200
    control.close()
    assert _chains_to(
        Client(hooked.port, hooked.bundle_pem()).peer_certificate(), hooked.bundle_pem()
    )

    first = enrol(hooked, tmp_path / "a")
    second = enrol(hooked, tmp_path / "b", "/workload/b")
    for identity, expected in ((first, "/workload/a"), (second, "/workload/b")):
        cert = identity.cert
        assert _spiffe_id(cert) == f"spiffe://secinfra.local{expected}"
        assert not _chains_to(cert, hooked.bundle_pem())
        assert cert.issuer not in {
            ca.subject for ca in x509.load_pem_x509_certificates(hooked.bundle_pem().encode())
        }
        # The certificate is unusable against this server: its CA is trusted nowhere.
        me = Client(hooked.port, hooked.bundle_pem(), identity, tmp_path / expected.strip("/"))
        try:
            status = me.request("GET", "/v1/identity:whoami").status
        except (OSError, http.client.HTTPException):
            status = 0  # refused during the handshake
        me.close()
        assert status in (0, 401)
    assert _issued_ids(hooked, first.cert.serial_number) == (
        "spiffe://secinfra.local/workload/a",
        "spiffe://secinfra.local/workload/a",
    )
    third = enrol(hooked, tmp_path / "c", "/workload/c")
    assert _chains_to(third.cert, hooked.bundle_pem())


def test_both_alterations_at_once_and_clearing(
    hooked: RunningServer, control: Client, tmp_path: Path
) -> None:
    body = {"spiffe_id": OTHER_ID, "untrusted_ca": True, "times": 3}
    assert control.request("POST", "/_test/ca/next-issuance", body).json() == {"pending": 3}
    identity = enrol(hooked, tmp_path)
    assert _spiffe_id(identity.cert) == OTHER_ID
    assert not _chains_to(identity.cert, hooked.bundle_pem())
    assert control.request("DELETE", "/_test/ca/next-issuance").json() == {"pending": 0}
    plain = enrol(hooked, tmp_path / "plain")
    assert _spiffe_id(plain.cert) == "spiffe://secinfra.local/workload/a"
    assert _chains_to(plain.cert, hooked.bundle_pem())


@pytest.mark.parametrize(
    ("body", "hint"),
    [
        ({}, "give spiffe_id"),
        ({"untrusted_ca": False, "times": 2}, "give spiffe_id"),
        ({"untrusted_ca": "yes"}, "untrusted_ca must be true or false"),
        ({"spiffe_id": OTHER_ID, "times": 0}, "times must be an integer >= 1"),
        ({"spiffe_id": OTHER_ID, "times": True}, "times must be an integer >= 1"),
        ({"spiffe_id": "not a spiffe id"}, "not a valid SPIFFE ID"),
        ({"spiffe_id": 7}, "spiffe_id must be a string"),
        ({"spiffe_id": "spiffe://elsewhere.example/app"}, "trust domain"),
        ({"spiffe_id": "spiffe://secinfra.local"}, "needs a path"),
        ({"spiffe_id": "spiffe://secinfra.local/secinfra/server"}, "server's own identity"),
        ({"spiffe_id": OTHER_ID, "surprise": 1}, "unknown fields"),
    ],
)
def test_bad_next_issuance_bodies_are_rejected(
    body: dict[str, object], hint: str, control: Client
) -> None:
    resp = control.request("POST", "/_test/ca/next-issuance", body)
    assert resp.status == 400
    assert resp.code == "invalid_argument"
    assert hint in resp.json()["error"]["message"]
    assert control.request("DELETE", "/_test/ca/next-issuance").json() == {"pending": 0}


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


def test_the_log_shows_the_request_target_as_sent(hooked: RunningServer, control: Client) -> None:
    anon = Client(hooked.port, hooked.bundle_pem())
    # Not decoded, not normalised: what the client put on the request line.
    sent = [
        "/v1/join-tokens/a%2Fb%3Ac",
        "/v1/secrets/a/../b?version=0",
        "/v1/secrets/a//b?version=0&x=%2b",
    ]
    for target in sent:
        method = "DELETE" if "join-tokens" in target else "GET"
        anon.request(method, target)
    anon.close()
    log = control.request("GET", "/_test/requests").json()["requests"]
    assert [e["target"] for e in log[-3:]] == sent
    assert log[-3]["path"] == "/v1/join-tokens/a/b:c"


def test_the_log_shows_bodies_masked_with_a_keyed_digest(
    hooked: RunningServer, control: Client
) -> None:
    _script(control, "PutSecret", {"status": 503})
    put = {"value": "aHVudGVy", "policy": {"cache_max_age_seconds": 5}}
    # The scripted attempt, then the real handler's, then a body that is not JSON.
    assert control.request("PUT", "/v1/secrets/app/db", put).status == 503
    assert control.request("PUT", "/v1/secrets/app/db", put).status == 200
    assert control.request("PUT", "/v1/secrets/app/db", raw=b"{nope").status == 400
    enrolment = {"csr_pem": "x", "join_token": "sjt_secret-token"}
    Client(hooked.port, hooked.bundle_pem()).request("POST", "/v1/identity:issue", enrolment)
    log = control.request("GET", "/_test/requests").json()["requests"]
    scripted, real, broken, issue = log[-4:]
    masked = {"value": "<masked>", "policy": {"cache_max_age_seconds": 5}}
    assert (scripted["scripted"], scripted["body"], real["body"]) == (True, masked, masked)
    # Same bytes, same digest; the digest is keyed, so it is no hash of the value.
    assert scripted["body_digest"] == real["body_digest"]
    assert len(real["body_digest"]) == 64
    assert (broken["body"], broken["body_digest"] != real["body_digest"]) == (None, True)
    assert issue["body"] == {"csr_pem": "x", "join_token": "<masked>"}
    shown = json.dumps(log)
    assert "sjt_secret-token" not in shown
    assert "aHVudGVy" not in shown
    reads = [e for e in log if e["method"] == "GET"]
    assert all(e["body"] is None and e["body_digest"] is None for e in reads)


def test_a_wrong_serving_certificate_on_purpose(hooked: RunningServer, control: Client) -> None:
    def presented() -> x509.Certificate:
        # The chain is verified, the host name not: it is wrong on purpose below.
        context = ssl.create_default_context(cadata=hooked.bundle_pem())
        context.check_hostname = False
        with (
            socket.create_connection(("127.0.0.1", hooked.port), timeout=10) as raw,
            context.wrap_socket(raw) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der)

    def sans(cert: x509.Certificate) -> tuple[list[str], list[str], list[str]]:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return (
            [str(v) for v in san.get_values_for_type(x509.UniformResourceIdentifier)],
            [str(v) for v in san.get_values_for_type(x509.DNSName)],
            [str(v) for v in san.get_values_for_type(x509.IPAddress)],
        )

    rotate = "/_test/server-certificate/rotate"
    assert control.request("POST", rotate, {"spiffe_id": OTHER_ID}).status == 200
    assert sans(presented())[0] == [OTHER_ID]
    extra = {"extra_uri_sans": [OTHER_ID], "dns_names": ["wrong.invalid"], "ip_addresses": []}
    assert control.request("POST", rotate, extra).status == 200
    cert = presented()
    assert sans(cert) == (
        ["spiffe://secinfra.local/secinfra/server", OTHER_ID],
        ["wrong.invalid"],
        [],
    )
    assert _chains_to(cert, hooked.bundle_pem())  # only the named property is wrong
    assert control.request("POST", rotate, {}).status == 200
    assert sans(presented())[2] == ["127.0.0.1", "::1"]
    for body in ({"spiffe_id": "spiffe://elsewhere.test/x"}, {"dns_names": "x"}, {"sans": []}):
        resp = control.request("POST", rotate, body)
        assert (resp.status, resp.json()["error"]["code"]) == (400, "invalid_argument")
