"""Connection floods and slow clients against a real server on loopback: the
limits refuse what is over them before TLS, the timeouts close what is held,
and a well-behaved mTLS client keeps getting answers throughout.

Loopback peers all share 127.0.0.1, so the floods come from other loopback
source addresses (127.0.0.2 and up, which Linux routes to the loopback
interface) and the well-behaved client from 127.0.0.1: the per-peer limit is
shown on the flood without touching the client. Every test is bounded: a few
hundred sockets, and every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import http.client
import resource
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from secinfra_server._gen import identity as m
from secinfra_server._rpc import Handler, RequestContext
from secinfra_server.server import Server

from .harness import Identity, RunningServer

GOOD_CLIENT = "127.0.0.1"
#: How long any one wait in these tests may take before the test fails.
WAIT_SECONDS = 20.0
#: File descriptors this module needs at most (clients and server in one process).
NEEDED_FDS = 2048


@pytest.fixture(scope="module", autouse=True)
def enough_file_descriptors() -> Iterator[None]:
    """Clients and server share this process's descriptor limit: make sure it
    holds both sides of every socket (raised up to the hard limit if needed)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = NEEDED_FDS if hard == resource.RLIM_INFINITY else min(NEEDED_FDS, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= 1024, (
        "these tests need RLIMIT_NOFILE of at least 1024"
    )
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _wait_for(predicate: Callable[[], bool], timeout: float = WAIT_SECONDS) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _metric(server: RunningServer, name: str, **labels: str) -> float:
    value = server.server.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def _open_from(server: RunningServer, peer: str) -> int:
    gate = server.server.connections
    assert gate is not None

    async def count() -> int:
        return gate.open_from(peer)

    return server.call(count())


@dataclass
class RawSocket:
    """A TCP connection that never starts TLS."""

    sock: socket.socket
    opened: float
    closed: float | None = None

    def poll(self) -> bool:
        """Whether the server has closed it (records when that was seen)."""
        if self.closed is not None:
            return True
        readable, _, _ = select.select([self.sock], [], [], 0)
        if not readable:
            return False
        try:
            data = self.sock.recv(1)
        except OSError:  # reset
            data = b""
        assert data == b"", "the server sent bytes to a connection that never started TLS"
        self.closed = time.monotonic()
        self.sock.close()
        return True


def _flood(port: int, source: str, count: int) -> list[RawSocket]:
    """``count`` TCP connections from ``source`` that never send a byte."""
    sockets: list[RawSocket] = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((source, 0))
        sock.settimeout(10)
        opened = time.monotonic()
        try:
            sock.connect(("127.0.0.1", port))
        except ConnectionResetError:
            # Refused so fast that the reset beat connect() back to this thread.
            sock.close()
            sockets.append(RawSocket(sock, opened, closed=time.monotonic()))
            continue
        sockets.append(RawSocket(sock, opened))
    return sockets


def _close_all(sockets: list[RawSocket]) -> None:
    for raw in sockets:
        raw.sock.close()


@dataclass
class WellBehavedClient:
    """An mTLS client from 127.0.0.1 that keeps one connection alive and can
    also make each call on a new connection."""

    port: int
    context: ssl.SSLContext
    conn: http.client.HTTPSConnection | None = None
    ok: int = 0
    failed: list[str] = field(default_factory=list)

    def call(self, *, new_connection: bool) -> bool:
        """GET whoami; True (and counted) if it answered 200."""
        conn: http.client.HTTPSConnection | None = None
        try:
            conn = self._new() if new_connection else self.conn or self._keep(self._new())
            conn.request("GET", "/v1/identity:whoami")
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                self.failed.append(f"status {response.status}")
                return False
        except (OSError, http.client.HTTPException) as exc:
            self.failed.append(repr(exc))
            if conn is not None and conn is self.conn:
                self.close()
            return False
        finally:
            if new_connection and conn is not None:
                conn.close()
        self.ok += 1
        return True

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _new(self) -> http.client.HTTPSConnection:
        conn = http.client.HTTPSConnection(
            "127.0.0.1",
            self.port,
            context=self.context,
            timeout=10,
            source_address=(GOOD_CLIENT, 0),
        )
        conn.connect()
        return conn

    def _keep(self, conn: http.client.HTTPSConnection) -> http.client.HTTPSConnection:
        self.conn = conn
        return conn


def _mtls_context(server: RunningServer, tmp_path: Path, identity: Identity) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=server.bundle_pem())
    tmp_path.mkdir(parents=True, exist_ok=True)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(identity.cert_pem)
    key.write_bytes(identity.key_pem)
    context.load_cert_chain(cert, key)
    return context


