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
"""

from __future__ import annotations

import ssl
import threading

from ._memfd import load_cert_chain_from_memory


def _new_context(chain_pem: bytes, key_pem: bytes, trusted_pem: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_OPTIONAL
    context.load_verify_locations(cadata=trusted_pem)
    context.set_alpn_protocols(["http/1.1"])
    load_cert_chain_from_memory(context, chain_pem, key_pem)
    return context


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
