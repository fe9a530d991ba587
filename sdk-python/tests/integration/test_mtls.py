"""Service-to-service mTLS between workloads enrolled with a real reference server.

Each side's context is built on its client's rotating identity source: the
certificates come from the server's CA, renewals and the CA rotation reach
new handshakes without rebuilding anything.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator

import pytest
from cryptography import x509

import secinfra
from secinfra import mtls
from secinfra.testing import ReferenceServer

from .support import TRUST_DOMAIN

TIMEOUT = 5.0
ServerFactory = Callable[..., ReferenceServer]


class Responder:
    """Answers each connection with the verified caller's ID; records each outcome."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self.outcomes: list[object] = []
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
            try:
                with self._context.wrap_socket(raw, server_side=True) as conn:
                    conn.recv(64)
                    conn.sendall(str(mtls.peer_id(conn)).encode())
                    self.outcomes.append(mtls.peer_id(conn))
            except OSError as exc:
                self.outcomes.append(exc)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(TIMEOUT)
        self._listener.close()


@pytest.fixture
def respond() -> Iterator[Callable[[ssl.SSLContext], Responder]]:
    started: list[Responder] = []

    def start(context: ssl.SSLContext) -> Responder:
        started.append(Responder(context))
        return started[-1]

    yield start
    for responder in started:
        responder.close()


def _call(context: ssl.SSLContext, port: int) -> tuple[str, str]:
    """(the answer, the serial of the certificate the server presented)."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
        context.wrap_socket(raw) as conn,
    ):
        der = conn.getpeercert(binary_form=True)
        assert der is not None
        conn.sendall(b"hi")
        answer = conn.recv(256).decode()
    return answer, f"{x509.load_der_x509_certificate(der).serial_number:x}"


def _no_answer(context: ssl.SSLContext, port: int) -> bool:
    """The server refused us: a failed handshake, or a connection ended with no byte."""
    try:
        answer, _ = _call(context, port)
    except (ssl.SSLError, ConnectionError):
        return True
    return answer == ""


def test_two_workloads_authorize_each_other(
    server: ReferenceServer, unique: str, respond: Callable[..., Responder]
) -> None:
    api_id, caller_id = (f"spiffe://{TRUST_DOMAIN}/{unique}/{n}" for n in ("api", "caller"))
    with server.enrol(api_id) as api, server.enrol(caller_id) as caller:
        responder = respond(mtls.server_context(api.source, mtls.authorize_id(caller_id)))
        context = mtls.client_context(caller.source, mtls.authorize_id(api_id))
        answer, _ = _call(context, responder.port)
        assert answer == caller_id

        with server.enrol(f"spiffe://{TRUST_DOMAIN}/{unique}/other") as other:
            intruder = mtls.client_context(other.source, mtls.authorize_id(api_id))
            assert _no_answer(intruder, responder.port)
    assert server.wait_until(lambda: len(responder.outcomes) == 2, timeout=TIMEOUT)
    refused = responder.outcomes[-1]
    assert isinstance(refused, mtls.PeerRefused)
    assert refused.rule == "authorizer"


def test_renewal_and_ca_rotation_reach_new_handshakes(
    own_server: ServerFactory, respond: Callable[..., Responder]
) -> None:
    server = own_server(bundle_refresh_hint_seconds=1)
    server.control("POST", "/_test/ca/leaf-ttl", {"seconds": 4})
    api_id, caller_id = (f"spiffe://{TRUST_DOMAIN}/mtls/{n}" for n in ("api", "caller"))
    with server.enrol(api_id) as api, server.enrol(caller_id) as caller:
        responder = respond(mtls.server_context(api.source, mtls.authorize_id(caller_id)))
        context = mtls.client_context(caller.source, mtls.authorize_id(api_id))
        first = _serial_now(api)
        _, serial = _call(context, responder.port)
        assert serial in (first, _serial_now(api))

        # A renewal: the next handshake presents the new certificate.
        assert server.wait_until(lambda: _serial_now(api) != first, timeout=8)
        renewed = _serial_now(api)
        answer, serial = _call(context, responder.port)
        assert answer == caller_id
        assert serial != first
        assert serial in (renewed, _serial_now(api))  # (a renewal may fall in between)

        # A CA rotation: both sides move to new-CA certificates, no restart.
        old_issuers = {
            cert.subject
            for cert in x509.load_pem_x509_certificates(api.source.bundle().pem.encode())
        }
        server.control("POST", "/_test/ca/rotate", {})

        def both_on_new_ca() -> bool:
            identities = (api.source.identity(), caller.source.identity())
            return all(
                i is not None and _issuer(i.chain_pem) not in old_issuers for i in identities
            )

        assert server.wait_until(both_on_new_ca, timeout=10)
        before = _serial_now(api)
        answer, serial = _call(context, responder.port)
        assert answer == caller_id
        assert serial in (before, _serial_now(api))
    assert all(isinstance(o, mtls.SpiffeId) for o in responder.outcomes)


def _serial_now(client: secinfra.Client) -> str:
    identity = client.source.identity()
    assert identity is not None
    return identity.serial


def _issuer(chain_pem: bytes) -> x509.Name:
    return x509.load_pem_x509_certificates(chain_pem)[0].issuer
