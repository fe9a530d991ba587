"""Certificates over time: CA rotation, revocation and expiry on open
connections, serving-certificate hot reload, graceful shutdown."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from cryptography import x509

from secinfra_server._gen import identity as m
from secinfra_server._rpc import Handler, RequestContext
from secinfra_server.server import Server

from .harness import Client, RunningServer, csr_pem, enrol, new_key

#: The longest admin identity (the default, 8 h, would expire before these rotations).
WEEK_SECONDS = 7 * 86400


def _ca_ids(admin: Client) -> dict[str, str]:
    status = admin.request("GET", "/v1/ca").json()
    return {a["id"]: a["state"] for a in status["authorities"]}


def _bundle_keys(anon: Client) -> int:
    return len(anon.request("GET", "/v1/bundle").json()["keys"])


def test_ca_rotation_while_a_client_holds_an_old_certificate(
    server: RunningServer, admin: Client, tmp_path: Path
) -> None:
    old_identity = enrol(server, tmp_path, "/workload/old")
    (old_ca,) = _ca_ids(admin)
    old_client = Client(server.port, server.bundle_pem(), old_identity, tmp_path / "old")
    assert old_client.request("GET", "/v1/identity:whoami").status == 200

    bundle_before = Client(server.port, server.bundle_pem()).request("GET", "/v1/bundle")
    assert admin.request("POST", "/v1/ca:prepare", {}).status == 200
    states = _ca_ids(admin)
    assert sorted(states.values()) == ["active", "prepared"]
    bundle_after = Client(server.port, server.bundle_pem()).request("GET", "/v1/bundle")
    assert bundle_after.json()["spiffe_sequence"] > bundle_before.json()["spiffe_sequence"]
    assert len(bundle_after.json()["keys"]) == 2
    assert bundle_after.headers["etag"] != bundle_before.headers["etag"]
    # Clients refresh their bundle (SDKs do so at the refresh hint), so they
    # trust the new CA before it signs anything.
    old_client.bundle_pem = server.bundle_pem()
    admin.bundle_pem = server.bundle_pem()

    assert admin.request("POST", "/v1/ca:activate", {}).status == 200
    states = _ca_ids(admin)
    assert states[old_ca] == "retiring"
    (new_ca,) = [i for i, s in states.items() if s == "active"]

    # The old leaf still works on its open connection and on a new one.
    assert old_client.request("GET", "/v1/identity:whoami").status == 200
    old_client.close()
    assert old_client.request("GET", "/v1/identity:whoami").status == 200
    assert old_client.peer_certificate().issuer != old_identity.cert.issuer

    # New certificates come from the new CA; clients trusting both verify the server.
    renewed = old_client.request("POST", "/v1/identity:renew", {"csr_pem": csr_pem(new_key())})
    assert renewed.status == 200
    leaf = x509.load_pem_x509_certificate(renewed.json()["svid"]["cert_chain_pem"].encode())
    new_ca_cert = next(
        a
        for a in server.server.ca_runtime.authorities
        if a.id == new_ca  # type: ignore[union-attr]
    )
    assert leaf.issuer == new_ca_cert.certificate.subject

    # Retiring the old CA is refused while its leaves are unexpired...
    refused = admin.request("POST", "/v1/ca:retire", {"ca_id": old_ca})
    assert refused.status == 412
    assert refused.code == "failed_precondition"
    # ...and once forced, its leaves stop working even on open connections.
    assert admin.request("POST", "/v1/ca:retire", {"ca_id": old_ca, "force": True}).status == 200
    stale = old_client.request("GET", "/v1/identity:whoami")
    assert stale.status == 401
    assert stale.code == "unauthenticated"
    old_client.close()


def test_revocation_applies_to_an_open_keep_alive_connection(
    server: RunningServer, admin: Client, tmp_path: Path
) -> None:
    identity = enrol(server, tmp_path)
    me = Client(server.port, server.bundle_pem(), identity, tmp_path / "me")
    assert me.request("GET", "/v1/identity:whoami").status == 200
    conn = me.conn
    serial = f"{identity.cert.serial_number:x}"
    revoked = admin.request("POST", "/v1/revocations", {"serial": serial, "reason": "test"})
    assert revoked.status == 200
    assert me.conn is conn, "still the same keep-alive connection"
    resp = me.request("GET", "/v1/identity:whoami")
    assert resp.status == 401
    assert resp.code == "unauthenticated"
    assert "revoked" in resp.json()["error"]["message"]
    assert resp.headers.get("connection") == "close"
    # Revoking twice is idempotent; the deny-list shows one entry.
    assert admin.request("POST", "/v1/revocations", {"serial": serial}).status == 200
    entries = admin.request("GET", "/v1/revocations").json()["revocations"]
    assert [e["serial"] for e in entries] == [serial]
    # The CRL lists it.
    crl_pem = Client(server.port, server.bundle_pem()).request("GET", "/v1/crl").json()["crl_pem"]
    crl = x509.load_pem_x509_crl(crl_pem.encode())
    assert crl.get_revoked_certificate_by_serial_number(identity.cert.serial_number) is not None


def test_revoking_a_spiffe_id_blocks_renewal_and_requests(
    server: RunningServer, admin: Client, tmp_path: Path
) -> None:
    identity = enrol(server, tmp_path)
    me = Client(server.port, server.bundle_pem(), identity, tmp_path / "me")
    admin.request("POST", "/v1/revocations", {"spiffe_id": "spiffe://secinfra.local/workload/a"})
    resp = me.request("POST", "/v1/identity:renew", {"csr_pem": csr_pem(new_key())})
    me.close()
    assert resp.status == 401


def test_a_keep_alive_connection_never_outlives_its_certificate(
    server: RunningServer, tmp_path: Path
) -> None:
    identity = enrol(server, tmp_path)
    me = Client(server.port, server.bundle_pem(), identity, tmp_path / "me")
    assert me.request("GET", "/v1/identity:whoami").status == 200
    conn = me.conn
    server.server.clock.shift(timedelta(hours=2))  # past the 1 h leaf TTL
    resp = me.request("GET", "/v1/identity:whoami")
    assert conn is not None
    assert resp.status == 401
    assert "expired" in resp.json()["error"]["message"]
    assert me.conn is None, "the server closed the connection"


def test_serving_certificate_hot_reload(server: RunningServer, tmp_path: Path) -> None:
    first = Client(server.port, server.bundle_pem())
    before = first.peer_certificate()
    assert first.request("GET", "/v1/bundle").status == 200
    server.call(server.server.reload_serving_identity())
    second = Client(server.port, server.bundle_pem())
    after = second.peer_certificate()
    assert after.serial_number != before.serial_number
    san = after.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    assert uris == ["spiffe://secinfra.local/secinfra/server"]
    # The connection opened before the reload keeps working.
    assert first.request("GET", "/v1/bundle").status == 200
    first.close()
    second.close()


class _SlowWhoAmI(Server):
    """The real server with whoami slowed down, so a request stays in flight."""

    def extra_handlers(self) -> dict[str, Handler]:
        async def slow_whoami(ctx: RequestContext, _req: object) -> m.GetCallerIdentityResponse:
            await asyncio.sleep(1.0)
            assert ctx.peer is not None
            return m.GetCallerIdentityResponse(spiffe_id=ctx.peer.spiffe_id)

        return {"get_caller_identity": slow_whoami}


def test_graceful_shutdown_finishes_in_flight_requests(tmp_path: Path) -> None:
    server = RunningServer(tmp_path / "data", server_class=_SlowWhoAmI).start()
    try:
        admin = Client(server.port, server.bundle_pem(), server.admin, tmp_path / "admin")
        conn = admin.connect()
        conn.request("GET", "/v1/identity:whoami")
        time.sleep(0.3)  # the request is now in its (slow) handler
        stopper = threading.Thread(target=lambda: server.call(server.server.stop()))
        stopper.start()
        time.sleep(0.3)
        # New connections are refused while the in-flight request finishes.
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
            refused = False
        except OSError:
            refused = True
        response = conn.getresponse()
        body = response.read()
        stopper.join(30)
        assert refused
        assert response.status == 200, body
        assert b"secinfra/admin" in body
    finally:
        server.stop()


def test_load_shedding_answers_503_instead_of_queueing(tmp_path: Path) -> None:
    server = RunningServer(tmp_path / "data", server_class=_SlowWhoAmI, max_in_flight=1).start()
    try:
        busy = Client(server.port, server.bundle_pem(), server.admin, tmp_path / "busy")
        conn = busy.connect()
        conn.request("GET", "/v1/identity:whoami")
        time.sleep(0.3)  # one request in flight: the limit
        other = Client(server.port, server.bundle_pem())
        shed = other.request("GET", "/v1/bundle")
        other.close()
        assert shed.status == 503
        assert shed.code == "unavailable"
        assert shed.headers["retry-after"] == "1"
        assert shed.headers["secinfra-should-retry"] == "true"
        assert conn.getresponse().status == 200
        busy.close()
        # With nothing in flight, requests are served again.
        assert Client(server.port, server.bundle_pem()).request("GET", "/v1/bundle").status == 200
    finally:
        server.stop()


def _wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def _short_ca_server(tmp_path: Path) -> RunningServer:
    """3-day CAs, a 60 s hint, and an admin certificate that outlives the first rotation."""
    return RunningServer(
        tmp_path / "data",
        ca_ttl_days=3,
        bundle_refresh_hint_seconds=60,
        admin_cert_ttl_seconds=WEEK_SECONDS,
    ).start()


def test_ca_rotates_on_schedule(tmp_path: Path) -> None:
    server = _short_ca_server(tmp_path)
    try:
        authority = server.server.ca_runtime
        assert authority is not None
        (first,) = authority.authorities

        def states() -> list[str]:
            return sorted(str(a.state) for a in authority.authorities)

        # Two thirds into the CA's life a successor is prepared...
        server.server.clock.shift(timedelta(days=2, hours=1))
        assert _wait_for(lambda: states() == ["active", "prepared"]), states()
        # ...and activated once it has been in the bundle for a refresh hint.
        server.server.clock.shift(timedelta(seconds=90))
        assert _wait_for(lambda: states() == ["active", "retiring"]), states()
        assert authority.leaves_expire_by(first.id) is not None, "admin cert is recorded"
        # The old CA stays while a recorded leaf (the week-long admin cert) chains to it.
        server.server.clock.shift(timedelta(hours=2))
        time.sleep(2.5)
        assert states() == ["active", "retiring"]
        # Later both are due: the old CA expired (its leaves, capped at its own
        # expiry, with it) and the new CA is two thirds through its life.
        server.server.clock.shift(timedelta(days=2))
        assert _wait_for(lambda: states() == ["active", "prepared", "retired"]), states()
    finally:
        server.stop()


def test_serving_certificate_renews_at_half_life(tmp_path: Path) -> None:
    server = RunningServer(tmp_path / "data", test_hooks=True, server_cert_ttl_seconds=4).start()
    try:
        first = Client(server.port, server.bundle_pem()).peer_certificate().serial_number
        assert _wait_for(
            lambda: (
                Client(server.port, server.bundle_pem()).peer_certificate().serial_number != first
            ),
            timeout=8,
        )
        # It does not renew in a loop: the new one lives ~2 s (half of 4 s) first.
        assert server.server.tls is not None
        reloads = server.server.tls.reloads
        time.sleep(1.0)
        assert server.server.tls.reloads == reloads
    finally:
        server.stop()


def test_a_blocked_retirement_does_not_stall_the_next_rotation(
    tmp_path: Path,
) -> None:
    server = _short_ca_server(tmp_path)
    try:
        admin = Client(server.port, server.bundle_pem(), server.admin, tmp_path / "admin")
        assert admin.request("POST", "/v1/ca:prepare", {}).status == 200
        admin.bundle_pem = server.bundle_pem()
        assert admin.request("POST", "/v1/ca:activate", {}).status == 200
        admin.close()
        authority = server.server.ca_runtime
        assert authority is not None

        def states() -> list[str]:
            return sorted(str(a.state) for a in authority.authorities)

        # Two thirds into the new CA's life its successor is due, while the old CA
        # still cannot retire: init's admin certificate chains to it until it expires.
        server.server.clock.shift(timedelta(days=2, hours=1))
        assert _wait_for(lambda: states() == ["active", "prepared", "retiring"]), states()
    finally:
        server.stop()


def _crls(pem: str) -> list[x509.CertificateRevocationList]:
    end = "-----END X509 CRL-----"
    blocks = [block + end for block in pem.split(end) if block.strip()]
    return [x509.load_pem_x509_crl(block.strip().encode()) for block in blocks]


def test_one_crl_per_signing_ca_each_listing_its_own_serials(
    server: RunningServer, admin: Client, tmp_path: Path
) -> None:
    old = enrol(server, tmp_path, "/workload/old")
    assert admin.request("POST", "/v1/ca:prepare", {}).status == 200
    admin.bundle_pem = server.bundle_pem()
    assert admin.request("POST", "/v1/ca:activate", {}).status == 200
    new = enrol(server, tmp_path, "/workload/new")
    anon = Client(server.port, server.bundle_pem())
    first = anon.request("GET", "/v1/crl").json()
    for identity in (old, new):
        serial = f"{identity.cert.serial_number:x}"
        assert admin.request("POST", "/v1/revocations", {"serial": serial}).status == 200
    crls = _crls(anon.request("GET", "/v1/crl").json()["crl_pem"])
    anon.close()
    assert len(crls) == 2
    for identity in (old, new):
        (mine,) = [c for c in crls if c.issuer == identity.cert.issuer]
        others = [c for c in crls if c.issuer != identity.cert.issuer]
        assert mine.get_revoked_certificate_by_serial_number(identity.cert.serial_number)
        assert not others[0].get_revoked_certificate_by_serial_number(identity.cert.serial_number)
    numbers = [c.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number for c in crls]
    first_crl = _crls(first["crl_pem"])[0]
    first_number = first_crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert min(numbers) > first_number
