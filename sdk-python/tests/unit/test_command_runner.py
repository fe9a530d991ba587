"""The command ``secinfra agent --exec`` runs after changes: one run at a time,
triggers folded, failures logged."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import pytest

from secinfra._agent import CommandRunner


# -- the command runner ------------------------------------------------------------------------
def _wait(predicate: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_the_command_runs_after_each_trigger(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    runner = CommandRunner(
        [sys.executable, "-c", "import sys; open(sys.argv[1], 'a').write('x')", str(marker)]
    )
    try:
        runner.trigger()
        assert _wait(lambda: runner.runs == 1)
        runner.trigger()
        assert _wait(lambda: runner.runs == 2)
    finally:
        runner.close()
    assert marker.read_text() == "xx"


def test_triggers_during_a_run_fold_into_one_more_run(tmp_path: Path) -> None:
    runner = CommandRunner([sys.executable, "-c", "import time; time.sleep(0.3)"])
    try:
        runner.trigger()
        time.sleep(0.1)  # the first run is under way
        for _ in range(5):
            runner.trigger()
        assert _wait(lambda: runner.runs == 2)
        time.sleep(0.4)
        assert runner.runs == 2
    finally:
        runner.close()


@pytest.mark.parametrize(
    ("argv", "logged"),
    [
        ([sys.executable, "-c", "raise SystemExit(3)"], "exited with status 3"),
        (["/nonexistent/secinfra-test-command"], "cannot run"),
        ([sys.executable, "-c", "import time; time.sleep(10)"], "did not finish in 0.3 s"),
    ],
)
def test_a_failing_command_is_logged_and_the_runner_goes_on(
    argv: list[str], logged: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="secinfra.agent")
    runner = CommandRunner(argv, timeout=0.3)
    try:
        runner.trigger()
        assert _wait(lambda: runner.runs == 1)
        runner.trigger()
        assert _wait(lambda: runner.runs == 2)
    finally:
        runner.close()
    assert logged in caplog.text
