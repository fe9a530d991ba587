"""Server-side TLS with hot reload.

The listening socket keeps the one ``SSLContext`` it was created with; that
context's SNI callback (run for every ClientHello, with or without SNI) moves
each new connection onto the *current* context. Reloading the serving
certificate or the trusted CAs is therefore just building a new context:
connections already open keep theirs, new ones get the new identity.

Client certificates are optional at the handshake (enrolment and the bundle are
reachable without one) and verified against the CAs trusted at that moment.
The dispatcher verifies again on every request, so removals (CA retirement,
revocation) and expiry take effect on open keep-alive connections too.

**Alerts.** A client certificate OpenSSL refuses at the handshake gets the
TLS alert OpenSSL chose for it (``unknown_ca`` for an issuer the server does
not trust, ``certificate_expired``, ``bad_certificate`` for one not yet valid
or malformed, ...), so the client can say why. asyncio's TLS protocol drops
that alert: it closes the transport without writing what OpenSSL queued when
the handshake failed, and clients saw only "unexpected EOF".
:class:`AlertingSslProtocol` writes it first. A revoked certificate passes the
handshake (OpenSSL knows nothing of the deny-list, which also lists SPIFFE
IDs) and is refused on its first request with 401 ``unauthenticated``.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from asyncio import sslproto

from ._memfd import load_cert_chain_from_memory


def _new_context(chain_pem: bytes, key_pem: bytes, trusted_pem: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_OPTIONAL
    context.load_verify_locations(cadata=trusted_pem)
    context.set_alpn_protocols(["http/1.1"])
    load_cert_chain_from_memory(context, chain_pem, key_pem)
    return context


class AlertingSslProtocol(sslproto.SSLProtocol):
    """asyncio's server-side TLS protocol, but a failed handshake first sends
    the alert OpenSSL queued for it (see the module docstring)."""

    def _on_handshake_complete(self, handshake_exc: BaseException | None) -> None:
        if handshake_exc is not None:
            # What do_handshake left in the outgoing BIO: the alert record.
            # The transport sends it at once (a few bytes on an idle socket)
            # before the base class force-closes the connection.
            self._process_outgoing()  # type: ignore[attr-defined]
        super()._on_handshake_complete(handshake_exc)


async def accept_tls(
    loop: asyncio.AbstractEventLoop,
    sock: socket.socket,
    protocol: asyncio.BaseProtocol,
    context: ssl.SSLContext,
    *,
    handshake_timeout: float,
    shutdown_timeout: float,
) -> None:
    """Run the server side of a TLS handshake on the accepted socket ``sock``
    and connect ``protocol`` to the decrypted stream, as
    ``loop.connect_accepted_socket(ssl=...)`` does, but with
    :class:`AlertingSslProtocol`. Raises the handshake's error (an OSError)."""
    waiter: asyncio.Future[None] = loop.create_future()
    tls = AlertingSslProtocol(
        loop,
        protocol,
        context,
        waiter,
        server_side=True,
        # typeshed says int; asyncio takes any number of seconds.
        ssl_handshake_timeout=handshake_timeout,  # type: ignore[arg-type]
        ssl_shutdown_timeout=shutdown_timeout,
    )
    transport, _ = await loop.connect_accepted_socket(lambda: tls, sock)
    try:
        await waiter
    except BaseException:
        transport.close()
        raise


class ServingTls:
    """The server's TLS contexts: the listening one and the current one."""

    def __init__(self, chain_pem: bytes, key_pem: bytes, trusted_pem: str) -> None:
        self._lock = threading.Lock()
        self._listening = _new_context(chain_pem, key_pem, trusted_pem)
        self._current = self._listening
        self._listening.sni_callback = self._select
        self.reloads = 0

    @property
    def listening_context(self) -> ssl.SSLContext:
        """The context to hand to the listening socket (never replaced)."""
        return self._listening

    def reload(self, chain_pem: bytes, key_pem: bytes, trusted_pem: str) -> None:
        """Serve a new certificate and trust a new CA set on new connections."""
        context = _new_context(chain_pem, key_pem, trusted_pem)
        with self._lock:
            # Additions also reach the listening context's store, which OpenSSL
            # may consult for connections that were mid-handshake during reload.
            self._listening.load_verify_locations(cadata=trusted_pem)
            self._current = context
            self.reloads += 1

    def _select(
        self, connection: ssl.SSLObject | ssl.SSLSocket, _name: str | None, _ctx: ssl.SSLContext
    ) -> None:
        with self._lock:
            current = self._current
        if connection.context is not current:
            connection.context = current
