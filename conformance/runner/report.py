"""Reports of a run: JSON (the source of truth), a Markdown matrix, JUnit XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

REPORT_VERSION: Final = 1
STATUS_MARK: Final = {
    "passed": "pass",
    "failed": "**FAIL**",
    "error": "**ERROR**",
    "unsupported": "**UNSUPPORTED**",
    "known_failing": "known failing",
    "unexpected_pass": "**UNEXPECTED PASS**",
    "skipped": "skipped",
}


@dataclass
class Row:
    """One case x SDK result as reported."""

    case: str
    suite: str
    spec: str
    description: str
    sdk: str
    status: str
    seconds: float
    failures: list[str] = field(default_factory=list)
    reason: str = ""
    details: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "suite": self.suite,
            "spec": self.spec,
            "description": self.description,
            "sdk": self.sdk,
            "status": self.status,
            "seconds": self.seconds,
            "failures": self.failures,
            "known_failing_reason": self.reason or None,
            "skip_reason": (self.failures[0] if self.failures else "")
            if self.status == "skipped"
            else None,
        }


def summary(rows: list[Row]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    return dict(sorted(counts.items()))


def to_json(
    rows: list[Row], *, wall_seconds: float, ok: bool, problems: list[str]
) -> dict[str, Any]:
    return {
        "report_version": REPORT_VERSION,
        "ok": ok,
        "wall_seconds": round(wall_seconds, 2),
        "sdks": sorted({r.sdk for r in rows}),
        "summary": summary(rows),
        "problems": problems,
        "results": [r.to_json() for r in rows],
    }


def to_markdown(rows: list[Row], *, wall_seconds: float, ok: bool, problems: list[str]) -> str:
    sdks = sorted({r.sdk for r in rows})
    cases: dict[str, Row] = {}
    cell: dict[tuple[str, str], Row] = {}
    for row in rows:
        cases.setdefault(row.case, row)
        cell[(row.case, row.sdk)] = row
    lines = [
        "# Conformance matrix",
        "",
        f"Result: **{'ok' if ok else 'FAILED'}** in {wall_seconds:.0f} s. "
        + ", ".join(f"{k}: {v}" for k, v in summary(rows).items()),
        "",
    ]
    for problem in problems:
        lines.append(f"- {problem}")
    if problems:
        lines.append("")
    lines.append("| case | spec | " + " | ".join(sdks) + " |")
    lines.append("| --- | --- | " + " | ".join("---" for _ in sdks) + " |")
    for name in sorted(cases):
        marks = []
        for sdk in sdks:
            found = cell.get((name, sdk))
            marks.append(STATUS_MARK.get(found.status, found.status) if found else "-")
        lines.append(f"| `{name}` | {cases[name].spec} | " + " | ".join(marks) + " |")
    notes = [r for r in rows if r.status not in ("passed", "skipped")]
    skips = [r for r in rows if r.status == "skipped"]
    if skips:
        lines += ["", "## Skipped", ""]
        for r in sorted(skips, key=lambda r: (r.sdk, r.case)):
            lines.append(f"- {r.sdk} `{r.case}`: {_one_line(r.failures[0] if r.failures else '')}")
    if notes:
        lines += ["", "## Not passing", ""]
        for r in sorted(notes, key=lambda r: (r.sdk, r.case)):
            why = r.reason or (r.failures[0] if r.failures else "")
            lines.append(f"- {r.sdk} `{r.case}` ({r.status}): {_one_line(why)}")
    return "\n".join(lines) + "\n"


def to_junit(rows: list[Row], *, wall_seconds: float) -> str:
    suites = ET.Element("testsuites", name="conformance", time=f"{wall_seconds:.3f}")
    for sdk in sorted({r.sdk for r in rows}):
        mine = [r for r in rows if r.sdk == sdk]
        failures = sum(r.status in ("failed", "unexpected_pass", "unsupported") for r in mine)
        errors = sum(r.status == "error" for r in mine)
        skipped = sum(r.status in ("known_failing", "skipped") for r in mine)
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=f"conformance.{sdk}",
            tests=str(len(mine)),
            failures=str(failures),
            errors=str(errors),
            skipped=str(skipped),
            time=f"{sum(r.seconds for r in mine):.3f}",
        )
        for r in mine:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"{sdk}.{r.suite}",
                name=r.case.split("/", 1)[1],
                time=f"{r.seconds:.3f}",
            )
            text = "\n".join(r.failures) + ("\n\n" + r.details if r.details else "")
            if r.status in ("failed", "unsupported"):
                ET.SubElement(
                    case, "failure", message=_one_line(r.failures[0] if r.failures else r.status)
                ).text = text
            elif r.status == "unexpected_pass":
                ET.SubElement(
                    case,
                    "failure",
                    message="listed as known failing but passed: remove it from the list",
                ).text = f"known-failing reason was: {r.reason}"
            elif r.status == "error":
                ET.SubElement(
                    case, "error", message=_one_line(r.failures[0] if r.failures else "error")
                ).text = text
            elif r.status == "known_failing":
                ET.SubElement(case, "skipped", message=f"known failing: {r.reason}").text = text
            elif r.status == "skipped":
                ET.SubElement(
                    case, "skipped", message=_one_line(r.failures[0] if r.failures else "skipped")
                )
    ET.indent(suites)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
    )


def write_all(
    directory: Path, rows: list[Row], *, wall_seconds: float, ok: bool, problems: list[str]
) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / "conformance.json", directory / "conformance.md", directory / "junit.xml"]
    paths[0].write_text(
        json.dumps(to_json(rows, wall_seconds=wall_seconds, ok=ok, problems=problems), indent=2)
        + "\n"
    )
    paths[1].write_text(to_markdown(rows, wall_seconds=wall_seconds, ok=ok, problems=problems))
    paths[2].write_text(to_junit(rows, wall_seconds=wall_seconds))
    return paths


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= 240 else line[:237] + "..."
