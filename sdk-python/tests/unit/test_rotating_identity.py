"""The rotating identity against a fake identity service: which renewals it
installs (spec 8.7.4, 9.3.3), and its conditional bundle refresh (10.2.2).

A CA of the test's own signs the certificates; a fake IdentityService answers
enrolment, renewal and bundle fetches the way each test scripts it. Rotation
runs in its real background thread with a policy of tenths of seconds, so
every test ends in about a second; every wait is bounded.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import secinfra
from secinfra import RotatingIdentity, RotationEvent, RotationKind, RotationPolicy, load_bundle
from secinfra._gen.identity import (
    IssueCertificateResponse,
    Jwk,
    RenewCertificateResponse,
    TrustBundle,
    X509Svid,
)
from secinfra._gen.identity_client import IdentityClient
from secinfra._runtime._call import CallPipeline
from secinfra._runtime._endpoints import EndpointSet
from secinfra._runtime._transport import HttpAnswer
from secinfra.errors import SecinfraError

TRUST_DOMAIN = "spiffe://rotating.test"
WORKLOAD = f"{TRUST_DOMAIN}/workload"
#: Renew 0.3 s after issue (1 % of 30 s, no jitter; X.509 whole seconds may make it
#: at once, spec 9.2.3, so tests script the service before they start); retry failed
#: renewals within 0.1 s.
FAST = RotationPolicy(
    renewal_fraction=0.01, renewal_jitter=0.0, renewal_retry_base=0.05, renewal_retry_max=0.1
)
WAIT_SECONDS = 10.0


class TestCA:
    """A CA that signs X509-SVIDs for CSRs."""

    __test__ = False

    def __init__(self, name: str) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(TRUST_DOMAIN)]),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def jwk(self) -> Jwk:
        der = self.cert.public_bytes(serialization.Encoding.DER)
        return Jwk(use="x509-svid", x5c=[base64.b64encode(der).decode()])

    def issue(self, csr_pem: str, spiffe_id: str, lifetime: float = 30.0) -> str:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        now = datetime.now(UTC)
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.cert.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(seconds=60))
            .not_valid_after(now + timedelta(seconds=lifetime))
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe_id)]),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        return leaf.public_bytes(serialization.Encoding.PEM).decode()


Renewal = tuple[TestCA, str]
"""Who signs a renewed certificate, and for which SPIFFE ID."""


class FakeIdentityService:
    """Answers IssueCertificate, RenewCertificate and GetTrustBundle in memory."""

    def __init__(self, ca: TestCA) -> None:
        self.ca = ca
        self.bundle_cas = [ca]
        self.later_cas: list[TestCA] = []
        """CAs that join the bundle from the second fetch on (a rotation after enrolment)."""
        self.renewals: list[Renewal] = []
        """Scripted renewal answers, used in order; then the CA signs for WORKLOAD."""
        self.renew_calls = 0
        self.bundle_fetches = 0
        self.issue_calls = 0
        self.issue_lifetime = 30.0
        self.issuance_open = threading.Event()
        """Cleared: an issuance waits until it is set again (a slow re-enrolment)."""
        self.issuance_open.set()
        self._lock = threading.Lock()

    def issue_certificate(self, *, csr_pem: str, **_: Any) -> IssueCertificateResponse:
        with self._lock:
            self.issue_calls += 1
        self.issuance_open.wait(WAIT_SECONDS)
        chain = self.ca.issue(csr_pem, WORKLOAD, self.issue_lifetime)
        return IssueCertificateResponse(svid=X509Svid(spiffe_id=WORKLOAD, cert_chain_pem=chain))

    def renew_certificate(self, *, csr_pem: str, **_: Any) -> RenewCertificateResponse:
        with self._lock:
            self.renew_calls += 1
            signer, spiffe_id = self.renewals.pop(0) if self.renewals else (self.ca, WORKLOAD)
        chain = signer.issue(csr_pem, spiffe_id)
        return RenewCertificateResponse(svid=X509Svid(spiffe_id=spiffe_id, cert_chain_pem=chain))

    def get_trust_bundle(self, **_: Any) -> TrustBundle:
        with self._lock:
            self.bundle_fetches += 1
            if self.bundle_fetches > 1:
                self.bundle_cas += self.later_cas
                self.later_cas = []
            cas = list(self.bundle_cas)
        return TrustBundle(
            keys=[ca.jwk() for ca in cas], spiffe_sequence=len(cas), spiffe_refresh_hint=300
        )


class Events:
    """Rotation events as they arrive, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[RotationEvent] = []

    def __call__(self, event: RotationEvent) -> None:
        with self._lock:
            self._events.append(event)

    def all(self) -> list[RotationEvent]:
        with self._lock:
            return list(self._events)

    def wait_for(self, kind: RotationKind) -> RotationEvent:
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            found = [e for e in self.all() if e.kind is kind]
            if found:
                return found[0]
            time.sleep(0.02)
        raise AssertionError(f"no {kind} event in {WAIT_SECONDS:g} s: {self.all()}")