def _tls_connection(server: RunningServer, source: str) -> ssl.SSLSocket:
    """A TLS connection (no client certificate) from ``source``, handshake
    done, left non-blocking for :func:`_tls_closed`."""
    context = ssl.create_default_context(cadata=server.bundle_pem())
    raw = socket.create_connection(
        ("127.0.0.1", server.port), timeout=10, source_address=(source, 0)
    )
    conn = context.wrap_socket(raw, server_hostname="localhost")
    conn.setblocking(False)
    return conn


def _tls_closed(conn: ssl.SSLSocket) -> bool:
    """Whether the server has closed (or reset) a TLS connection that is
    waiting for nothing. Reads without blocking: TLS 1.3 session tickets make
    the socket readable with no application data."""
    conn.setblocking(False)
    try:
        data = conn.recv(1)
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
        return False
    except OSError:
        return True
    assert data == b"", "the server answered a request it should not have"
    return True


class Slowloris:
    """TLS connections that send a request head one byte at a time and never
    finish it, in a thread, until the server closes each (or the deadline)."""

    HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 4096
    BYTE_INTERVAL_SECONDS = 0.1

    def __init__(self, server: RunningServer, source: str, count: int) -> None:
        #: Each connection and when it was opened (before the handshake: the
        #: server's header timer starts later, when it has the client's Finished).
        self.connections: list[tuple[ssl.SSLSocket, float]] = []
        for _ in range(count):
            opened = time.monotonic()
            self.connections.append((_tls_connection(server, source), opened))
        #: For each connection the server closed: seconds from opening to close.
        self.closed_after: list[float] = []
        self.bytes_sent = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Slowloris:
        self._thread.start()
        return self

    def join(self) -> None:
        self._thread.join(WAIT_SECONDS + 5)

    def _run(self) -> None:
        live = dict(enumerate(self.connections))
        deadline = time.monotonic() + WAIT_SECONDS
        position = 0
        while live and time.monotonic() < deadline and position < len(self.HEAD):
            byte = self.HEAD[position : position + 1]
            position += 1
            for key, (conn, opened) in list(live.items()):
                try:
                    conn.send(byte)
                    self.bytes_sent += 1
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    pass
                except OSError:
                    pass  # reset: _tls_closed sees it too
                if _tls_closed(conn):
                    self.closed_after.append(time.monotonic() - opened)
                    conn.close()
                    del live[key]
            time.sleep(self.BYTE_INTERVAL_SECONDS)
        for conn, _ in live.values():
            conn.close()


def _limited_server(tmp_path: Path, **settings: object) -> RunningServer:
    return RunningServer(tmp_path / "data", **settings).start()


