"""secinfra.mtls against py-spiffe (``spiffe`` and ``spiffe-tls``), with a real CA."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from typing import Any, cast

import pytest
from OpenSSL import SSL
from spiffe import SpiffeId, TrustDomain, X509Bundle, X509Svid
from spiffe_source import PySpiffeSource
from spiffetls import ListenOptions, dial, listen
from spiffetls.tlsconfig.authorize import authorize_id

import secinfra
from secinfra import mtls
from secinfra.testing import ReferenceServer

TD = "secinfra.local"
API = f"spiffe://{TD}/interop/api"
CALLER = f"spiffe://{TD}/interop/caller"
OTHER = f"spiffe://{TD}/interop/other"
TIMEOUT = 5.0

# spiffetls itself still hands pyOpenSSL its own X509/PKey objects.
pytestmark = pytest.mark.filterwarnings("ignore:Passing pyOpenSSL:DeprecationWarning")


@pytest.fixture(scope="module")
def server() -> Iterator[ReferenceServer]:
    with ReferenceServer() as running:
        yield running


@pytest.fixture(scope="module")
def api(server: ReferenceServer) -> Iterator[secinfra.Client]:
    with server.enrol(API) as client:
        yield client


@pytest.fixture(scope="module")
def caller(server: ReferenceServer) -> Iterator[secinfra.Client]:
    with server.enrol(CALLER) as client:
        yield client


def test_py_spiffe_parses_our_svids_and_bundle(caller: secinfra.Client) -> None:
    identity = caller.source.ensure_identity()
    svid = X509Svid.parse(identity.chain_pem, identity.key_pem)
    assert str(svid.spiffe_id) == CALLER == identity.spiffe_id
    bundle = X509Bundle.parse(TrustDomain(TD), caller.source.bundle().pem.encode())
    issuers = {ca.subject for ca in bundle.x509_authorities}
    assert svid.leaf.issuer in issuers


class SpiffeTlsServer:
    """A ``spiffetls.listen`` server answering each connection with ``hello``."""

    def __init__(self, source: PySpiffeSource, authorized: str) -> None:
        self.listener = listen(
            "127.0.0.1:0",
            cast(Any, source),
            ListenOptions(authorize_fn=authorize_id(SpiffeId(authorized))),
        )
        self.port: int = self.listener.getsockname()[1]
        self.outcomes: list[object] = []
        self._thread = threading.Thread(target=self._serve_one, daemon=True)
        self._thread.start()

    def _serve_one(self) -> None:
        conn, _ = self.listener.accept()
        try:
            conn.do_handshake()
            conn.recv(64)
            conn.sendall(b"hello")
            self.outcomes.append("served")
        except SSL.Error as exc:
            self.outcomes.append(exc)
        finally:
            conn.close()

    def join(self) -> None:
        self._thread.join(TIMEOUT)
        self.listener.close()


def _ask(context: ssl.SSLContext, port: int) -> bytes:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
        context.wrap_socket(raw) as conn,
    ):
        conn.sendall(b"hi")
        return conn.recv(64)


def test_our_client_and_a_spiffetls_server(api: secinfra.Client, caller: secinfra.Client) -> None:
    theirs = SpiffeTlsServer(PySpiffeSource(api.source), authorized=CALLER)
    ours = mtls.client_context(caller.source, mtls.authorize_id(API))
    assert _ask(ours, theirs.port) == b"hello"
    theirs.join()
    assert theirs.outcomes == ["served"]


def test_a_spiffetls_server_refuses_our_unauthorized_client(
    api: secinfra.Client, caller: secinfra.Client
) -> None:
    theirs = SpiffeTlsServer(PySpiffeSource(api.source), authorized=OTHER)
    ours = mtls.client_context(caller.source, mtls.authorize_id(API))
    try:
        answer = _ask(ours, theirs.port)
    except (ssl.SSLError, ConnectionError):
        answer = b""
    assert answer == b""
    theirs.join()
    assert isinstance(theirs.outcomes[0], SSL.Error)


def test_our_client_refuses_an_unauthorized_spiffetls_server(
    api: secinfra.Client, caller: secinfra.Client
) -> None:
    theirs = SpiffeTlsServer(PySpiffeSource(api.source), authorized=CALLER)
    ours = mtls.client_context(caller.source, mtls.authorize_id(OTHER))
    with pytest.raises(mtls.PeerRefused, match="not authorized"):
        _ask(ours, theirs.port)
    theirs.join()


class OurServer:
    """Our server context on loopback, answering with the caller's verified ID."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._context = context
        self.port: int = self._listener.getsockname()[1]
        self.outcomes: list[object] = []
        self._thread = threading.Thread(target=self._serve_one, daemon=True)
        self._thread.start()

    def _serve_one(self) -> None:
        raw, _ = self._listener.accept()
        raw.settimeout(TIMEOUT)
        try:
            with self._context.wrap_socket(raw, server_side=True) as conn:
                conn.recv(64)
                conn.sendall(str(mtls.peer_id(conn)).encode())
                self.outcomes.append(mtls.peer_id(conn))
        except OSError as exc:
            self.outcomes.append(exc)

    def join(self) -> None:
        self._thread.join(TIMEOUT)
        self._listener.close()


def _dial(source: PySpiffeSource, port: int, expected_server: str) -> bytes:
    conn = dial(
        f"127.0.0.1:{port}", cast(Any, source), authorize_fn=authorize_id(SpiffeId(expected_server))
    )
    try:
        conn.sendall(b"hi")
        return bytes(conn.recv(64))
    finally:
        conn.close()


def test_a_spiffetls_client_and_our_server(api: secinfra.Client, caller: secinfra.Client) -> None:
    ours = OurServer(mtls.server_context(api.source, mtls.authorize_id(CALLER)))
    assert _dial(PySpiffeSource(caller.source), ours.port, API) == CALLER.encode()
    ours.join()
    assert ours.outcomes == [mtls.SpiffeId.parse(CALLER)]


def test_our_server_refuses_an_unauthorized_spiffetls_client(
    api: secinfra.Client, caller: secinfra.Client
) -> None:
    ours = OurServer(mtls.server_context(api.source, mtls.authorize_id(OTHER)))
    try:
        answer = _dial(PySpiffeSource(caller.source), ours.port, API)
    except (SSL.Error, OSError):
        answer = b""
    assert answer == b""
    ours.join()
    refused = ours.outcomes[0]
    assert isinstance(refused, mtls.PeerRefused)
    assert refused.peer_id == mtls.SpiffeId.parse(CALLER)
