"""secinfra.mtls against plain stdlib TLS from static files, in one run, as JSON.

    python benchmarks/mtls_python.py [--requests N] [--out FILE]

Two workloads enrolled with a real reference server supply the SVIDs. The
same loopback echo server and client run twice per round: with
``secinfra.mtls`` contexts on both sides (rotating sources, a context per
snapshot chosen per handshake, the X509-SVID rules and an authorizer after
each handshake), and with plain ``ssl.SSLContext``s loaded once from the
same certificates written to files (chain, key, bundle; a 0700 temporary
folder removed at the end; the keys are a test server's, thrown away).

- ``handshakes_per_second``: connect, full mTLS handshake, a one-byte
  exchange, close; the server issues no session tickets in either setup;
- ``requests_per_second``: 64-byte request and answer round trips over one
  kept-alive connection.

Rounds alternate the two setups, and the ratio (sdk / plain, target >= 0.9)
is taken from the medians. Client and server share one process (and its
GIL), the same for both. Bounded: N requests and N/10 handshakes per round,
3 rounds (default N 3000).
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from secinfra import mtls
from secinfra.testing import ReferenceServer

API = "spiffe://secinfra.local/bench/api"
CALLER = "spiffe://secinfra.local/bench/caller"
#: The setups take turns this many times.
BATCHES = 20
MESSAGE = b"x" * 64
TIMEOUT = 10.0


class EchoServer:
    """Serves ``context`` on loopback: each connection (a thread of its own) echoes
    until the client closes."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self._listener.accept()
            except TimeoutError:
                continue
            raw.settimeout(TIMEOUT)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._echo, args=(raw,), daemon=True).start()

    def _echo(self, raw: socket.socket) -> None:
        try:
            with self._context.wrap_socket(raw, server_side=True) as conn:
                while data := conn.recv(len(MESSAGE)):
                    conn.sendall(data)
        except OSError:
            raw.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(TIMEOUT)
        self._listener.close()


def _connect(context: ssl.SSLContext, port: int) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return context.wrap_socket(raw)


def _timed(measure: Callable[..., None], *args: Any) -> float:
    started = time.perf_counter()
    measure(*args)
    return time.perf_counter() - started


def handshakes(client: ssl.SSLContext, port: int, n: int) -> None:
    """``n`` connections, each a full handshake and a one-byte exchange."""
    for _ in range(n):
        with _connect(client, port) as conn:
            conn.sendall(b"x")
            if conn.recv(1) != b"x":
                raise RuntimeError("bench: the echo server did not answer")


def requests(conn: ssl.SSLSocket, n: int) -> None:
    """``n`` round trips of MESSAGE over one kept-alive connection."""
    for _ in range(n):
        conn.sendall(MESSAGE)
        got = 0
        while got < len(MESSAGE):
            got += len(conn.recv(len(MESSAGE)))


def _write_identity(folder: Path, name: str, chain_pem: bytes, key_pem: bytes) -> Path:
    cert = folder / f"{name}.pem"
    key = folder / f"{name}.key"
    cert.write_bytes(chain_pem)
    key.touch(mode=0o600)
    key.write_bytes(key_pem)
    return cert


def _plain(server_side: bool, cert: Path, bundle: Path) -> ssl.SSLContext:
    """The plain stdlib mTLS setup: certificate, key and CAs loaded once from files."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server_side else ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    if server_side:
        context.num_tickets = 0
    context.load_cert_chain(cert, cert.with_suffix(".key"))
    context.load_verify_locations(bundle)
    return context


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    n_requests = args.requests
    n_handshakes = max(10, n_requests // 10)
    with (
        tempfile.TemporaryDirectory() as tmp,
        ReferenceServer(data_dir=Path(tmp) / "data") as server,
        server.enrol(API) as api,
        server.enrol(CALLER) as caller,
    ):
        folder = Path(tmp) / "static"
        folder.mkdir(mode=0o700)
        api_identity, caller_identity = (
            api.source.ensure_identity(),
            caller.source.ensure_identity(),
        )
        bundle = folder / "bundle.pem"
        bundle.write_text(api.source.bundle().pem)
        api_cert = _write_identity(folder, "api", api_identity.chain_pem, api_identity.key_pem)
        caller_cert = _write_identity(
            folder, "caller", caller_identity.chain_pem, caller_identity.key_pem
        )
        setups = {
            "sdk": (
                mtls.server_context(api.source, mtls.authorize_id(CALLER)),
                mtls.client_context(caller.source, mtls.authorize_id(API)),
            ),
            "plain": (_plain(True, api_cert, bundle), _plain(False, caller_cert, bundle)),
        }
        servers = {name: EchoServer(server_ctx) for name, (server_ctx, _) in setups.items()}
        kept = {name: _connect(setups[name][1], echo.port) for name, echo in servers.items()}
        try:
            # Small batches, the setups taking turns: a neighbour's load on the
            # shared machine falls on both alike.
            elapsed = {name: {"handshakes": 0.0, "requests": 0.0} for name in setups}
            for _ in range(BATCHES):
                for name, (_, client_ctx) in setups.items():
                    port = servers[name].port
                    elapsed[name]["handshakes"] += _timed(
                        handshakes, client_ctx, port, n_handshakes // BATCHES
                    )
                    elapsed[name]["requests"] += _timed(requests, kept[name], n_requests // BATCHES)
        finally:
            for conn in kept.values():
                conn.close()
            for echo in servers.values():
                echo.close()
    results = {
        name: {
            "handshakes_per_second": round(n_handshakes // BATCHES * BATCHES / by["handshakes"], 1),
            "requests_per_second": round(n_requests // BATCHES * BATCHES / by["requests"], 1),
        }
        for name, by in elapsed.items()
    }
    report = {
        "benchmark": "mtls_python",
        "python": platform.python_version(),
        "openssl": ssl.OPENSSL_VERSION,
        "machine": platform.machine(),
        "batches": BATCHES,
        "handshakes": n_handshakes // BATCHES * BATCHES,
        "requests": n_requests // BATCHES * BATCHES,
        "results": results,
        "ratio": {
            metric: round(results["sdk"][metric] / results["plain"][metric], 3)
            for metric in ("handshakes_per_second", "requests_per_second")
        },
        "target_ratio": 0.9,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
