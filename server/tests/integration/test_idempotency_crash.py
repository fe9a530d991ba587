"""Kill the server at each named point of a keyed write; the retry with the
same key proves one effect and one answer (issue #25 item 1).

For each storage backend (a real SQLite file, the real PostgreSQL fixture),
each crash point of :data:`~secinfra_server._idempotency.WRITE_PATH_POINTS`
and each kind of keyed call below, a server subprocess in test mode is armed
(``SECINFRA_TEST_CRASH_AT``) to ``os._exit`` when that call reaches that
point. The test sends the call, sees the process die with the crash point's
exit status, counts the call's effect in the database (nothing yet, or
exactly one when the crash came after the commit), starts the server again on
the same data, retries with the same key, and counts again: exactly one
effect, and a second retry replays the same answer byte for byte.

The servers form one chain per backend: the server that serves the retry of
one case is already armed for the next case (always another RPC, so the retry
passes its points), so each case costs one start. Bounded: 7 kinds x 3 points
per backend, every wait has a timeout.

Then the same under load, with SIGKILLs at no chosen point: a few writers make
keyed puts, retrying each call with its key until it is answered (as an SDK
does) while the server is killed and restarted a few times; every call's
answer is its own version, and each secret has exactly as many versions as
calls were made.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import psycopg
import pytest

from secinfra_server._crash_points import ENV_VAR, EXIT_STATUS
from secinfra_server._idempotency import AFTER_COMMIT, WRITE_PATH_POINTS
from secinfra_server.cli import main

from .harness import Client, Identity, Response, csr_pem, free_port, key_pem, new_key

TRUST_DOMAIN: Final = "secinfra.local"
STARTUP_TIMEOUT_SECONDS: Final = 60.0
EXIT_TIMEOUT_SECONDS: Final = 30.0
#: The log line a keyed success answered outside its write would leave.
LATE_ANSWER_LOG: Final = "keyed answer stored after its write"


# -- the database, read directly (the server may be down) -------------------------
@dataclass
class Database:
    """Counts rows in the server's database: the SQLite file or PostgreSQL."""

    sqlite_path: Path | None = None
    dsn: str = ""

    def count(self, sql: str, *args: Any) -> int:
        if self.sqlite_path is not None:
            conn = sqlite3.connect(f"file:{self.sqlite_path}?mode=ro", uri=True)
            try:
                (value,) = conn.execute(sql, args).fetchone()
            finally:
                conn.close()
            return int(value)
        with psycopg.connect(self.dsn, autocommit=True) as pg:
            row = pg.execute(sql.replace("?", "%s"), args).fetchone()
            assert row is not None
            return int(row[0])


# -- the server subprocess ------------------------------------------------------------
@dataclass
class ServerProcess:
    """``secinfra-server serve`` in test mode on one data dir (and database)."""

    data: Path
    port: int
    log: Path
    bundle: str
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    def start(self, crash_at: str | None) -> None:
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        env.pop(ENV_VAR, None)
        if crash_at is not None:
            env[ENV_VAR] = crash_at
        with self.log.open("ab") as sink:
            sink.write(f"--- start, crash point {crash_at}\n".encode())
            sink.flush()
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "secinfra_server.cli",
                    "serve",
                    "--data-dir",
                    str(self.data),
                    "--port",
                    str(self.port),
                    "--test-hooks",
                ],
                stdout=sink,
                stderr=sink,
                env=env,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"server exited: {self.log_tail()}"
            probe = Client(self.port, self.bundle)
            try:
                if probe.request("GET", "/readyz").status == 200:
                    return
            except (OSError, http.client.HTTPException):
                pass
            finally:
                probe.close()
            time.sleep(0.1)
        raise AssertionError(f"server not ready in time: {self.log_tail()}")

    def wait_crashed(self) -> int:
        assert self.proc is not None
        status = self.proc.wait(EXIT_TIMEOUT_SECONDS)
        self.proc = None
        return status

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(EXIT_TIMEOUT_SECONDS)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(EXIT_TIMEOUT_SECONDS)
            self.proc = None

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