def test_flood_and_slowloris_do_not_stop_well_behaved_clients(tmp_path: Path) -> None:
    per_peer, flood_per_peer, flood_peers = 100, 250, ("127.0.0.2", "127.0.0.3")
    slow_count, handshake_timeout, header_timeout = 20, 6.0, 2.0
    server = _limited_server(
        tmp_path,
        max_connections=400,
        max_connections_per_peer=per_peer,
        tls_handshake_timeout_seconds=handshake_timeout,
        header_timeout_seconds=header_timeout,
        idle_timeout_seconds=10.0,
    )
    good = WellBehavedClient(server.port, _mtls_context(server, tmp_path / "good", server.admin))
    flood: dict[str, list[RawSocket]] = {}
    try:
        assert good.call(new_connection=False)
        for peer in flood_peers:
            flood[peer] = _flood(server.port, peer, flood_per_peer)
        slowloris = Slowloris(server, "127.0.0.4", slow_count).start()

        # Past the per-peer limit each flood connection is reset at once;
        # the first `per_peer` of each peer are held, waiting for TLS.
        refused = flood_per_peer - per_peer
        held_sockets: list[RawSocket] = []
        for peer, sockets in flood.items():
            assert _wait_for(lambda s=sockets: sum(r.poll() for r in s) >= refused)  # type: ignore[misc]
            held_here = [raw for raw in sockets if not raw.poll()]
            assert len(held_here) == per_peer, peer
            assert _open_from(server, peer) == per_peer, peer
            held_sockets += held_here
        assert _metric(server, "secinfra_connections_refused_total", reason="peer_limit") == (
            refused * len(flood_peers)
        )

        # While they are held, the well-behaved client keeps getting answers,
        # on its kept-alive connection and on new ones.
        held = per_peer * len(flood_peers)
        calls_while_held = 0
        deadline = time.monotonic() + WAIT_SECONDS
        while (
            _metric(server, "secinfra_connections_timed_out_total", phase="handshake") < held
            and time.monotonic() < deadline
        ):
            good.call(new_connection=calls_while_held % 2 == 1)
            calls_while_held += 1

        # Every held connection was closed by the handshake timeout (no
        # earlier), every slowloris by the header timeout.
        everything = [raw for sockets in flood.values() for raw in sockets]
        assert _wait_for(lambda: all(raw.poll() for raw in everything))
        assert min(raw.closed - raw.opened for raw in held_sockets if raw.closed) >= (
            handshake_timeout
        )
        slowloris.join()
        assert len(slowloris.closed_after) == slow_count
        assert min(slowloris.closed_after) >= header_timeout
        timed_out = {
            phase: _metric(server, "secinfra_connections_timed_out_total", phase=phase)
            for phase in ("handshake", "headers", "idle")
        }
        assert timed_out == {"handshake": held, "headers": slow_count, "idle": 0}
        assert _metric(server, "secinfra_connections_refused_total", reason="global_limit") == 0
        assert good.failed == []
        assert calls_while_held > 0
        assert good.call(new_connection=False)
        # Only the client's kept-alive connection is left.
        assert _wait_for(lambda: _metric(server, "secinfra_connections_open") == 1)

        # The metrics endpoint shows the same counts.
        assert good.conn is not None
        good.conn.request("GET", "/metrics")
        exposition = good.conn.getresponse().read().decode()
        assert f'secinfra_connections_refused_total{{reason="peer_limit"}} {refused * 2}.0' in (
            exposition
        )
        assert f'secinfra_connections_timed_out_total{{phase="handshake"}} {held}.0' in exposition
        assert 'secinfra_connections_timed_out_total{phase="headers"} 20.0' in exposition
        assert "secinfra_connections_max 400.0" in exposition
        print(
            f"\nconnection flood: {len(everything)} raw connections from {len(flood_peers)} peers,"
            f" {held} held until the handshake timeout, {refused * len(flood_peers)} refused"
            f" (peer limit); {slow_count} slowloris connections ({slowloris.bytes_sent} bytes)"
            f" closed by the header timeout; well-behaved calls {good.ok} ok"
            f" ({calls_while_held} while the flood was held), {len(good.failed)} failed"
        )
    finally:
        for sockets in flood.values():
            _close_all(sockets)
        good.close()
        server.stop()