@pytest.fixture
def ca() -> TestCA:
    return TestCA("test CA")


@pytest.fixture
def service(ca: TestCA) -> FakeIdentityService:
    return FakeIdentityService(ca)


@pytest.fixture
def rotating(
    ca: TestCA, service: FakeIdentityService
) -> Iterator[Callable[[], tuple[RotatingIdentity, Events]]]:
    """Start a rotating identity on ``service`` (after the test scripted it)."""
    started: list[RotatingIdentity] = []

    def start() -> tuple[RotatingIdentity, Events]:
        source = RotatingIdentity(load_bundle(ca.pem), join_token="token", rotation_policy=FAST)
        events = Events()
        source.subscribe(events)
        source.attach(service)  # type: ignore[arg-type]
        source.start()
        started.append(source)
        return source, events

    yield start
    for source in started:
        source.close()


# --- 9.3.3: a renewal with another SPIFFE ID ---------------------------------------


def test_a_renewal_for_another_spiffe_id_is_refused_and_retried(
    rotating: Callable[[], tuple[RotatingIdentity, Events]],
    ca: TestCA,
    service: FakeIdentityService,
) -> None:
    service.renewals = [(ca, f"{TRUST_DOMAIN}/someone-else")] * 2
    source, events = rotating()
    enrolled = source.identity()
    assert enrolled is not None

    renewed = events.wait_for(RotationKind.RENEWED)

    failed = [e for e in events.all() if e.kind is RotationKind.RENEWAL_FAILED]
    assert len(failed) == 2
    for event in failed:
        assert isinstance(event.error, SecinfraError)
        message = str(event.error)
        assert message.startswith("secinfra: identity: renewal refused")
        assert f"{TRUST_DOMAIN}/someone-else" in message
        assert WORKLOAD in message
        assert event.identity == enrolled  # the current certificate stayed
    assert renewed.identity is not None
    assert renewed.identity.spiffe_id == WORKLOAD
    assert renewed.identity.serial != enrolled.serial
    assert service.renew_calls == 3
    assert service.bundle_fetches == 1  # the start's: an ID check needs no bundle refresh


def test_while_renewals_are_refused_the_current_identity_stays_usable(
    rotating: Callable[[], tuple[RotatingIdentity, Events]],
    ca: TestCA,
    service: FakeIdentityService,
) -> None:
    service.renewals = [(ca, f"{TRUST_DOMAIN}/someone-else")] * 1000  # every renewal here
    source, events = rotating()
    enrolled = source.identity()

    events.wait_for(RotationKind.RENEWAL_FAILED)
    time.sleep(0.3)  # a few more refusals

    assert source.ensure_identity() == enrolled
    assert source.identity() == enrolled
    assert RotationKind.RENEWED not in [e.kind for e in events.all()]


# --- 9.3.3 with 8.7.4: a renewed chain that does not verify ------------------------


def test_a_renewal_from_a_ca_outside_the_bundle_is_refused_after_one_refresh(
    rotating: Callable[[], tuple[RotatingIdentity, Events]],
    service: FakeIdentityService,
) -> None:
    stranger = TestCA("a CA in no bundle")
    service.renewals = [(stranger, WORKLOAD)]
    source, events = rotating()
    enrolled = source.identity()

    failed = events.wait_for(RotationKind.RENEWAL_FAILED)
    renewed = events.wait_for(RotationKind.RENEWED)

    assert isinstance(failed.error, SecinfraError)
    assert "does not chain to the trust bundle" in str(failed.error)
    assert failed.identity == enrolled
    assert renewed.identity is not None
    assert renewed.identity != enrolled
    # The start's fetch, then exactly one refresh for the refused chain.
    assert service.bundle_fetches == 2


