"""People's login against a real OpenID provider: Dex, started by the test.

`secinfra login` runs as a real process (the CLI), the server in-process on
loopback with real TLS, Dex as a real process with HTTPS. The test plays only
the person at the browser (dex.Browser). Covered: the code flow with PKCE and a
loopback redirect, the device flow, group claims becoming tuples that grant a
secret through the authorization engine, whoami and logout, and the refusals:
a token for another audience, an expired ID token, a token bound to another
key, and renewing a user certificate over mTLS.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from secinfra._login import Provider, Workstation

from .dex import CLIENT_ID, OTHER_CLIENT_ID, Browser, Dex, running_dex
from .harness import Client, RunningServer, csr_pem, new_key

ALICE_ID = "spiffe://secinfra.local/user/example.com/alice"
BOB_ID = "spiffe://secinfra.local/user/example.com/bob"
SECRET = "payments/db"
CERT_TTL = 3600
_URL = re.compile(r"(https://\S+)")


@pytest.fixture(scope="module")
def dex(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dex]:
    yield from running_dex(tmp_path_factory.mktemp("dex"))


def _login_settings(dex: Dex) -> dict[str, Any]:
    return {
        "issuer": dex.issuer,
        "client_id": CLIENT_ID,
        "ca_file": str(dex.ca_file),
        "user_claim": "email",
        "certificate_ttl_seconds": CERT_TTL,
        "leeway_seconds": 0,
        "groups": {"payments-eng": [f"reader secret:{SECRET}"]},
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, dex: Dex) -> Iterator[RunningServer]:
    running = RunningServer(
        tmp_path_factory.mktemp("server") / "data", login=_login_settings(dex)
    ).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def bundle(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bundle") / "bundle.pem"
    path.write_text(server.bundle_pem())
    return path


def _cli(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "SECINFRA_SERVER": "", "SECINFRA_CERT": "", "SECINFRA_KEY": ""}
    return subprocess.Popen(
        [sys.executable, "-m", "secinfra.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        **kwargs,
    )


def _run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "secinfra.cli", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
        check=False,
    )


def _login(
    dex: Dex,
    server: RunningServer,
    bundle: Path,
    login_dir: Path,
    email: str,
    *,
    device: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run `secinfra login` and sign in as ``email`` in the test's browser."""
    flags = ["--device"] if device else []
    process = _cli(
        "login",
        "--server",
        server.server.url,
        "--bundle",
        str(bundle),
        "--login-dir",
        str(login_dir),
        "--issuer-ca",
        str(dex.ca_file),
        "--timeout",
        "60",
        "--json",
        *flags,
    )
    assert process.stderr is not None
    url = None
    lines: list[str] = []
    while url is None:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        found = _URL.search(line)
        url = found.group(1) if found else None
    assert url is not None, "".join(lines)
    browser = Browser(dex)
    page = browser.approve_device(url, email) if device else browser.sign_in(url, email)
    assert page.status_code == 200, page.text[:500]
    stdout, stderr = process.communicate(timeout=60)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _admin_flags(server: RunningServer, bundle: Path) -> list[str]:
    admin = server.config.admin_dir
    return [
        "--server",
        server.server.url,
        "--bundle",
        str(bundle),
        "--cert",
        str(admin / "cert.pem"),
        "--key",
        str(admin / "key.pem"),
    ]


@pytest.fixture(scope="module")
def secret(server: RunningServer, bundle: Path) -> str:
    put = _run("secrets", "put", SECRET, *_admin_flags(server, bundle), stdin="s3cret")
    assert put.returncode == 0, put.stderr
    return SECRET


