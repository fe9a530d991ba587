"""Server and client `ssl.SSLContext`s built on an identity source.

Every handshake uses the source's current snapshot (chain and key together)
and trusts the source's current bundle, so a renewal or a CA rotation takes
effect on the next handshake without a restart:

- A server context holds no certificate of its own. Its ``sni_callback``,
  which OpenSSL calls for every ClientHello (with or without SNI), swaps in
  a context built from the current snapshot and bundle: OpenSSL then presents
  that context's certificate and verifies the client against that context's
  store. Listening sockets wrapped once, asyncio servers and aiohttp all go
  through it.
- A client context delegates ``wrap_socket`` and ``wrap_bio`` (what
  ``ssl``, urllib3, asyncio and aiohttp call for each connection) to a
  context built from the current snapshot and bundle.

Built contexts are cached per (snapshot serial, bundle, settings), so a
handshake builds nothing unless something changed; the key reaches OpenSSL
through an anonymous memory file, never the disk
(``secinfra._runtime._tls.load_cert_chain_from_memory``).

OpenSSL verifies the peer's chain during the handshake. The X509-SVID rules
and the authorizer (``_verify``) run right after it, in ``do_handshake`` of
the connection classes below, before a byte of application data is read or
written: a refused connection is closed and its ``do_handshake`` raises
`PeerRefused`. Reads and writes on a connection that has not passed the
check run the handshake (and the check) first. In TLS 1.3 a client finishes
its handshake before the server has checked it, so a refused client sees
the connection closed, with no response byte. The server issues no session
tickets, so every TLS 1.3 connection is a full handshake.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from .._identity._bundle import TrustBundle
from .._identity._snapshot import X509Identity
from .._identity._source import IdentitySource
from .._runtime._tls import load_cert_chain_from_memory
from ._authorize import Authorizer
from ._spiffe_id import SpiffeId
from ._verify import PeerRefused, verify_peer

__all__ = ["client_context", "peer_id", "server_context"]

log = logging.getLogger("secinfra.mtls")


@dataclass(frozen=True)
class _PeerCheck:
    """What every connection of one server or client context checks after its handshake."""

    source: IdentitySource
    authorizer: Authorizer
    trust_domain: str

    def __call__(self, der: bytes | None, *, resumed: bool) -> SpiffeId:
        return verify_peer(
            der,
            bundle=self.source.bundle(),
            trust_domain=self.trust_domain,
            authorizer=self.authorizer,
            now=datetime.now(UTC),
            resumed=resumed,
        )


class _Checked(Protocol):
    """What the peer check needs from a connection (an SSLSocket or an SSLObject)."""

    @property
    def context(self) -> ssl.SSLContext: ...
    @property
    def server_side(self) -> bool: ...
    @property
    def session_reused(self) -> bool | None: ...
    def getpeercert(self, binary_form: bool) -> Any: ...


def _check(connection: _Checked) -> SpiffeId:
    """Run the peer check of the connection's context; log a refusal on a server."""
    check: _PeerCheck = getattr(connection.context, "_secinfra_check")  # noqa: B009
    try:
        return check(connection.getpeercert(True), resumed=bool(connection.session_reused))
    except PeerRefused as refused:
        if connection.server_side:
            log.warning("%s", refused)
        raise


class MtlsSocket(ssl.SSLSocket):
    """An `ssl.SSLSocket` that checks its peer right after the handshake."""

    _secinfra_peer: SpiffeId | None = None

    def do_handshake(self, block: bool = False) -> None:
        super().do_handshake(block)
        if self._secinfra_peer is None:
            try:
                self._secinfra_peer = _check(self)
            except PeerRefused:
                self.close()
                raise

    def _require_peer(self) -> None:
        if self._secinfra_peer is None:
            self.do_handshake()

    def read(self, len: int = 1024, buffer: Any = None) -> Any:
        self._require_peer()
        return super().read(len, buffer)

    def write(self, data: Any) -> int:
        self._require_peer()
        return super().write(data)

    def send(self, data: Any, flags: int = 0) -> int:
        self._require_peer()
        return super().send(data, flags)


class MtlsObject(ssl.SSLObject):
    """An `ssl.SSLObject` (asyncio, aiohttp) that checks its peer right after the handshake."""

    _secinfra_peer: SpiffeId | None = None

    def do_handshake(self) -> None:
        super().do_handshake()
        if self._secinfra_peer is None:
            self._secinfra_peer = _check(self)

    def read(self, len: int = 1024, buffer: Any = None) -> Any:
        if self._secinfra_peer is None:
            self.do_handshake()
        return super().read(len, buffer)

    def write(self, data: Any) -> int:
        if self._secinfra_peer is None:
            self.do_handshake()
        return super().write(data)


class _MtlsContext(ssl.SSLContext):
    """A context whose connections check their peer (`MtlsSocket`, `MtlsObject`)."""

    sslsocket_class = MtlsSocket
    sslobject_class = MtlsObject
    _secinfra_check: _PeerCheck