# -- the keyed calls --------------------------------------------------------------------
@dataclass(frozen=True)
class Call:
    """One keyed request and how to count its effect in the database."""

    rpc: str
    method: str
    path: str
    body: dict[str, Any] | None
    #: admin, anonymous (enrolment) or a workload's own identity (renewal).
    caller: Identity | None
    #: SELECT COUNT(*) ...: how many times the call took effect (plus what was there).
    effect_sql: str
    effect_args: tuple[Any, ...]
    #: Checks the answer against the database (that it is the one effect's).
    check_answer: Callable[[dict[str, Any], Database], None] = field(
        default=lambda _body, _db: None
    )
    key: str = field(default_factory=lambda: str(uuid.uuid4()))


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _version_is(expected: int) -> Callable[[dict[str, Any], Database], None]:
    def check(body: dict[str, Any], _db: Database) -> None:
        assert body["version"] == expected, body

    return check


def _serial_recorded(body: dict[str, Any], db: Database) -> None:
    serial = body["svid"]["serial"]
    assert db.count("SELECT COUNT(*) FROM issued_certificates WHERE serial = ?", serial) == 1


@dataclass
class Fixtures:
    """What the cases need before they run, made with unkeyed calls."""

    admin: Client
    anon: Client
    tmp: Path

    def secret(self, name: str, versions: int) -> None:
        for n in range(versions):
            resp = self.admin.request("PUT", f"/v1/secrets/{name}", {"value": _b64(f"v{n}")})
            assert resp.status == 200, resp.body

    def join_token(self, spiffe_id: str) -> str:
        resp = self.admin.request("POST", "/v1/join-tokens", {"spiffe_id": spiffe_id})
        assert resp.status == 200, resp.body
        return str(resp.json()["token"])

    def workload(self, spiffe_id: str) -> Identity:
        key = new_key()
        resp = self.anon.request(
            "POST",
            "/v1/identity:issue",
            {"csr_pem": csr_pem(key), "join_token": self.join_token(spiffe_id)},
        )
        assert resp.status == 200, resp.body
        return Identity(resp.json()["svid"]["cert_chain_pem"].encode(), key_pem(key))


def _put(fx: Fixtures, tag: str, admin: Identity) -> Call:
    name = f"crash/{tag}/put"
    return Call(
        "PutSecret",
        "PUT",
        f"/v1/secrets/{name}",
        {"value": _b64("unconditional")},
        admin,
        "SELECT COUNT(*) FROM secret_versions WHERE name = ?",
        (name,),
        _version_is(1),
    )


def _put_cas(fx: Fixtures, tag: str, admin: Identity) -> Call:
    name = f"crash/{tag}/cas"
    fx.secret(name, 1)
    return Call(
        "PutSecret",
        "PUT",
        f"/v1/secrets/{name}",
        {"value": _b64("check-and-set"), "if_version": 1},
        admin,
        "SELECT COUNT(*) FROM secret_versions WHERE name = ?",
        (name,),
        _version_is(2),
    )


def _delete(fx: Fixtures, tag: str, admin: Identity) -> Call:
    name = f"crash/{tag}/delete"
    fx.secret(name, 1)
    return Call(
        "DeleteSecret",
        "DELETE",
        f"/v1/secrets/{name}",
        None,
        admin,
        # Each applied delete appends its audit entry (a repeat would add another).
        "SELECT COUNT(*) FROM audit_log WHERE action = 'secrets.delete' AND resource = ?",
        (f"secret:{name}",),
    )


def _write_tuples(fx: Fixtures, tag: str, admin: Identity) -> Call:
    obj = f"group:crash-{tag}"
    return Call(
        "WriteTuples",
        "POST",
        "/v1/authz/tuples:write",
        {
            "writes": [
                {
                    "object": obj,
                    "relation": "member",
                    "user": f"workload:spiffe://{TRUST_DOMAIN}/crash/{tag}",
                }
            ]
        },
        admin,
        "SELECT COUNT(*) FROM audit_log WHERE action = 'authz.write_tuples' AND details LIKE ?",
        (f"%{obj}#member%",),
    )


def _create_join_token(fx: Fixtures, tag: str, admin: Identity) -> Call:
    spiffe_id = f"spiffe://{TRUST_DOMAIN}/crash/{tag}/token"
    return Call(
        "CreateJoinToken",
        "POST",
        "/v1/join-tokens",
        {"spiffe_id": spiffe_id},
        admin,
        "SELECT COUNT(*) FROM join_tokens WHERE spiffe_id = ?",
        (spiffe_id,),
    )


def _issue(fx: Fixtures, tag: str, admin: Identity) -> Call:
    spiffe_id = f"spiffe://{TRUST_DOMAIN}/crash/{tag}/issued"
    token = fx.join_token(spiffe_id)
    return Call(
        "IssueCertificate",
        "POST",
        "/v1/identity:issue",
        {"csr_pem": csr_pem(new_key()), "join_token": token},
        None,
        "SELECT COUNT(*) FROM issued_certificates WHERE spiffe_id = ?",
        (spiffe_id,),
        _serial_recorded,
    )


