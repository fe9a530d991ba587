"""Runs docs/quickstart.md as written, so the page cannot rot.

The page marks each shell block it wants run with a MyST comment line
``% quickstart-test: <name>`` right above the fence. This test reads those
blocks from the page (nothing is copied here), and:

1. starts the dev server with the page's command, on a free port and a
   temporary data directory (``--port``/``--data-dir`` appended; nothing else
   changes);
2. runs the page's ``cli``, ``admin-env`` and ``admin`` blocks once (install
   the CLI, store the secret, grant the workload);
3. for every SDK whose ``sdk-<lang>/examples/run-quickstart.sh`` exists (the
   same list the page's tabs are built from), runs the ``cli``, ``admin-env``
   and ``service`` blocks (a fresh join token, as in one terminal) and then
   that script, and checks that its last output lines are exactly the page's
   ``output`` block;
4. runs the page's ``audit`` block (verify the audit log's hash chain).

The only edits to the page's text are the server's address and data directory
(``https://127.0.0.1:8443`` and ``.dev/data``), and the test fails if the page
stops using them, so it cannot silently run something else.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

ROOT: Final = Path(__file__).resolve().parents[2]
PAGE: Final = ROOT / "docs" / "quickstart.md"
sys.path.insert(0, str(ROOT / "docs" / "_ext"))

from quickstart_tabs import Language, present  # noqa: E402

PAGE_URL: Final = "https://127.0.0.1:8443"
PAGE_DATA_DIR: Final = ".dev/data"
BLOCK: Final = re.compile(
    r"^% quickstart-test: (?P<name>[a-z-]+)\n```(?P<lang>[a-z]+)\n(?P<body>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)
# First start installs the server into .venv-server; an SDK's first run may
# build it (Go, Maven). Generous bounds, but bounds.
SERVER_START_SECONDS: Final = 600
STEP_SECONDS: Final = 900


def page_blocks() -> dict[str, str]:
    """The marked blocks of the page, by name."""
    blocks: dict[str, str] = {}
    for match in BLOCK.finditer(PAGE.read_text(encoding="utf-8")):
        name = match["name"]
        assert name not in blocks, f"{PAGE}: two blocks named {name!r}"
        blocks[name] = match["body"]
    return blocks


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env() -> dict[str, str]:
    """This process's environment without any SECINFRA_* setting (a developer's
    SECINFRA_KEK or SECINFRA_DATA_DIR must not leak into the run)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SECINFRA_")}


@dataclass(frozen=True)
class DevServer:
    url: str
    data_dir: Path

    def localise(self, script: str) -> str:
        """The page's commands, aimed at this server instead of the default one."""
        return script.replace(PAGE_URL, self.url).replace(PAGE_DATA_DIR, str(self.data_dir))


def run_bash(script: str, *, what: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=STEP_SECONDS,
        check=False,
    )
    assert proc.returncode == 0, (
        f"{what} failed with exit status {proc.returncode}\n"
        f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
    )
    return proc


@pytest.fixture(scope="module")
def blocks() -> dict[str, str]:
    found = page_blocks()
    missing = {"server", "cli", "admin-env", "admin", "service", "output", "audit"} - set(found)
    assert not missing, f"{PAGE} lacks the marked blocks {sorted(missing)}"
    for name in ("admin-env", "service"):
        assert PAGE_URL in found[name], f"block {name!r} no longer uses {PAGE_URL}"
        assert PAGE_DATA_DIR in found[name], f"block {name!r} no longer uses {PAGE_DATA_DIR}"
    assert PAGE_DATA_DIR in found["audit"], f"block 'audit' no longer uses {PAGE_DATA_DIR}"
    return found


@pytest.fixture(scope="module")
def dev_server(
    blocks: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevServer]:
    command = blocks["server"].strip()
    assert "\n" not in command, "the server block must be one command"
    port = free_port()
    data_dir = tmp_path_factory.mktemp("quickstart") / "data"
    stderr_path = data_dir.parent / "server.stderr"
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [*command.split(), "--port", str(port), "--data-dir", str(data_dir)],
            cwd=ROOT,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            start_new_session=True,
        )
    url = f"https://127.0.0.1:{port}"
    banner: list[str] = []
    ready = threading.Event()

    def read_banner() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            banner.append(line)
            if f"serving on {url}" in line:
                ready.set()
        ready.set()  # stdout closed: the server exited

    reader = threading.Thread(target=read_banner, daemon=True)
    reader.start()
    try:
        ready.wait(SERVER_START_SECONDS)
        if proc.poll() is not None or not any(f"serving on {url}" in x for x in banner):
            pytest.fail(
                f"dev server did not start on {url} (exit {proc.poll()})\n"
                f"--- stdout\n{''.join(banner)}\n"
                f"--- stderr\n{stderr_path.read_text(errors='replace')[-4000:]}"
            )
        yield DevServer(url=url, data_dir=data_dir)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        reader.join(timeout=5)


@pytest.fixture(scope="module")
def admin_done(dev_server: DevServer, blocks: dict[str, str]) -> DevServer:
    run_bash(
        dev_server.localise(blocks["cli"] + blocks["admin-env"] + blocks["admin"]),
        what="the admin steps",
    )
    return dev_server


LANGUAGES: Final = [language for language, _ in present(ROOT)]


def test_the_page_shows_a_tab_for_python() -> None:
    """The reference SDK's example must always be there (the others join later)."""
    assert "Python" in [language.name for language in LANGUAGES]


@pytest.mark.timeout(SERVER_START_SECONDS + 2 * STEP_SECONDS)
@pytest.mark.parametrize(
    "language", LANGUAGES, ids=[lang.sync or lang.pygments for lang in LANGUAGES]
)
def test_quickstart_program_prints_what_the_page_says(
    language: Language, admin_done: DevServer, blocks: dict[str, str]
) -> None:
    folder = language.folder
    script = (
        blocks["cli"]
        + blocks["admin-env"]
        + blocks["service"]
        + f"bash {folder}/{language.script}\n"
    )
    proc = run_bash(admin_done.localise(script), what=f"the {folder} quickstart")
    expected = blocks["output"].strip().splitlines()
    printed = proc.stdout.strip().splitlines()
    assert printed[-len(expected) :] == expected, (
        f"{folder} printed:\n{proc.stdout[-2000:]}\n--- stderr\n{proc.stderr[-2000:]}"
    )


def test_the_audit_chain_verifies_after_the_quickstart(
    admin_done: DevServer, blocks: dict[str, str]
) -> None:
    """Runs last: the page's audit check over everything the programs did."""
    proc = run_bash(admin_done.localise(blocks["audit"]), what="audit verify")
    assert proc.stdout.startswith("audit log intact: "), proc.stdout
