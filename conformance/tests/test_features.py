"""Features: what a case needs, what a client declares, and skipping the rest."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from conformance.runner import __main__ as cli
from conformance.runner import known_failing
from conformance.runner.cases import SCHEMA_PATH, parse_document
from conformance.runner.execute import CaseResult
from conformance.tests.test_cli import stub_hello

PROTO = Path(__file__).resolve().parents[1] / "protocol/secinfra/conformance/v1/adapter.proto"

EVENTS_CASE = """suite: demo
cases:
  - name: plain
    spec: "3.3"
    description: d
    steps: [{call: GetCallerIdentity, id: w}]
    checks: [{client: w, ok: true}]
  - name: needs-events
    spec: "9.8"
    description: d
    steps: [{events: ev}]
    checks: [{client: ev, ok: true}]
"""


def features_of(case: dict[str, Any]) -> set[str]:
    base = {"name": "c", "spec": "3.3", "description": "d", "checks": [{"client": "w", "ok": True}]}
    (parsed,) = parse_document({"suite": "demo", "cases": [{**base, **case}]}, "demo", "demo.yaml")
    return set(parsed.features)


def test_features_follow_from_steps_and_setup() -> None:
    assert features_of({"steps": [{"call": "GetCallerIdentity", "id": "w"}]}) == set()
    assert features_of(
        {
            "setup": {"attestation": "jwt", "client": {"cache_size": 4}},
            "steps": [
                {"concurrent": "GetCallerIdentity", "count": 2, "id": "w"},
                {"identity": "i"},
                {"events": "e"},
                {
                    "call": "GetSecret",
                    "request": {"name": "a"},
                    "call_options": {"use_cache": False},
                },
                {"repeat": "PutSecret", "times": 2, "call_options": {"idempotency_key": "k"}},
            ],
        }
    ) == {
        "jwt_attestation",
        "cache_size",
        "concurrent",
        "identity",
        "events",
        "use_cache",
        "idempotency_key",
    }


def test_requires_adds_declared_features_and_refuses_unknown_ones() -> None:
    steps = [{"call": "GetCallerIdentity", "id": "w"}]
    assert features_of({"steps": steps, "requires": ["events"]}) == {"events"}
    with pytest.raises(ValueError, match=r"case demo/c: requires\[0\]: 'file_sink' is not one of"):
        features_of({"steps": steps, "requires": ["file_sink"]})


def test_schema_features_are_the_protocols() -> None:
    """The case schema's feature names are the wire names of the proto's Feature enum."""
    text = PROTO.read_text()
    body = text[text.index("enum Feature {") : text.index("}", text.index("enum Feature {"))]
    wire = {m.lower() for m in re.findall(r"FEATURE_([A-Z_]+) = [1-9]", body)}
    schema = json.loads(SCHEMA_PATH.read_text())
    assert set(schema["$defs"]["feature"]["enum"]) == wire


def run_demo(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, features: frozenset[str], listed: str = ""
) -> tuple[int, Path]:
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "demo.yaml").write_text(EVENTS_CASE)
    ran: list[str] = []

    def fake_run(case: Any, sdk: str, pool: Any) -> CaseResult:
        ran.append(case.full_name)
        return CaseResult(case=case, sdk=sdk, outcome="passed")

    monkeypatch.setattr(cli, "run_case", fake_run)
    monkeypatch.setattr(known_failing, "load", lambda sdk: known_failing.parse(listed))
    stub_hello(monkeypatch, features)
    reports = tmp_path / "reports"
    status = cli.main(["--sdk", "python", "--cases-dir", str(cases), "--report-dir", str(reports)])
    assert "demo/plain" in ran
    assert ("demo/needs-events" in ran) == ("events" in features)
    return status, reports


def test_a_case_needing_an_undeclared_feature_is_skipped_with_its_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    status, reports = run_demo(monkeypatch, tmp_path, frozenset({"concurrent"}))
    assert status == 0  # skipped is not failed

    data = json.loads((reports / "conformance.json").read_text())
    assert data["summary"] == {"passed": 1, "skipped": 1}
    row = next(r for r in data["results"] if r["case"] == "demo/needs-events")
    assert row["status"] == "skipped"
    assert "does not declare the feature(s) events (it declares: concurrent)" in row["skip_reason"]

    markdown = (reports / "conformance.md").read_text()
    assert "| `demo/needs-events` | 9.8 | skipped |" in markdown
    assert "## Skipped" in markdown
    assert "feature(s) events" in markdown

    suite = ET.parse(reports / "junit.xml").getroot()[0]
    assert suite.get("skipped") == "1"
    assert suite.get("failures") == "0"
    skipped = next(c for c in suite if c.get("name") == "needs-events").find("skipped")
    assert skipped is not None
    assert "feature(s) events" in skipped.get("message", "")


def test_a_declared_feature_runs_the_case(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    status, reports = run_demo(monkeypatch, tmp_path, frozenset({"events"}))
    assert status == 0
    assert json.loads((reports / "conformance.json").read_text())["summary"] == {"passed": 2}


def test_a_known_failing_case_that_is_skipped_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    listed = "demo/needs-events  # events are broken\n"
    status, reports = run_demo(monkeypatch, tmp_path, frozenset(), listed)
    assert status == 1
    row = next(
        r
        for r in json.loads((reports / "conformance.json").read_text())["results"]
        if r["case"] == "demo/needs-events"
    )
    assert row["status"] == "error"
    assert "listed as known failing" in row["failures"][0]
    assert "remove it from the list" in row["failures"][0]
