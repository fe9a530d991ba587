"""Server and client contexts over real TLS on loopback, with the tests' own CA.

Both directions (our server, our client, plain stdlib peers), renewal and CA
rotation without a restart, and each refusal: foreign trust domain, expired,
two URI SANs, a CA leaf, an unauthorized ID. A refused peer gets no byte of
an answer.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
from collections.abc import Callable, Iterator

import pytest

from secinfra import mtls

from .loopback import LineServer, exchange, plain_client, plain_server
from .svids import TRUST_DOMAIN, Leaf, SwappableSource, TestCA

SERVER = f"spiffe://{TRUST_DOMAIN}/api"
CLIENT = f"spiffe://{TRUST_DOMAIN}/billing"


@pytest.fixture
def ca() -> TestCA:
    return TestCA()


@pytest.fixture
def serve() -> Iterator[Callable[[ssl.SSLContext], LineServer]]:
    started: list[LineServer] = []

    def start(context: ssl.SSLContext) -> LineServer:
        server = LineServer(context)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def _refusal(outcome: object) -> mtls.PeerRefused | ssl.SSLError:
    assert isinstance(outcome, ssl.SSLError), outcome
    return outcome


def _no_answer(context: ssl.SSLContext, port: int) -> None:
    """The peer refused us: the handshake fails, or the connection ends with no byte."""
    try:
        answer, *_ = exchange(context, port)
    except (ssl.SSLError, ConnectionError):
        return
    assert answer == b""


def test_each_side_reads_the_others_verified_id(
    ca: TestCA, serve: Callable[..., LineServer]
) -> None:
    server_source = SwappableSource(ca.identity(SERVER), ca)
    client_source = SwappableSource(ca.identity(CLIENT), ca)
    server = serve(mtls.server_context(server_source, mtls.authorize_id(CLIENT)))
    answer, conn, _ = exchange(
        mtls.client_context(client_source, mtls.authorize_id(SERVER)), server.port
    )
    assert answer == f"hello {CLIENT} you said ping\n".encode()
    assert server.outcome() == mtls.SpiffeId.parse(CLIENT)
    assert mtls.peer_id(conn) == mtls.SpiffeId.parse(SERVER)


def test_a_plain_stdlib_peer_works_both_ways(ca: TestCA, serve: Callable[..., LineServer]) -> None:
    ours = serve(
        mtls.server_context(SwappableSource(ca.identity(SERVER), ca), mtls.authorize_any())
    )
    answer, *_ = exchange(plain_client(ca.issue(CLIENT), ca), ours.port)
    assert answer.startswith(f"hello {CLIENT}".encode())

    theirs = serve(plain_server(ca.issue(SERVER), ca))
    client = mtls.client_context(
        SwappableSource(ca.identity(CLIENT), ca), mtls.authorize_id(SERVER)
    )
    answer, *_ = exchange(client, theirs.port)
    assert answer == b"hello None you said ping\n"


BAD_CLIENTS: list[tuple[str, Callable[[TestCA, TestCA], Leaf], str]] = [
    ("unauthorized-id", lambda ca, _: ca.issue(f"spiffe://{TRUST_DOMAIN}/intruder"), "authorizer"),
    (
        "leaf-with-two-uri-sans",
        lambda ca, _: ca.issue(CLIENT, f"spiffe://{TRUST_DOMAIN}/x"),
        "x509-svid",
    ),
    ("leaf-without-a-spiffe-id", lambda ca, _: ca.issue("https://billing.example"), "x509-svid"),
    ("ca-leaf", lambda ca, _: ca.issue(CLIENT, ca=True), "x509-svid"),
    (
        "foreign-id-from-our-ca",
        lambda ca, _: ca.issue("spiffe://other.test/billing"),
        "trust-domain",
    ),
    (
        "foreign-trust-domain-ca",
        lambda _, foreign: foreign.issue("spiffe://other.test/billing"),
        "openssl",
    ),
    (
        "expired-leaf",
        lambda ca, _: ca.issue(CLIENT, not_after=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)),
        "openssl",
    ),
]


@pytest.mark.parametrize(("name", "make", "rule"), BAD_CLIENTS, ids=[c[0] for c in BAD_CLIENTS])
def test_the_server_refuses_a_bad_client_with_no_answer(
    ca: TestCA,
    serve: Callable[..., LineServer],
    name: str,
    make: Callable[[TestCA, TestCA], Leaf],
    rule: str,
) -> None:
    foreign = TestCA("other.test")
    server = serve(
        mtls.server_context(SwappableSource(ca.identity(SERVER), ca), mtls.authorize_id(CLIENT))
    )
    _no_answer(plain_client(make(ca, foreign), ca), server.port)
    refused = _refusal(server.outcome())
    if rule == "openssl":
        assert not isinstance(refused, mtls.PeerRefused)
    else:
        assert isinstance(refused, mtls.PeerRefused)
        assert refused.rule == rule


def test_the_server_refusal_names_the_rule_and_the_id(
    ca: TestCA, serve: Callable[..., LineServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = serve(
        mtls.server_context(SwappableSource(ca.identity(SERVER), ca), mtls.authorize_id(CLIENT))
    )
    _no_answer(plain_client(ca.issue(f"spiffe://{TRUST_DOMAIN}/intruder"), ca), server.port)
    refused = server.outcome()
    assert isinstance(refused, mtls.PeerRefused)
    assert str(refused) == (
        f"secinfra: mtls: refused spiffe://{TRUST_DOMAIN}/intruder: not authorized"
        f" (expected {CLIENT})"
    )
    assert refused.peer_id == mtls.SpiffeId.parse(f"spiffe://{TRUST_DOMAIN}/intruder")
    assert "PRIVATE KEY" not in caplog.text
    assert "not authorized" in caplog.text


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("unauthorized-id", lambda ca: ca.issue(f"spiffe://{TRUST_DOMAIN}/impostor")),
        ("leaf-with-two-uri-sans", lambda ca: ca.issue(SERVER, f"spiffe://{TRUST_DOMAIN}/x")),
        ("ca-leaf", lambda ca: ca.issue(SERVER, ca=True)),
    ],
)
def test_the_client_refuses_a_bad_server_before_sending(
    ca: TestCA, serve: Callable[..., LineServer], name: str, make: Callable[[TestCA], Leaf]
) -> None:
    server = serve(plain_server(make(ca), ca))
    client = mtls.client_context(
        SwappableSource(ca.identity(CLIENT), ca), mtls.authorize_id(SERVER)
    )
    with pytest.raises(mtls.PeerRefused):
        exchange(client, server.port)
    # The server never got the request line: the connection ended without it.
    outcome = server.outcome()
    assert isinstance(outcome, OSError) or outcome is None


def test_a_server_from_a_foreign_ca_fails_the_handshake(
    ca: TestCA, serve: Callable[..., LineServer]
) -> None:
    foreign = TestCA("other.test")
    server = serve(plain_server(foreign.issue("spiffe://other.test/api"), ca))
    client = mtls.client_context(SwappableSource(ca.identity(CLIENT), ca), mtls.authorize_any())
    with pytest.raises(ssl.SSLCertVerificationError):
        exchange(client, server.port)


def test_a_renewal_takes_effect_on_the_next_handshake(
    ca: TestCA, serve: Callable[..., LineServer]
) -> None:
    first = ca.identity(SERVER)
    source = SwappableSource(first, ca)
    server = serve(mtls.server_context(source, mtls.authorize_any()))
    client = mtls.client_context(
        SwappableSource(ca.identity(CLIENT), ca), mtls.authorize_id(SERVER)
    )
    *_, before = exchange(client, server.port)
    renewed = ca.identity(SERVER)
    source.renew(renewed)
    *_, after = exchange(client, server.port)
    assert before == first.serial
    assert after == renewed.serial


def test_a_renewed_client_presents_its_new_certificate(
    ca: TestCA, serve: Callable[..., LineServer]
) -> None:
    server_source = SwappableSource(ca.identity(SERVER), ca)
    seen: list[str] = []

    def record(peer: mtls.SpiffeId) -> bool:
        seen.append(str(peer))
        return True

    server = serve(mtls.server_context(server_source, mtls.authorize_if(record, expects="any")))
    source = SwappableSource(ca.identity(CLIENT), ca)
    client = mtls.client_context(source, mtls.authorize_id(SERVER))
    exchange(client, server.port)
    source.renew(ca.identity(f"spiffe://{TRUST_DOMAIN}/billing-v2"))
    exchange(client, server.port)
    assert seen == [CLIENT, f"spiffe://{TRUST_DOMAIN}/billing-v2"]


def test_a_ca_rotation_needs_no_restart(ca: TestCA, serve: Callable[..., LineServer]) -> None:
    new_ca = TestCA()
    source = SwappableSource(ca.identity(SERVER), ca)
    server = serve(mtls.server_context(source, mtls.authorize_any()))
    new_client = plain_client(new_ca.issue(CLIENT), ca, new_ca)
    old_client = plain_client(ca.issue(CLIENT), ca, new_ca)

    _no_answer(new_client, server.port)  # the new CA is not trusted yet
    assert isinstance(server.outcome(), ssl.SSLError)

    source.trust(ca, new_ca)  # prepare: both CAs in the bundle
    assert exchange(new_client, server.port)[0].startswith(b"hello")
    assert exchange(old_client, server.port)[0].startswith(b"hello")

    source.renew(new_ca.identity(SERVER))
    source.trust(new_ca)  # retire the old CA
    assert exchange(new_client, server.port)[0].startswith(b"hello")
    for _ in range(3):
        server.outcome()
    _no_answer(old_client, server.port)
    assert isinstance(server.outcome(), ssl.SSLError)


def test_an_old_connection_may_finish_after_a_renewal(
    ca: TestCA, serve: Callable[..., LineServer]
) -> None:
    source = SwappableSource(ca.identity(SERVER), ca)
    context = mtls.server_context(source, mtls.authorize_any())
    client = mtls.client_context(SwappableSource(ca.identity(CLIENT), ca), mtls.authorize_any())
    listener = socket.create_server(("127.0.0.1", 0))
    with listener:
        raw = socket.create_connection(listener.getsockname(), timeout=5)
        accepted, _ = listener.accept()
        accepted.settimeout(5)
        box: list[ssl.SSLSocket] = []
        thread = threading.Thread(
            target=lambda: box.append(context.wrap_socket(accepted, server_side=True))
        )
        thread.start()
        conn = client.wrap_socket(raw)
        thread.join(5)
        source.renew(ca.identity(SERVER))
        conn.sendall(b"still here")
        assert box[0].recv(100) == b"still here"
        conn.close()
        box[0].close()


def test_no_authorizer_is_an_error(ca: TestCA) -> None:
    source = SwappableSource(ca.identity(SERVER), ca)
    with pytest.raises(TypeError, match="an authorizer is required"):
        mtls.server_context(source, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="authorize_any"):
        mtls.client_context(source, lambda _peer: True)  # type: ignore[arg-type]


def test_trust_and_identity_come_from_the_source_only(ca: TestCA) -> None:
    context = mtls.client_context(SwappableSource(ca.identity(CLIENT), ca), mtls.authorize_any())
    with pytest.raises(TypeError, match="bundle"):
        context.load_verify_locations(cadata=ca.pem)
    with pytest.raises(TypeError, match="identity source"):
        context.load_cert_chain("cert.pem")


def test_peer_id_of_an_unverified_connection_is_an_error() -> None:
    with pytest.raises(LookupError):
        mtls.peer_id(object())


def test_a_resumed_tls12_session_is_checked_against_the_current_bundle(
    ca: TestCA, serve: Callable[..., LineServer]
) -> None:
    source = SwappableSource(ca.identity(SERVER), ca)
    context = mtls.server_context(source, mtls.authorize_id(CLIENT))
    context.maximum_version = ssl.TLSVersion.TLSv1_2  # session IDs resume in TLS 1.2
    server = serve(context)
    client = plain_client(ca.issue(CLIENT), ca)

    def connect(session: ssl.SSLSession | None) -> tuple[bytes, ssl.SSLSession | None, bool]:
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        with client.wrap_socket(raw, session=session) as conn:
            conn.sendall(b"ping\n")
            return conn.recv(1024), conn.session, bool(conn.session_reused)

    answer, session, _ = connect(None)
    assert answer.startswith(b"hello")
    answer, _, reused = connect(session)
    assert reused
    assert answer.startswith(b"hello")
    assert isinstance(server.outcome(), mtls.SpiffeId)
    assert isinstance(server.outcome(), mtls.SpiffeId)

    new_ca = TestCA()
    source.renew(new_ca.identity(SERVER))
    source.trust(new_ca)  # the client's CA is retired
    client.load_verify_locations(cadata=new_ca.pem)
    try:
        answer, _, _ = connect(session)
    except (ssl.SSLError, ConnectionError):
        answer = b""
    assert answer == b""
    refused = server.outcome()
    assert isinstance(refused, mtls.PeerRefused)
    assert refused.rule == "chain"
