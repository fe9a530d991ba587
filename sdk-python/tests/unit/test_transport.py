"""The transport's clocks and settings, without the reference server.

A tiny TLS server of the test's own (its own CA, a server SVID) stands in for
the server where the wire matters: a server that drips its answer, head or
body, one byte at a time must not stretch an attempt past its timeout (spec
5.2.2).
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Self

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from secinfra._runtime._clock import FakeClock
from secinfra._rpc import (
    Auth,
    CachePolicy,
    CallOptions,
    Idempotency,
    MethodDescriptor,
)
from secinfra._runtime._source import Subscriber, TrustBundle, X509Identity
from secinfra._runtime._transport import HttpTransport, _read_body
from secinfra.errors import DeadlineExceeded, TransportError

SERVER_ID = "spiffe://transport.test/server"


class Echo:
    """A response type: keeps the decoded JSON."""

    def __init__(self, data: Any) -> None:
        self.data = data

    @classmethod
    def from_json(cls, data: Any, *, strict: bool = False, path: str = "") -> Self:
        return cls(data)


class Request:
    def __init__(
        self, fields: dict[str, Any] | None = None, on_encode: Callable[[], None] | None = None
    ):
        self._fields = fields or {}
        self._on_encode = on_encode

    def to_json(self) -> dict[str, Any]:
        if self._on_encode is not None:
            self._on_encode()
        return dict(self._fields)


def descriptor(*, cacheable: bool = False) -> MethodDescriptor:
    return MethodDescriptor(
        service="test.v1.Test",
        name="Get",
        http_method="GET",
        path="/v1/thing",
        path_params=(),
        query_params=("name",),
        body_fields=(),
        idempotency=Idempotency.READ_ONLY,
        auth=Auth.NONE,
        cache=CachePolicy(cacheable=True, resource="thing", key_field="name")
        if cacheable
        else None,
        invalidates=None,
        admin=False,
    )


class Source:
    """An anonymous identity source trusting one CA."""

    def __init__(self, bundle_pem: str = "") -> None:
        self._bundle = TrustBundle(pem=bundle_pem, sequence=1, refresh_hint=300.0)

    @property
    def server_id(self) -> str:
        return SERVER_ID

    def identity(self) -> X509Identity | None:
        return None

    def bundle(self) -> TrustBundle:
        return self._bundle

    def ensure_identity(self) -> X509Identity:
        raise AssertionError("anonymous RPCs only")

    def refresh_bundle(self) -> bool:
        return False

    def subscribe(self, callback: Subscriber) -> None:
        pass


# --- a dripping TLS server -----------------------------------------------------------


def _pem_pair() -> tuple[str, bytes, bytes]:
    """(CA PEM, server chain PEM, server key PEM) for SERVER_ID."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(SERVER_ID)]), critical=True
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return ca.public_bytes(pem).decode(), leaf.public_bytes(pem), key_pem


