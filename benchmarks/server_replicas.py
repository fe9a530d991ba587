"""Secret-read and check throughput with 1, 2 and 4 server processes on one
PostgreSQL against one process on SQLite, measured in one run, as JSON.

    python benchmarks/server_replicas.py [--requests N] [--clients C] [--rounds R] [--out FILE]

Four setups, all started at the start of the run and kept up to its end: one
``secinfra-server serve`` process on a fresh SQLite data dir (the baseline),
and 1, 2 and 4 processes (replicas) each on a fresh database of one
throwaway PostgreSQL cluster (``server/tests/postgres_cluster.py``: initdb in
a temp dir, a free loopback port, removed at the end; run as an unprivileged
user when we are root). Every process is a real server (test mode off, real
TLS) on its own 127.0.0.1 port.

The load generator is the one ``server_hot_paths.py`` uses (http.client over
mTLS keep-alive with the admin identity), run in C client processes
(default 4, the same C for every setup), client ``i`` holding one keep-alive
connection to replica ``i mod N``. Each client warms its connection, waits
at a barrier, then sends its share of the round's requests. A round's
throughput is all its requests over the wall time from the barrier to the
last client's end. The setups take turns, R rounds (default 5) of N / R
requests per path and setup (default N = 2000), so that the machine's other
work falls on all of them alike; a setup's figure is the median of its
rounds. Paths: ``get_secret`` (an authorized, decrypted secret read) and
``check`` (an authorization check).

The ratios are against the SQLite process measured in the same run
(``vs_sqlite``) and against one PostgreSQL process (``vs_postgres_1``).
Clients and servers share the machine's cores: on a 2-core machine, 4
processes cannot scale linearly. Bounded: N requests per path and setup,
and in each round every client stops after ``--max-seconds`` (default 60)
whatever it has sent; a setup that hit that bound says so (``timed_out``).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import multiprocessing
import os
import platform
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "server" / "tests"))
import postgres_cluster  # noqa: E402  (the tests' throwaway cluster, not a package)

CLI = (sys.executable, "-m", "secinfra_server.cli")
STARTUP_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0
#: Requests each client sends before the barrier (connection, TLS, caches).
WARMUP_REQUESTS = 20
#: Process counts on PostgreSQL.
POSTGRES_PROCESSES = (1, 2, 4)
SECRET = "bench/db/password"
CHECK_BODY = {
    "tuple_key": {
        "user": "workload:spiffe://secinfra.local/secinfra/admin",
        "relation": "admin",
        "object": "system:root",
    }
}
PATHS: dict[str, tuple[str, str, bytes | None, dict[str, str]]] = {
    "get_secret": ("GET", f"/v1/secrets/{SECRET}", None, {}),
    "check": (
        "POST",
        "/v1/authz:check",
        json.dumps(CHECK_BODY).encode(),
        {"Content-Type": "application/json"},
    ),
}


@dataclass(frozen=True)
class Target:
    """Where the clients go and who they are."""

    ports: tuple[int, ...]
    bundle: Path
    cert: Path
    key: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _connect(target: Target, port: int, *, identity: bool = True) -> http.client.HTTPSConnection:
    context = ssl.create_default_context(cafile=str(target.bundle))
    context.check_hostname = False  # loopback IP; the chain is still verified
    if identity:
        context.load_cert_chain(target.cert, target.key)
    return http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)


def _call(conn: http.client.HTTPSConnection, path: str) -> None:
    method, url, body, headers = PATHS[path]
    conn.request(method, url, body=body, headers=headers)
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"{method} {url}: HTTP {response.status}")


def _client(
    target: Target,
    port: int,
    path: str,
    count: int,
    max_seconds: float,
    barrier: Barrier,
) -> tuple[int, float, float]:
    """One client process: (requests sent, start, end) on the monotonic clock,
    which on Linux is one clock for all processes."""
    conn = _connect(target, port)
    for _ in range(WARMUP_REQUESTS):
        _call(conn, path)
    barrier.wait(STARTUP_TIMEOUT_SECONDS)
    started = time.monotonic()
    deadline = started + max_seconds
    sent = 0
    while sent < count and time.monotonic() < deadline:
        _call(conn, path)
        sent += 1
    ended = time.monotonic()
    conn.close()
    return sent, started, ended


def _measure(target: Target, path: str, requests: int, clients: int, max_seconds: float) -> Any:
    shares = [requests // clients + (1 if i < requests % clients else 0) for i in range(clients)]
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(clients)
        with context.Pool(clients) as pool:
            jobs = [
                pool.apply_async(
                    _client,
                    (
                        target,
                        target.ports[i % len(target.ports)],
                        path,
                        shares[i],
                        max_seconds,
                        barrier,
                    ),
                )
                for i in range(clients)
            ]
            results = [job.get(STARTUP_TIMEOUT_SECONDS + max_seconds + 30) for job in jobs]
    sent = sum(r[0] for r in results)
    wall = max(r[2] for r in results) - min(r[1] for r in results)
    return {
        "requests": sent,
        "seconds": round(wall, 3),
        "throughput_rps": round(sent / wall, 1),
        "timed_out": sent < requests,
    }


def _wait_ready(proc: subprocess.Popen[bytes], target: Target, port: int, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited:\n{log.read_text()[-3000:]}")
        conn = _connect(target, port, identity=False)
        try:
            conn.request("GET", "/readyz")
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                return
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.1)
    raise RuntimeError(f"server on port {port} not ready:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def _servers(tmp: Path, processes: int, dsn: str | None) -> Iterator[Target]:
    """``init`` one data dir, then ``serve`` ``processes`` servers from it,
    each on its own port; SIGTERM (then SIGKILL) them all on the way out."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if dsn is not None:
        env["SECINFRA_DATABASE_DSN"] = dsn  # in the environment, never argv
    data = tmp / "data"
    init = [*CLI, "init", "--data-dir", str(data), *(["--migrate"] if dsn else [])]
    # Fixed argv: this interpreter, the server module, our own flags.
    done = subprocess.run(  # noqa: S603
        init, env=env, capture_output=True, timeout=STARTUP_TIMEOUT_SECONDS
    )
    if done.returncode != 0:
        raise RuntimeError(f"init failed:\n{done.stderr.decode()[-3000:]}")
    admin = data / "admin"
    ports = tuple(_free_port() for _ in range(processes))
    target = Target(ports, admin / "bundle.pem", admin / "cert.pem", admin / "key.pem")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for index, port in enumerate(ports):
            log = tmp / f"server-{index}.log"
            with log.open("ab") as sink:
                serve = [*CLI, "serve", "--data-dir", str(data), "--port", str(port)]
                procs.append(subprocess.Popen(serve, stdout=sink, stderr=sink, env=env))  # noqa: S603
            _wait_ready(procs[-1], target, port, log)
        yield target
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _seed(target: Target) -> None:
    conn = _connect(target, target.ports[0])
    body = json.dumps({"value": base64.b64encode(b"x" * 64).decode()}).encode()
    headers = {"Content-Type": "application/json"}
    conn.request("PUT", f"/v1/secrets/{SECRET}", body=body, headers=headers)
    response = conn.getresponse()
    text = response.read()
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"seeding the secret: HTTP {response.status}: {text[:500]!r}")


