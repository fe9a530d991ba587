"""A real server on loopback (own thread, own event loop) and a real TLS client."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import sqlite3
import ssl
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from secinfra_server import audit, ca
from secinfra_server.cli import initialise
from secinfra_server.config import admin_files, load_config
from secinfra_server.crypto import load_audit_key
from secinfra_server.server import Server

T = TypeVar("T")


class RunningServer:
    """A Server started in a background thread; stop() shuts it down gracefully."""

    def __init__(
        self, data_dir: Path, *, server_class: type[Server] = Server, **settings: Any
    ) -> None:
        flags = {"data_dir": str(data_dir), "host": "127.0.0.1", "port": 0, **settings}
        self.config = load_config(flags=flags, environ={})
        self.loop = asyncio.new_event_loop()
        self.server = server_class(self.config)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> RunningServer:
        self._thread.start()
        self.call(initialise(self.config, quiet=True))
        self.call(self.server.start())
        return self

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run a coroutine on the server's loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        """Stop the server; fail if it lost an audit entry (every in-process
        server of the suite stops here, so this holds suite-wide)."""
        if self.server.storage is not None:
            self.call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        lost = self.server.metrics.registry.get_sample_value("secinfra_audit_entries_lost_total")
        assert not lost, f"the server lost {lost:.0f} audit entries"

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port

    @property
    def admin(self) -> Identity:
        cert, key, _ = admin_files(self.config.data_dir)
        return Identity(cert.read_bytes(), key.read_bytes())

    def bundle_pem(self) -> str:
        assert self.server.ca_runtime is not None
        return self.server.ca_runtime.trusted_pem


@dataclass
class Identity:
    """A client certificate chain and its key, in PEM."""

    cert_pem: bytes
    key_pem: bytes

    @property
    def cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def csr_pem(key: Any) -> str:
    der = ca.build_csr(key)
    if der.startswith(b"-----"):
        return der.decode()
    csr = x509.load_der_x509_csr(der)
    return csr.public_bytes(serialization.Encoding.PEM).decode()


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def code(self) -> str:
        return str(self.json()["error"]["code"])


@dataclass
class Client:
    """An HTTPS client that keeps one connection open until told otherwise."""

    port: int
    bundle_pem: str
    identity: Identity | None = None
    tmp: Path | None = None
    conn: http.client.HTTPSConnection | None = field(default=None, init=False)

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cadata=self.bundle_pem)
        if self.identity is not None:
            assert self.tmp is not None, "client identities are loaded from a temp dir"
            self.tmp.mkdir(parents=True, exist_ok=True)
            cert = self.tmp / "client-cert.pem"
            key = self.tmp / "client-key.pem"
            cert.write_bytes(self.identity.cert_pem)
            key.write_bytes(self.identity.key_pem)
            context.load_cert_chain(cert, key)
        return context

    def connect(self) -> http.client.HTTPSConnection:
        if self.conn is None:
            self.conn = http.client.HTTPSConnection(
                "127.0.0.1", self.port, context=self.context(), timeout=30
            )
        return self.conn

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        conn = self.connect()
        payload = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=payload, headers=all_headers)
        resp = conn.getresponse()
        data = resp.read()
        result = Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
        if resp.will_close:
            self.close()
        return result

    def peer_certificate(self) -> x509.Certificate:
        conn = self.connect()
        if conn.sock is None:
            conn.connect()
        assert conn.sock is not None
        der = conn.sock.getpeercert(binary_form=True)  # type: ignore[attr-defined]
        return x509.load_der_x509_certificate(der)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def enrol(server: RunningServer, tmp: Path, spiffe_path: str = "/workload/a") -> Identity:
    """Create a join token as admin and enrol a new key with it."""
    admin = Client(server.port, server.bundle_pem(), server.admin, tmp / "admin")
    token = admin.request(
        "POST",
        "/v1/join-tokens",
        {"spiffe_id": f"spiffe://{server.config.trust_domain}{spiffe_path}"},
    ).json()["token"]
    admin.close()
    key = new_key()
    anon = Client(server.port, server.bundle_pem())
    resp = anon.request(
        "POST", "/v1/identity:issue", {"csr_pem": csr_pem(key), "join_token": token}
    )
    anon.close()
    assert resp.status == 200, resp.body
    return Identity(resp.json()["svid"]["cert_chain_pem"].encode(), key_pem(key))


def issue_with_jwt(server: RunningServer, token: str) -> Response:
    """IssueCertificate for a fresh key with a JWT attestation, no client certificate."""
    client = Client(server.port, server.bundle_pem())
    try:
        return client.request(
            "POST", "/v1/identity:issue", {"csr_pem": csr_pem(new_key()), "jwt": token}
        )
    finally:
        client.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def verified_audit_rows(data_dir: Path, query: str, params: tuple[Any, ...]) -> list[Any]:
    """Rows of ``query`` on a stopped server's SQLite audit log, once the whole
    chain has verified under the data dir's audit key."""
    conn = sqlite3.connect(data_dir / "secinfra.db")
    try:
        result = audit.verify(conn, load_audit_key(data_dir / "audit.key"))
        assert result.ok, result.reason
        return conn.execute(query, params).fetchall()
    finally:
        conn.close()


def audit_actions(server: RunningServer) -> list[tuple[str, str, str]]:
    """Every audit entry's (action, resource, outcome), after the read queue is
    written and the chain verified."""
    assert server.server.storage is not None
    assert server.server.audit is not None
    server.call(server.server.audit.flush())
    key = load_audit_key(server.config.audit_key_path)

    def read(conn: Any) -> tuple[audit.VerifyResult, list[tuple[str, str, str]]]:
        rows = conn.execute("SELECT action, resource, outcome FROM audit_log ORDER BY seq")
        return audit.verify(conn, key), [(str(a), str(r), str(o)) for a, r, o in rows.fetchall()]

    result, rows = server.call(server.server.storage.read(read))
    assert result.ok, result.reason
    return rows