def test_code_flow_gives_a_user_certificate_and_group_access(
    dex: Dex, server: RunningServer, bundle: Path, secret: str, tmp_path: Path
) -> None:
    login_dir = tmp_path / "login"
    done = _login(dex, server, bundle, login_dir, "alice@example.com")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["spiffe_id"] == ALICE_ID
    key_file = login_dir / "key.pem"
    assert key_file.stat().st_mode & 0o777 == 0o600
    # The key was made by the CLI and stayed there: the certificate is for it.
    whoami = _run("whoami", "--login-dir", str(login_dir), "--json")
    assert whoami.returncode == 0, whoami.stderr
    me = json.loads(whoami.stdout)
    assert me["spiffe_id"] == ALICE_ID
    lifetime = datetime.fromisoformat(me["not_after"]) - datetime.now(UTC)
    assert CERT_TTL - 120 < lifetime.total_seconds() <= CERT_TTL
    # payments-eng -> reader on the secret, through the authorization engine.
    got = _run("secrets", "get", secret, "--login-dir", str(login_dir))
    assert got.returncode == 0, got.stderr
    assert got.stdout == "s3cret"
    # A user certificate is not renewed over mTLS: log in again instead.
    identity_client = Client(server.port, server.bundle_pem(), _identity(login_dir), tmp_path)
    renewed = identity_client.request("POST", "/v1/identity:renew", {"csr_pem": csr_pem(new_key())})
    identity_client.close()
    assert renewed.status == 403, renewed.body
    assert "secinfra login" in renewed.json()["error"]["message"]


def _identity(login_dir: Path) -> Any:
    from .harness import Identity

    return Identity((login_dir / "cert.pem").read_bytes(), (login_dir / "key.pem").read_bytes())


