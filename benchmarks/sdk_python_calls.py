"""Per-call cost of the Python SDK over the real server, as JSON.

    python benchmarks/sdk_python_calls.py [--requests N] [--out FILE]

Starts a real server (test mode off, real TLS, a fresh SQLite file) in a
subprocess and calls it through one `secinfra.Client` from one thread, so the
numbers are the server's hot path (see server_hot_paths.py) plus everything
the SDK adds per call: request building, the retry loop and its budget, the
attempt watchdog, JSON decoding and the cache.

- ``get_secret_uncached``: every call goes to the server (``use_cache=False``);
- ``get_secret_cached``: every call is a fresh cache hit (no request);
- ``check_uncached``: an authorization check, sent every time.

Numbers depend on the machine; compare runs on the same machine. Bounded: N
calls per path (default 300).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from secinfra import CallOptions
from secinfra.models import TupleKey
from secinfra.testing import ReferenceServer

SECRET = "bench/db/password"


def _measure(call: Callable[[], object], n: int) -> dict[str, float]:
    call()  # warm: connection, cache entry
    latencies = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - started)
    latencies.sort()
    total = sum(latencies)
    return {
        "calls": n,
        "p50_us": round(statistics.median(latencies) * 1e6, 1),
        "p99_us": round(latencies[int(n * 0.99) - 1] * 1e6, 1),
        "mean_us": round(total / n * 1e6, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    n = args.requests
    no_cache = CallOptions(use_cache=False)
    with (
        tempfile.TemporaryDirectory() as tmp,
        ReferenceServer(data_dir=Path(tmp) / "data", test_hooks=False) as server,
        server.admin_client() as client,
    ):
        client.secrets.put_secret(name=SECRET, value=b"x" * 64)
        check = TupleKey(
            user="workload:spiffe://secinfra.local/secinfra/admin",
            relation="admin",
            object="system:root",
        )
        results = {
            "get_secret_uncached": _measure(
                lambda: client.secrets.get_secret(name=SECRET, call_options=no_cache), n
            ),
            "get_secret_cached": _measure(lambda: client.secrets.get_secret(name=SECRET), n),
            "check_uncached": _measure(
                lambda: client.authz.check(tuple_key=check, call_options=no_cache), n
            ),
        }
    report = {
        "benchmark": "sdk_python_calls",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "results": results,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
