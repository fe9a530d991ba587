"""A line server on 127.0.0.1 for the mTLS tests, and plain stdlib peers.

The server answers one line per connection with the peer's verified SPIFFE
ID, and records what happened to each connection (the ID, or the refusal).
Every socket has a timeout, so a test that goes wrong ends by itself.
"""

from __future__ import annotations

import queue
import socket
import ssl
import threading
from typing import Final

from cryptography import x509

from secinfra import mtls
from secinfra._runtime._tls import load_cert_chain_from_memory

from .svids import Leaf, TestCA

TIMEOUT: Final = 5.0


class LineServer:
    """Serves ``context`` on a free loopback port until closed."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self.outcomes: queue.Queue[mtls.SpiffeId | BaseException | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self._listener.accept()
            except TimeoutError:
                continue
            raw.settimeout(TIMEOUT)
            threading.Thread(target=self._answer, args=(raw,), daemon=True).start()

    def _answer(self, raw: socket.socket) -> None:
        try:
            with self._context.wrap_socket(raw, server_side=True) as conn:
                request = conn.recv(1024)
                try:
                    peer: mtls.SpiffeId | None = mtls.peer_id(conn)
                except LookupError:
                    peer = None  # a plain stdlib server context: nothing verified
                conn.sendall(b"hello " + str(peer).encode() + b" you said " + request)
                self.outcomes.put(peer)
        except (OSError, ValueError) as exc:
            raw.close()
            self.outcomes.put(exc)

    def outcome(self) -> mtls.SpiffeId | BaseException | None:
        """What happened to the next connection (waits for it)."""
        return self.outcomes.get(timeout=TIMEOUT)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(TIMEOUT)
        self._listener.close()


def exchange(context: ssl.SSLContext, port: int) -> tuple[bytes, ssl.SSLSocket, str]:
    """Connect with ``context``, send one line, read the whole answer.

    Returns the answer, the (closed) connection and the serial of the
    certificate the server presented.
    """
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    conn = context.wrap_socket(raw, server_hostname="localhost")
    with conn:
        der = conn.getpeercert(binary_form=True)
        assert der is not None
        conn.sendall(b"ping\n")
        chunks = []
        while chunk := conn.recv(1024):
            chunks.append(chunk)
    return b"".join(chunks), conn, f"{x509.load_der_x509_certificate(der).serial_number:x}"


def plain_client(leaf: Leaf, *trusted: TestCA) -> ssl.SSLContext:
    """A stdlib client context with a fixed certificate (any certificate, good or bad)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(cadata="".join(ca.pem for ca in trusted))
    load_cert_chain_from_memory(context, leaf.chain_pem, leaf.key_pem)
    return context


def plain_server(leaf: Leaf, *trusted: TestCA) -> ssl.SSLContext:
    """A stdlib server context with a fixed certificate that requires a client certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata="".join(ca.pem for ca in trusted))
    load_cert_chain_from_memory(context, leaf.chain_pem, leaf.key_pem)
    return context
