"""Report writers: valid JSON and JUnit XML, and a readable matrix."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from conformance.runner.report import Row, write_all


def rows() -> list[Row]:
    def row(case: str, status: str, sdk: str = "python", **kw: object) -> Row:
        return Row(
            case=case,
            suite=case.split("/")[0],
            spec="3.3",
            description="d",
            sdk=sdk,
            status=status,
            seconds=1.5,
            **kw,  # type: ignore[arg-type]
        )

    return [
        row("retries/a", "passed"),
        row("retries/b", "failed", failures=["checks[0] client x: $.ok: expected True <&>"]),
        row("retries/c", "known_failing", reason="bug 12", failures=["boom"]),
        row("retries/d", "unexpected_pass", reason="bug 13"),
        row("retries/e", "error", failures=["runner: ServerError: x"]),
        row("retries/a", "passed", sdk="go"),
    ]


def test_writes_valid_json_junit_and_markdown(tmp_path: Path) -> None:
    paths = write_all(tmp_path, rows(), wall_seconds=12.3, ok=False, problems=["p"])
    assert [p.name for p in paths] == ["conformance.json", "conformance.md", "junit.xml"]

    data = json.loads(paths[0].read_text())
    assert data["ok"] is False
    assert data["sdks"] == ["go", "python"]
    assert data["summary"]["passed"] == 2
    assert {r["status"] for r in data["results"]} >= {"known_failing", "unexpected_pass"}

    root = ET.parse(paths[2]).getroot()
    assert root.tag == "testsuites"
    python = next(s for s in root if s.get("name") == "conformance.python")
    assert python.get("tests") == "5"
    assert python.get("failures") == "2"  # failed + unexpected pass
    assert python.get("errors") == "1"
    assert python.get("skipped") == "1"
    by_name = {c.get("name"): c for c in python}
    assert by_name["b"].find("failure") is not None
    assert "<&>" in (by_name["b"].find("failure").text or "")  # type: ignore[union-attr]
    assert by_name["c"].find("skipped") is not None
    assert "remove it" in by_name["d"].find("failure").get("message", "")  # type: ignore[union-attr]

    markdown = paths[1].read_text()
    assert "| case | spec | go | python |" in markdown
    assert "| `retries/a` | 3.3 | pass | pass |" in markdown
    assert "| `retries/b` | 3.3 | - | **FAIL** |" in markdown
    assert "bug 12" in markdown