def _round_robin(targets: dict[str, Target], args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """All setups take turns, round after round, so that the machine's other
    work falls on each alike; each round sends ``requests / rounds`` per path
    and setup. A setup's figure is the median of its rounds."""
    per_round = max(args.clients, args.requests // args.rounds)
    rounds: dict[str, dict[str, list[dict[str, Any]]]] = {
        name: {path: [] for path in PATHS} for name in targets
    }
    for number in range(args.rounds):
        for name, target in targets.items():
            for path in PATHS:
                rounds[name][path].append(
                    _measure(target, path, per_round, args.clients, args.max_seconds)
                )
        print(f"round {number + 1}/{args.rounds} done", file=sys.stderr)
    results: dict[str, dict[str, Any]] = {}
    for name, paths in rounds.items():
        results[name] = {}
        for path, measured in paths.items():
            rates = [m["throughput_rps"] for m in measured]
            results[name][path] = {
                "requests": sum(m["requests"] for m in measured),
                "throughput_rps": round(statistics.median(rates), 1),
                "rounds_rps": rates,
                "timed_out": any(m["timed_out"] for m in measured),
            }
        print(
            f"{name}: "
            + ", ".join(f"{p} {r['throughput_rps']}/s" for p, r in results[name].items()),
            file=sys.stderr,
        )
    return results


def _ratios(
    results: dict[str, dict[str, Any]], baseline: str, names: list[str]
) -> dict[str, dict[str, float]]:
    base = results[baseline]
    return {
        name: {
            path: round(r["throughput_rps"] / base[path]["throughput_rps"], 3)
            for path, r in results[name].items()
        }
        for name in names
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="per path and setup")
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--rounds", type=int, default=5, help="turns each setup takes")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="per round, path and setup")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    if args.clients < 1 or args.rounds < 1:
        parser.error("--clients and --rounds must be at least 1")
    with contextlib.ExitStack() as stack:
        targets: dict[str, Target] = {}
        setups: dict[str, dict[str, Any]] = {}
        cluster = stack.enter_context(postgres_cluster.running_cluster())
        for processes, backend in [(1, "sqlite"), *((n, "postgresql") for n in POSTGRES_PROCESSES)]:
            name = f"{backend}_{processes}"
            dsn = cluster.new_database() if backend == "postgresql" else None
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"bench-{name}-")))
            targets[name] = stack.enter_context(_servers(tmp, processes, dsn))
            _seed(targets[name])
            setups[name] = {"backend": backend, "processes": processes}
            print(f"{name}: {processes} process(es) ready", file=sys.stderr)
        results = _round_robin(targets, args)
    for name, setup in setups.items():
        setup["results"] = results[name]
    names = list(setups)
    report = {
        "benchmark": "server_replicas",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "clients": args.clients,
        "rounds": args.rounds,
        "setups": setups,
        "ratios": {
            "vs_sqlite": _ratios(results, "sqlite_1", names),
            "vs_postgres_1": _ratios(results, "postgresql_1", names[1:]),
        },
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
