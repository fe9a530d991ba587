"""The listener: admitting connections within limits, the TLS handshake, and
the timeouts that keep any one connection from holding the server.

Every connection goes through these phases, each bounded:

1. **Admission**, at accept, before any TLS: with ``max_connections``
   connections open, or ``max_connections_per_peer`` from the client's IP
   address, the new connection is reset at once and counted
   (``secinfra_connections_refused_total{reason}``).
2. **Handshake**: TLS must be complete within ``tls_handshake_timeout_seconds``
   of the accept. Until the client's first byte arrives the connection costs
   one file descriptor: asyncio's TLS state (a 256 KiB buffer per
   connection) is made only when the ClientHello is there to read.
3. **Headers**: a request head must be complete within
   ``header_timeout_seconds`` of the handshake (a connection's first request)
   or of the request's first byte (later ones).
4. **Busy**: the request is being served; the dispatcher bounds the body
   (``body_timeout_seconds``), nothing here interrupts a handler.
5. **Idle**: after a response, a kept-alive connection may wait
   ``idle_timeout_seconds`` for the first byte of its next request.

A connection that overstays phase 2, 3 or 5 is closed and counted
(``secinfra_connections_timed_out_total{phase}``): a slow handshake or head
with a reset (the peer is not following the protocol, so it gets no TLS
goodbye to ignore), an idle connection with TLS close_notify. Outside phase 4
a timer always runs, so only a request being served keeps a connection open.

The connection limit is fitted under the process's file-descriptor limit at
start (:func:`connection_budget`): running out of descriptors is never how the
server fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import resource
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

from aiohttp import web

from ._metrics import Metrics
from ._tls import accept_tls
from .config import ConfigError, ServerConfig

log = logging.getLogger("secinfra.listener")

Phase = Literal["handshake", "headers", "idle"]
RefusalReason = Literal["global_limit", "peer_limit"]

#: Connections the kernel may queue before the server accepts them.
LISTEN_BACKLOG: Final = 1024
#: File descriptors kept free of connections: at least this many, and at least
#: a quarter of the limit (database files and connections, logs, listeners).
MIN_RESERVED_FDS: Final = 64
#: How long a closing TLS connection waits for the peer's close_notify.
TLS_SHUTDOWN_TIMEOUT_SECONDS: Final = 5.0
#: asyncio's own handshake timeout, set past ours so that ours decides (and counts).
_HANDSHAKE_BACKSTOP_SECONDS: Final = 1.0
#: The pause after accept() itself failed (out of descriptors or memory).
ACCEPT_RETRY_SECONDS: Final = 1.0
#: At most one log line per refusal reason in this many seconds (a flood would
#: otherwise flood the log too); the line says how many were refused meanwhile.
REFUSAL_LOG_INTERVAL_SECONDS: Final = 10.0
#: accept() errors that mean a client gave up while queued: try the next one.
_CLIENT_GONE: Final = frozenset({errno.ECONNABORTED, errno.EPROTO})
_RESET_ON_CLOSE: Final = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close sends RST


def connection_budget(nofile_soft: int) -> int | None:
    """How many connections a soft ``RLIMIT_NOFILE`` leaves room for: the limit
    less a quarter of it (at least :data:`MIN_RESERVED_FDS`). None if unlimited."""
    if nofile_soft == resource.RLIM_INFINITY or nofile_soft < 0:
        return None
    return nofile_soft - max(MIN_RESERVED_FDS, nofile_soft // 4)


@dataclass(frozen=True)
class ConnectionLimits:
    """The limits and timeouts in effect for every connection."""

    max_connections: int
    max_connections_per_peer: int
    handshake_timeout: float
    header_timeout: float
    idle_timeout: float

    @classmethod
    def from_config(cls, config: ServerConfig, *, nofile_soft: int) -> ConnectionLimits:
        """The configured limits, ``max_connections`` lowered to fit the
        file-descriptor limit (and the per-peer limit to fit that)."""
        budget = connection_budget(nofile_soft)
        if budget is not None and budget < 1:
            raise ConfigError(
                f"secinfra: config: max_connections: the file-descriptor limit"
                f" (RLIMIT_NOFILE {nofile_soft}) leaves no room for connections;"
                f" raise it (ulimit -n, systemd LimitNOFILE=) above {MIN_RESERVED_FDS * 2}"
            )
        total = config.max_connections if budget is None else min(config.max_connections, budget)
        return cls(
            max_connections=total,
            max_connections_per_peer=min(config.max_connections_per_peer, total),
            handshake_timeout=config.tls_handshake_timeout_seconds,
            header_timeout=config.header_timeout_seconds,
            idle_timeout=config.idle_timeout_seconds,
        )


def peer_address(address: Any) -> str:
    """The IP address a connection's limit is counted under (IPv4-mapped IPv6
    addresses count as IPv4)."""
    host = str(address[0]) if isinstance(address, tuple) and address else str(address)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


class ConnectionGate:
    """Counts open connections, in all and by peer address, and admits new
    ones within the limits. Every accepted connection passes :meth:`admit`.
    Used from the event loop's thread only."""

    def __init__(
        self,
        limits: ConnectionLimits,
        metrics: Metrics,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits
        self._metrics = metrics
        self._monotonic = monotonic
        self._open = 0
        self._by_peer: dict[str, int] = {}
        self._refusals_logged_at: dict[RefusalReason, float] = {}
        self._refusals_unlogged: dict[RefusalReason, int] = {}
        metrics.connections_max.set(limits.max_connections)

    @property
    def open(self) -> int:
        """Connections admitted and not yet closed."""
        return self._open

    def open_from(self, peer: str) -> int:
        """Connections admitted from ``peer`` and not yet closed."""
        return self._by_peer.get(peer, 0)

    def admit(self, peer: str) -> Admission | None:
        """A place for a new connection from ``peer``, or None (counted and
        logged) if a limit is reached."""
        self._metrics.connections_accepted.inc()
        if self._open >= self.limits.max_connections:
            self._refuse("global_limit", peer)
            return None
        held = self._by_peer.get(peer, 0)
        if held >= self.limits.max_connections_per_peer:
            self._refuse("peer_limit", peer)
            return None
        self._open += 1
        self._by_peer[peer] = held + 1
        self._metrics.connections_open.inc()
        return Admission(self, peer)

    def timed_out(self, phase: Phase, peer: str) -> None:
        """Count a connection closed because ``phase`` took too long."""
        self._metrics.connections_timed_out.labels(phase).inc()
        log.debug("connection timed out", extra={"fields": {"phase": phase, "peer": peer}})

    def release(self, peer: str) -> None:
        """A connection admitted from ``peer`` closed (call once per admission)."""
        self._open -= 1
        remaining = self._by_peer[peer] - 1
        if remaining:
            self._by_peer[peer] = remaining
        else:
            del self._by_peer[peer]
        self._metrics.connections_open.dec()

    def _refuse(self, reason: RefusalReason, peer: str) -> None:
        self._metrics.connections_refused.labels(reason).inc()
        now = self._monotonic()
        last = self._refusals_logged_at.get(reason)
        if last is not None and now - last < REFUSAL_LOG_INTERVAL_SECONDS:
            self._refusals_unlogged[reason] = self._refusals_unlogged.get(reason, 0) + 1
            return
        self._refusals_logged_at[reason] = now
        fields: dict[str, Any] = {
            "reason": reason,
            "open": self._open,
            "max_connections": self.limits.max_connections,
            "refused_since_last_line": self._refusals_unlogged.pop(reason, 0),
        }
        if reason == "peer_limit":
            fields["peer"] = peer
            fields["max_connections_per_peer"] = self.limits.max_connections_per_peer
        log.warning("connection refused: limit reached", extra={"fields": fields})


class Admission:
    """One admitted connection's place under the limits, held until it closes."""

    __slots__ = ("_gate", "_released", "peer")

    def __init__(self, gate: ConnectionGate, peer: str) -> None:
        self._gate = gate
        self.peer = peer
        self._released = False

    @property
    def limits(self) -> ConnectionLimits:
        return self._gate.limits

    def timed_out(self, phase: Phase) -> None:
        """Count this connection as closed because ``phase`` took too long."""
        self._gate.timed_out(phase, self.peer)

    def release(self) -> None:
        """Give the place back; only the first call counts."""
        if not self._released:
            self._released = True
            self._gate.release(self.peer)


class GuardedRequestHandler(web.RequestHandler):
    """aiohttp's connection handler under the header and idle timeouts of its
    :class:`Admission`, which it gives back when the connection is lost.

    The handler learns that a request head is complete from
    :func:`track_requests` (the server's request factory) and that its
    response is out from :meth:`finish_response`. A pipelined head that began
    arriving while the previous request was served is timed as idle, not as
    headers: a different bound, never none.
    """

    def __init__(self, manager: web.Server, *, admission: Admission, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._admission = admission
        self._phase: Phase | None = None
        self._phase_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._enter("headers")

    def data_received(self, data: bytes) -> None:
        if data and self._phase == "idle":
            self._enter("headers")
        super().data_received(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._leave()
        try:
            super().connection_lost(exc)
        finally:
            self._admission.release()

    def request_started(self) -> None:
        """A complete request head is about to be served: no timer runs while
        it is (the dispatcher bounds the body)."""
        self._leave()

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        try:
            return await super().finish_response(request, resp, start_time)
        finally:
            self._enter("idle")

    def _enter(self, phase: Literal["headers", "idle"]) -> None:
        self._leave()
        if not self.connected:
            return
        limits = self._admission.limits
        timeout = limits.header_timeout if phase == "headers" else limits.idle_timeout
        self._phase = phase
        self._phase_timer = asyncio.get_running_loop().call_later(timeout, self._expire, phase)

    def _leave(self) -> None:
        self._phase = None
        if self._phase_timer is not None:
            self._phase_timer.cancel()
            self._phase_timer = None

    def _expire(self, phase: Phase) -> None:
        self._phase_timer = None
        transport = self.transport
        if self._phase != phase or transport is None:
            return
        self._phase = None
        self._admission.timed_out(phase)
        if phase == "idle":
            self.force_close()  # close_notify, bounded by TLS_SHUTDOWN_TIMEOUT_SECONDS
        else:
            transport.abort()


def track_requests(factory: Callable[..., web.BaseRequest]) -> Callable[..., web.BaseRequest]:
    """Wrap an aiohttp request factory, which the connection calls once per
    complete request head before serving it, to tell a
    :class:`GuardedRequestHandler` that it is busy."""

    def make(
        message: Any, payload: Any, protocol: web.RequestHandler, writer: Any, task: Any
    ) -> web.BaseRequest:
        if isinstance(protocol, GuardedRequestHandler):
            protocol.request_started()
        return factory(message, payload, protocol, writer, task)

    return make


ConnectionFactory = Callable[[Admission], asyncio.BaseProtocol]


class ConnectionListener(web.BaseSite):
    """The server's TCP listener, for an aiohttp runner: admits each accepted
    connection through the :class:`ConnectionGate`, waits for its TLS
    handshake within the limit, then hands it to ``connection_factory``'s
    protocol (a :class:`GuardedRequestHandler` holding the admission)."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        ssl_context: Any,
        gate: ConnectionGate,
        connection_factory: ConnectionFactory,
        backlog: int = LISTEN_BACKLOG,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host = host
        self._requested_port = port
        self._gate = gate
        self._connection_factory = connection_factory
        self._sockets: list[socket.socket] = []
        self._accepting: list[asyncio.Task[None]] = []
        self._handshakes: set[asyncio.Task[None]] = set()

    @property
    def name(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"https://{host}:{self.port}"

    @property
    def port(self) -> int:
        """The bound port (the requested one until started)."""
        if self._sockets:
            return int(self._sockets[0].getsockname()[1])
        return self._requested_port

    async def start(self) -> None:
        await super().start()
        self._sockets = _listening_sockets(self._host, self._requested_port, self._backlog)
        for sock in self._sockets:
            self._accepting.append(
                asyncio.create_task(self._accept(sock), name=f"accept {sock.getsockname()}")
            )

    async def stop(self) -> None:
        """Stop accepting and drop the handshakes in progress; connections
        already handed over are the runner's to close."""
        tasks = [*self._accepting, *self._handshakes]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._accepting.clear()
        for sock in self._sockets:
            sock.close()
        await super().stop()

    async def _accept(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, address = await loop.sock_accept(listener)
            except OSError as exc:
                if exc.errno in _CLIENT_GONE:
                    continue
                # Out of descriptors or memory (the limits should prevent it),
                # or a broken listener: say so and pause rather than spin.
                log.error(
                    "accept failed; pausing",
                    extra={
                        "fields": {
                            "error": errno.errorcode.get(exc.errno or 0, type(exc).__name__),
                            "pause_seconds": ACCEPT_RETRY_SECONDS,
                        }
                    },
                )
                await asyncio.sleep(ACCEPT_RETRY_SECONDS)
                continue
            admission = self._gate.admit(peer_address(address))
            if admission is None:
                _reset(conn)
                continue
            task = asyncio.create_task(self._handshake(conn, admission))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    async def _handshake(self, sock: socket.socket, admission: Admission) -> None:
        loop = asyncio.get_running_loop()
        timeout = admission.limits.handshake_timeout
        context = self._ssl_context
        assert context is not None, "the listener always serves TLS"
        handed_over = False
        try:
            async with asyncio.timeout(timeout):
                await _readable(loop, sock)
                handed_over = True  # from here on asyncio's transport owns the socket
                # A refused certificate gets its TLS alert (see _tls.accept_tls).
                await accept_tls(
                    loop,
                    sock,
                    self._connection_factory(admission),
                    context,
                    handshake_timeout=timeout + _HANDSHAKE_BACKSTOP_SECONDS,
                    shutdown_timeout=TLS_SHUTDOWN_TIMEOUT_SECONDS,
                )
        except TimeoutError:
            admission.timed_out("handshake")
            admission.release()
        except OSError:
            # Not TLS, a refused certificate, or the client went away: the
            # client's problem, and asyncio has closed the connection.
            admission.release()
        except asyncio.CancelledError:
            admission.release()  # the listener is stopping
            raise
        except Exception:
            log.exception("TLS handshake failed unexpectedly")
            admission.release()
        finally:
            if not handed_over:
                _reset(sock)


async def _readable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    """Wait until ``sock`` has data (or its peer closed it), reading nothing."""
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    fd = sock.fileno()
    loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` with a reset: no FIN handshake, no TIME_WAIT left here."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
    sock.close()


def _listening_sockets(host: str, port: int, backlog: int) -> list[socket.socket]:
    """Listening, non-blocking sockets on every address ``host`` resolves to
    (``localhost``: IPv4 and IPv6), all on one port even when ``port`` is 0."""
    sockets: list[socket.socket] = []
    seen: set[tuple[int, str]] = set()
    try:
        infos = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
        )
        for family, kind, proto, _name, address in infos:
            key = (int(family), str(address[0]))
            if key in seen:
                continue
            seen.add(key)
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise OSError(
            exc.errno, f"secinfra: listener: cannot listen on {host}:{port}: {exc.strerror}"
        ) from exc
    return sockets