def test_a_renewal_from_a_ca_the_client_has_not_fetched_yet_is_installed(
    rotating: Callable[[], tuple[RotatingIdentity, Events]],
    service: FakeIdentityService,
) -> None:
    rotated = TestCA("the next CA")
    service.later_cas = [rotated]  # a CA rotation the client slept through
    service.renewals = [(rotated, WORKLOAD)]
    source, events = rotating()

    renewed = events.wait_for(RotationKind.RENEWED)

    kinds = [e.kind for e in events.all()]
    assert RotationKind.RENEWAL_FAILED not in kinds
    assert kinds.index(RotationKind.BUNDLE_UPDATED) < kinds.index(RotationKind.RENEWED)
    assert renewed.identity is not None
    leaf = x509.load_pem_x509_certificates(renewed.identity.chain_pem)[0]
    assert leaf.issuer == rotated.cert.subject
    assert rotated.pem in source.bundle().pem


# --- 10.2.2: conditional bundle refresh --------------------------------------------


class BundleWire:
    """A fake transport serving enrolment and the bundle, with an ETag and 304s."""

    endpoints = EndpointSet("https://transport.test")

    def __init__(self, ca: TestCA) -> None:
        self.ca = ca
        self.cas = [ca]
        self.bundle_requests: list[dict[str, str]] = []
        self.fail_bundle = False
        self.sequence: int | None = None
        """The spiffe_sequence to answer (None: the number of CAs); -1 leaves it out."""

    @property
    def etag(self) -> str:
        return f'"bundle-{len(self.cas)}"'

    def send(
        self,
        http_method: str,
        target: str,
        headers: dict[str, str],
        body: bytes | None,
        *,
        mtls: bool,
        timeout: float,
        endpoint: str | None = None,
        identity: Any = None,
    ) -> HttpAnswer:
        if target == "/v1/identity:issue":
            assert body is not None
            chain = self.ca.issue(json.loads(body)["csr_pem"], WORKLOAD)
            answer = {"svid": {"spiffe_id": WORKLOAD, "cert_chain_pem": chain}}
            return HttpAnswer(200, {}, json.dumps(answer).encode())
        assert target == "/v1/bundle", target
        self.bundle_requests.append(dict(headers))
        if self.fail_bundle:
            return HttpAnswer(503, {"Secinfra-Should-Retry": "false"}, b"")
        cache = {"ETag": self.etag, "Cache-Control": "public, max-age=300"}
        if headers.get("If-None-Match") == self.etag:
            return HttpAnswer(304, cache, b"")
        keys = [{"use": "x509-svid", "x5c": ca.jwk().x5c, "kty": "EC"} for ca in self.cas]
        document: dict[str, Any] = {"keys": keys, "spiffe_refresh_hint": 300}
        sequence = len(self.cas) if self.sequence is None else self.sequence
        if sequence >= 0:
            document["spiffe_sequence"] = sequence
        return HttpAnswer(200, cache, json.dumps(document).encode())

    def close(self) -> None:
        pass


@pytest.fixture
def wire(ca: TestCA) -> BundleWire:
    return BundleWire(ca)


@pytest.fixture
def over_wire(
    ca: TestCA, wire: BundleWire
) -> Iterator[Callable[..., tuple[RotatingIdentity, Events]]]:
    """A rotating identity whose IdentityClient calls go through a real call
    pipeline (cache included) to the fake wire."""
    started: list[RotatingIdentity] = []

    def start(*, use_cache: bool = True) -> tuple[RotatingIdentity, Events]:
        source = RotatingIdentity(load_bundle(ca.pem), join_token="token")
        pipeline = CallPipeline(wire, source, use_cache=use_cache)  # type: ignore[arg-type]
        events = Events()
        source.subscribe(events)
        source.attach(IdentityClient(pipeline))
        source.start()
        started.append(source)
        return source, events

    yield start
    for source in started:
        source.close()


