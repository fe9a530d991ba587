"""``secinfra agent`` against the real reference server: files, modes, rotation,
the --exec command, signals, and a matching certificate and key at all times.

Leaf lifetimes are 4 s, so a renewal comes within about 2 s and every test
ends in seconds.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from secinfra._agent import Agent
from secinfra._identity._file_sink import TEMP_PREFIX, read_identity_dir
from secinfra.cli import main
from secinfra.testing import ReferenceServer

from .support import TRUST_DOMAIN

LEAF_TTL_SECONDS = 4
#: A renewal is due after about half the lifetime; allow twice the lifetime.
ROTATION_WITHIN_SECONDS = 8.0
ServerFactory = Callable[..., ReferenceServer]


def serial_of(cert_pem: bytes) -> int:
    return x509.load_pem_x509_certificates(cert_pem)[0].serial_number


def pair_matches(cert_pem: bytes, key_pem: bytes) -> bool:
    leaf = x509.load_pem_x509_certificates(cert_pem)[0]
    key = serialization.load_pem_private_key(key_pem, password=None)
    return key.public_key() == leaf.public_key()


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def leftovers(directory: Path) -> list[str]:
    return [str(p) for p in directory.rglob("*") if p.name.startswith(TEMP_PREFIX)]


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def counting_command(marker: Path) -> list[str]:
    """A command that appends a line to ``marker`` each time it runs."""
    return [sys.executable, "-c", "import sys; open(sys.argv[1], 'a').write('ran\\n')", str(marker)]


class RunningAgent:
    """An in-process agent in a thread (``secinfra agent`` without the signal wiring)."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.stop = threading.Event()
        self.status: int | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.status = self.agent.run(self.stop)
        except BaseException as exc:
            self.error = exc

    def close(self) -> int | None:
        self.stop.set()
        self._thread.join(15)
        assert not self._thread.is_alive()
        if self.error is not None:
            raise self.error
        return self.status


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator[Callable[..., RunningAgent]]:
    started: list[RunningAgent] = []

    def start(server: ReferenceServer, spiffe_id: str, **kwargs: object) -> RunningAgent:
        running = RunningAgent(
            Agent(
                server.url,
                out=tmp_path / "out",
                bundle_file=server.bundle_file,
                join_token=server.join_token(spiffe_id),
                sync_interval=0.5,
                **kwargs,  # type: ignore[arg-type]
            )
        )
        started.append(running)
        assert wait_for(lambda: (tmp_path / "out" / "cert.pem").exists(), 10), running.error
        return running

    yield start
    for running in started:
        running.stop.set()


def test_agent_rotates_the_files_and_runs_the_command(
    own_server: ServerFactory,
    start_agent: Callable[..., RunningAgent],
    tmp_path: Path,
    unique: str,
) -> None:
    server = own_server()
    server.control("POST", "/_test/ca/leaf-ttl", {"seconds": LEAF_TTL_SECONDS})
    out = tmp_path / "out"
    marker = tmp_path / "ran"
    spiffe_id = f"spiffe://{TRUST_DOMAIN}/{unique}"
    running = start_agent(server, spiffe_id, exec_argv=counting_command(marker))

    assert (mode(out), mode(out / "cert.pem"), mode(out / "key.pem")) == (0o700, 0o600, 0o600)
    assert mode(out / "bundle.pem") == 0o644
    first = serial_of((out / "cert.pem").read_bytes())

    # Read the files over and over while the agent rotates them.
    serials = {first}
    snapshot_mismatches = 0
    torn_pairs = 0
    started = time.monotonic()
    while len(serials) < 3 and time.monotonic() - started < 2 * ROTATION_WITHIN_SECONDS:
        cert, key, _ = read_identity_dir(out)  # the resolved snapshot: must always match
        snapshot_mismatches += not pair_matches(cert, key)
        serials.add(serial_of(cert))
        # A plain reader (cert.pem, then key.pem) can only fall between two
        # snapshots at the moment of a swap; reading again must fix it.
        naive = (out / "cert.pem").read_bytes(), (out / "key.pem").read_bytes()
        if not pair_matches(*naive):
            torn_pairs += 1
            assert pair_matches((out / "cert.pem").read_bytes(), (out / "key.pem").read_bytes())
        time.sleep(0.005)

    assert snapshot_mismatches == 0
    assert len(serials) >= 3, "the agent did not rotate twice in time"
    assert torn_pairs <= 2  # at most one per swap, and swaps are rare
    # After the first write and after each rotation.
    assert wait_for(lambda: marker.exists() and marker.read_text().count("ran") >= 3, 5)

    # The identity dir works with the CLI while the agent keeps it current.
    assert main(["whoami", "--server", server.url, "--identity-dir", str(out)]) == 0

    assert running.close() == 0
    assert leftovers(out) == []
    assert len(list((out / ".snapshots").iterdir())) <= 2
    assert pair_matches((out / "cert.pem").read_bytes(), (out / "key.pem").read_bytes())


