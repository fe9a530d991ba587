"""The runner's own mTLS peer for the ``mtls`` suite: identities, a server, a client.

The peer is plain Python ``ssl``, never an SDK under test, so a broken SDK
shows up as a failed case rather than as a broken runner. It holds
identities of five kinds (``conformance/README.md``, "mTLS steps"):

- ``issued``: an X509-SVID from the reference server's CA (a join token and
  ``IssueCertificate``, as a workload enrols), for any SPIFFE ID;
- ``expired``: the same, issued with a 2 s lifetime (``/_test/ca/leaf-ttl``)
  and handed out once it has expired;
- ``two_uri_sans`` and ``foreign_trust_domain``: certificates our CA never
  signs by design, so the runner forges them with ``cryptography`` from a CA
  of its own that no bundle holds. An SDK may refuse them for either reason
  (the broken SVID rule or the unknown chain); each SDK's unit tests check
  the rules one by one with a trusted CA.

As a server the peer answers every request with the SPIFFE ID and serial of
the client certificate it saw; as a client it reports the certificate the
SDK's server presented and the body it answered. Both trust every CA of every
trust bundle the server has published during the case (old and new CAs of a
rotation), so what a case measures is the SDK's refusal, never the peer's.
"""

from __future__ import annotations

import base64
import datetime
import http.client
import http.server
import json
import shutil
import ssl
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .server import Server

#: The kinds of identity a ``peer_identity`` step makes.
KINDS: Final = ("issued", "expired", "two_uri_sans", "foreign_trust_domain")
FOREIGN_TRUST_DOMAIN: Final = "foreign.example"
#: Lifetime of an ``expired`` identity (the server's test-mode minimum).
EXPIRED_TTL_SECONDS: Final = 2
#: The server's leaf lifetime when a case does not set one (ServerConfig).
DEFAULT_LEAF_TTL_SECONDS: Final = 3600
PEER_TIMEOUT_SECONDS: Final = 10.0
#: How long the peer's server keeps an idle connection open.
PEER_IDLE_SECONDS: Final = 60.0

#: Failure types of a peer call (outcome ``error.type``).
REFUSED: Final = "Refused"
"""The SDK's server closed the connection or sent a TLS alert before answering."""
BAD_SERVER_CERTIFICATE: Final = "BadServerCertificate"
"""The SDK's server presented a certificate the peer could not verify."""
TRANSPORT_ERROR: Final = "TransportError"
"""No connection, or no answer in time."""


class PeerError(ValueError):
    """A peer step is wrong (an unknown identity, no server to call)."""


@dataclass(frozen=True)
class PeerIdentity:
    """One certificate and key the peer can present."""

    name: str
    kind: str
    spiffe_id: str
    cert_path: Path
    key_path: Path
    serial: str
    not_after: str
    issuer: str

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "spiffe_id": self.spiffe_id,
            "serial": self.serial,
            "not_after": self.not_after,
            "issuer": self.issuer,
        }


@dataclass(frozen=True)
class Seen:
    """A client certificate the peer's server saw on a request."""

    index: int
    spiffe_id: str | None
    serial: str | None


def describe(der: bytes | None) -> dict[str, Any]:
    """SPIFFE ID (the URI SANs joined, as presented), serial and issuer of a certificate."""
    if der is None:
        return {"spiffe_id": None, "serial": None, "issuer": None}
    cert = x509.load_der_x509_certificate(der)
    try:
        uris = cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    return {
        "spiffe_id": " ".join(uris) or None,
        "serial": format(cert.serial_number, "x"),
        "issuer": cert.issuer.rfc4514_string(),
    }


