"""The chaos test (issue #15 item 7): three replicas on one PostgreSQL under
mixed Python SDK load, one SIGKILLed and restarted every few seconds.

Three real ``secinfra-server serve`` subprocesses, each on its own loopback
port with its own copy of the data directory ``init`` made (the shared KEK and
admin identity), serve one throwaway database. A few worker threads, each an
enrolled workload with a short leaf TTL (so the SDK renews its certificate
several times during the run) and a client that knows all three endpoints,
mix: check-and-set secret writes (``if_version``), unconditional writes with
an Idempotency-Key the test chooses, tuple writes, secret reads and checks.
The replicas' own serving certificates are short-lived too, so they renew
and hot-load them during the run.
Every :data:`KILL_INTERVAL_SECONDS` a random replica is SIGKILLed and
restarted on the same port.

Afterwards the test prints, and asserts zero for: failed SDK calls (and
failed renewals), acknowledged writes missing from the database, gaps in a
secret's versions, idempotency keys applied more than once, wrong answers
(a read older than the reader's own acknowledged write, a check that denies
an acknowledged tuple), and audit chain breaks (``audit verify``).

Bounded: the load runs :data:`CHAOS_SECONDS` (``SECINFRA_CHAOS_SECONDS``
overrides it), every wait has a deadline, and every subprocess is killed in
the fixture's teardown (the cluster is the session's, stopped at its end).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import psycopg
import pytest

import secinfra
from secinfra.models import Consistency, SecretPolicy, TupleKey
from secinfra_server.cli import main

#: Seconds of load and kills (60 in the suite).
CHAOS_SECONDS: Final = float(os.environ.get("SECINFRA_CHAOS_SECONDS", "60"))
#: A random replica is SIGKILLed this often (then restarted on its port).
KILL_INTERVAL_SECONDS: Final = 5.0
REPLICAS: Final = ("a", "b", "c")
WORKERS: Final = 4
#: Workload certificates live this long: the SDK renews at about half of it.
LEAF_TTL_SECONDS: Final = 16
#: Each replica's own serving certificate: renewed by the replica at half of
#: it, so a replica that lives past 10 s swaps its certificate under load.
SERVER_CERT_TTL_SECONDS: Final = 20
#: Versions kept per secret (the most allowed), and how many a worker writes
#: to one secret before it moves to the next: every version keeps its value,
#: so the end can read each one back.
MAX_VERSIONS: Final = 100
VERSIONS_PER_SECRET: Final = 90
STARTUP_TIMEOUT_SECONDS: Final = 60.0
#: Bound of a worker thread's and the killer's join after the run.
JOIN_TIMEOUT_SECONDS: Final = 60.0
TD: Final = "secinfra.local"
CLI: Final = (sys.executable, "-m", "secinfra_server.cli")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _message(log_line: str) -> object:
    try:
        record = json.loads(log_line)
    except ValueError:
        return None
    return record.get("message") if isinstance(record, dict) else None


@dataclass
class Replica:
    """One ``serve`` subprocess; restarted on the same port and data dir."""

    name: str
    port: int
    data: Path
    log: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> None:
        before = self._serving_lines()
        argv = [
            *CLI,
            "serve",
            *("--data-dir", str(self.data)),
            *("--port", str(self.port)),
            *("--dns-names", f"{self.name}.replica.test"),
            *("--leaf-ttl-seconds", str(LEAF_TTL_SECONDS)),
            *("--server-cert-ttl-seconds", str(SERVER_CERT_TTL_SECONDS)),
            "--test-hooks",
        ]
        with self.log.open("ab") as sink:
            self.proc = subprocess.Popen(argv, stdout=sink, stderr=sink, env=self.env)
        self.starts += 1
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while self._serving_lines() <= before:
            assert self.proc.poll() is None, f"{self.name} exited: {self.tail()}"
            assert time.monotonic() < deadline, f"{self.name} not serving: {self.tail()}"
            time.sleep(0.05)

    def _serving_lines(self) -> int:
        if not self.log.exists():
            return 0
        text = self.log.read_text(errors="replace")
        return sum(1 for line in text.splitlines() if _message(line) == "serving")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


@dataclass
class Cluster:
    dsn: str
    admin_dir: Path
    replicas: list[Replica]

    @property
    def urls(self) -> list[str]:
        return [r.url for r in self.replicas]

    @property
    def bundle_file(self) -> Path:
        return self.admin_dir / "bundle.pem"

    def admin(self) -> secinfra.Client:
        return secinfra.Client.from_files(
            self.urls,
            cert_file=self.admin_dir / "cert.pem",
            key_file=self.admin_dir / "key.pem",
            bundle_file=self.bundle_file,
        )


@pytest.fixture
def cluster(postgres_dsn: str, tmp_path: Path) -> Iterator[Cluster]:
    """Three replicas on one database, each with its own copy of the data dir."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "SECINFRA_DATABASE_DSN": postgres_dsn}
    seed = tmp_path / "seed"
    init = subprocess.run(
        [*CLI, "init", "--data-dir", str(seed), "--migrate"],
        env=env,
        capture_output=True,
        timeout=STARTUP_TIMEOUT_SECONDS,
        check=False,
    )
    assert init.returncode == 0, init.stderr.decode()
    replicas = []
    for name in REPLICAS:
        data = tmp_path / f"data-{name}"
        shutil.copytree(seed, data)
        replicas.append(Replica(name, _free_port(), data, tmp_path / f"{name}.log", env))
    try:
        # In parallel (each start waits for its replica to serve); a start
        # that failed says why.
        errors: list[str] = []

        def start(replica: Replica) -> None:
            try:
                replica.start()
            except AssertionError as exc:
                errors.append(str(exc))

        starting = [threading.Thread(target=start, args=(r,)) for r in replicas]
        for thread in starting:
            thread.start()
        for thread in starting:
            thread.join(STARTUP_TIMEOUT_SECONDS + 10)
        assert errors == []
        assert not any(thread.is_alive() for thread in starting), "a replica start hung"
        yield Cluster(postgres_dsn, seed / "admin", replicas)
    finally:
        for replica in replicas:
            replica.kill()


