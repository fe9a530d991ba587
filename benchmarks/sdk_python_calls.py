"""Per-call cost of the Python SDK over the real server, as JSON.

    python benchmarks/sdk_python_calls.py [--requests N] [--batch B] [--out FILE]

Starts a real server (test mode off, real TLS, a fresh SQLite file) in a
subprocess and calls it through one `secinfra.Client` from one thread, so the
numbers are the server's hot path (see server_hot_paths.py) plus everything
the SDK adds per call: request building, the retry loop and its budget, the
attempt watchdog, JSON decoding and the cache.

- ``get_secret_cached``, ``check_cached``: every call is a fresh cache hit,
  answered in-process with no request (issue 19 target: at most 2 us). A hit
  is too short to time one at a time, so these are timed in batches of B
  calls (default 200): p50 and p99 are of the per-call time of each of N
  batches, the mean is of all N * B calls. ``*_request_model`` times only
  building the request model the generated method builds (its part of a hit
  that no runtime change can remove), batch for batch in turn with the hits,
  so ``cached_over_request_model`` is in the same run whatever the load;
- ``get_secret_uncached``, ``check_uncached``: every call goes to the server
  (``use_cache=False``), timed one at a time, N calls each;
- ``raw_requests_get_secret``, ``raw_requests_check``: the same request (same
  target, headers and body) sent with plain `requests` on the SDK's own
  mTLS adapter, so on the same kept-alive connection, and the body read;
  ``raw_urllib3_*``: the same with urllib3's ``urlopen`` on that adapter's
  pool. The SDK's calls and the raw ones take turns in 10 rounds, so load on
  the shared machine falls on all alike; ``ratios`` are SDK p50 over raw p50
  (issue 19 target: an uncached call at most 1.10 times the raw client's).

Numbers depend on the machine; compare runs on the same machine. Bounded: N
calls (or batches) per path (default 300).
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
from typing import Any

import requests

from secinfra import CallOptions, Client
from secinfra._gen.authz_client import AUTHZ_SERVICE_CHECK
from secinfra._gen.secrets_client import SECRETS_SERVICE_GET_SECRET
from secinfra._rpc import MethodDescriptor, RequestMessage
from secinfra._runtime._request import encode_request
from secinfra.models import CheckRequest, Consistency, GetSecretRequest, TupleKey
from secinfra.testing import ReferenceServer

SECRET = "bench/db/password"
#: Rounds the uncached SDK calls and the raw ones take turns in.
ROUNDS = 10


def _summary(seconds: list[float], mean: float, **extra: int) -> dict[str, float]:
    seconds = sorted(seconds)
    return {
        **extra,
        "p50_us": round(statistics.median(seconds) * 1e6, 2),
        "p99_us": round(seconds[max(0, int(len(seconds) * 0.99) - 1)] * 1e6, 2),
        "mean_us": round(mean * 1e6, 2),
    }


def _hits(
    calls: dict[str, Callable[[], object]], batches: int, batch: int
) -> dict[str, dict[str, float]]:
    """Per-call time of each of ``calls``, in ``batches`` batches of ``batch`` calls
    each, the calls taking turns batch by batch."""
    for call in calls.values():
        call()  # warm: the cache entry
    per_call: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(batches):
        for name, call in calls.items():
            started = time.perf_counter()
            for _ in range(batch):
                call()
            per_call[name].append((time.perf_counter() - started) / batch)
    return {
        name: _summary(times, sum(times) / batches, batches=batches, batch=batch)
        for name, times in per_call.items()
    }


def _turns(calls: dict[str, Callable[[], object]], n: int) -> dict[str, dict[str, float]]:
    """Each of ``calls`` ``n`` times, one at a time, all taking turns in `ROUNDS` rounds."""
    for call in calls.values():
        call()  # warm: the connection
    latencies: dict[str, list[float]] = {name: [] for name in calls}
    per_round = max(1, n // ROUNDS)
    for _ in range(ROUNDS):
        for name, call in calls.items():
            times = latencies[name]
            for _ in range(per_round):
                started = time.perf_counter()
                call()
                times.append(time.perf_counter() - started)
    return {
        name: _summary(times, sum(times) / len(times), calls=len(times))
        for name, times in latencies.items()
    }


def _raw_calls(
    client: Client, method: MethodDescriptor, request: RequestMessage
) -> dict[str, Callable[[], object]]:
    """The SDK's request for ``method`` sent by plain requests and plain urllib3
    over the SDK's own mTLS adapter (its pool, its kept-alive connection)."""
    pipeline: Any = client._pipeline  # the benchmark reaches in on purpose
    adapter, _ = pipeline._transport._adapter(True, None)
    encoded = encode_request(method, request.to_json())
    headers = {**encoded.headers, "Secinfra-Attempt": "1"}
    base = pipeline.endpoints.home
    session = requests.Session()
    session.trust_env = False  # no proxy or netrc look-ups: the plainest requests call
    session.mount(base, adapter)
    pool = adapter.poolmanager.connection_from_url(base)
    url = base + encoded.target

    def with_requests() -> bytes:
        response = session.request(method.http_method, url, headers=headers, data=encoded.body)
        response.raise_for_status()
        return response.content

    def with_urllib3() -> bytes:
        response = pool.urlopen(
            method.http_method, encoded.target, headers=headers, body=encoded.body
        )
        if response.status != 200:
            raise RuntimeError(f"raw call answered {response.status}")
        return response.data

    return {"raw_requests": with_requests, "raw_urllib3": with_urllib3}