def test_global_limit_refuses_new_connections_and_keeps_admitted_ones(tmp_path: Path) -> None:
    total, per_peer, handshake_timeout = 120, 50, 6.0
    server = _limited_server(
        tmp_path,
        max_connections=total,
        max_connections_per_peer=per_peer,
        tls_handshake_timeout_seconds=handshake_timeout,
        idle_timeout_seconds=30.0,
    )
    good = WellBehavedClient(server.port, _mtls_context(server, tmp_path / "good", server.admin))
    flood: list[RawSocket] = []
    try:
        assert good.call(new_connection=False)  # admitted before the flood
        for peer in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
            flood += _flood(server.port, peer, per_peer)
        refused = len(flood) + 1 - total
        assert _wait_for(lambda: sum(raw.poll() for raw in flood) >= refused)
        assert sum(not raw.poll() for raw in flood) == total - 1
        assert _metric(server, "secinfra_connections_refused_total", reason="global_limit") == (
            refused
        )
        assert _metric(server, "secinfra_connections_refused_total", reason="peer_limit") == 0

        # At the limit the admitted connection is served; a new one is not.
        for _ in range(5):
            assert good.call(new_connection=False), good.failed
        assert not good.call(new_connection=True)
        assert _metric(server, "secinfra_connections_refused_total", reason="global_limit") == (
            refused + 1
        )

        # Once the handshake timeout has freed the flood's places, new
        # connections are admitted again.
        assert _wait_for(lambda: all(raw.poll() for raw in flood))
        assert _metric(server, "secinfra_connections_timed_out_total", phase="handshake") == (
            total - 1
        )
        good.failed.clear()
        assert good.call(new_connection=True), good.failed
        assert good.call(new_connection=False), good.failed
    finally:
        _close_all(flood)
        good.close()
        server.stop()


def test_idle_and_silent_connections_are_closed_and_counted(tmp_path: Path) -> None:
    header_timeout, idle_timeout = 1.0, 1.5
    server = _limited_server(
        tmp_path, header_timeout_seconds=header_timeout, idle_timeout_seconds=idle_timeout
    )
    good = WellBehavedClient(server.port, _mtls_context(server, tmp_path / "good", server.admin))
    try:
        # Each time is taken before the server can start the timer it checks.
        silent_since = time.monotonic()
        silent = _tls_connection(server, "127.0.0.2")  # TLS, then not a byte
        asked = time.monotonic()
        assert good.call(new_connection=False)
        assert good.conn is not None
        assert good.conn.sock is not None
        kept = good.conn.sock

        assert isinstance(kept, ssl.SSLSocket)
        assert _wait_for(lambda: _tls_closed(silent))
        assert time.monotonic() - silent_since >= header_timeout
        assert _wait_for(lambda: _tls_closed(kept))
        assert time.monotonic() - asked >= idle_timeout
        assert _metric(server, "secinfra_connections_timed_out_total", phase="headers") == 1
        assert _metric(server, "secinfra_connections_timed_out_total", phase="idle") == 1
        assert _wait_for(lambda: _metric(server, "secinfra_connections_open") == 0)
        silent.close()
        good.close()
        assert good.call(new_connection=True), good.failed  # a new connection is fine
    finally:
        good.close()
        server.stop()


class _SlowWhoAmI(Server):
    """whoami takes longer than the header and idle timeouts together."""

    def extra_handlers(self) -> dict[str, Handler]:
        async def slow_whoami(ctx: RequestContext, _req: object) -> m.GetCallerIdentityResponse:
            await asyncio.sleep(1.5)
            assert ctx.peer is not None
            return m.GetCallerIdentityResponse(spiffe_id=ctx.peer.spiffe_id)

        return {"get_caller_identity": slow_whoami}


def test_a_request_slower_than_the_timeouts_is_answered(tmp_path: Path) -> None:
    server = RunningServer(
        tmp_path / "data",
        server_class=_SlowWhoAmI,
        header_timeout_seconds=0.5,
        idle_timeout_seconds=0.5,
    ).start()
    good = WellBehavedClient(server.port, _mtls_context(server, tmp_path / "good", server.admin))
    try:
        assert good.call(new_connection=False), good.failed
        assert good.call(new_connection=False), good.failed  # answered in time for the next
        timed_out = sum(
            _metric(server, "secinfra_connections_timed_out_total", phase=phase)
            for phase in ("handshake", "headers", "idle")
        )
        assert timed_out == 0
    finally:
        good.close()
        server.stop()