@dataclass
class Tally:
    """What one worker did and saw; only its own thread writes it."""

    calls: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    #: secret name -> [(version, value)] of every acknowledged write, in order.
    cas: dict[str, list[tuple[int, bytes]]] = field(default_factory=dict)
    keyed: dict[str, list[tuple[int, bytes, str]]] = field(default_factory=dict)
    tuples: list[TupleKey] = field(default_factory=list)
    #: SDK calls answered (a check operation makes two), and those of them
    #: that took more than one attempt (a kill in their way).
    sdk_calls: int = 0
    retried: int = 0
    renewals: int = 0
    renewal_failures: list[str] = field(default_factory=list)


class Worker:
    """One workload's mixed load, on one SDK client with every endpoint."""

    def __init__(self, index: int, client: secinfra.Client, rng: random.Random) -> None:
        self.index = index
        self.client = client
        self.rng = rng
        self.tally = Tally()
        self._revision = ""
        self._lock = threading.Lock()
        client.on_rotation(self._on_rotation)

    def _on_rotation(self, event: secinfra.RotationEvent) -> None:
        with self._lock:
            if event.kind is secinfra.RotationKind.RENEWED:
                self.tally.renewals += 1
            elif event.kind is secinfra.RotationKind.RENEWAL_FAILED:
                self.tally.renewal_failures.append(repr(event.error))

    def _secret(self, kind: str, table: dict[str, list[Any]]) -> str:
        """The secret a worker writes now: a new one after VERSIONS_PER_SECRET."""
        base = f"chaos/w{self.index}/{kind}"
        current = next(reversed(table), None)
        if current is None or len(table[current]) >= VERSIONS_PER_SECRET:
            current = f"{base}/{len(table) + 1}"
            table[current] = []
        return current

    def run(self, until: float) -> None:
        ops: list[Callable[[], None]] = [
            self.cas_write,
            self.keyed_write,
            self.tuple_write,
            self.read,
            self.check,
        ]
        while time.monotonic() < until:
            op = self.rng.choice(ops)
            self.tally.calls[op.__name__] += 1
            try:
                with secinfra.capture() as meta:
                    op()
            except Exception as exc:  # every SDK failure is counted and reported
                self.tally.failures.append(f"w{self.index} {op.__name__}: {exc!r}")
            self.tally.sdk_calls += len(meta.calls)
            self.tally.retried += sum(1 for call in meta.calls if call.attempts > 1)

    def cas_write(self) -> None:
        name = self._secret("cas", self.tally.cas)
        written = self.tally.cas[name]
        current = written[-1][0] if written else 0
        value = f"cas w{self.index} {name} v{current + 1} {uuid.uuid4()}".encode()
        info = self.client.secrets.put_secret(
            name=name,
            value=value,
            if_version=current,
            policy=SecretPolicy(max_versions=MAX_VERSIONS),
        )
        written.append((info.version, value))
        if info.version != current + 1:
            self.tally.wrong.append(f"{name}: CAS on v{current} acknowledged v{info.version}")

    def keyed_write(self) -> None:
        name = self._secret("keyed", self.tally.keyed)
        key = str(uuid.uuid4())
        value = f"keyed w{self.index} {key}".encode()
        info = self.client.secrets.put_secret(
            name=name,
            value=value,
            policy=SecretPolicy(max_versions=MAX_VERSIONS),
            call_options=secinfra.CallOptions(idempotency_key=key),
        )
        self.tally.keyed[name].append((info.version, value, key))

    def tuple_write(self) -> None:
        n = len(self.tally.tuples) + 1
        tk = TupleKey(
            user=f"workload:spiffe://{TD}/chaos/reader-{self.index}",
            relation="reader",
            object=f"folder:chaos-t/w{self.index}/{n}/",
        )
        self._revision = self.client.authz.write_tuples(writes=[tk]).revision
        self.tally.tuples.append(tk)

    def read(self) -> None:
        if not self.tally.cas:
            return
        name = next(reversed(self.tally.cas))
        written = self.tally.cas[name]
        if not written:
            return
        got = self.client.secrets.get_secret(name=name)
        if (got.version, got.value) != written[-1]:
            self.tally.wrong.append(
                f"{name}: read v{got.version} after the acknowledged v{written[-1][0]}"
            )

    def check(self) -> None:
        if not self.tally.tuples:
            return
        tk = self.rng.choice(self.tally.tuples)
        if not self._check(tk):
            self.tally.wrong.append(f"check denied the acknowledged tuple {tk}")
        never = TupleKey(user=tk.user, relation="reader", object=f"folder:chaos-no/w{self.index}/")
        if self._check(never):
            self.tally.wrong.append(f"check allowed the never-written tuple {never}")

    def _check(self, tk: TupleKey) -> bool:
        """A check at least as fresh as this worker's last tuple write."""
        return self.client.authz.check(
            tuple_key=tk, consistency=Consistency.AT_LEAST_AS_FRESH, revision=self._revision
        ).allowed


