"""A case's timeout_seconds: a hung client fails the case and is killed (with its children).

These run a real reference server in test mode (as the suite does) and a
stand-in conformance client that speaks the hello line and then hangs.
"""

from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conformance.runner import execute, sdks
from conformance.runner.cases import parse_document
from conformance.runner.execute import FAILED, ServerPool, run_case

#: Says hello, starts a child that sleeps (as `go run` starts the real client),
#: writes both pids to a file, then never answers.
HANGING_CLIENT = textwrap.dedent(
    """
    import json, subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(sys.argv[1], "w") as f:
        f.write(f"{{__import__('os').getpid()}} {{child.pid}}")
    print(json.dumps({{"hello": {{"protocol": 1, "sdk": "hang", "ops": []}}}}), flush=True)
    {hang}
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of ours counts as gone.
    try:
        status = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return status != "Z"


def _case(timeout: float, steps: list[dict[str, object]]) -> execute.Case:
    (case,) = parse_document(
        {
            "suite": "demo",
            "cases": [
                {
                    "name": "hangs",
                    "spec": "3.3",
                    "description": "a client that never answers",
                    "timeout_seconds": timeout,
                    "steps": steps,
                    "checks": [{"client": "configure", "ok": True}],
                }
            ],
        },
        "demo",
        "demo.yaml",
    )
    return case


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("hang", "steps"),
    [
        # Never answers configure.
        ("time.sleep(600)", [{"call": "GetCallerIdentity", "id": "w"}]),
        # Answers configure, then the case sleeps past its bound.
        (
            'line = sys.stdin.readline(); print(json.dumps({"id": json.loads(line)["id"],'
            ' "ok": True, "result": {}}), flush=True); time.sleep(600)',
            [{"sleep": 60}],
        ),
    ],
    ids=["hung-client", "long-case"],
)
def test_a_case_past_its_timeout_fails_and_its_client_is_killed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, hang: str, steps: list[dict[str, object]]
) -> None:
    script = tmp_path / "client.py"
    script.write_text(HANGING_CLIENT.format(hang=hang))
    pids = tmp_path / "pids"
    hanging = sdks.Sdk("hang", (sys.executable, str(script), str(pids)))
    monkeypatch.setitem(execute.SDKS, "hang", hanging)
    pool = ServerPool()
    try:
        started = time.monotonic()
        result = run_case(_case(3, steps), "hang", pool)
        elapsed = time.monotonic() - started
    finally:
        pool.close()
    assert result.outcome == FAILED
    assert "timed out" in result.failures[0]
    assert "timeout_seconds (3 s)" in result.failures[0]
    # Server start-up comes on top of the 3 s; a missed bound would take 60 s or more.
    assert elapsed < 30
    parent, child = (int(p) for p in pids.read_text().split())
    deadline = time.monotonic() + 10
    while (_alive(parent) or _alive(child)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(parent), "the client survived its case"
    assert not _alive(child), "the client's child survived its case"