def test_agent_writes_the_new_bundle_and_survives_a_failing_command(
    own_server: ServerFactory,
    start_agent: Callable[..., RunningAgent],
    tmp_path: Path,
    unique: str,
) -> None:
    server = own_server(bundle_refresh_hint_seconds=1)
    server.control("POST", "/_test/ca/leaf-ttl", {"seconds": LEAF_TTL_SECONDS})
    out = tmp_path / "out"
    running = start_agent(
        server,
        f"spiffe://{TRUST_DOMAIN}/{unique}",
        exec_argv=[sys.executable, "-c", "raise SystemExit(1)"],
    )

    def cas_in_bundle() -> int:
        return len(x509.load_pem_x509_certificates((out / "bundle.pem").read_bytes()))

    assert cas_in_bundle() == 1
    first = serial_of((out / "cert.pem").read_bytes())
    server.control("POST", "/_test/ca/rotate", {})
    assert wait_for(lambda: cas_in_bundle() == 2, ROTATION_WITHIN_SECONDS)
    assert wait_for(lambda: serial_of(read_identity_dir(out)[0]) != first, ROTATION_WITHIN_SECONDS)
    runner = running.agent.runner
    assert runner is not None
    assert wait_for(lambda: runner.runs >= 2, 5)  # failed every time; the agent went on
    assert running.close() == 0
    assert leftovers(out) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_agent_process_exits_cleanly_on_signal(
    server: ReferenceServer,
    tmp_path: Path,
    unique: str,
    signum: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    token = server.join_token(f"spiffe://{TRUST_DOMAIN}/{unique}")
    env = {key: value for key, value in os.environ.items() if not key.startswith("SECINFRA_")}
    env |= {"SECINFRA_JOIN_TOKEN": token, "SECINFRA_SERVER": server.url}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "secinfra.cli",
            "agent",
            "--out",
            str(out),
            "--bundle",
            str(server.bundle_file),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_for(lambda: (out / "cert.pem").exists() or process.poll() is not None, 20)
        assert process.poll() is None, process.communicate()

        # A second agent on the same directory is refused before it spends its token.
        second = server.join_token(f"spiffe://{TRUST_DOMAIN}/{unique}-2")
        argv = ["agent", "--out", str(out), "--server", server.url, "--join-token", second]
        assert main([*argv, "--bundle", str(server.bundle_file)]) == 2
        assert "another secinfra agent" in capsys.readouterr().err

        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert stdout == ""
    assert token not in stderr
    assert "PRIVATE KEY" not in stderr
    assert leftovers(out) == []
    assert pair_matches((out / "cert.pem").read_bytes(), (out / "key.pem").read_bytes())


def test_agent_with_a_used_token_exits_1(
    server: ReferenceServer, tmp_path: Path, unique: str, capsys: pytest.CaptureFixture[str]
) -> None:
    token = server.join_token(f"spiffe://{TRUST_DOMAIN}/{unique}")
    server.enrol(f"spiffe://{TRUST_DOMAIN}/{unique}").close()  # another token; fine
    args = ["agent", "--out", str(tmp_path), "--server", server.url]
    args += ["--bundle", str(server.bundle_file), "--join-token", token]
    # Spend the token first.
    assert main(["enrol", *args[1:]]) == 0
    capsys.readouterr()
    out = tmp_path / "again"
    args[2] = str(out)
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("secinfra: ")
    assert err.count("\n") == 1
    assert token not in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "give exactly one of --join-token"),
        (["--join-token", "t", "--jwt-file", "f"], "give exactly one of --join-token"),
        (["--join-token", "t", "--exec"], "--exec needs a command"),
        (["--join-token", "t", "--exec-timeout", "0", "--exec", "true"], "--exec-timeout"),
    ],
)
def test_agent_usage_errors_exit_2(
    server: ReferenceServer,
    tmp_path: Path,
    extra: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SECINFRA_JOIN_TOKEN", raising=False)
    args = ["agent", "--out", str(tmp_path), "--server", server.url]
    assert main([*args, "--bundle", str(server.bundle_file), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


def test_agent_json_logs_one_object_per_line_with_the_rotation_facts(
    own_server: ServerFactory, tmp_path: Path, unique: str
) -> None:
    server = own_server()
    server.control("POST", "/_test/ca/leaf-ttl", {"seconds": LEAF_TTL_SECONDS})
    out = tmp_path / "out"
    spiffe_id = f"spiffe://{TRUST_DOMAIN}/{unique}"
    token = server.join_token(spiffe_id)
    env = {key: value for key, value in os.environ.items() if not key.startswith("SECINFRA_")}
    env |= {"SECINFRA_JOIN_TOKEN": token, "SECINFRA_SERVER": server.url}
    argv = ["agent", "--json", "--out", str(out), "--bundle", str(server.bundle_file)]
    process = subprocess.Popen(
        [sys.executable, "-m", "secinfra.cli", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_for(lambda: (out / "cert.pem").exists() or process.poll() is not None, 20)
        first = serial_of((out / "cert.pem").read_bytes())
        renewed = wait_for(
            lambda: serial_of((out / "cert.pem").read_bytes()) != first, ROTATION_WITHIN_SECONDS
        )
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert renewed
    assert process.returncode == 0, stderr
    lines = [json.loads(line) for line in stderr.splitlines()]  # every line is one object
    events = {line.get("event"): line for line in lines}
    assert {"enrolled", "renewed"} <= set(events), lines
    for kind in ("enrolled", "renewed"):
        line = events[kind]
        assert line["level"] == "info"
        assert line["logger"] == "secinfra.agent"
        assert line["spiffe_id"] == spiffe_id
        assert re.fullmatch(r"[0-9a-f]+", line["serial"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", line["not_after"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", line["time"])
    assert token not in stderr
    assert "PRIVATE KEY" not in stderr