class Killer:
    """At every multiple of the interval after the start, SIGKILL a random
    serving replica and restart it on its port in the background. A replica
    is only killed while at least one other serves (a restart can take
    longer than the interval on a busy machine). :meth:`stop` ends it early
    (a failed test), before the fixture kills the replicas."""

    def __init__(self, cluster: Cluster, rng: random.Random) -> None:
        self.cluster = cluster
        self.rng = rng
        self.kills: list[str] = []
        self.skipped = 0
        self.errors: list[str] = []
        self._restarting: dict[str, threading.Thread] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, started: float, until: float) -> None:
        self._thread = threading.Thread(target=self._run, args=(started, until), name="killer")
        self._thread.start()

    def _run(self, started: float, until: float) -> None:
        tick = started + KILL_INTERVAL_SECONDS
        while tick < until:
            if self._stop.wait(max(0.0, tick - time.monotonic())):
                return
            tick += KILL_INTERVAL_SECONDS
            serving = [r for r in self.cluster.replicas if not self._is_restarting(r)]
            if len(serving) < 2:
                self.skipped += 1
                continue
            victim = self.rng.choice(serving)
            victim.kill()
            self.kills.append(victim.name)
            restart = threading.Thread(target=self._restart, args=(victim,), name="restart")
            self._restarting[victim.name] = restart
            restart.start()

    def _is_restarting(self, replica: Replica) -> bool:
        thread = self._restarting.get(replica.name)
        return thread is not None and thread.is_alive()

    def _restart(self, replica: Replica) -> None:
        try:
            replica.start()
        except AssertionError as exc:
            self.errors.append(str(exc))

    def join(self, timeout: float) -> bool:
        """Wait for the ticks and every restart; True if all ended in time."""
        deadline = time.monotonic() + timeout
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                return False
        restarts = list(self._restarting.values())  # the ticks are over: no more
        for thread in restarts:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in restarts)

    def stop(self) -> None:
        self._stop.set()


