"""Several server processes on one PostgreSQL database, as replicas run.

Each replica is a real ``secinfra-server serve`` subprocess on its own
loopback port, all on one throwaway database; clients are real TLS clients.
What one replica changes, the others act on within the stated bound
(:data:`~secinfra_server.storage.postgres.PROPAGATION_BOUND_SECONDS`): a
revocation (on a new connection and on an already open keep-alive one), a CA
rotation step (two at once leave one prepared CA), authorization writes (with
their revision tokens), join tokens (usable once across all), the published
CRLs (the same on every replica). Each replica serves its own certificate with
its own DNS name. The bound still holds when the listening connection
is killed or a notification never comes. One replica leads the background
jobs; when it is SIGKILLed another takes over within
:data:`~secinfra_server.storage.postgres.TAKEOVER_BOUND_SECONDS`. Replicas
appending to the audit log at once leave one verifiable chain.

Every wait has a deadline and every subprocess is killed in the fixture's
teardown.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import psycopg
import pytest
from cryptography import x509

from secinfra_server.cli import main
from secinfra_server.storage.postgres import (
    FEED_APPLICATION_NAME,
    PROPAGATION_BOUND_SECONDS,
    TAKEOVER_BOUND_SECONDS,
)

from .harness import Client, Identity, RunningServer, csr_pem, free_port, key_pem, new_key

T = TypeVar("T")

STARTUP_TIMEOUT_SECONDS = 60.0
#: How often a wait looks again.
POLL_SECONDS = 0.02
#: A wait that is over its bound keeps looking this much longer, so that a
#: failure says how late the change was, not only that it was.
OVERRUN_SECONDS = 5.0
TD = "secinfra.local"
#: The audit test: writers (one per replica) and writes each.
AUDIT_WRITES_PER_REPLICA = 25
CLI = (sys.executable, "-m", "secinfra_server.cli")


@dataclass
class Replica:
    """One ``secinfra-server serve`` subprocess."""

    name: str
    port: int
    dns_name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
        self.proc.wait(10)

    def log_lines(self) -> list[dict[str, object]]:
        lines = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
        return lines


class ReplicaSet:
    """Replicas on one database and data dir (the KEK and the admin identity)."""

    def __init__(self, dsn: str, tmp: Path) -> None:
        self.dsn = dsn
        self.tmp = tmp
        self.data = tmp / "data"
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            # The DSN (with its password) goes in the environment, never argv.
            "SECINFRA_DATABASE_DSN": dsn,
        }
        self.replicas: list[Replica] = []
        self.clients: list[Client] = []
        #: What clients trust; None: the bundle file init wrote.
        self.trusted_pem: str | None = None

    def init(self) -> None:
        proc = subprocess.run(
            [*CLI, "init", "--data-dir", str(self.data), "--migrate"],
            env=self.env,
            capture_output=True,
            timeout=STARTUP_TIMEOUT_SECONDS,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr.decode()

    @property
    def bundle(self) -> str:
        return (self.data / "admin" / "bundle.pem").read_text()

    @property
    def admin(self) -> Identity:
        return Identity(
            (self.data / "admin" / "cert.pem").read_bytes(),
            (self.data / "admin" / "key.pem").read_bytes(),
        )

    def start(self, name: str) -> Replica:
        port = free_port()
        dns_name = f"{name}.replica.test"
        log = self.tmp / f"{name}.log"
        dns = ("--dns-names", dns_name)
        with log.open("ab") as sink:
            proc = subprocess.Popen(
                [*CLI, "serve", "--data-dir", str(self.data), *("--port", str(port)), *dns],
                stdout=sink,
                stderr=sink,
                env=self.env,
            )
        replica = Replica(name, port, dns_name, proc, log)
        self.replicas.append(replica)
        self._wait_ready(replica)
        return replica

    def _wait_ready(self, replica: Replica) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            assert replica.alive(), f"{replica.name} exited: {replica.log.read_text()[-3000:]}"
            client = Client(replica.port, self.bundle)
            try:
                if client.request("GET", "/readyz").status == 200:
                    return
            except OSError:
                pass
            finally:
                client.close()
            time.sleep(0.1)
        raise AssertionError(f"{replica.name} not ready: {replica.log.read_text()[-3000:]}")

    def client(self, replica: Replica, identity: Identity | None = None, label: str = "") -> Client:
        tmp = self.tmp / "clients" / f"{replica.name}-{label or len(self.clients)}"
        trusted = self.trusted_pem or self.bundle
        client = Client(replica.port, trusted, identity, tmp if identity else None)
        self.clients.append(client)
        return client

    def admin_client(self, replica: Replica) -> Client:
        return self.client(replica, self.admin, f"admin-{len(self.clients)}")

    def enrol(self, via: Replica, spiffe_path: str) -> Identity:
        token = self.admin_client(via).request(
            "POST", "/v1/join-tokens", {"spiffe_id": f"spiffe://{TD}{spiffe_path}"}
        )
        assert token.status == 200, token.body
        return self.issue(via, token.json()["token"])

    def issue(self, via: Replica, token: str) -> Identity:
        key = new_key()
        resp = self.client(via).request(
            "POST", "/v1/identity:issue", {"csr_pem": csr_pem(key), "join_token": token}
        )
        assert resp.status == 200, resp.body
        return Identity(resp.json()["svid"]["cert_chain_pem"].encode(), key_pem(key))

    def close(self) -> None:
        for client in self.clients:
            client.close()
        for replica in self.replicas:
            replica.kill()


@pytest.fixture
def replica_set(postgres_dsn: str, tmp_path: Path) -> Iterator[ReplicaSet]:
    replicas = ReplicaSet(postgres_dsn, tmp_path)
    replicas.init()
    try:
        yield replicas
    finally:
        replicas.close()


def within(bound: float, what: str, probe: Callable[[], T | None]) -> tuple[T, float]:
    """Poll ``probe`` until it returns something; fail unless that took at most
    ``bound`` seconds. Returns the result and the time it took."""
    started = time.monotonic()
    while True:
        result = probe()
        elapsed = time.monotonic() - started
        if result is not None:
            assert elapsed <= bound, f"{what}: took {elapsed:.3f} s, over the {bound} s bound"
            return result, elapsed
        if elapsed > bound + OVERRUN_SECONDS:
            raise AssertionError(f"{what}: not within {bound + OVERRUN_SECONDS:.1f} s")
        time.sleep(POLL_SECONDS)


def _terminate_listeners(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = %s AND datname = current_database()",
            (FEED_APPLICATION_NAME,),
        ).fetchall()
    return len(rows)


def _refused_on_open_connection(client: Client) -> Callable[[], int | None]:
    """A probe: the status once a request on the already open connection is
    refused (the server closes the connection after refusing it)."""
    sock = client.connect().sock
    assert sock is not None, "open the connection first"

    def probe() -> int | None:
        assert client.conn is not None, "the connection was closed"
        assert client.conn.sock is sock, "the connection was reopened"
        resp = client.request("GET", "/v1/identity:whoami")
        return resp.status if resp.status != 200 else None

    return probe


def test_a_revocation_through_one_replica_is_refused_by_the_other_on_open_and_new_connections(
    replica_set: ReplicaSet,
) -> None:
    a = replica_set.start("a")
    b = replica_set.start("b")
    app = replica_set.enrol(a, "/workload/app")
    on_b = replica_set.client(b, app, "app-open")
    assert on_b.request("GET", "/v1/identity:whoami").status == 200  # keep-alive, stays open

    serial = f"{app.cert.serial_number:x}"
    revoked = replica_set.admin_client(a).request("POST", "/v1/revocations", {"serial": serial})
    assert revoked.status == 200, revoked.body

    status, took = within(
        PROPAGATION_BOUND_SECONDS,
        "B refuses on the open connection",
        _refused_on_open_connection(on_b),
    )
    assert status == 401
    print(f"revocation through A refused by B on the open connection after {took:.3f} s")
    fresh = replica_set.client(b, app, "app-new").request("GET", "/v1/identity:whoami")
    assert fresh.status == 401
    assert fresh.code == "unauthenticated"
    listed = replica_set.admin_client(b).request("GET", "/v1/revocations").json()["revocations"]
    assert [entry["serial"] for entry in listed] == [serial]


def test_a_killed_listening_connection_still_propagates_within_the_bound(
    replica_set: ReplicaSet,
) -> None:
    a = replica_set.start("a")
    b = replica_set.start("b")
    app = replica_set.enrol(a, "/workload/app")
    on_b = replica_set.client(b, app, "app-open")
    assert on_b.request("GET", "/v1/identity:whoami").status == 200

    # Kill every replica's listening connection, and revoke at once: the
    # notification is sent while B has no listener to hear it.
    assert _terminate_listeners(replica_set.dsn) == 2
    serial = f"{app.cert.serial_number:x}"
    admin = replica_set.admin_client(a)
    assert admin.request("POST", "/v1/revocations", {"serial": serial}).status == 200
    _, took = within(
        PROPAGATION_BOUND_SECONDS,
        "B refuses after its listener died",
        _refused_on_open_connection(on_b),
    )
    print(f"revocation with the listeners killed refused by B after {took:.3f} s")
    reconnected = [
        line
        for line in b.log_lines()
        if line.get("message") == "change feed: listening again (revisions compared)"
    ]
    assert reconnected, "B's change feed did not reconnect"


def test_a_change_whose_notification_never_comes_is_found_by_the_revision_check(
    replica_set: ReplicaSet,
) -> None:
    a = replica_set.start("a")
    b = replica_set.start("b")
    app = replica_set.enrol(a, "/workload/app")
    on_b = replica_set.client(b, app, "app-open")
    assert on_b.request("GET", "/v1/identity:whoami").status == 200

    # A write with the triggers off (session_replication_role = replica), so
    # no NOTIFY is sent; only the revision moves, as a lost notification
    # leaves it.
    with psycopg.connect(replica_set.dsn, autocommit=True) as conn, conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute(
            "INSERT INTO revocations (serial, spiffe_id, reason, revoked_ms)"
            " VALUES (%s, '', %s, %s)",
            (f"{app.cert.serial_number:x}", "test: no notification", int(time.time() * 1000)),
        )
        conn.execute(
            "UPDATE state_revisions SET revision = revision + 1 WHERE kind = 'revocations'"
        )
    _, took = within(
        PROPAGATION_BOUND_SECONDS,
        "B refuses without a notification",
        _refused_on_open_connection(on_b),
    )
    print(f"revocation without a notification refused by B after {took:.3f} s")


def _bundle(client: Client) -> dict[str, object]:
    resp = client.request("GET", "/v1/bundle")
    assert resp.status == 200, resp.body
    return dict(resp.json())


def test_a_ca_rotation_through_one_replica_shows_in_the_others_bundle_and_certificates(
    replica_set: ReplicaSet,
) -> None:
    a = replica_set.start("a")
    b = replica_set.start("b")
    admin_a = replica_set.admin_client(a)
    anon_b = replica_set.client(b)
    before = _bundle(anon_b)
    assert len(before["keys"]) == 1  # type: ignore[arg-type]

    assert admin_a.request("POST", "/v1/ca:prepare", {}).status == 200
    prepared_seq = _bundle(replica_set.client(a))["spiffe_sequence"]

    def b_has(sequence: object, keys: int) -> dict[str, object] | None:
        anon_b.close()  # a new request each time: the bundle is cacheable
        found = _bundle(anon_b)
        return (
            found if found["spiffe_sequence"] == sequence and len(found["keys"]) == keys else None
        )  # type: ignore[arg-type]

    within(
        PROPAGATION_BOUND_SECONDS,
        "B's bundle holds the prepared CA",
        lambda: b_has(prepared_seq, 2),
    )

    assert admin_a.request("POST", "/v1/ca:activate", {}).status == 200
    cas = admin_a.request("GET", "/v1/ca").json()
    active = [entry for entry in cas["authorities"] if entry["state"] == "active"]
    assert len(active) == 1
    trusted = "".join(entry["certificate_pem"] for entry in cas["authorities"])
    replica_set.trusted_pem = trusted

    def b_issues_from_the_new_ca() -> x509.Certificate | None:
        # B signs new workload certificates with the CA A activated, and
        # serves a certificate of its own from it (with its own DNS SAN).
        probe = Client(b.port, trusted, replica_set.admin, replica_set.tmp / "clients" / "probe")
        try:
            cert = probe.peer_certificate()
        finally:
            probe.close()
        return cert if _issuer_id(cert, cas) == active[0]["id"] else None

    served, _ = within(
        PROPAGATION_BOUND_SECONDS + 2, "B serves from the new CA", b_issues_from_the_new_ca
    )
    assert _dns_sans(served) == [b.dns_name]
    token = admin_a.request("POST", "/v1/join-tokens", {"spiffe_id": f"spiffe://{TD}/workload/new"})
    issued = replica_set.issue(b, token.json()["token"])
    assert _issuer_id(issued.cert, cas) == active[0]["id"]


def _issuer_id(cert: x509.Certificate, cas: dict[str, list[dict[str, str]]]) -> str | None:
    for entry in cas["authorities"]:
        ca_cert = x509.load_pem_x509_certificate(entry["certificate_pem"].encode())
        if ca_cert.subject == cert.issuer:
            return entry["id"]
    return None


def _dns_sans(cert: x509.Certificate) -> list[str]:
    return cert.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value.get_values_for_type(x509.DNSName)


def test_each_replica_serves_its_own_certificate_with_its_own_dns_name(
    replica_set: ReplicaSet,
) -> None:
    a = replica_set.start("a")
    b = replica_set.start("b")
    cert_a = replica_set.client(a, replica_set.admin, "peer-a").peer_certificate()
    cert_b = replica_set.client(b, replica_set.admin, "peer-b").peer_certificate()
    assert cert_a.serial_number != cert_b.serial_number
    assert _dns_sans(cert_a) == [a.dns_name]
    assert _dns_sans(cert_b) == [b.dns_name]


DOCS_DSL = """model
  schema 1.1

