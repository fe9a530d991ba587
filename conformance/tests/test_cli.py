"""The command line's exit status, with case execution stubbed out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conformance.runner import __main__ as cli
from conformance.runner import known_failing
from conformance.runner.execute import CaseResult

CASE = """suite: demo
cases:
  - name: {name}
    spec: "3.3"
    description: d
    steps: [{{call: GetCallerIdentity, id: w}}]
    checks: [{{client: w, ok: true}}]
"""


@pytest.fixture
def cases_dir(tmp_path: Path) -> Path:
    (tmp_path / "demo.yaml").write_text(CASE.format(name="one"))
    return tmp_path


def stub_hello(monkeypatch: pytest.MonkeyPatch, features: frozenset[str]) -> None:
    """The client's hello without starting it: it declares ``features``.

    A stub declares what its test needs, not what the SDK's README describes,
    so the departures check (tested in test_departures.py) is left out.
    """
    monkeypatch.setattr(cli.AdapterProcess, "probe", classmethod(lambda cls, argv, cwd: features))
    monkeypatch.setattr(cli.departures, "check_sdk", lambda *args, **kwargs: [])


def run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cases_dir: Path, outcome: str, listed: str
) -> int:
    def fake_run(case: Any, sdk: str, pool: Any) -> CaseResult:
        return CaseResult(
            case=case, sdk=sdk, outcome=outcome, failures=[] if outcome == "passed" else ["x"]
        )

    monkeypatch.setattr(cli, "run_case", fake_run)
    monkeypatch.setattr(known_failing, "load", lambda sdk: known_failing.parse(listed))
    stub_hello(monkeypatch, frozenset())
    reports = tmp_path / "reports"
    return cli.main(
        ["--sdk", "python", "--cases-dir", str(cases_dir), "--report-dir", str(reports)]
    )


@pytest.mark.parametrize(
    ("outcome", "listed", "status"),
    [
        ("passed", "", 0),
        ("failed", "", 1),
        ("failed", "demo/one # bug\n", 0),
        ("passed", "demo/one # bug\n", 1),  # listed and passing: the list went stale
        ("passed", "demo/gone # removed case\n", 1),
    ],
)
def test_exit_status(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    cases_dir: Path,
    outcome: str,
    listed: str,
    status: int,
) -> None:
    assert run(monkeypatch, tmp_path, cases_dir, outcome, listed) == status
    assert (tmp_path / "reports" / "junit.xml").exists()


def test_invalid_cases_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "demo.yaml").write_text(CASE.format(name="Bad Name"))
    assert cli.main(["--sdk", "python", "--cases-dir", str(tmp_path)]) == 2
    assert "'name' must match" in capsys.readouterr().err
