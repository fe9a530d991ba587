"""The conformance client's mtls ops (feature ``mtls``) on the SDK's ``secinfra.mtls``.

``mtls_serve`` serves HTTPS with ``mtls.server_context`` and answers every
request with the caller's SPIFFE ID as ``mtls.peer_id`` reads it;
``mtls_call`` makes one GET over a new connection with
``mtls.client_context``. Both contexts are built on the configured client's
rotating identity source, as an application builds them
(docs/mtls/python.md). docs/conformance/adapter-protocol.md is the contract.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import socket
import ssl
import threading
from typing import Any, Final
from urllib.parse import urlsplit

from _gen import adapter as protocol

from secinfra import IdentitySource, mtls

DEFAULT_CALL_SECONDS: Final = 10.0
#: An idle kept-alive connection stays open this long (the protocol asks for 30 s at least).
IDLE_SECONDS: Final = 60.0
#: The SDK's refusal rules, as the protocol names them.
RULES: Final = {
    "authorizer": "authorizer",
    "chain": "chain",
    "x509-svid": "x509_svid",
    "trust-domain": "trust_domain",
    "expired": "validity",
}
#: OpenSSL's X509_V_ERR_CERT_NOT_YET_VALID and X509_V_ERR_CERT_HAS_EXPIRED.
OPENSSL_VALIDITY_ERRORS: Final = frozenset({9, 10})
#: The fields each authorizer kind takes.
KIND_FIELDS: Final = {
    "id": {"id"},
    "one_of": {"ids"},
    "member_of": {"trust_domain"},
    "path_prefix": {"trust_domain", "prefix"},
}


class MalformedRequest(ValueError):
    """The runner sent an authorizer or URL the protocol does not allow."""


def authorizer(spec: protocol.MtlsAuthorizer | None) -> mtls.Authorizer:
    """The SDK authorizer an MtlsAuthorizer names."""
    if spec is None:
        raise MalformedRequest("give an authorizer")
    wanted = KIND_FIELDS.get(spec.kind)
    if wanted is None:
        raise MalformedRequest(
            f"unknown authorizer kind {spec.kind!r} (known: {sorted(KIND_FIELDS)})"
        )
    given = {name for name in ("id", "ids", "trust_domain", "prefix") if getattr(spec, name)}
    if given != wanted:
        raise MalformedRequest(
            f"authorizer kind {spec.kind!r} takes {sorted(wanted)}, got {sorted(given)}"
        )
    if spec.kind == "id":
        return mtls.authorize_id(str(spec.id))
    if spec.kind == "one_of":
        return mtls.authorize_one_of(spec.ids)
    if spec.kind == "member_of":
        return mtls.authorize_member_of(str(spec.trust_domain))
    return mtls.authorize_path_prefix(str(spec.trust_domain), str(spec.prefix))


class _Handler(http.server.BaseHTTPRequestHandler):
    """Answers every request with the caller's verified SPIFFE ID."""

    protocol_version = "HTTP/1.1"
    timeout = IDLE_SECONDS

    def _answer(self) -> None:
        body = json.dumps({"peer_spiffe_id": str(mtls.peer_id(self.connection))}).encode()
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        pass  # stdout is the protocol's; the runner does not need an access log


class MtlsServer(http.server.ThreadingHTTPServer):
    """An HTTPS server on 127.0.0.1 with ``mtls.server_context``, one thread per connection."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, source: IdentitySource, allowed: mtls.Authorizer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        context = mtls.server_context(source, allowed)
        # The handshake (and the peer check) runs in the connection's thread, at its
        # first read, so a slow or refused handshake never holds up accept().
        self.socket = context.wrap_socket(
            self.socket, server_side=True, do_handshake_on_connect=False
        )
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, args=(0.2,), daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a refused handshake: the SDK logged it (secinfra.mtls), the peer sees it

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        with self._lock:
            held = list(self._connections)
        for conn in held:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self._thread.join(5)


def call(
    source: IdentitySource, msg: protocol.MtlsCallRequest
) -> tuple[protocol.MtlsCallResult | None, protocol.Failure | None]:
    """One GET of ``msg.url`` over a new mTLS connection; its result or its failure."""
    url = urlsplit(msg.url)
    if url.scheme != "https" or not url.hostname or not url.port:
        raise MalformedRequest(f"url must be https://127.0.0.1:<port>/..., got {msg.url!r}")
    context = mtls.client_context(source, authorizer(msg.authorizer))
    timeout = msg.timeout_seconds or DEFAULT_CALL_SECONDS
    # The snapshot a new connection presents: the context asks the source for it.
    current = source.identity()
    presented = current.serial if current is not None else ""
    conn = http.client.HTTPSConnection(url.hostname, url.port, context=context, timeout=timeout)
    try:
        try:
            conn.connect()
        except mtls.PeerRefused as refused:
            return None, _failure("PeerRefused", refused, RULES.get(refused.rule, refused.rule))
        except ssl.SSLCertVerificationError as exc:
            # OpenSSL refused the certificate before the SDK's own rules ran.
            rule = "validity" if exc.verify_code in OPENSSL_VALIDITY_ERRORS else "chain"
            return None, _failure("PeerRefused", exc, rule)
        except (TimeoutError, ConnectionRefusedError) as exc:
            return None, _failure("TransportError", exc)
        except OSError as exc:  # ssl.SSLError, resets: the handshake failed
            return None, _failure("HandshakeFailed", exc)
        assert conn.sock is not None
        server = str(mtls.peer_id(conn.sock))
        try:
            conn.request("GET", url.path or "/")
            response = conn.getresponse()
            body = response.read().decode("utf-8", "replace")
        except TimeoutError as exc:
            return None, _failure("TransportError", exc)
        except (OSError, http.client.HTTPException) as exc:
            # TLS 1.3: the server checks this client after the client's handshake ended,
            # so its refusal arrives as an alert or a close on the first read.
            return None, _failure("HandshakeFailed", exc)
    finally:
        conn.close()
    return (
        protocol.MtlsCallResult(
            status=response.status, body=body, peer_spiffe_id=server, presented_serial=presented
        ),
        None,
    )


def _failure(kind: str, exc: BaseException, code: str | None = None) -> protocol.Failure:
    return protocol.Failure(type=kind, code=code, message=f"{type(exc).__name__}: {exc}")
