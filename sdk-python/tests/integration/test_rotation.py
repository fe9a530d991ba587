"""Certificate renewal, expiry and CA rotation against servers of their own.

Every test here changes the server (leaf TTL, CA, scripts on the renewal RPC),
so each starts its own. Lifetimes are seconds, so every test ends in seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import secinfra
from secinfra import RotationEvent, RotationKind
from secinfra.errors import IdentityExpired
from secinfra.testing import ReferenceServer

from .support import TRUST_DOMAIN, header

LEAF_TTL_SECONDS = 4
ServerFactory = Callable[..., ReferenceServer]


class Events:
    """Rotation events as they arrive, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[RotationEvent] = []

    def __call__(self, event: RotationEvent) -> None:
        with self._lock:
            self._events.append(event)

    def events(self) -> list[RotationEvent]:
        with self._lock:
            return list(self._events)

    def kinds(self) -> list[RotationKind]:
        with self._lock:
            return [event.kind for event in self._events]


def _call_for(
    client: secinfra.Client, seconds: float, during: Callable[[], None] | None = None
) -> tuple[list[str], list[Exception]]:
    """Call whoami in a loop for ``seconds``; returns (serials seen, failures)."""
    serials: list[str] = []
    failures: list[Exception] = []
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if during is not None and time.monotonic() - started > seconds / 4:
            during()
            during = None
        try:
            serial = client.identity.get_caller_identity().serial
        except Exception as exc:
            failures.append(exc)
        else:
            if not serials or serials[-1] != serial:
                serials.append(serial)
        time.sleep(0.02)
    return serials, failures


def _public_key(identity: secinfra.X509Identity | None) -> bytes:
    assert identity is not None
    leaf = x509.load_pem_x509_certificates(identity.chain_pem)[0]
    key = serialization.load_pem_private_key(identity.key_pem, password=None)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    assert key.public_key().public_bytes(der, spki) == leaf.public_key().public_bytes(der, spki)
    return leaf.public_key().public_bytes(der, spki)


def _issuer(identity: secinfra.X509Identity | None) -> x509.Name:
    assert identity is not None
    return x509.load_pem_x509_certificates(identity.chain_pem)[0].issuer


def test_renewals_keep_every_call_working(own_server: ServerFactory) -> None:
    server = own_server()
    server.control("POST", "/_test/ca/leaf-ttl", {"seconds": LEAF_TTL_SECONDS})
    events = Events()
    with server.enrol(f"spiffe://{TRUST_DOMAIN}/renewing") as client:
        client.on_rotation(events)
        first = client.source.identity()
        assert first is not None
        lifetime = (first.not_after - first.not_before).total_seconds()
        assert lifetime <= 60 + LEAF_TTL_SECONDS

        serials, failures = _call_for(client, 8.0)

    assert failures == []
    assert len(serials) >= 3, "expected at least two renewals in 8 s of a 4 s certificate"
    assert events.kinds().count(RotationKind.RENEWED) >= 2
    assert RotationKind.RENEWAL_FAILED not in events.kinds()
    # Each renewal used a new key, and each snapshot's key matches its certificate.
    renewed = [e.identity for e in events.events() if e.kind is RotationKind.RENEWED]
    keys = {_public_key(identity) for identity in renewed}
    assert len(keys) == len(renewed)
    # Never back to an old identity: the idle connections of each old one were closed.
    logged: list[str] = []
    for entry in server.requests_log("GetCallerIdentity"):
        serial = entry["client_serial"]
        assert serial not in logged[:-1], "a request used an identity after its successor"
        if not logged or logged[-1] != serial:
            logged.append(serial)
    renewals = server.requests_log("RenewCertificate")
    assert all(entry["status"] == 200 for entry in renewals)


def test_a_join_token_client_reports_expiry(own_server: ServerFactory) -> None:
    server = own_server()
    server.control("POST", "/_test/ca/leaf-ttl", {"seconds": 3})
    server.script("RenewCertificate", *[{"status": 503}] * 200)
    events = Events()
    with server.enrol(f"spiffe://{TRUST_DOMAIN}/expiring") as client:
        client.on_rotation(events)
        assert server.wait_until(lambda: RotationKind.EXPIRED in events.kinds(), timeout=8)
        with pytest.raises(IdentityExpired, match="join token cannot re-enrol"):
            client.identity.get_caller_identity()
        # Calls that need no identity still work.
        assert client.identity.get_trust_bundle().keys
    assert RotationKind.RENEWAL_FAILED in events.kinds()
    assert server.requests_log("RenewCertificate")


