"""The per-attempt timeout is a total over the response HEAD too (spec 5.2.2).

A tiny TLS server of the test's own (its own CA, a server SVID) drips its
status line and headers one byte at a time, each byte well within the attempt
timeout: the attempt must still end at its timeout, as a timeout (5.2.3).
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
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from secinfra._runtime._descriptor import Auth, CallOptions, Idempotency, MethodDescriptor
from secinfra._runtime._source import Subscriber, TrustBundle, X509Identity
from secinfra._runtime._transport import HttpTransport
from secinfra.errors import DeadlineExceeded, TransportError

SERVER_ID = "spiffe://header.test/server"
BODY = b'{"name": "ok"}'
HEAD = (
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    "X-Padding: " + "p" * 60 + "\r\n"
    f"Content-Length: {len(BODY)}\r\n\r\n"
).encode()


class Echo:
    def __init__(self, data: Any) -> None:
        self.data = data

    @classmethod
    def from_json(cls, data: Any, *, strict: bool = False, path: str = "") -> Self:
        return cls(data)


class Request:
    def to_json(self) -> dict[str, Any]:
        return {}


def descriptor() -> MethodDescriptor:
    return MethodDescriptor(
        service="test.v1.Test",
        name="Get",
        http_method="GET",
        path="/v1/thing",
        path_params=(),
        query_params=(),
        body_fields=(),
        idempotency=Idempotency.READ_ONLY,
        auth=Auth.NONE,
        cache=None,
        invalidates=None,
        admin=False,
    )


class Source:
    """An anonymous identity source trusting one CA."""

    def __init__(self, bundle_pem: str) -> None:
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


def _pem_pair() -> tuple[str, bytes, bytes]:
    """(CA PEM, server chain PEM, server key PEM) for SERVER_ID."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "header test CA")])
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


class HeadDripServer:
    """Answers every request with a head sent one byte per ``gap`` seconds, then a body."""

    def __init__(self, gap: float) -> None:
        self.gap = gap
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

    def _answer(self, raw: socket.socket) -> None:
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
                    for i in range(len(HEAD)):
                        if self._stop.is_set():
                            return
                        conn.sendall(HEAD[i : i + 1])
                        time.sleep(self.gap)
                    conn.sendall(BODY)
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
def drip() -> Iterator[Callable[[float], HeadDripServer]]:
    servers: list[HeadDripServer] = []

    def start(gap: float) -> HeadDripServer:
        server = HeadDripServer(gap)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def test_a_server_dripping_its_head_does_not_stretch_the_attempt(
    drip: Callable[[float], HeadDripServer],
) -> None:
    # A head of ~130 bytes at 50 ms each takes over 6 s; every byte comes well
    # within the 0.3 s attempt timeout, so only a total over the head stops it.
    server = drip(0.05)
    transport = HttpTransport(server.url, Source(server.bundle_pem))
    started = time.monotonic()
    try:
        with pytest.raises(TransportError) as caught:
            transport.call(
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


def test_the_deadline_ends_a_dripping_head(
    drip: Callable[[float], HeadDripServer],
) -> None:
    server = drip(0.05)
    transport = HttpTransport(server.url, Source(server.bundle_pem))
    started = time.monotonic()
    try:
        with pytest.raises(DeadlineExceeded) as caught:
            transport.call(descriptor(), Request(), Echo, CallOptions(deadline=0.4))
        elapsed = time.monotonic() - started
    finally:
        transport.close()
    assert elapsed < 0.4 + 0.3
    assert caught.value.attempts == 1


def test_a_quick_head_within_the_attempt_is_read_and_the_connection_reused(
    drip: Callable[[float], HeadDripServer],
) -> None:
    # ~130 bytes at 2 ms: about 0.3 s, well within a 3 s attempt.
    server = drip(0.002)
    transport = HttpTransport(server.url, Source(server.bundle_pem))
    try:
        first = transport.call(descriptor(), Request(), Echo, CallOptions(attempt_timeout=1.0))
        # Longer than the first attempt's timeout: a watchdog left armed
        # would have shut the pooled connection down by now.
        time.sleep(1.1)
        second = transport.call(descriptor(), Request(), Echo, CallOptions(attempt_timeout=3))
    finally:
        transport.close()
    assert first.data == second.data == {"name": "ok"}
    assert server.requests == 2
    assert server.hung_up == 0