def _ratios(results: dict[str, dict[str, float]], rpc: str) -> dict[str, float]:
    sdk = results[f"{rpc}_uncached"]["p50_us"]
    hit = results[f"{rpc}_cached"]["p50_us"] / results[f"{rpc}_request_model"]["p50_us"]
    return {
        f"{rpc}_cached_over_request_model": round(hit, 3),
        **{
            f"{rpc}_uncached_over_{raw}": round(sdk / results[f"{raw}_{rpc}"]["p50_us"], 3)
            for raw in ("raw_requests", "raw_urllib3")
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--batch", type=int, default=200, help="cache hits per timed batch")
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
        key = TupleKey(
            user="workload:spiffe://secinfra.local/secinfra/admin",
            relation="admin",
            object="system:root",
        )
        results: dict[str, dict[str, float]] = {}
        for rpc, hit, model in (
            (
                "get_secret",
                lambda: client.secrets.get_secret(name=SECRET),
                lambda: GetSecretRequest(name=SECRET, version=0),
            ),
            (
                "check",
                lambda: client.authz.check(tuple_key=key),
                lambda: CheckRequest(
                    tuple_key=key,
                    consistency=Consistency.UNSPECIFIED,
                    revision="",
                    contextual_tuples=(),
                    authorization_model_id="",
                ),
            ),
        ):
            timed = _hits({"cached": hit, "request_model": model}, n, args.batch)
            results[f"{rpc}_cached"] = timed["cached"]
            results[f"{rpc}_request_model"] = timed["request_model"]
        for rpc, method, request, sdk_call in (
            (
                "get_secret",
                SECRETS_SERVICE_GET_SECRET,
                GetSecretRequest(name=SECRET),
                lambda: client.secrets.get_secret(name=SECRET, call_options=no_cache),
            ),
            (
                "check",
                AUTHZ_SERVICE_CHECK,
                CheckRequest(tuple_key=key),
                lambda: client.authz.check(tuple_key=key, call_options=no_cache),
            ),
        ):
            raw = _raw_calls(client, method, request)
            measured = _turns({"sdk": sdk_call, **raw}, n)
            results[f"{rpc}_uncached"] = measured["sdk"]
            for name in raw:
                results[f"{name}_{rpc}"] = measured[name]
    report = {
        "benchmark": "sdk_python_calls",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "results": results,
        "ratios": {**_ratios(results, "get_secret"), **_ratios(results, "check")},
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
