"""SIGKILL the server mid-stream of writes: every acknowledged version survives."""

from __future__ import annotations

import base64
import http.client
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from secinfra_server import audit
from secinfra_server.cli import main
from secinfra_server.crypto import load_audit_key

from .harness import Client, Identity, free_port

#: Bounds: the stream stops after this many writes, and the kill comes after
#: at most KILL_AFTER_SECONDS (sooner once KILL_AFTER_ACKS writes are in).
MAX_WRITES = 200
KILL_AFTER_ACKS = 40
KILL_AFTER_SECONDS = 1.0
NAMES = 4  # writes rotate over this many secrets, so each keeps every version
STARTUP_TIMEOUT_SECONDS = 60.0


def _serve(data: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(
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
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def _wait_ready(port: int, bundle: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"server exited: {log.read_text()[-2000:]}"
        client = Client(port, bundle)
        try:
            if client.request("GET", "/readyz").status == 200:
                return
        except OSError:
            pass
        finally:
            client.close()
        time.sleep(0.1)
    raise AssertionError(f"server not ready in time: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert main(["init", "--data-dir", str(data)]) == 0
    identity = Identity(
        (data / "admin" / "cert.pem").read_bytes(), (data / "admin" / "key.pem").read_bytes()
    )
    bundle = (data / "admin" / "bundle.pem").read_text()
    port = free_port()
    log = tmp_path / "server.log"

    acked: list[tuple[str, int, bytes]] = []
    stream_error: list[BaseException] = []
    stop_writing = threading.Event()

    def write_stream() -> None:
        client = Client(port, bundle, identity, tmp_path / "writer")
        try:
            for i in range(MAX_WRITES):
                if stop_writing.is_set():
                    return
                name = f"crash/s{i % NAMES}"
                value = f"write {i} ".encode() + os.urandom(16)
                response = client.request(
                    "PUT",
                    f"/v1/secrets/{name}",
                    {"value": base64.b64encode(value).decode(), "policy": {"max_versions": 100}},
                )
                assert response.status == 200, response.body
                acked.append((name, int(response.json()["version"]), value))
        except (OSError, http.client.HTTPException):
            return  # the server died under us: expected
        except BaseException as exc:  # pragma: no cover - reported below
            stream_error.append(exc)
        finally:
            client.close()

    proc = _serve(data, port, log)
    try:
        _wait_ready(port, bundle, proc, log)
        writer = threading.Thread(target=write_stream, daemon=True)
        started = time.monotonic()
        writer.start()
        while (
            len(acked) < KILL_AFTER_ACKS
            and time.monotonic() - started < KILL_AFTER_SECONDS
            and writer.is_alive()
        ):
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        stop_writing.set()
        writer.join(30)
        assert not writer.is_alive()
    finally:
        _stop(proc)
    assert not stream_error, stream_error
    assert acked, "no write was acknowledged before the kill"

    proc = _serve(data, port, log)
    try:
        _wait_ready(port, bundle, proc, log)
        client = Client(port, bundle, identity, tmp_path / "reader")
        for name, version, value in acked:
            response = client.request("GET", f"/v1/secrets/{name}?version={version}")
            assert response.status == 200, (name, version, response.body)
            assert base64.b64decode(response.json()["value"]) == value
        for n in range(NAMES):
            name = f"crash/s{n}"
            versions = [v for acked_name, v, _ in acked if acked_name == name]
            if versions:
                meta = client.request("GET", f"/v1/secrets/{name}:metadata").json()
                assert meta["current_version"] >= max(versions)
        client.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        _stop(proc)
    conn = sqlite3.connect(data / "secinfra.db")
    try:
        result = audit.verify(conn, load_audit_key(data / "audit.key"))
        assert result.ok, result.reason
        puts = conn.execute(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'secrets.put' AND outcome = 'allowed'"
        ).fetchone()[0]
    finally:
        conn.close()
    assert puts >= len(acked), "every acknowledged write has its audit entry"