class DripServer:
    """Answers every request on a keep-alive connection with 200 and ``body``,
    sending either the body or, with ``head``, the status line and headers one
    byte per ``gap`` seconds."""

    def __init__(self, body: bytes, gap: float, *, head: bool = False) -> None:
        self.body = body
        self.gap = gap
        self.drip_head = head
        self.requests = 0
        self.hung_up = 0
        ca_pem, chain, key = _pem_pair()
        self.bundle_pem = ca_pem
        with tempfile.TemporaryDirectory() as folder:
            cert_file, key_file = Path(folder, "cert.pem"), Path(folder, "key.pem")
            cert_file.write_bytes(chain)
            key_file.write_bytes(key)
            self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._context.load_cert_chain(cert_file, key_file)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.url = f"https://127.0.0.1:{self._listener.getsockname()[1]}"
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self._listener.accept()
            except OSError:
                continue
            threading.Thread(target=self._answer, args=(raw,), daemon=True).start()

    def _drip(self, conn: ssl.SSLSocket, data: bytes) -> bool:
        for i in range(len(data)):
            if self._stop.is_set():
                return False
            conn.sendall(data[i : i + 1])
            time.sleep(self.gap)
        return True

    def _answer(self, raw: socket.socket) -> None:
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + ("X-Padding: " + "p" * 60 + "\r\n" if self.drip_head else "")
            + f"Content-Length: {len(self.body)}\r\n\r\n"
        ).encode()
        try:
            raw.settimeout(5)
            with self._context.wrap_socket(raw, server_side=True) as conn:
                while True:
                    seen = b""
                    while b"\r\n\r\n" not in seen:
                        data = conn.recv(4096)
                        if not data:
                            return
                        seen += data
                    with self._lock:
                        self.requests += 1
                    if self.drip_head:
                        if not self._drip(conn, head):
                            return
                        conn.sendall(self.body)
                    else:
                        conn.sendall(head)
                        if not self._drip(conn, self.body):
                            return
        except OSError:
            with self._lock:
                self.hung_up += 1  # the client hung up: what the slow tests want

    def wait_hung_up(self, count: int, *, timeout: float) -> bool:
        """Wait until ``count`` connections failed because the client hung up."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._lock:
                if self.hung_up >= count:
                    return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(2)


@pytest.fixture
def drip() -> Iterator[Callable[..., DripServer]]:
    servers: list[DripServer] = []

    def start(body: bytes, gap: float, *, head: bool = False) -> DripServer:
        server = DripServer(body, gap, head=head)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def test_a_server_dripping_its_body_does_not_stretch_the_attempt(
    drip: Callable[..., DripServer],
) -> None:
    # 40 bytes at 50 ms each take 2 s; every single byte comes well within 0.3 s.
    server = drip(b'{"name": "' + b"x" * 28 + b'"}', 0.05)
    transport = HttpTransport(server.url, Source(server.bundle_pem))
    started = time.monotonic()
    with pytest.raises(TransportError) as caught:
        transport.invoke(
            descriptor(),
            Request(),
            Echo,
            CallOptions(attempt_timeout=0.3, max_attempts=2, base_backoff=0.0),
        )
    elapsed = time.monotonic() - started
    transport.close()
    assert elapsed < 1.2
    assert caught.value.attempts == 2
    assert "timed out" in str(caught.value)
    assert server.requests == 2


def test_the_deadline_ends_a_dripping_answer(
    drip: Callable[..., DripServer],
) -> None:
    server = drip(b'{"name": "' + b"x" * 28 + b'"}', 0.05)
    transport = HttpTransport(server.url, Source(server.bundle_pem))
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as caught:
        transport.invoke(descriptor(), Request(), Echo, CallOptions(deadline=0.4))
    elapsed = time.monotonic() - started
    transport.close()
    assert elapsed < 0.4 + 0.25
    assert caught.value.attempts == 1


def test_a_quick_drip_within_the_attempt_is_read_whole(
    drip: Callable[..., DripServer],
) -> None:
    server = drip(b'{"name": "ok"}', 0.005)
    with_transport = HttpTransport(server.url, Source(server.bundle_pem))
    try:
        answer = with_transport.invoke(descriptor(), Request(), Echo, CallOptions(attempt_timeout=2))
        again = with_transport.invoke(descriptor(), Request(), Echo, None)
    finally:
        with_transport.close()
    assert answer.data == {"name": "ok"}
    assert again.data == {"name": "ok"}


# The per-attempt timeout is a total over the response HEAD too (spec 5.2.2): a
# head dripped one byte at a time, each byte well within the attempt timeout,
# must still end the attempt at its timeout, as a timeout (5.2.3).


def test_a_server_dripping_its_head_does_not_stretch_the_attempt(
    drip: Callable[..., DripServer],
) -> None:
    # A head of ~130 bytes at 50 ms each takes over 6 s; every byte comes well
    # within the 0.3 s attempt timeout, so only a total over the head stops it.
    server = drip(b'{"name": "ok"}', 0.05, head=True)
    transport = HttpTransport(server.url, Source(server.bundle_pem))
    started = time.monotonic()
    try:
        with pytest.raises(TransportError) as caught:
            transport.invoke(
                descriptor(),
                Request(),
                Echo,
                CallOptions(attempt_timeout=0.3, max_attempts=2, base_backoff=0.0),
            )
        elapsed = time.monotonic() - started
    finally:
        transport.close()
    assert elapsed < 2 * 0.3 + 0.5, f"two attempts of 0.3 s took {elapsed:.2f} s"
    assert caught.value.attempts == 2
    assert "timed out" in str(caught.value)
    assert server.requests == 2
    # The abandoned attempts' connections were closed (spec 5.2.3).
    assert server.wait_hung_up(2, timeout=2.0)


def test_the_deadline_ends_a_dripping_head(drip: Callable[..., DripServer]) -> None:
    server = drip(b'{"name": "ok"}', 0.05, head=True)
    transport = HttpTransport(server.url, Source(server.bundle_pem))
    started = time.monotonic()
    try:
        with pytest.raises(DeadlineExceeded) as caught:
            transport.invoke(descriptor(), Request(), Echo, CallOptions(deadline=0.4))
        elapsed = time.monotonic() - started
    finally:
        transport.close()
    assert elapsed < 0.4 + 0.3
    assert caught.value.attempts == 1


def test_a_quick_head_within_the_attempt_is_read_and_the_connection_reused(
    drip: Callable[..., DripServer],
) -> None:
    # ~130 bytes at 2 ms: about 0.3 s, well within the attempt.
    server = drip(b'{"name": "ok"}', 0.002, head=True)
    transport = HttpTransport(server.url, Source(server.bundle_pem))
    try:
        first = transport.invoke(descriptor(), Request(), Echo, CallOptions(attempt_timeout=1.0))
        # Longer than the first attempt's timeout: a watchdog left armed
        # would have shut the pooled connection down by now.
        time.sleep(1.1)
        second = transport.invoke(descriptor(), Request(), Echo, CallOptions(attempt_timeout=3))
    finally:
        transport.close()
    assert first.data == second.data == {"name": "ok"}
    assert server.requests == 2
    assert server.hung_up == 0


# --- _read_body on its own -----------------------------------------------------------


class DrippingRaw:
    """A urllib3 response look-alike: one byte per read, each taking ``per_read`` seconds."""

    def __init__(self, body: bytes, clock: FakeClock, per_read: float) -> None:
        self._body = body
        self._clock = clock
        self._per_read = per_read
        self.released = False
        self.closed = False
        self.timeouts: list[float] = []
        self.connection = self
        self.sock = self

    def settimeout(self, seconds: float) -> None:
        self.timeouts.append(seconds)

    def read1(self, amt: int, decode_content: bool = True) -> bytes:
        assert amt > 0
        self._clock.advance(self._per_read)
        chunk, self._body = self._body[:1], self._body[1:]
        return chunk

    def release_conn(self) -> None:
        self.released = True


class FakeResponse:
    def __init__(self, raw: DrippingRaw) -> None:
        self.raw = raw

    def close(self) -> None:
        self.raw.closed = True


def test_read_body_gives_up_when_the_attempt_time_is_spent() -> None:
    clock = FakeClock()
    raw = DrippingRaw(b"0123456789", clock, per_read=0.1)
    response: Any = FakeResponse(raw)
    with pytest.raises(requests.exceptions.ReadTimeout):
        _read_body(response, clock.monotonic() + 0.35, clock)
    assert raw.closed
    assert not raw.released
    # Every read may take only what is left of the attempt.
    assert raw.timeouts == pytest.approx([0.35, 0.25, 0.15, 0.05])


def test_read_body_reads_everything_in_time_and_keeps_the_connection() -> None:
    clock = FakeClock()
    raw = DrippingRaw(b"0123", clock, per_read=0.01)
    response: Any = FakeResponse(raw)
    assert _read_body(response, clock.monotonic() + 1.0, clock) == b"0123"
    assert raw.released
    assert not raw.closed


# --- the deadline starts when the call does ------------------------------------------


def test_the_deadline_counts_from_the_call_not_from_sending() -> None:
    clock = FakeClock()
    transport = HttpTransport("https://127.0.0.1:9", Source(), clock=clock)
    slow_encoding = Request(on_encode=lambda: clock.advance(31.0))
    with pytest.raises(DeadlineExceeded) as caught:
        transport.invoke(descriptor(), slow_encoding, Echo, None)
    assert caught.value.attempts == 0


def test_a_single_flight_waiter_ends_by_its_own_deadline() -> None:
    transport = HttpTransport("https://127.0.0.1:9", Source())
    release = threading.Event()
    entered = threading.Event()
    results: list[Any] = []

    def slow_send(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(5)
        raise TransportError("leader gave up")

    transport._send = slow_send  # type: ignore[method-assign]

    def leader() -> None:
        try:
            transport.invoke(descriptor(cacheable=True), Request({"name": "a"}), Echo, None)
        except TransportError as exc:
            results.append(exc)

    thread = threading.Thread(target=leader)
    thread.start()
    assert entered.wait(5)
    started = time.monotonic()
    try:
        with pytest.raises(DeadlineExceeded) as caught:
            transport.invoke(
                descriptor(cacheable=True), Request({"name": "a"}), Echo, CallOptions(deadline=0.3)
            )
        waited = time.monotonic() - started
    finally:
        release.set()
        thread.join(5)
    assert 0.25 <= waited < 0.3 + 0.25
    assert caught.value.attempts == 0
    assert len(results) == 1


# --- client-wide use_cache, close ----------------------------------------------------


def test_use_cache_false_on_the_transport_sends_every_cacheable_call() -> None:
    transport = HttpTransport("https://127.0.0.1:9", Source(), use_cache=False)
    sent: list[Any] = []
    joined: list[str] = []

    def send(*args: Any, **kwargs: Any) -> Any:
        sent.append(args)
        raise TransportError("no server")

    transport._send = send  # type: ignore[method-assign]
    transport._flights.do = lambda key, fn, **kw: joined.append(key)  # type: ignore[method-assign,assignment,misc]
    for _ in range(2):
        with pytest.raises(TransportError):
            transport.invoke(descriptor(cacheable=True), Request({"name": "a"}), Echo, None)
    assert len(sent) == 2
    assert joined == []  # never joined a single flight (spec 7.12.1)
    assert not transport.use_cache


def test_per_call_use_cache_true_wins_over_the_client_default() -> None:
    transport = HttpTransport("https://127.0.0.1:9", Source(), use_cache=False)
    joined: list[str] = []

    def do(key: str, fn: Any, **kwargs: Any) -> Any:
        joined.append(key)
        return Echo({}), _meta()

    transport._flights.do = do  # type: ignore[method-assign]
    transport.invoke(
        descriptor(cacheable=True), Request({"name": "a"}), Echo, CallOptions(use_cache=True)
    )
    assert len(joined) == 1


def _meta() -> Any:
    from secinfra._runtime._meta import ResponseMeta

    return ResponseMeta("test.v1.Test/Get", None, 0, True, False)


def test_closing_the_transport_drops_every_cache_entry() -> None:
    transport = HttpTransport("https://127.0.0.1:9", Source())
    transport.cache.store(
        "k", object(), {"Cache-Control": "max-age=60"}, resource="secret", secret=True
    )
    assert len(transport.cache) == 1
    transport.close()
    assert len(transport.cache) == 0
