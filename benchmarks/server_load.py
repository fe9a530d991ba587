"""Throughput and p50/p99 of the server's check and secret-read paths under load, as JSON.

    python benchmarks/server_load.py [--requests N] [--concurrency 1,8,32]
                                     [--profile DIR] [--out FILE]

Issue 19's set-up, in one run:

- a real server (test mode off, real TLS, a fresh SQLite file) pinned to one
  core, the Go load generator (``benchmarks/load-go``) pinned to the other,
  each worker on its own kept-alive mTLS connection;
- an authorization model of users, teams, orgs, repositories (``reader``
  from the org, ``can_read: reader but not banned``) and directories with
  inheritance, with 10,000+ tuples; checks spread over 1,000 different
  (user, repository) pairs, allowed and denied;
- an authorized secret read;
- the ceiling: a bare aiohttp handler over the same TLS set-up (TLS 1.3,
  P-256 certificates, client certificates required and verified), on the
  same core, answering a small JSON body.

Every figure is also given as a ratio to the ceiling measured in the same
run (the machine is shared and noisy; compare ratios, not raw numbers).

``--profile DIR`` also records the server with py-spy (pinned in the bench
session) during the check and secret runs at concurrency 8, writes the
collapsed stacks there and puts the top frames in the JSON: the method of
``benchmarks/README.md``.

Bounded: N measured requests per path and concurrency (default 2,000),
and each load run stops after 60 s whatever it has done.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import functools
import ipaddress
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from secinfra.models import TupleKey
from secinfra.testing import ReferenceServer

ROOT = Path(__file__).resolve().parent.parent
# Absolute paths of the tools run: argv never comes from input.
TASKSET = shutil.which("taskset") or "/usr/bin/taskset"
GO = shutil.which("go") or "go"
LOAD_SECONDS = 60

MODEL = """
model
  schema 1.1