type document
  relations
    define viewer: [workload]
"""


def test_authorization_writes_through_one_replica_answer_checks_on_the_other(
    replica_set: ReplicaSet,
) -> None:
    a = replica_set.start("a")
    b = replica_set.start("b")
    admin_a = replica_set.admin_client(a)
    admin_b = replica_set.admin_client(b)
    model = admin_a.request("POST", "/v1/authz/models", {"dsl": DOCS_DSL})
    assert model.status == 200, model.body
    assert admin_b.request("GET", "/v1/authz/models:current").json()["id"] == model.json()["id"]

    viewer = {
        "object": "document:plan",
        "relation": "viewer",
        "user": f"workload:spiffe://{TD}/w/x",
    }
    written = admin_a.request("POST", "/v1/authz/tuples:write", {"writes": [viewer], "deletes": []})
    assert written.status == 200, written.body
    token = written.json()["revision"]
    # A's revision token, honoured by B at once: the check reads the database.
    fresh = {"tuple_key": viewer, "consistency": "at_least_as_fresh", "revision": token}
    checked = admin_b.request("POST", "/v1/authz:check", fresh)
    assert checked.status == 200, checked.body
    assert checked.json()["allowed"] is True

    removed = admin_b.request("POST", "/v1/authz/tuples:write", {"writes": [], "deletes": [viewer]})
    assert removed.status == 200, removed.body
    after = {**fresh, "revision": removed.json()["revision"]}
    assert admin_a.request("POST", "/v1/authz:check", after).json()["allowed"] is False


def test_a_join_token_made_on_one_replica_is_used_once_across_all(replica_set: ReplicaSet) -> None:
    a = replica_set.start("a")
    b = replica_set.start("b")
    made = replica_set.admin_client(a).request(
        "POST", "/v1/join-tokens", {"spiffe_id": f"spiffe://{TD}/workload/once"}
    )
    token = made.json()["token"]
    identity = replica_set.issue(b, token)
    assert identity.cert.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value.get_values_for_type(x509.UniformResourceIdentifier) == [f"spiffe://{TD}/workload/once"]
    for replica in (a, b):
        again = replica_set.client(replica).request(
            "POST", "/v1/identity:issue", {"csr_pem": csr_pem(new_key()), "join_token": token}
        )
        assert again.status in (401, 403), again.body
    listed = replica_set.admin_client(b).request("GET", "/v1/join-tokens").json()
    assert any(entry.get("used_at") for entry in listed["join_tokens"]), listed


def _is_leader(replica_set: ReplicaSet, replica: Replica) -> bool:
    client = replica_set.client(replica, replica_set.admin, f"metrics-{replica.name}")
    try:
        text = client.request("GET", "/metrics").body.decode()
    finally:
        client.close()
    match = re.search(r"^secinfra_leader (\S+)$", text, re.MULTILINE)
    assert match is not None, text
    return float(match.group(1)) == 1.0


def test_one_replica_leads_and_another_takes_over_when_it_is_killed(
    replica_set: ReplicaSet,
) -> None:
    replicas = [replica_set.start(name) for name in ("a", "b", "c")]

    def one_leader() -> Replica | None:
        leaders = [r for r in replicas if r.alive() and _is_leader(replica_set, r)]
        assert len(leaders) <= 1, [r.name for r in leaders]
        return leaders[0] if leaders else None

    leader, _ = within(TAKEOVER_BOUND_SECONDS, "a leader is chosen", one_leader)
    # Stays one: a few more looks, over more than one election tick.
    for _ in range(5):
        assert one_leader() is leader
        time.sleep(0.3)

    os.kill(leader.proc.pid, signal.SIGKILL)
    leader.proc.wait(10)
    successor, took = within(TAKEOVER_BOUND_SECONDS, "another replica takes over", one_leader)
    assert successor is not leader
    acquired = [
        line
        for line in successor.log_lines()
        if str(line.get("message", "")).startswith("leadership acquired")
    ]
    assert acquired, successor.log.read_text()[-2000:]
    print(f"takeover after SIGKILL: {took:.3f} s")


def test_replicas_appending_at_once_keep_one_verifiable_audit_chain(
    replica_set: ReplicaSet, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    replicas = [replica_set.start(name) for name in ("a", "b", "c")]
    clients = [replica_set.admin_client(r) for r in replicas]
    errors: list[str] = []
    start = threading.Barrier(len(clients))

    def writer(index: int, client: Client) -> None:
        start.wait(30)
        for i in range(AUDIT_WRITES_PER_REPLICA):
            value = base64.b64encode(f"{index}-{i}".encode()).decode()
            resp = client.request("PUT", f"/v1/secrets/audit/r{index}", {"value": value})
            if resp.status != 200:
                errors.append(resp.body.decode())

    threads = [threading.Thread(target=writer, args=(i, c)) for i, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []

    with psycopg.connect(replica_set.dsn) as conn:
        row = conn.execute("SELECT COUNT(*) FROM audit_log WHERE action = 'secrets.put'").fetchone()
    assert row is not None
    assert row[0] >= len(replicas) * AUDIT_WRITES_PER_REPLICA
    monkeypatch.setenv("SECINFRA_DATABASE_DSN", replica_set.dsn)
    capsys.readouterr()
    assert main(["audit", "verify", "--data-dir", str(replica_set.data)]) == 0
    assert "intact" in capsys.readouterr().out


def test_two_replicas_preparing_a_rotation_at_once_leave_one_prepared_ca(
    replica_set: ReplicaSet,
) -> None:
    replicas = [replica_set.start(name) for name in ("a", "b")]
    clients = [replica_set.admin_client(r) for r in replicas]
    for client in clients:
        assert client.request("GET", "/v1/ca").status == 200  # connections open
    statuses: list[int] = []
    start = threading.Barrier(len(clients))

    def prepare(client: Client) -> None:
        start.wait(30)
        statuses.append(client.request("POST", "/v1/ca:prepare", {}).status)

    threads = [threading.Thread(target=prepare, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # One wins; the other, planned from a copy without the winner's CA or
    # re-planned after the compare-and-set refused it, is told a CA is
    # already prepared.
    assert sorted(statuses) == [200, 412], statuses
    with psycopg.connect(replica_set.dsn) as conn:
        states = [row[0] for row in conn.execute("SELECT state FROM cas ORDER BY state")]
    assert states == ["active", "prepared"]


def test_a_server_on_sqlite_always_leads_and_has_no_change_feed(tmp_path: Path) -> None:
    server = RunningServer(tmp_path / "data").start()
    try:
        admin = Client(server.port, server.bundle_pem(), server.admin, tmp_path / "admin")
        text = admin.request("GET", "/metrics").body.decode()
        admin.close()
        assert re.search(r"^secinfra_leader 1\.0$", text, re.MULTILINE), text
        assert server.server.is_leader
        assert not any(task.get_name() == "change-feed" for task in server.call(_tasks()))
    finally:
        server.stop()


async def _tasks() -> set[asyncio.Task[object]]:
    return asyncio.all_tasks()


def _crl_numbers(pem: str) -> list[int]:
    end = "-----END X509 CRL-----"
    blocks = [block + end for block in pem.split(end) if block.strip()]
    crls = [x509.load_pem_x509_crl(block.strip().encode()) for block in blocks]
    return [c.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number for c in crls]


def test_every_replica_publishes_the_same_crl_and_its_number_only_grows(
    replica_set: ReplicaSet,
) -> None:
    a = replica_set.start("a")
    b = replica_set.start("b")
    app = replica_set.enrol(a, "/workload/app")
    first_a = replica_set.client(a).request("GET", "/v1/crl").json()["crl_pem"]
    assert replica_set.client(b).request("GET", "/v1/crl").json()["crl_pem"] == first_a

    serial = f"{app.cert.serial_number:x}"
    assert (
        replica_set.admin_client(a).request("POST", "/v1/revocations", {"serial": serial}).status
        == 200
    )

    def b_lists_it() -> str | None:
        pem = replica_set.client(b).request("GET", "/v1/crl").json()["crl_pem"]
        crl = x509.load_pem_x509_crl(pem.encode())
        return pem if crl.get_revoked_certificate_by_serial_number(app.cert.serial_number) else None

    on_b, _ = within(PROPAGATION_BOUND_SECONDS, "B's CRL lists the revocation", b_lists_it)
    assert _crl_numbers(on_b)[0] > _crl_numbers(first_a)[0]

    def a_serves_the_same() -> str | None:
        pem = replica_set.client(a).request("GET", "/v1/crl").json()["crl_pem"]
        return pem if pem == on_b else None

    within(PROPAGATION_BOUND_SECONDS, "A publishes the same CRL as B", a_serves_the_same)