def test_device_flow_logs_in_and_logout_removes_the_key(
    dex: Dex, server: RunningServer, bundle: Path, secret: str, tmp_path: Path
) -> None:
    login_dir = tmp_path / "login"
    started = time.monotonic()
    done = _login(dex, server, bundle, login_dir, "bob@example.com", device=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["spiffe_id"] == BOB_ID
    assert time.monotonic() - started < 30
    # Bob is in no mapped group: no access to the secret.
    denied = _run("secrets", "get", secret, "--login-dir", str(login_dir))
    assert denied.returncode == 1
    assert f"{BOB_ID} may not read secret" in denied.stderr
    out = _run("logout", "--login-dir", str(login_dir), "--json")
    assert out.returncode == 0, out.stderr
    assert {Path(p).name for p in json.loads(out.stdout)["removed"]} >= {"key.pem", "cert.pem"}
    assert not (login_dir / "key.pem").exists()
    after = _run("whoami", "--login-dir", str(login_dir), "--server", server.server.url)
    assert after.returncode == 2  # no identity any more


def _id_token(dex: Dex, client_id: str, nonce: str, email: str) -> str:
    """An ID token for ``client_id`` from Dex's code flow (the SDK's client code,
    the test's browser), bound to ``nonce``."""
    provider = Provider(
        dex.issuer, client_id, ["openid", "email", "groups"], verify=str(dex.ca_file)
    )
    errors: list[BaseException] = []

    def sign_in(url: str) -> None:
        def run() -> None:
            try:
                Browser(dex).sign_in(url, email)
            except BaseException as exc:
                errors.append(exc)

        threading.Thread(target=run, daemon=True).start()

    token = provider.code_flow(nonce, announce=sign_in, timeout=30)
    assert not errors, errors
    return token


def _enrol_with(server: RunningServer, csr: str, token: str) -> Any:
    client = Client(server.port, server.bundle_pem())
    try:
        return client.request(
            "POST", "/v1/identity:issue", {"csr_pem": csr, "oidc_id_token": token}
        )
    finally:
        client.close()


def test_a_token_for_another_client_is_refused(dex: Dex, server: RunningServer) -> None:
    workstation = Workstation.new()
    token = _id_token(dex, OTHER_CLIENT_ID, workstation.nonce, "alice@example.com")
    resp = _enrol_with(server, workstation.csr_pem, token)
    assert resp.status == 401, resp.body
    assert "audience is not one of ['secinfra-cli']" in resp.json()["error"]["message"]
    assert token.split(".")[2] not in resp.body.decode()


def test_a_token_bound_to_another_key_is_refused(dex: Dex, server: RunningServer) -> None:
    mine, theirs = Workstation.new(), Workstation.new()
    token = _id_token(dex, CLIENT_ID, mine.nonce, "alice@example.com")
    resp = _enrol_with(server, theirs.csr_pem, token)
    assert resp.status == 401, resp.body
    assert "nonce is not bound to the CSR's public key" in resp.json()["error"]["message"]
    # With its own key the same token is good.
    assert _enrol_with(server, mine.csr_pem, token).status == 200


def test_an_expired_session_is_refused(tmp_path: Path) -> None:
    with _short_lived_dex(tmp_path) as dex:
        running = RunningServer(tmp_path / "data", login=_login_settings(dex)).start()
        try:
            workstation = Workstation.new()
            token = _id_token(dex, CLIENT_ID, workstation.nonce, "alice@example.com")
            time.sleep(2.5)
            resp = _enrol_with(running, workstation.csr_pem, token)
            assert resp.status == 401, resp.body
            assert "token has expired" in resp.json()["error"]["message"]
        finally:
            running.stop()


class _short_lived_dex:  # noqa: N801 - a context manager used like a function
    def __init__(self, tmp_path: Path) -> None:
        self._dex = Dex(tmp_path / "dex", id_token_lifetime="2s")

    def __enter__(self) -> Dex:
        return self._dex

    def __exit__(self, *exc: object) -> None:
        self._dex.stop()


def test_a_login_without_a_group_takes_its_tuples_away(tmp_path: Path) -> None:
    alice = {"alice@example.com": {"userID": "alice-0001", "groups": ["payments-eng"]}}
    first = Dex(tmp_path / "dex-1", users=alice)
    settings = {**_login_settings(first), "jwks_min_refresh_seconds": 0.1}
    running = RunningServer(tmp_path / "data", login=settings).start()
    admin = Client(running.port, running.bundle_pem(), running.admin, tmp_path / "admin")
    check = {
        "tuple_key": {
            "user": f"workload:{ALICE_ID}",
            "relation": "reader",
            "object": f"secret:{SECRET}",
        }
    }
    try:
        workstation = Workstation.new()
        token = _id_token(first, CLIENT_ID, workstation.nonce, "alice@example.com")
        assert _enrol_with(running, workstation.csr_pem, token).status == 200
        assert admin.request("POST", "/v1/authz:check", check).json()["allowed"] is True
        # Alice leaves payments-eng at the provider (same issuer, new keys).
        first.stop()
        alice["alice@example.com"]["groups"] = []
        second = Dex(tmp_path / "dex-2", users=alice, replaces=first)
        try:
            workstation = Workstation.new()
            token = _id_token(second, CLIENT_ID, workstation.nonce, "alice@example.com")
            resp = _enrol_with(running, workstation.csr_pem, token)
            assert resp.status == 200, resp.body
            assert admin.request("POST", "/v1/authz:check", check).json()["allowed"] is False
        finally:
            second.stop()
    finally:
        admin.close()
        running.stop()


def test_login_on_a_server_without_login_is_refused_and_audited(tmp_path: Path) -> None:
    running = RunningServer(tmp_path / "data").start()
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    try:
        resp = _enrol_with(running, Workstation.new().csr_pem, token)
    finally:
        running.stop()
    assert resp.status == 412, resp.body
    assert "login is not configured" in resp.json()["error"]["message"]
    conn = sqlite3.connect(tmp_path / "data" / "secinfra.db")
    try:
        rows = [json.loads(d) for (d,) in conn.execute("SELECT details FROM audit_log")]
    finally:
        conn.close()
    refused = [d for d in rows if d.get("via") == "oidc"]
    assert [d["reason"] for d in refused] == ["login_not_configured"]
    assert token not in json.dumps(rows)