class _RotatingContext(_MtlsContext):
    """What the server and client contexts share: the per-snapshot context cache.

    The trust and the identity come from the source only: loading
    certificates or CAs into this context by hand is refused rather than
    silently ignored.
    """

    _server = False
    """True for a server context (its built contexts serve)."""
    _source: IdentitySource
    _lock: threading.Lock
    _held: tuple[object, ssl.SSLContext] | None
    _alpn: tuple[str, ...]

    def _setup(self, source: IdentitySource, authorizer: Authorizer) -> None:
        if not isinstance(authorizer, Authorizer):
            raise TypeError(
                "secinfra: mtls: an authorizer is required (authorize_id, authorize_one_of,"
                " authorize_member_of, authorize_path_prefix, authorize_if; authorize_any to"
                f" admit every peer of the trust bundle), got {authorizer!r}"
            )
        self._source = source
        self._lock = threading.Lock()
        self._held = None
        self._alpn = ()
        self._secinfra_check = _PeerCheck(
            source, authorizer, SpiffeId.parse(source.server_id).trust_domain
        )
        self.minimum_version = ssl.TLSVersion.TLSv1_2
        self.check_hostname = False  # SPIFFE IDs are verified, not host names
        self.verify_mode = ssl.CERT_REQUIRED

    def current(self) -> ssl.SSLContext:
        """The context for a handshake now: the current snapshot and bundle."""
        identity = self._source.ensure_identity()
        bundle = self._source.bundle()
        settings = (self.minimum_version, self.maximum_version, int(self.options), self._alpn)
        key = (identity.serial, bundle.pem, settings)
        with self._lock:
            if self._held is not None and self._held[0] == key:
                return self._held[1]
            built = self._build(identity, bundle)
            self._held = (key, built)
            return built

    def _build(self, identity: X509Identity, bundle: TrustBundle) -> ssl.SSLContext:
        built = _MtlsContext(ssl.PROTOCOL_TLS_SERVER if self._server else ssl.PROTOCOL_TLS_CLIENT)
        built._secinfra_check = self._secinfra_check
        built.minimum_version = self.minimum_version
        built.maximum_version = self.maximum_version
        built.options = self.options
        built.check_hostname = False
        built.verify_mode = ssl.CERT_REQUIRED
        if self._server:
            built.num_tickets = 0
        built.load_verify_locations(cadata=bundle.pem)
        load_cert_chain_from_memory(built, identity.chain_pem, identity.key_pem)
        if self._alpn:
            built.set_alpn_protocols(self._alpn)
        return built

    def set_alpn_protocols(self, alpn_protocols: Iterable[str]) -> None:
        self._alpn = tuple(alpn_protocols)
        super().set_alpn_protocols(self._alpn)

    def load_cert_chain(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("secinfra: mtls: the certificate comes from the identity source")

    def load_verify_locations(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("secinfra: mtls: the trusted CAs come from the identity source's bundle")

    def load_default_certs(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("secinfra: mtls: the trusted CAs come from the identity source's bundle")

    def set_default_verify_paths(self) -> None:
        raise TypeError("secinfra: mtls: the trusted CAs come from the identity source's bundle")


class _ServerContext(_RotatingContext):
    _server = True

    def _select(self, connection: Any, server_name: str | None, context: Any) -> int | None:
        """The SNI callback: serve this handshake from the current snapshot and bundle."""
        try:
            connection.context = self.current()
        except Exception as exc:
            log.error("secinfra: mtls: cannot serve a handshake: %s", exc)
            return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
        return None


class _ClientContext(_RotatingContext):
    def wrap_socket(
        self,
        sock: socket.socket,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLSocket:
        _client_only(server_side)
        return self.current().wrap_socket(
            sock,
            server_side=False,
            do_handshake_on_connect=do_handshake_on_connect,
            suppress_ragged_eofs=suppress_ragged_eofs,
            server_hostname=server_hostname,
            session=session,
        )

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        _client_only(server_side)
        return self.current().wrap_bio(
            incoming, outgoing, server_side=False, server_hostname=server_hostname, session=session
        )


def _client_only(server_side: bool) -> None:
    if server_side:
        raise ValueError("secinfra: mtls: a client context cannot serve; use server_context")


def server_context(source: IdentitySource, authorizer: Authorizer) -> ssl.SSLContext:
    """A TLS 1.2+ server context that requires and authorizes client certificates.

    Each handshake presents the source's current snapshot and verifies the
    client against its current bundle, the X509-SVID rules and
    ``authorizer``. Use it as any server context: ``wrap_socket(...,
    server_side=True)``, ``asyncio.start_server(ssl=...)``, aiohttp's
    ``TCPSite(ssl_context=...)``. Do not replace its ``sni_callback``: that
    is how it rotates.
    """
    context = _ServerContext(ssl.PROTOCOL_TLS_SERVER)
    context._setup(source, authorizer)
    context.num_tickets = 0
    context.sni_callback = context._select
    return context


def client_context(source: IdentitySource, authorizer: Authorizer) -> ssl.SSLContext:
    """A TLS 1.2+ client context that presents the current snapshot and authorizes the server.

    Host names are not checked: the server's SPIFFE ID is, by ``authorizer``,
    after its chain verified to the source's current bundle. Use it with
    ``ssl``, asyncio (``open_connection(ssl=...)``), aiohttp
    (``ssl=...``) or requests (`MtlsAdapter`).
    """
    context = _ClientContext(ssl.PROTOCOL_TLS_CLIENT)
    context._setup(source, authorizer)
    return context


def peer_id(connection: Any) -> SpiffeId:
    """The verified SPIFFE ID of the peer of a connection made with these contexts.

    ``connection`` is an `ssl.SSLSocket`, an `ssl.SSLObject`, or anything with
    ``get_extra_info`` (an asyncio transport or ``StreamWriter``, aiohttp's
    ``request.transport``). A connection that did not pass the check, or was
    not made with these contexts, raises LookupError: never an unverified ID.
    """
    get_extra_info = getattr(connection, "get_extra_info", None)
    if callable(get_extra_info):
        connection = get_extra_info("ssl_object")
    peer = getattr(connection, "_secinfra_peer", None)
    if not isinstance(peer, SpiffeId):
        raise LookupError("secinfra: mtls: this connection has no verified SPIFFE peer")
    return peer