type user
type team
  relations
    define member: [user, team#member]
type org
  relations
    define member: [user, team#member]
type repo
  relations
    define org: [org]
    define banned: [user]
    define reader: [user, team#member] or member from org
    define can_read: reader but not banned
type directory
  relations
    define parent: [directory]
    define viewer: [user, team#member] or viewer from parent
"""

USERS, TEAMS, ORGS, REPOS, DIRECTORIES = 2000, 200, 20, 1200, 1200


def _tuples() -> list[TupleKey]:
    """10,000+ tuples over the model, the same in every run."""
    out: list[TupleKey] = []

    def add(user: str, relation: str, obj: str) -> None:
        out.append(TupleKey(user=user, relation=relation, object=obj))

    for u in range(USERS):
        add(f"user:u{u}", "member", f"team:t{u % TEAMS}")
        if u % 4 == 0:
            add(f"user:u{u}", "member", f"org:o{u % ORGS}")
    for t in range(TEAMS):
        if t % 10:
            add(f"team:t{t}#member", "member", f"team:t{t - 1}")
        add(f"team:t{t}#member", "member", f"org:o{t % ORGS}")
    for r in range(REPOS):
        add(f"org:o{r % ORGS}", "org", f"repo:r{r}")
        add(f"team:t{(r * 7) % TEAMS}#member", "reader", f"repo:r{r}")
        add(f"user:u{(r * 13) % USERS}", "reader", f"repo:r{r}")
        if r % 5 == 0:
            add(f"user:u{(r * 3) % USERS}", "banned", f"repo:r{r}")
    for d in range(DIRECTORIES):
        if d:
            add(f"directory:d{(d - 1) // 4}", "parent", f"directory:d{d}")
        add(f"user:u{(d * 11) % USERS}", "viewer", f"directory:d{d}")
        add(f"team:t{d % TEAMS}#member", "viewer", f"directory:d{d}")
    return out


def _check_bodies() -> list[dict[str, Any]]:
    """1,000 checks: half on repositories (orgs, teams, ``but not``), half on directories."""
    bodies = []
    for i in range(1000):
        user = f"user:u{(i * 37) % USERS}"
        if i % 2:
            key = {"user": user, "relation": "can_read", "object": f"repo:r{(i * 17) % REPOS}"}
        else:
            key = {
                "user": user,
                "relation": "viewer",
                "object": f"directory:d{DIRECTORIES - 1 - i % 500}",
            }
        bodies.append({"tuple_key": key})
    return bodies


# -- the ceiling: a bare aiohttp handler over the same TLS set-up -------------------------------
CEILING = r"""
import asyncio, ssl, sys
from aiohttp import web
cert, key, ca, port = sys.argv[1:5]
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca)
ctx.verify_mode = ssl.CERT_REQUIRED
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
ctx.load_cert_chain(cert, key)
BODY = b'{"allowed":true,"revision":"1"}'
async def handle(request):
    await request.read()
    return web.Response(body=BODY, content_type="application/json")
app = web.Application()
app.router.add_route("*", "/{tail:.*}", handle)
web.run_app(app, host="127.0.0.1", port=int(port), ssl_context=ctx, print=None, access_log=None)
"""


def _write_pki(directory: Path) -> dict[str, Path]:
    """A throwaway P-256 CA with a server and a client certificate for the ceiling."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench ceiling CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    paths = {"ca": directory / "ca.pem"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for name, usage in (
        ("server", ExtendedKeyUsageOID.SERVER_AUTH),
        ("client", ExtendedKeyUsageOID.CLIENT_AUTH),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"bench {name}")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        paths[f"{name}_cert"] = directory / f"{name}.pem"
        paths[f"{name}_key"] = directory / f"{name}.key"
        paths[f"{name}_cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        paths[f"{name}_key"].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        paths[f"{name}_key"].chmod(0o600)
    return paths


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port} after {seconds} s")


# -- pinning ------------------------------------------------------------------------------------
def _cores() -> tuple[str, str] | None:
    """(server core, load core), or None when there is one core (then nothing is pinned)."""
    cores = sorted(os.sched_getaffinity(0))
    return (str(cores[-1]), str(cores[0])) if len(cores) >= 2 else None


def _pin(pid: int, core: str | None) -> None:
    if core is not None:
        subprocess.run(  # noqa: S603
            [TASKSET, "-a", "-p", "-c", core, str(pid)], check=True, capture_output=True
        )


# -- the runs -----------------------------------------------------------------------------------
class Loader:
    def __init__(self, binary: Path, identity: dict[str, Path], core: str | None, requests: int):
        self.binary, self.identity, self.core, self.requests = binary, identity, core, requests

    def run(
        self, url: str, *, concurrency: int, method: str = "GET", bodies: Path | None = None
    ) -> dict[str, Any]:
        argv = [
            str(self.binary),
            "-url", url,
            "-method", method,
            "-cert", str(self.identity["cert"]),
            "-key", str(self.identity["key"]),
            "-ca", str(self.identity["ca"]),
            "-concurrency", str(concurrency),
            "-requests", str(self.requests),
            "-warmup", str(max(100, concurrency * 10)),
            "-max-seconds", str(LOAD_SECONDS),
        ]  # fmt: skip
        if bodies is not None:
            argv += ["-bodies", str(bodies)]
        if self.core is not None:
            argv = [TASKSET, "-c", self.core, *argv]
        done = subprocess.run(  # noqa: S603
            argv, capture_output=True, text=True, timeout=LOAD_SECONDS + 60
        )
        if done.returncode != 0:
            raise SystemExit(f"load-go failed on {url}: {done.stderr.strip()}")
        result: dict[str, Any] = json.loads(done.stdout)
        if result["errors"]:
            raise SystemExit(
                f"load-go: {result['errors']} failed requests on {url}: {result['statuses']}"
            )
        return result


class Profiler:
    """py-spy on the server while one load run goes; the top frames by own time."""

    def __init__(self, directory: Path | None, pid: int):
        self.directory, self.pid = directory, pid

    def around(
        self, name: str, work: Callable[[], dict[str, Any]]
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        if self.directory is None:
            return work(), None
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        out = self.directory / f"{name}.folded"
        recorder = subprocess.Popen(  # noqa: S603
            [spy, "record", "--pid", str(self.pid), "--rate", "250", "--format", "raw",
             "--output", str(out), "--nonblocking", "--duration", str(LOAD_SECONDS)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(1.0)  # py-spy attaches before the load starts
        try:
            result = work()
        finally:
            recorder.send_signal(2)  # SIGINT: py-spy writes what it has and stops
            recorder.wait(60)
        return result, _top_frames(out)


def _top_frames(folded: Path, count: int = 12) -> dict[str, Any]:
    """The functions with the most samples: own (leaf of a stack) and inclusive (anywhere in it)."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack or not samples.isdigit():
            continue
        n = int(samples)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        # A function counts once per stack, by name and file (not line), however deep it recurses.
        for function in {_function(frame) for frame in frames}:
            inclusive[function] += n

    def table(counter: collections.Counter[str]) -> list[dict[str, Any]]:
        return [
            {"frame": f, "pct": round(100 * n / max(total, 1), 1)}
            for f, n in counter.most_common(count)
        ]

    return {"samples": total, "own": table(own), "inclusive": table(inclusive)}


def _function(frame: str) -> str:
    """``name (file.py:12)`` without its line: ``name (file.py)``."""
    head, _, where = frame.rpartition(" (")
    return f"{head} ({where.rsplit(':', 1)[0]})" if head else frame


def _seed(server: ReferenceServer) -> int:
    tuples = _tuples()
    with server.admin_client() as admin:
        admin.authz.write_authorization_model(dsl=MODEL)
        for start in range(0, len(tuples), 1000):
            admin.authz.write_tuples(writes=tuples[start : start + 1000])
        admin.secrets.put_secret(name="bench/db/password", value=b"x" * 64)
    return len(tuples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per run")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--profile", type=Path, help="record the server with py-spy into DIR")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    cores = _cores()
    server_core, load_core = cores if cores else (None, None)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory() as tmp_text:
        tmp = Path(tmp_text)
        binary = tmp / "load-go"
        subprocess.run(  # noqa: S603
            [GO, "-C", str(ROOT / "benchmarks" / "load-go"), "build", "-o", str(binary), "."],
            check=True,
        )
        pki = _write_pki(tmp)
        bodies = tmp / "checks.jsonl"
        bodies.write_text("".join(json.dumps(b) + "\n" for b in _check_bodies()))
        port = _free_port()
        ceiling = subprocess.Popen(  # noqa: S603
            [
                sys.executable,
                "-c",
                CEILING,
                str(pki["server_cert"]),
                str(pki["server_key"]),
                str(pki["ca"]),
                str(port),
            ]
        )
        try:
            _pin(ceiling.pid, server_core)
            _wait_for_port(port)
            with ReferenceServer(data_dir=tmp / "data", test_hooks=False) as server:
                assert server._process is not None
                _pin(server._process.pid, server_core)
                tuples = _seed(server)
                admin = server.data_dir / "admin"
                as_admin = Loader(
                    binary,
                    {
                        "cert": admin / "cert.pem",
                        "key": admin / "key.pem",
                        "ca": server.bundle_file,
                    },
                    load_core,
                    args.requests,
                )
                as_client = Loader(
                    binary,
                    {"cert": pki["client_cert"], "key": pki["client_key"], "ca": pki["ca"]},
                    load_core,
                    args.requests,
                )
                profiler = Profiler(args.profile, server._process.pid)
                results: dict[str, Any] = {}
                profiles: dict[str, Any] = {}
                for c in levels:
                    ceiling_run = as_client.run(f"https://127.0.0.1:{port}/", concurrency=c)
                    check_call = functools.partial(
                        as_admin.run,
                        f"{server.url}/v1/authz:check",
                        concurrency=c,
                        method="POST",
                        bodies=bodies,
                    )
                    secret_call = functools.partial(
                        as_admin.run, f"{server.url}/v1/secrets/bench/db/password", concurrency=c
                    )
                    if c == 8:
                        check, profiles["check"] = profiler.around("check_c8", check_call)
                        secret, profiles["get_secret"] = profiler.around(
                            "get_secret_c8", secret_call
                        )
                    else:
                        check, secret = check_call(), secret_call()
                    results[f"c{c}"] = {
                        "ceiling": ceiling_run,
                        "check": check,
                        "get_secret": secret,
                        "check_to_ceiling": round(
                            check["throughput_rps"] / ceiling_run["throughput_rps"], 3
                        ),
                        "get_secret_to_ceiling": round(
                            secret["throughput_rps"] / ceiling_run["throughput_rps"], 3
                        ),
                    }
        finally:
            ceiling.terminate()
            ceiling.wait(30)

    report: dict[str, Any] = {
        "benchmark": "server_load",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "pinned": {"server": server_core, "load": load_core},
        "tuples": tuples,
        "results": results,
    }
    if args.profile:
        report["profile"] = profiles
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
