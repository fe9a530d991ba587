"""The secinfra-server command: init and the dev-mode run command."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

from secinfra_server.cli import main

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
