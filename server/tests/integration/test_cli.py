"""The secinfra-server command: init, migrate and the dev-mode run command."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from postgres_cluster import PostgresCluster

from secinfra_server.cli import main
from secinfra_server.storage import SCHEMA_VERSION

from .harness import Client, Identity, free_port


def test_init_creates_private_files(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert main(["init", "--data-dir", str(data)]) == 0
    for path in (data / "kek", data / "admin" / "key.pem", data / "admin" / "cert.pem"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert (data / "secinfra.db").exists()
    key_before = (data / "admin" / "key.pem").read_bytes()
    # Init is idempotent: a second run keeps the admin identity.
    assert main(["init", "--data-dir", str(data)]) == 0
    assert (data / "admin" / "key.pem").read_bytes() == key_before


def test_bad_config_exits_2_with_one_line(tmp_path: Path, capsys: object) -> None:
    assert main(["init", "--data-dir", str(tmp_path), "--port", "nope"]) == 2


def test_dev_server_prints_what_a_developer_needs(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "secinfra_server.cli", "serve", "--dev", "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 60
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "curl" in line:
                break
        out = "".join(lines)
        assert f"https://127.0.0.1:{port}" in out
        assert "trust domain:     secinfra.local" in out
        token = re.search(r"(sjt_\S+)", out)
        assert token is not None
        data = tmp_path / ".dev" / "data"
        identity = Identity(
            (data / "admin" / "cert.pem").read_bytes(), (data / "admin" / "key.pem").read_bytes()
        )
        bundle = (data / "admin" / "bundle.pem").read_text()
        client = Client(port, bundle, identity, tmp_path / "c")
        who = client.request("GET", "/v1/identity:whoami").json()
        client.close()
        assert who["spiffe_id"] == "spiffe://secinfra.local/secinfra/admin"
        assert who["admin"] is True
        # The documented curl call works too.
        curl = subprocess.run(
            [
                "curl",
                "-sS",
                "--cacert",
                str(data / "admin" / "bundle.pem"),
                "--cert",
                str(data / "admin" / "cert.pem"),
                "--key",
                str(data / "admin" / "key.pem"),
                f"https://127.0.0.1:{port}/v1/identity:whoami",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert curl.returncode == 0, curl.stderr
        assert "secinfra/admin" in curl.stdout
    finally:
        proc.terminate()
        assert proc.wait(30) == 0


def test_migrate_brings_a_postgresql_database_up_to_date(
    postgres_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["migrate", "--data-dir", str(tmp_path), "--database-dsn", postgres_dsn]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == (
        f"secinfra-server: PostgreSQL schema migrated from version 0 to {SCHEMA_VERSION}"
    )
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == (
        f"secinfra-server: PostgreSQL schema at version {SCHEMA_VERSION}; nothing to apply"
    )
    # init on a migrated database needs no --migrate.
    assert main(["init", "--data-dir", str(tmp_path), "--database-dsn", postgres_dsn]) == 0


def test_a_server_on_an_unmigrated_database_says_to_migrate(
    postgres: PostgresCluster, postgres_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SECINFRA_DATABASE_DSN", postgres_dsn)
        assert main(["init", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "run `secinfra-server migrate`" in err
    assert postgres.password not in err


@pytest.mark.parametrize("action", ["rotate", "rewrap", "status"])
def test_kek_commands_refuse_a_postgresql_configuration(
    action: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SECINFRA_DATABASE_DSN", "postgresql://app:s3cr3t-pw@127.0.0.1:1/db")
        assert main(["kek", action, "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "only SQLite" in err
    assert "s3cr3t-pw" not in err
    assert not (tmp_path / "kek").exists()


def test_audit_verify_on_an_unreachable_postgresql_exits_2_without_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "server.toml"
    config.write_text('database_dsn = "postgresql://app:s3cr3t-pw@127.0.0.1:1/db"\n')
    assert main(["audit", "verify", "--data-dir", str(tmp_path), "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "cannot connect to PostgreSQL" in err
    assert "s3cr3t-pw" not in err