def _enrol_workers(cluster: Cluster, admin: secinfra.Client, seed: int) -> list[Worker]:
    workers = []
    for index in range(WORKERS):
        spiffe_id = f"spiffe://{TD}/chaos/worker-{index}"
        token = admin.identity.create_join_token(spiffe_id=spiffe_id).token
        # Tuple writes need admin on system:root (the server's own model).
        admin.authz.write_tuples(
            writes=[TupleKey(user=f"workload:{spiffe_id}", relation="admin", object="system:root")]
        )
        client = secinfra.Client.enrol(
            cluster.urls, join_token=token, bundle_file=cluster.bundle_file
        )
        workers.append(Worker(index, client, random.Random(seed + index)))
    return workers


def _stored_versions(dsn: str) -> dict[str, list[int]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT name, version FROM secret_versions WHERE name LIKE 'chaos/%'"
            " ORDER BY name, version"
        ).fetchall()
    versions: dict[str, list[int]] = {}
    for name, version in rows:
        versions.setdefault(str(name), []).append(int(version))
    return versions


def _stored_tuples(dsn: str) -> set[tuple[str, str, str]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT object_type || ':' || object_id, relation, \"user\" FROM authz_tuples"
            " WHERE object_id LIKE 'chaos-t/%'"
        ).fetchall()
    return {(str(o), str(r), str(u)) for o, r, u in rows}


def _done_keys(dsn: str, keys: list[str]) -> Counter[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT key FROM idempotency WHERE state = 'done' AND key = ANY(%s)", (keys,)
        ).fetchall()
    return Counter(str(row[0]) for row in rows)