def _renew(fx: Fixtures, tag: str, admin: Identity) -> Call:
    spiffe_id = f"spiffe://{TRUST_DOMAIN}/crash/{tag}/renewed"
    workload = fx.workload(spiffe_id)
    return Call(
        "RenewCertificate",
        "POST",
        "/v1/identity:renew",
        {"csr_pem": csr_pem(new_key())},
        workload,
        "SELECT COUNT(*) FROM issued_certificates WHERE spiffe_id = ?",
        (spiffe_id,),
        _serial_recorded,
    )


#: The kinds of keyed call, in chain order: no two neighbours (nor the last
#: and the first) are the same RPC, so the server armed for the next case
#: serves the previous case's retry untouched.
KINDS: Final = (
    ("put-unconditional", _put),
    ("write-tuples", _write_tuples),
    ("create-join-token", _create_join_token),
    ("put-check-and-set", _put_cas),
    ("issue-certificate", _issue),
    ("delete-secret", _delete),
    ("renew-certificate", _renew),
)


@dataclass
class Pending:
    """A case whose call crashed the server, waiting for its retry."""

    label: str
    point: str
    call: Call
    before: int


@dataclass
class Tally:
    cases: int = 0
    double_applications: int = 0
    replays_after_commit: int = 0
    fresh_runs: int = 0
    lines: list[str] = field(default_factory=list)


def _send(port: int, bundle: str, tmp: Path, call: Call) -> Response:
    client = Client(port, bundle, call.caller, tmp / f"client-{uuid.uuid4().hex[:8]}")
    try:
        return client.request(
            call.method, call.path, call.body, headers={"Idempotency-Key": call.key}
        )
    finally:
        client.close()


def _crash(server: ServerProcess, tmp: Path, call: Call) -> None:
    """Send the armed call: the server must die at its point, answering nothing."""
    try:
        resp = _send(server.port, server.bundle, tmp, call)
    except (OSError, http.client.HTTPException):
        pass
    else:
        raise AssertionError(
            f"{call.rpc} answered {resp.status} instead of crashing: {resp.body!r}"
        )
    status = server.wait_crashed()
    assert status == EXIT_STATUS, f"exit status {status}: {server.log_tail()}"


def _retry(server: ServerProcess, tmp: Path, db: Database, pending: Pending, tally: Tally) -> None:
    call = pending.call
    first = _send(server.port, server.bundle, tmp, call)
    # Not 409: a crash leaves no claim behind that could block the retry.
    assert first.status == 200, (pending.label, first.status, first.body)
    replayed = first.headers.get("idempotent-replayed") == "true"
    # After the commit the answer is there; before it, nothing was.
    assert replayed == (pending.point == AFTER_COMMIT), (pending.label, first.headers)
    again = _send(server.port, server.bundle, tmp, call)
    assert again.status == 200
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.body == first.body, pending.label
    effects = db.count(call.effect_sql, *call.effect_args) - pending.before
    call.check_answer(first.json(), db)
    tally.cases += 1
    if effects != 1:
        tally.double_applications += max(effects - 1, 0)
    if replayed:
        tally.replays_after_commit += 1
    else:
        tally.fresh_runs += 1
    tally.lines.append(
        f"{pending.point:>13} {pending.label:<18} effects={effects}"
        f" retry={'replayed' if replayed else 'ran once'}"
    )
    assert effects == 1, (pending.label, effects)


def _run_chain(tmp: Path, settings: list[str], env: dict[str, str], db: Database) -> Tally:
    data = tmp / "data"
    assert main(["init", "--data-dir", str(data), *settings]) == 0
    admin_id = Identity(
        (data / "admin" / "cert.pem").read_bytes(), (data / "admin" / "key.pem").read_bytes()
    )
    bundle = (data / "admin" / "bundle.pem").read_text()
    server = ServerProcess(data, free_port(), tmp / "server.log", bundle, env)
    tally = Tally()
    plan: list[tuple[str, str, Call]] = []
    try:
        server.start(crash_at=None)
        fx = Fixtures(
            Client(server.port, bundle, admin_id, tmp / "setup-admin"),
            Client(server.port, bundle),
            tmp,
        )
        try:
            for point in WRITE_PATH_POINTS:
                for label, make in KINDS:
                    plan.append((point, label, make(fx, f"{point}-{label}", admin_id)))
        finally:
            fx.admin.close()
            fx.anon.close()
        server.stop()

        pending: Pending | None = None
        for point, label, call in plan:
            server.start(crash_at=f"{point}:{call.rpc}")
            if pending is not None:
                _retry(server, tmp, db, pending, tally)
            before = db.count(call.effect_sql, *call.effect_args)
            _crash(server, tmp, call)
            after = db.count(call.effect_sql, *call.effect_args)
            # The crash left the effect whole or not at all, with its answer.
            assert after - before == (1 if point == AFTER_COMMIT else 0), (point, label)
            pending = Pending(label, point, call, before)
        server.start(crash_at=None)
        assert pending is not None
        _retry(server, tmp, db, pending, tally)
    finally:
        server.stop()
    assert LATE_ANSWER_LOG not in server.log.read_text(errors="replace")
    return tally