def test_ca_rotation_needs_no_restart(own_server: ServerFactory) -> None:
    server = own_server(bundle_refresh_hint_seconds=1)
    server.control("POST", "/_test/ca/leaf-ttl", {"seconds": LEAF_TTL_SECONDS})
    events = Events()
    with server.enrol(f"spiffe://{TRUST_DOMAIN}/through-rotation") as client:
        client.on_rotation(events)
        before = client.source.bundle()
        old_issuer = _issuer(client.source.identity())
        rotated: list[int] = []

        def rotate() -> None:
            rotated.append(server.control("POST", "/_test/ca/rotate", {})["bundle_sequence"])

        serials, failures = _call_for(client, 6.0, during=rotate)
        after = client.source.bundle()
        new_issuer = _issuer(client.source.identity())

    assert failures == []
    assert rotated
    assert after.sequence == rotated[0] > before.sequence
    assert after.pem.count("BEGIN CERTIFICATE") == 2  # old and new CA during rotation
    assert RotationKind.BUNDLE_UPDATED in events.kinds()
    assert new_issuer != old_issuer, "renewals after activation come from the new CA"
    assert len(serials) >= 3


def test_prepare_then_activate_reaches_idle_clients(own_server: ServerFactory) -> None:
    server = own_server(bundle_refresh_hint_seconds=1)
    with server.admin_client() as admin, server.enrol(f"spiffe://{TRUST_DOMAIN}/idle") as client:
        client.identity.get_caller_identity()
        admin.identity.prepare_ca_rotation()
        # The client is idle for longer than the hint, then the new CA signs.
        assert server.wait_until(
            lambda: client.source.bundle().pem.count("BEGIN CERTIFICATE") == 2, timeout=5
        )
        admin.identity.activate_ca()
        me = client.identity.get_caller_identity()
    assert me.spiffe_id == f"spiffe://{TRUST_DOMAIN}/idle"


def test_a_verification_failure_refreshes_the_bundle_once(own_server: ServerFactory) -> None:
    # A long refresh hint: only the verification failure can bring the new CA.
    server = own_server()
    with server.enrol(f"spiffe://{TRUST_DOMAIN}/refresh-on-failure") as client:
        sequence = client.source.bundle().sequence
        server.control("POST", "/_test/ca/rotate", {})
        me = client.identity.get_caller_identity()
        assert me.spiffe_id.endswith("/refresh-on-failure")
        assert client.source.bundle().sequence > sequence


def test_bundle_refreshes_are_conditional_and_a_304_keeps_the_bundle(
    own_server: ServerFactory,
) -> None:
    # Spec 10.2.2. A 1 s hint and a 0.05 s bundle_retry: a 304 counted as a
    # failed fetch would bring the next fetch after 0.05 s, not after 1 s.
    server = own_server(bundle_refresh_hint_seconds=1)
    events = Events()
    policy = secinfra.RotationPolicy(bundle_retry=0.05)
    with server.enrol(f"spiffe://{TRUST_DOMAIN}/conditional", rotation_policy=policy) as client:
        assert client.rotation_policy is policy
        assert getattr(client.source, "rotation_policy", None) is policy
        client.on_rotation(events)
        held = client.source.bundle()
        time.sleep(2.6)
        fetches = server.requests_log("GetTrustBundle")
        assert client.source.bundle() == held

    first, *refreshes = fetches
    assert first["status"] == 200
    assert header(first, "If-None-Match") is None
    assert 2 <= len(refreshes) <= 3, [e["status"] for e in fetches]
    assert [e["status"] for e in refreshes] == [304] * len(refreshes)
    validators = {header(e, "If-None-Match") for e in refreshes}
    assert len(validators) == 1
    assert validators != {None}
    assert RotationKind.BUNDLE_UPDATED not in events.kinds()
