"""The server on PostgreSQL, end to end: real TLS, a real client, a real
database. Enrolment (the CA), secrets with check-and-set, authorization
tuples and checks, revocation on an open connection, and everything still
there, with an intact audit chain (as the server and ``audit verify`` see it),
after a restart."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from secinfra_server.audit import verify
from secinfra_server.cli import main
from secinfra_server.crypto import load_audit_key
from secinfra_server.storage import postgres as pg

from .harness import Client, RunningServer, enrol


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def test_secrets_authz_and_ca_round_trip_on_postgresql(
    postgres_dsn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data_dir = tmp_path / "data"
    server = RunningServer(data_dir, database_dsn=postgres_dsn, migrate=True).start()
    try:
        admin = Client(server.port, server.bundle_pem(), server.admin, tmp_path / "admin")
        spiffe_id = f"spiffe://{server.config.trust_domain}/workload/app"
        identity = enrol(server, tmp_path, "/workload/app")

        put = admin.request("PUT", "/v1/secrets/payments/db", {"value": _b64(b"v1")})
        assert put.status == 200, put.body
        stale = admin.request(
            "PUT", "/v1/secrets/payments/db", {"value": _b64(b"v2"), "if_version": 0}
        )
        assert stale.status == 412
        assert stale.json()["error"]["details"] == {"current_version": 1}

        app = Client(server.port, server.bundle_pem(), identity, tmp_path / "app")
        assert app.request("GET", "/v1/secrets/payments/db").status == 403
        reader = {"user": f"workload:{spiffe_id}", "relation": "reader"}
        grant = {"writes": [{**reader, "object": "folder:payments/"}], "deletes": []}
        assert admin.request("POST", "/v1/authz/tuples:write", grant).status == 200
        read = app.request("GET", "/v1/secrets/payments/db")
        assert read.status == 200, read.body
        assert base64.b64decode(read.json()["value"]) == b"v1"
        checked = admin.request(
            "POST",
            "/v1/authz:check",
            {"tuple_key": {**reader, "object": "secret:payments/db"}},
        )
        assert checked.status == 200, checked.body
        assert checked.json()["allowed"] is True

        serial = f"{identity.cert.serial_number:x}"
        assert admin.request("POST", "/v1/revocations", {"serial": serial}).status == 200
        refused = app.request("GET", "/v1/identity:whoami")
        assert refused.status == 401
        admin.close()
        app.close()
    finally:
        server.stop()

    # A restart on the same database, no migration asked: the state is all there.
    again = RunningServer(data_dir, database_dsn=postgres_dsn).start()
    try:
        admin = Client(again.port, again.bundle_pem(), again.admin, tmp_path / "admin2")
        read = admin.request("GET", "/v1/secrets/payments/db")
        assert base64.b64decode(read.json()["value"]) == b"v1"
        listed = admin.request("GET", "/v1/revocations").json()["revocations"]
        assert [entry["serial"] for entry in listed] == [serial]
        admin.close()
        assert again.server.storage is not None
        key = load_audit_key(data_dir / "audit.key")
        result = again.call(again.server.storage.read(lambda conn: verify(conn, key)))
        assert result.ok, result.reason
        assert result.entries > 0
        assert isinstance(again.server.storage, pg.PostgresStorage)
    finally:
        again.stop()

    # The command line verifies the same chain, given the DSN.
    monkeypatch.setenv("SECINFRA_DATABASE_DSN", postgres_dsn)
    assert main(["audit", "verify", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("audit log intact: ")
    # At least the entries the server saw (stopping may append its own).
    assert int(out.split()[3]) >= result.entries