class Peers:
    """The runner's mTLS peer of one case: identities, servers, kept connections."""

    def __init__(self, server: Server, *, leaf_ttl_seconds: float | None) -> None:
        self._server = server
        self._leaf_ttl = int(leaf_ttl_seconds or DEFAULT_LEAF_TTL_SECONDS)
        self._dir = Path(tempfile.mkdtemp(prefix="secinfra-mtls-peer-"))
        self._trusted: dict[str, None] = {}  # PEM -> None, in the order first seen
        self._own_ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None = None
        self.identities: dict[str, PeerIdentity] = {}
        self._servers: list[_PeerServer] = []
        self._connections: dict[str, http.client.HTTPSConnection] = {}
        self._seen: list[Seen] = []
        self._seen_lock = threading.Lock()

    # -- trust ------------------------------------------------------------------------
    def refresh_trust(self) -> None:
        """Add every CA of the server's current bundle to what the peer trusts."""
        bundle = self._server.admin("GetTrustBundle", {})
        for key in bundle.get("keys") or []:
            for der_b64 in key.get("x5c") or []:
                cert = x509.load_der_x509_certificate(base64.b64decode(der_b64))
                pem = cert.public_bytes(serialization.Encoding.PEM).decode()
                if pem not in self._trusted:
                    self._trusted[pem] = None
                    for running in self._servers:
                        running.context.load_verify_locations(cadata=pem)

    def _trust_pem(self) -> str:
        return "".join(self._trusted)

    # -- identities -------------------------------------------------------------------
    def make_identity(self, name: str, kind: str, spiffe_id: str) -> PeerIdentity:
        """A new identity of ``kind`` for ``spiffe_id`` (see the module docstring)."""
        if kind not in KINDS:
            raise PeerError(f"unknown identity kind {kind!r} (known: {list(KINDS)})")
        if name in self.identities:
            raise PeerError(f"identity {name!r} exists already")
        key = ec.generate_private_key(ec.SECP256R1())
        if kind in ("issued", "expired"):
            chain_pem = self._issue(key, spiffe_id, expired=kind == "expired")
        else:
            uris = [spiffe_id]
            if kind == "two_uri_sans":
                uris.append(spiffe_id.rstrip("/") + "-second")
            chain_pem = self._forge(key, uris)
        key_path = self._dir / f"{name}.key.pem"
        key_path.touch(mode=0o600)
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        cert_path = self._dir / f"{name}.cert.pem"
        cert_path.write_text(chain_pem)
        leaf = x509.load_pem_x509_certificate(chain_pem.encode())
        identity = PeerIdentity(
            name=name,
            kind=kind,
            spiffe_id=spiffe_id,
            cert_path=cert_path,
            key_path=key_path,
            serial=format(leaf.serial_number, "x"),
            not_after=leaf.not_valid_after_utc.isoformat(),
            issuer=leaf.issuer.rfc4514_string(),
        )
        self.identities[name] = identity
        return identity

    def _issue(self, key: ec.EllipticCurvePrivateKey, spiffe_id: str, *, expired: bool) -> str:
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([]))
            .sign(key, hashes.SHA256())
            .public_bytes(serialization.Encoding.PEM)
            .decode()
        )
        token = self._server.join_token(spiffe_id)
        if expired:
            self._server.control("POST", "/_test/ca/leaf-ttl", {"seconds": EXPIRED_TTL_SECONDS})
        try:
            answer = self._server.admin("IssueCertificate", {"csr_pem": csr, "join_token": token})
        finally:
            if expired:
                self._server.control("POST", "/_test/ca/leaf-ttl", {"seconds": self._leaf_ttl})
        return str(answer["svid"]["cert_chain_pem"])

    def _ca(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """The runner's own CA (in no bundle), made on first use."""
        if self._own_ca is None:
            key = ec.generate_private_key(ec.SECP256R1())
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "conformance runner CA")])
            now = datetime.datetime.now(datetime.UTC)
            cert = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=1))
                .not_valid_after(now + datetime.timedelta(hours=2))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=False,
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
                .sign(key, hashes.SHA256())
            )
            self._own_ca = (key, cert)
        return self._own_ca

    def _forge(self, key: ec.EllipticCurvePrivateKey, uris: list[str]) -> str:
        """An X509-SVID-shaped leaf for ``uris`` signed by the runner's CA; chain PEM."""
        ca_key, ca_cert = self._ca()
        now = datetime.datetime.now(datetime.UTC)
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris]),
                critical=True,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
                ),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in (leaf, ca_cert))

    def identity(self, name: str) -> PeerIdentity:
        try:
            return self.identities[name]
        except KeyError:
            raise PeerError(
                f"no peer identity {name!r} (made so far: {sorted(self.identities)})"
            ) from None

    # -- the peer as a server ---------------------------------------------------------
    def serve(self, name: str) -> dict[str, Any]:
        """Serve HTTPS with identity ``name``; its URL and port."""
        identity = self.identity(name)
        self.refresh_trust()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=self._trust_pem())
        context.load_cert_chain(identity.cert_path, identity.key_path)
        running = _PeerServer(context, self._record)
        self._servers.append(running)
        port = running.server_address[1]
        return {"url": f"https://127.0.0.1:{port}/mtls", "port": port, **identity.summary()}

    def _record(self, der: bytes | None) -> dict[str, Any]:
        seen = describe(der)
        with self._seen_lock:
            self._seen.append(Seen(len(self._seen), seen["spiffe_id"], seen["serial"]))
        return seen

    def seen_count(self) -> int:
        with self._seen_lock:
            return len(self._seen)

    def seen_since(self, index: int) -> list[dict[str, Any]]:
        """The client certificates the peer's servers saw on requests since ``index``."""
        with self._seen_lock:
            return [{"spiffe_id": s.spiffe_id, "serial": s.serial} for s in self._seen[index:]]

    # -- the peer as a client ---------------------------------------------------------
    def call(
        self, name: str, port: int, *, connection: str | None = None, path: str = "/mtls"
    ) -> dict[str, Any]:
        """A GET to the SDK's server on ``port`` presenting identity ``name``; an outcome.

        With ``connection``, the connection is kept under that name and a later
        call naming it reuses it (``result.reused`` says whether it did).
        """
        identity = self.identity(name)
        self.refresh_trust()
        kept = self._connections.get(connection) if connection else None
        if kept is not None:
            conn, reused = kept, True
        else:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.check_hostname = False  # the SDK's SPIFFE ID is what is checked
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cadata=self._trust_pem())
            context.load_cert_chain(identity.cert_path, identity.key_path)
            conn = http.client.HTTPSConnection(
                "127.0.0.1", port, context=context, timeout=PEER_TIMEOUT_SECONDS
            )
            reused = False
        sock_before = conn.sock
        try:
            if conn.sock is None:
                conn.connect()
            server = describe(conn.sock.getpeercert(True) if conn.sock is not None else None)
            conn.request("GET", path, headers={"Connection": "keep-alive"})
            response = conn.getresponse()
            body = response.read().decode("utf-8", "replace")
        except ssl.SSLCertVerificationError as exc:
            conn.close()
            return _failed(BAD_SERVER_CERTIFICATE, exc)
        except (TimeoutError, ConnectionRefusedError) as exc:
            conn.close()
            return _failed(TRANSPORT_ERROR, exc)
        except (ssl.SSLError, http.client.HTTPException, OSError) as exc:
            # An alert, a reset or a close before any answer: the server refused.
            conn.close()
            self._connections.pop(connection or "", None)
            return _failed(REFUSED, exc)
        if connection:
            self._connections[connection] = conn
        else:
            conn.close()
        try:
            answered = json.loads(body)
        except ValueError:
            answered = None
        return {
            "ok": True,
            "result": {
                "status": response.status,
                "body": answered if isinstance(answered, dict) else body,
                "peer_spiffe_id": answered.get("peer_spiffe_id")
                if isinstance(answered, dict)
                else None,
                "server_spiffe_id": server["spiffe_id"],
                "server_serial": server["serial"],
                "server_issuer": server["issuer"],
                "presented_serial": identity.serial,
                "reused": reused and conn.sock is sock_before,
            },
        }

    def close(self) -> None:
        for conn in self._connections.values():
            conn.close()
        self._connections.clear()
        for running in self._servers:
            running.stop()
        self._servers.clear()
        shutil.rmtree(self._dir, ignore_errors=True)


