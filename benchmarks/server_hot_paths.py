"""Latency and throughput of the reference server's hot paths, as JSON.

    python benchmarks/server_hot_paths.py [--requests N] [--out FILE]

Starts a real server (test mode off, real TLS, a fresh SQLite file) in a
subprocess, then measures from one client thread over one keep-alive mTLS
connection (so TLS handshakes are not what is measured):

- ``get_secret``: an authorized secret read (per-request certificate check,
  authorization through the engine, one read transaction, AES-GCM open);
- ``get_secret_304``: the same with If-None-Match (no decryption);
- ``check``: an authorization check;
- ``bundle``: the trust bundle (pre-rendered).

``--tracing`` runs the server with the ``tracing`` setting on (it needs the
server's ``otel`` extra) and, unless ``OTEL_TRACES_EXPORTER`` says otherwise,
the ``none`` exporter: spans are made, sampled and ended but not sent, so
the figure is what the instrumentation costs on the request path.

Numbers depend on the machine; compare runs on the same machine. The
benchmark is bounded: N requests per path (default 500).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from secinfra.testing import ReferenceServer


def _connection(server: ReferenceServer) -> http.client.HTTPSConnection:
    admin = server.data_dir / "admin"
    context = ssl.create_default_context(cafile=str(server.bundle_file))
    context.check_hostname = False  # loopback IP; the chain is still verified
    context.load_cert_chain(admin / "cert.pem", admin / "key.pem")
    host, port = server.url.removeprefix("https://").rsplit(":", 1)
    return http.client.HTTPSConnection(host, int(port), context=context, timeout=30)


def _measure(
    conn: http.client.HTTPSConnection,
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str],
    expect: int,
    n: int,
) -> dict[str, float]:
    payload = None if body is None else json.dumps(body).encode()
    latencies = []
    for _ in range(n):
        started = time.perf_counter()
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        response.read()
        latencies.append(time.perf_counter() - started)
        if response.status != expect:
            raise SystemExit(f"{method} {path}: HTTP {response.status}, expected {expect}")
    latencies.sort()
    total = sum(latencies)
    return {
        "requests": n,
        "p50_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(latencies[int(n * 0.99) - 1] * 1000, 3),
        "mean_ms": round(total / n * 1000, 3),
        "throughput_rps": round(n / total, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument(
        "--tracing", action="store_true", help="serve with OpenTelemetry tracing on"
    )
    args = parser.parse_args()
    if args.tracing:
        os.environ.setdefault("OTEL_TRACES_EXPORTER", "none")
    with (
        tempfile.TemporaryDirectory() as tmp,
        ReferenceServer(
            data_dir=Path(tmp) / "data", test_hooks=False, tracing=args.tracing
        ) as server,
    ):
        with server.admin_client() as admin:
            admin.secrets.put_secret(name="bench/db/password", value=b"x" * 64)
        conn = _connection(server)
        json_headers = {"Content-Type": "application/json"}
        conn.request("GET", "/v1/secrets/bench/db/password")
        first = conn.getresponse()
        first.read()
        etag = first.getheader("ETag") or ""
        n = args.requests
        check = {
            "tuple_key": {
                "user": "workload:spiffe://secinfra.local/secinfra/admin",
                "relation": "admin",
                "object": "system:root",
            }
        }
        results = {
            "get_secret": _measure(conn, "GET", "/v1/secrets/bench/db/password", None, {}, 200, n),
            "get_secret_304": _measure(
                conn,
                "GET",
                "/v1/secrets/bench/db/password",
                None,
                {"If-None-Match": etag},
                304,
                n,
            ),
            "check": _measure(conn, "POST", "/v1/authz:check", check, json_headers, 200, n),
            "bundle": _measure(conn, "GET", "/v1/bundle", None, {}, 200, n),
        }
        conn.close()
    report = {
        "benchmark": "server_hot_paths",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "tracing": os.environ.get("OTEL_TRACES_EXPORTER") if args.tracing else "off",
        "results": results,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
