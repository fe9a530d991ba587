"""The server without OpenTelemetry: it starts, serves and traces nothing, and
the ``tracing`` setting is refused with a message naming the extra.

``nox -s tests-server`` runs the whole suite without the ``otel`` extra
(``SECINFRA_REQUIRE_NO_OTEL=1`` makes sure nothing pulled it in); the test
below also runs where the extra is installed, in a child process that cannot
import ``opentelemetry``.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]

CHILD = """
import base64, sys
sys.modules["opentelemetry"] = None  # every `import opentelemetry...` fails
sys.path.insert(0, {tests!r})
from pathlib import Path
from integration.harness import Client, RunningServer
from secinfra_server import _tracing
from secinfra_server.config import ConfigError, load_config

assert not _tracing.available()
server = RunningServer(Path({data!r})).start()
try:
    assert not server.server.tracing.enabled
    admin = Client(server.port, server.bundle_pem(), server.admin, Path({data!r}) / "client")
    value = base64.b64encode(b"v").decode()
    assert admin.request("PUT", "/v1/secrets/app/x", {{"value": value}}).status == 200
    assert admin.request("GET", "/v1/secrets/app/x").json()["value"] == value
    admin.close()
finally:
    server.stop()
try:
    load_config(flags={{"data_dir": {data!r}, "tracing": "true"}}, environ={{}})
except ConfigError as exc:
    print(exc)
else:
    raise SystemExit("tracing=true was accepted without OpenTelemetry")
"""


def test_the_server_serves_without_opentelemetry(tmp_path: Path) -> None:
    script = textwrap.dedent(CHILD).format(tests=str(TESTS), data=str(tmp_path / "data"))
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "secinfra: config: tracing: OpenTelemetry is not installed;"
        " install secinfra-server[otel] or turn tracing off"
    )


@pytest.mark.skipif(
    os.environ.get("SECINFRA_REQUIRE_NO_OTEL") != "1",
    reason="only where the suite is meant to run without the otel extra (tests-server)",
)
def test_this_suite_runs_without_opentelemetry() -> None:
    """Else a dependency that pulls it in would make tests-server prove nothing."""
    assert importlib.util.find_spec("opentelemetry") is None