def _failed(kind: str, exc: BaseException) -> dict[str, Any]:
    return {"ok": False, "error": {"type": kind, "message": f"{type(exc).__name__}: {exc}"}}


class _Handler(http.server.BaseHTTPRequestHandler):
    """Answers every GET with the client certificate it saw."""

    protocol_version = "HTTP/1.1"
    timeout = PEER_IDLE_SECONDS
    server: _PeerServer

    def do_GET(self) -> None:
        assert isinstance(self.connection, ssl.SSLSocket)
        seen = self.server.record(self.connection.getpeercert(True))
        body = json.dumps({"peer_spiffe_id": seen["spiffe_id"], "peer_serial": seen["serial"]})
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _PeerServer(http.server.ThreadingHTTPServer):
    """The peer's HTTPS server on 127.0.0.1, one thread per connection."""

    daemon_threads = True

    def __init__(self, context: ssl.SSLContext, record: Any) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.context = context
        self.record = record
        # The handshake runs in the connection's thread (its first read), not in accept().
        self.socket = context.wrap_socket(
            self.socket, server_side=True, do_handshake_on_connect=False
        )
        self._thread = threading.Thread(target=self.serve_forever, args=(0.2,), daemon=True)
        self._thread.start()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a refused or dropped handshake is the case's business, not a traceback

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(5)