@pytest.mark.parametrize("use_cache", [True, False], ids=["cache-on", "client-without-cache"])
def test_a_bundle_refresh_is_conditional_and_a_304_keeps_the_bundle(
    over_wire: Callable[..., tuple[RotatingIdentity, Events]], wire: BundleWire, use_cache: bool
) -> None:
    source, events = over_wire(use_cache=use_cache)
    held = source.bundle()

    assert source.refresh_bundle() is False

    first, second = wire.bundle_requests
    assert "If-None-Match" not in first
    assert second["If-None-Match"] == wire.etag  # the ETag of the last bundle fetched
    assert source.bundle() == held
    assert RotationKind.BUNDLE_UPDATED not in [e.kind for e in events.all()]


def test_a_changed_bundle_answers_200_and_replaces_the_held_one(
    over_wire: Callable[[], tuple[RotatingIdentity, Events]], wire: BundleWire
) -> None:
    source, events = over_wire()
    old_etag = wire.etag
    rotated = TestCA("the next CA")
    wire.cas.append(rotated)

    assert source.refresh_bundle() is True

    assert wire.bundle_requests[-1]["If-None-Match"] == old_etag
    assert rotated.pem in source.bundle().pem
    assert events.all()[-1].kind is RotationKind.BUNDLE_UPDATED


@pytest.mark.parametrize(
    ("name", "sequence"),
    [("lower", 1), ("absent, so 0", -1), ("equal", 2)],
)
def test_a_bundle_without_a_higher_sequence_does_not_replace_the_held_one(
    over_wire: Callable[[], tuple[RotatingIdentity, Events]],
    wire: BundleWire,
    name: str,
    sequence: int,
) -> None:
    source, events = over_wire()
    wire.cas.append(TestCA("the next CA"))
    assert source.refresh_bundle() is True
    held = source.bundle()
    assert held.sequence == 2
    seen = len(events.all())
    stray = TestCA("a CA from a replica that lags behind")
    wire.cas.append(stray)
    wire.sequence = sequence

    assert source.refresh_bundle() is False, name

    assert wire.bundle_requests[-1].get("If-None-Match") is not None  # the fetch was made
    assert source.bundle() == held  # spec 10.4.1: ignored, its CA not trusted
    assert stray.pem not in source.bundle().pem
    assert len(events.all()) == seen  # no bundle_updated


def test_a_failed_refresh_is_reported_not_answered_from_the_cache(
    over_wire: Callable[[], tuple[RotatingIdentity, Events]], wire: BundleWire
) -> None:
    source, _ = over_wire()
    held = source.bundle()
    wire.fail_bundle = True

    with secinfra.capture() as meta:
        assert source.refresh_bundle() is False

    assert meta.calls == []  # the failed fetch raised: no cached answer stood in for it
    assert source.bundle() == held


# --- 5.1.2, 9.7.2: waiting for a re-enrolment is bounded, the re-enrolment is not ---


def test_a_wait_for_a_reenrolment_ends_at_its_bound_and_the_reenrolment_goes_on(
    ca: TestCA, service: FakeIdentityService
) -> None:
    service.issue_lifetime = 2.0
    service.renewals = [(TestCA("a CA in no bundle"), WORKLOAD)] * 1000  # every renewal refused
    source = RotatingIdentity(load_bundle(ca.pem), jwt="a.reusable.jwt", rotation_policy=FAST)
    events = Events()
    source.subscribe(events)
    source.attach(service)  # type: ignore[arg-type]
    source.start()
    try:
        enrolled = source.identity()
        assert enrolled is not None
        service.issuance_open.clear()  # the re-enrolment after expiry hangs
        events.wait_for(RotationKind.EXPIRED)

        with pytest.raises(TimeoutError, match="re-enrolment is still running"):
            source.ensure_identity(timeout=0.2)

        service.issuance_open.set()
        reenrolled = source.ensure_identity(timeout=WAIT_SECONDS)
        assert reenrolled.serial != enrolled.serial
        assert reenrolled.spiffe_id == WORKLOAD
        assert service.issue_calls == 2  # the enrolment, and one re-enrolment for every waiter
    finally:
        service.issuance_open.set()
        source.close()