def _report(backend: str, tally: Tally) -> None:
    print(f"\nidempotency crash points on {backend}:")
    for line in tally.lines:
        print("  " + line)
    print(
        f"  {len(WRITE_PATH_POINTS)} crash points x {len(KINDS)} keyed calls = {tally.cases}"
        f" cases; retries replayed {tally.replays_after_commit}, ran once {tally.fresh_runs};"
        f" double applications = {tally.double_applications}"
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_crash_at_any_point_of_a_keyed_write_applies_it_once(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if backend == "sqlite":
        settings: list[str] = []
        env: dict[str, str] = {}
        db = Database(sqlite_path=tmp_path / "data" / "secinfra.db")
    else:
        dsn: str = request.getfixturevalue("postgres_dsn")
        settings = ["--database-dsn", dsn, "--migrate"]
        env = {"SECINFRA_DATABASE_DSN": dsn, "SECINFRA_MIGRATE": "true"}
        db = Database(dsn=dsn)
    tally = _run_chain(tmp_path, settings, env, db)
    _report(backend, tally)
    assert tally.cases == len(WRITE_PATH_POINTS) * len(KINDS)
    assert tally.double_applications == 0


def test_the_crash_point_variable_needs_test_hooks(tmp_path: Path) -> None:
    """Without test mode the variable arms nothing: the keyed call just runs."""
    data = tmp_path / "data"
    assert main(["init", "--data-dir", str(data)]) == 0
    bundle = (data / "admin" / "bundle.pem").read_text()
    admin_id = Identity(
        (data / "admin" / "cert.pem").read_bytes(), (data / "admin" / "key.pem").read_bytes()
    )
    port = free_port()
    log = tmp_path / "server.log"
    env = {**os.environ, ENV_VAR: "before_commit:PutSecret", "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as sink:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "secinfra_server.cli",
                "serve",
                "--data-dir",
                str(data),
                "--port",
                str(port),
            ],
            stdout=sink,
            stderr=sink,
            env=env,
        )
    server = ServerProcess(data, port, log, bundle, {}, proc)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while True:
            assert proc.poll() is None, server.log_tail()
            assert time.monotonic() < deadline, server.log_tail()
            probe = Client(port, bundle)
            try:
                if probe.request("GET", "/readyz").status == 200:
                    break
            except (OSError, http.client.HTTPException):
                time.sleep(0.1)
            finally:
                probe.close()
        call = Call(
            "PutSecret",
            "PUT",
            "/v1/secrets/not/armed",
            {"value": _b64("x")},
            admin_id,
            "",
            (),
        )
        resp = _send(port, bundle, tmp_path, call)
        assert resp.status == 200, resp.body
        assert json.loads(resp.body)["version"] == 1
        assert proc.poll() is None
    finally:
        server.stop()
    assert "crash point ignored: test hooks are off" in log.read_text()


# -- SIGKILL under load ---------------------------------------------------------------
#: Bounds: WRITERS threads make CALLS_PER_WRITER keyed puts each, the server is
#: killed KILLS times (each after KILL_AFTER_ACKS more answers or
#: KILL_AFTER_SECONDS), and every call gives up at LOAD_DEADLINE_SECONDS.
WRITERS: Final = 4
CALLS_PER_WRITER: Final = 25
KILLS: Final = 3
KILL_AFTER_ACKS: Final = 12
KILL_AFTER_SECONDS: Final = 2.0
LOAD_DEADLINE_SECONDS: Final = 180.0
RETRY_PAUSE_SECONDS: Final = 0.05


@dataclass
class Writer:
    """One writer's calls: each retried with its key until it is answered."""

    name: str
    answers: list[int] = field(default_factory=list)
    attempts: int = 0
    #: Answers replayed: the call had taken effect before a kill cut its response.
    replayed: int = 0
    error: BaseException | None = None


def _write_keyed(port: int, bundle: str, admin: Identity, tmp: Path, writer: Writer) -> None:
    deadline = time.monotonic() + LOAD_DEADLINE_SECONDS
    client = Client(port, bundle, admin, tmp / f"writer-{writer.name.replace('/', '-')}")
    try:
        for n in range(CALLS_PER_WRITER):
            key = {"Idempotency-Key": str(uuid.uuid4())}
            body = {"value": _b64(f"{writer.name} call {n}"), "policy": {"max_versions": 100}}
            while True:
                assert time.monotonic() < deadline, f"{writer.name}: call {n} never answered"
                writer.attempts += 1
                try:
                    resp = client.request("PUT", f"/v1/secrets/{writer.name}", body, headers=key)
                except (OSError, http.client.HTTPException):
                    client.close()  # the server died under us: retry with the key
                    time.sleep(RETRY_PAUSE_SECONDS)
                    continue
                if resp.status in (409, 503):  # retryable, as the SDKs treat them
                    time.sleep(RETRY_PAUSE_SECONDS)
                    continue
                assert resp.status == 200, (writer.name, resp.status, resp.body)
                writer.answers.append(int(resp.json()["version"]))
                writer.replayed += resp.headers.get("idempotent-replayed") == "true"
                break
    except BaseException as exc:
        writer.error = exc
    finally:
        client.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_keyed_writes_retried_across_sigkills_apply_once(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    settings: list[str] = []
    env: dict[str, str] = {}
    db = Database(sqlite_path=data / "secinfra.db")
    if backend == "postgres":
        dsn: str = request.getfixturevalue("postgres_dsn")
        settings = ["--database-dsn", dsn, "--migrate"]
        env = {"SECINFRA_DATABASE_DSN": dsn, "SECINFRA_MIGRATE": "true"}
        db = Database(dsn=dsn)
    assert main(["init", "--data-dir", str(data), *settings]) == 0
    admin = Identity(
        (data / "admin" / "cert.pem").read_bytes(), (data / "admin" / "key.pem").read_bytes()
    )
    bundle = (data / "admin" / "bundle.pem").read_text()
    server = ServerProcess(data, free_port(), tmp_path / "server.log", bundle, env)
    writers = [Writer(f"load/w{i}") for i in range(WRITERS)]
    kills = 0
    try:
        server.start(crash_at=None)
        threads = [
            threading.Thread(
                target=_write_keyed, args=(server.port, bundle, admin, tmp_path, w), daemon=True
            )
            for w in writers
        ]
        for thread in threads:
            thread.start()
        while kills < KILLS and any(t.is_alive() for t in threads):
            acked = sum(len(w.answers) for w in writers)
            started = time.monotonic()
            while (
                sum(len(w.answers) for w in writers) < acked + KILL_AFTER_ACKS
                and time.monotonic() - started < KILL_AFTER_SECONDS
                and any(t.is_alive() for t in threads)
            ):
                time.sleep(0.01)
            assert server.proc is not None
            os.kill(server.proc.pid, signal.SIGKILL)
            server.wait_crashed()
            kills += 1
            server.start(crash_at=None)
        for thread in threads:
            thread.join(LOAD_DEADLINE_SECONDS)
        assert not any(t.is_alive() for t in threads)
    finally:
        server.stop()
    errors = [w.error for w in writers if w.error is not None]
    assert not errors, errors
    calls = 0
    double = 0
    lost = 0
    for w in writers:
        versions = db.count("SELECT COUNT(*) FROM secret_versions WHERE name = ?", w.name)
        calls += len(w.answers)
        double += max(versions - len(w.answers), 0)
        lost += max(len(w.answers) - versions, 0)
        # Each call's answer is its own version: 1, 2, ... in call order.
        assert w.answers == list(range(1, CALLS_PER_WRITER + 1)), (w.name, w.answers)
    attempts = sum(w.attempts for w in writers)
    replayed = sum(w.replayed for w in writers)
    print(
        f"\nSIGKILL under keyed write load on {backend}: {kills} kills, {calls} calls"
        f" ({attempts} attempts, {replayed} answers replayed after a kill),"
        f" double applications = {double}, lost = {lost}"
    )
    assert kills == KILLS
    assert calls == WRITERS * CALLS_PER_WRITER
    assert double == 0
    assert lost == 0
