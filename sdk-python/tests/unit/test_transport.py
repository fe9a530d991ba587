"""The transport's attempt timeouts, without the reference server.

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
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from secinfra._rpc import CallOptions
from secinfra._runtime._clock import FakeClock
from secinfra._runtime._transport import _read_body
from secinfra.errors import DeadlineExceeded, TransportError

from .support import SERVER_ID, Echo, Request, Source, descriptor, make_pipeline

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
    transport = make_pipeline(server.url, Source(server.bundle_pem))
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
    transport = make_pipeline(server.url, Source(server.bundle_pem))
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
    with_transport = make_pipeline(server.url, Source(server.bundle_pem))
    try:
        answer = with_transport.invoke(
            descriptor(), Request(), Echo, CallOptions(attempt_timeout=2)
        )
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
    transport = make_pipeline(server.url, Source(server.bundle_pem))
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
    transport = make_pipeline(server.url, Source(server.bundle_pem))
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
    transport = make_pipeline(server.url, Source(server.bundle_pem))
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