def test_three_replicas_under_mixed_load_and_sigkills_lose_nothing_and_fail_nothing(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = int(os.environ.get("SECINFRA_CHAOS_SEED", str(random.randrange(1 << 30))))
    print(f"chaos: seed {seed} (SECINFRA_CHAOS_SEED repeats the kill order)")
    rng = random.Random(seed)
    admin = cluster.admin()
    workers = _enrol_workers(cluster, admin, seed)
    killer = Killer(cluster, rng)
    started = time.monotonic()
    until = started + CHAOS_SECONDS
    threads = [threading.Thread(target=w.run, args=(until,), name=f"w{w.index}") for w in workers]
    try:
        for thread in threads:
            thread.start()
        killer.start(started, until)
        for thread in threads:
            thread.join(CHAOS_SECONDS + JOIN_TIMEOUT_SECONDS)
        assert not any(t.is_alive() for t in threads), "a worker did not stop"
        assert killer.join(JOIN_TIMEOUT_SECONDS), "the killer or a restart did not stop"
        assert killer.errors == []
        elapsed = time.monotonic() - started
        kills = killer.kills

        # Every replica is up again (the killer restarts before it returns).
        # Read every acknowledged version back through the SDK.
        tallies = [w.tally for w in workers]
        calls = sum((t.calls for t in tallies), Counter[str]())
        failures = [f for t in tallies for f in t.failures]
        wrong = [f for t in tallies for f in t.wrong]
        renewals = sum(t.renewals for t in tallies)
        retried = sum(t.retried for t in tallies)
        sdk_calls = sum(t.sdk_calls for t in tallies)
        renewal_failures = [f for t in tallies for f in t.renewal_failures]
        stored = _stored_versions(cluster.dsn)

        acked_versions = 0
        lost: list[str] = []
        gaps: list[str] = []
        mismatched: list[str] = []
        no_cache = secinfra.CallOptions(use_cache=False)
        written: dict[str, list[tuple[int, bytes]]] = {}
        for t in tallies:
            written.update(t.cas)
            written.update({n: [(v, val) for v, val, _ in ws] for n, ws in t.keyed.items()})
        for name, acked in written.items():
            if not acked:
                continue
            versions = stored.get(name, [])
            if versions != list(range(1, len(versions) + 1)):
                gaps.append(f"{name}: versions {versions}")
            for version, value in acked:
                acked_versions += 1
                if version not in versions:
                    lost.append(f"{name} v{version}")
                    continue
                got = admin.secrets.get_secret(name=name, version=version, call_options=no_cache)
                if got.value != value:
                    mismatched.append(f"{name} v{version}")

        # No key applied twice: each keyed secret has exactly as many versions
        # as acknowledged keyed calls, each acknowledged value once, and each
        # key has one answer stored.
        keyed_calls = 0
        applied_twice: list[str] = []
        keys: list[str] = []
        for t in tallies:
            for name, ws in t.keyed.items():
                keyed_calls += len(ws)
                keys.extend(k for _, _, k in ws)
                if len(stored.get(name, [])) != len(ws):
                    applied_twice.append(
                        f"{name}: {len(stored.get(name, []))} versions for {len(ws)} keyed calls"
                    )
                if len({val for _, val, _ in ws}) != len(ws):
                    applied_twice.append(f"{name}: a value acknowledged twice")
        answers = _done_keys(cluster.dsn, keys)
        unanswered = [k for k in keys if answers[k] != 1]

        acked_tuples = {(tk.object, tk.relation, tk.user) for t in tallies for tk in t.tuples}
        lost_tuples = acked_tuples - _stored_tuples(cluster.dsn)

        monkeypatch.setenv("SECINFRA_DATABASE_DSN", cluster.dsn)
        capsys.readouterr()
        verified = main(["audit", "verify", "--data-dir", str(cluster.replicas[0].data)])
        verify_out = capsys.readouterr()
    finally:
        killer.stop()
        killer.join(JOIN_TIMEOUT_SECONDS)
        for w in workers:
            w.client.close()
        admin.close()

    with capsys.disabled():
        print(
            "\nchaos:"
            f" {elapsed:.1f} s, {len(cluster.replicas)} replicas, {WORKERS} workers,"
            f" seed {seed}\n"
            f"  kills: {len(kills)} ({', '.join(kills)}), {killer.skipped} skipped (two"
            f" restarting); replica starts:"
            f" {', '.join(f'{r.name}={r.starts}' for r in cluster.replicas)}\n"
            f"  operations: {sum(calls.values())}"
            f" ({', '.join(f'{k}={v}' for k, v in sorted(calls.items()))});"
            f" SDK calls answered: {sdk_calls}, {retried} of them after more than one attempt;"
            f" renewals: {renewals}\n"
            f"  acknowledged: {acked_versions} secret versions, {len(acked_tuples)} tuples,"
            f" {keyed_calls} keyed writes\n"
            f"  failed SDK calls: {len(failures)}\n"
            f"  failed renewals: {len(renewal_failures)}\n"
            f"  lost acknowledged writes: {len(lost) + len(lost_tuples)}"
            f" (versions {len(lost)}, tuples {len(lost_tuples)})\n"
            f"  values not as acknowledged: {len(mismatched)}\n"
            f"  secrets with version gaps: {len(gaps)}\n"
            f"  idempotency keys applied twice: {len(applied_twice)};"
            f" keys without exactly one stored answer: {len(unanswered)}\n"
            f"  wrong answers (stale reads, wrong checks): {len(wrong)}\n"
            f"  audit verify: exit {verified}:"
            f" {verify_out.out.strip() or verify_out.err.strip()}"
        )
        for line in [*failures, *renewal_failures, *wrong][:20]:
            print(f"  ! {line}")

    assert failures == []
    assert renewal_failures == []
    assert lost == []
    assert lost_tuples == set()
    assert mismatched == []
    assert gaps == []
    assert applied_twice == []
    assert unanswered == []
    assert wrong == []
    assert verified == 0, verify_out.err
    assert kills, "no replica was killed: the run was shorter than one kill interval"
    assert renewals >= WORKERS, "the workers' certificates were not renewed during the run"
