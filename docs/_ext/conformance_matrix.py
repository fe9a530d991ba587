"""Sphinx extension: the conformance matrix (case x SDK) from a run's JSON report.

Which run the page shows, in order:

1. ``reports/conformance/conformance.json`` at the repository root: the report
   of the latest run in this checkout (``nox -s conformance`` writes it, and
   the full suite runs it before ``docs``);
2. ``docs/conformance/matrix.json``: a committed snapshot of a run, made with
   this module's command line (below), for builds without a run.

The page says which of the two it shows, when that run ended and, for a
snapshot, at which commit. The report's shape is written by
``conformance/runner/report.py`` (``report_version`` 1). Each case's spec
section links to the heading of ``docs/spec/`` that holds it, so a case citing
a section that does not exist fails the build::

    ```{conformance-matrix}
    ```

Refresh the snapshot after a run (from the repository root)::

    python -m conformance.runner --jobs 1
    python docs/_ext/conformance_matrix.py snapshot reports/conformance/conformance.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final

REPORT_VERSION: Final = 1
LATEST_RUN: Final = Path("reports/conformance/conformance.json")
SNAPSHOT: Final = Path("docs/conformance/matrix.json")
SPEC_DIR: Final = Path("docs/spec")
STATUS_TEXT: Final = {
    "passed": "pass",
    "failed": "**FAIL**",
    "error": "**ERROR**",
    "unsupported": "**UNSUPPORTED**",
    "known_failing": "known failing",
    "skipped": "skipped",
    "unexpected_pass": "**UNEXPECTED PASS**",
}
SPEC_HEADING: Final = re.compile(r"^#{1,3} (?P<number>\d+(?:\.\d+)*) (?P<title>.+)$", re.MULTILINE)


class MatrixError(ValueError):
    """The report cannot be shown."""


@dataclass(frozen=True)
class Source:
    """The report shown and where it came from."""

    report: Mapping[str, Any]
    path: Path
    label: str
    """Which run, and when, as a sentence for the page."""


def _utc(timestamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def load_source(root: Path) -> Source:
    """The latest run's report if there is one, else the committed snapshot."""
    return load_report(root, LATEST_RUN, SNAPSHOT, _checked)


def load_report(
    root: Path,
    latest_run: Path,
    snapshot_path: Path,
    check: Callable[[Any, Path], Mapping[str, Any]],
) -> Source:
    """A run's report: the latest one in the checkout (``latest_run``) if there
    is one, else the committed snapshot (``snapshot_path``, the report under
    ``report`` with the run it came from), each passed through ``check``."""
    latest = root / latest_run
    if latest.is_file():
        report = check(json.loads(latest.read_text(encoding="utf-8")), latest)
        return Source(
            report,
            latest,
            f"the latest run in this checkout (`{latest_run}`, written"
            f" {_utc(latest.stat().st_mtime)})",
        )
    snapshot = root / snapshot_path
    try:
        data = json.loads(snapshot.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MatrixError(f"neither {latest_run} nor {snapshot_path} can be read: {exc}") from exc
    report = check(data.get("report"), snapshot)
    return Source(
        report,
        snapshot,
        f"a snapshot (`{snapshot_path}`) of the run that ended {data['ran_at']} at commit"
        f" `{data['commit']}`{' plus uncommitted changes' if data.get('dirty') else ''},"
        f" made with `{data['command']}`; no run of this checkout was found",
    )


def _checked(report: Any, path: Path) -> Mapping[str, Any]:
    if not isinstance(report, Mapping) or report.get("report_version") != REPORT_VERSION:
        raise MatrixError(f"{path}: not a conformance report of version {REPORT_VERSION}")
    if not report.get("results"):
        raise MatrixError(f"{path}: the report has no results")
    return report


def spec_sections(spec_dir: Path) -> dict[str, tuple[str, str]]:
    """Section number -> (spec page, heading text) for every numbered heading."""
    sections: dict[str, tuple[str, str]] = {}
    for page in sorted(spec_dir.glob("*.md")):
        for match in SPEC_HEADING.finditer(page.read_text(encoding="utf-8")):
            sections[match["number"]] = (page.name, match.group(0).lstrip("#").strip())
    return sections


def spec_link(number: str, sections: Mapping[str, tuple[str, str]]) -> str:
    """A MyST link to the heading holding ``number`` (``5.2.2`` -> heading 5.2)."""
    from myst_parser.slugs import github_slugify

    parts = number.split(".")
    while parts:
        found = sections.get(".".join(parts))
        if found:
            page, heading = found
            return f"[{number}](../spec/{page}#{github_slugify(heading)})"
        parts.pop()
    raise MatrixError(f"spec section {number!r} is not a heading in {SPEC_DIR}")


def table_cell(text: str) -> str:
    """Text for one Markdown table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def suite_summary(results: Sequence[Mapping[str, Any]], sdks: Sequence[str]) -> list[str]:
    """One row per suite: its cases, and per SDK how many passed of those it ran."""
    suites: dict[str, set[str]] = {}
    passed: dict[tuple[str, str], int] = {}
    ran: dict[tuple[str, str], int] = {}
    for row in results:
        suite = str(row.get("suite") or str(row["case"]).split("/", 1)[0])
        suites.setdefault(suite, set()).add(str(row["case"]))
        key = (suite, str(row["sdk"]))
        ran[key] = ran.get(key, 0) + 1
        passed[key] = passed.get(key, 0) + (row["status"] == "passed")
    lines = ["## Suites", "", "| suite | cases | " + " | ".join(sdks) + " |"]
    lines.append("| --- | --- | " + " | ".join("---" for _ in sdks) + " |")
    for suite in sorted(suites):
        marks = [
            f"{passed[(suite, sdk)]}/{ran[(suite, sdk)]}" if (suite, sdk) in ran else "-"
            for sdk in sdks
        ]
        lines.append(f"| {suite} | {len(suites[suite])} | " + " | ".join(marks) + " |")
    return [*lines, ""]


def matrix_markdown(source: Source, sections: Mapping[str, tuple[str, str]]) -> list[str]:
    """The page body: which run, the summary, the matrix, what does not pass."""
    report = source.report
    results: Sequence[Mapping[str, Any]] = report["results"]
    sdks = sorted({r["sdk"] for r in results})
    cases: dict[str, Mapping[str, Any]] = {}
    cell: dict[tuple[str, str], Mapping[str, Any]] = {}
    for row in results:
        cases.setdefault(row["case"], row)
        cell[(row["case"], row["sdk"])] = row
    counts = ", ".join(f"{status}: {n}" for status, n in sorted(report["summary"].items()))
    lines = [
        f"This matrix shows {source.label}.",
        "",
        f"Result: **{'ok' if report['ok'] else 'FAILED'}**; {len(cases)} cases x"
        f" {len(sdks)} SDKs ({', '.join(sdks)}); {counts}; wall time"
        f" {report['wall_seconds']:.0f} s.",
        "",
    ]
    for problem in report.get("problems") or []:
        lines.append(f"- {table_cell(str(problem))}")
    if report.get("problems"):
        lines.append("")
    lines += suite_summary(results, sdks)
    lines += ["## Cases by SDK", ""]
    lines.append("| case | spec | " + " | ".join(sdks) + " |")
    lines.append("| --- | --- | " + " | ".join("---" for _ in sdks) + " |")
    for name in sorted(cases):
        marks = []
        for sdk in sdks:
            found = cell.get((name, sdk))
            marks.append(STATUS_TEXT.get(found["status"], found["status"]) if found else "-")
        lines.append(
            f"| `{name}` | {spec_link(str(cases[name]['spec']), sections)} | "
            + " | ".join(marks)
            + " |"
        )
    not_passing = sorted(
        (r for r in results if r["status"] != "passed"), key=lambda r: (r["sdk"], r["case"])
    )
    lines += ["", "## Not passing", ""]
    if not not_passing:
        lines.append("Every case passed for every SDK in this run.")
    for row in not_passing:
        why = (
            row.get("known_failing_reason")
            or row.get("skip_reason")
            or (row["failures"][0] if row["failures"] else "")
        )
        lines.append(f"- {row['sdk']} `{row['case']}` ({row['status']}): {table_cell(str(why))}")
    lines += ["", "## Cases", ""]
    lines.append("| case | what it checks |")
    lines.append("| --- | --- |")
    for name in sorted(cases):
        lines.append(f"| `{name}` | {table_cell(str(cases[name]['description']))} |")
    return lines


def _setup_sphinx() -> Any:
    from docutils import nodes
    from docutils.statemachine import StringList
    from sphinx.util.docutils import SphinxDirective

    class ConformanceMatrix(SphinxDirective):
        """``conformance-matrix``: the case x SDK table of the latest or snapshot run."""

        has_content: ClassVar[bool] = False

        def run(self) -> list[nodes.Node]:
            root = Path(self.env.srcdir).parent
            try:
                source = load_source(root)
                self.env.note_dependency(str(source.path))
                lines = matrix_markdown(source, spec_sections(root / SPEC_DIR))
            except (OSError, ValueError, KeyError) as exc:
                raise self.error(f"conformance-matrix: {exc}") from exc
            container = nodes.container()
            self.state.nested_parse(
                StringList(lines, source=self.get_source_info()[0]), 0, container
            )
            return container.children

    return ConformanceMatrix


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("conformance-matrix", _setup_sphinx())
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}


def snapshot(report_path: Path, root: Path, command: str) -> Path:
    """Write ``docs/conformance/matrix.json`` from a run's report."""
    report = _checked(json.loads(report_path.read_text(encoding="utf-8")), report_path)

    def git(*args: str) -> str:
        return subprocess.run(  # noqa: S603 - fixed read-only git commands
            ["git", *args],  # noqa: S607
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    data = {
        "ran_at": _utc(report_path.stat().st_mtime),
        "commit": git("rev-parse", "--short=12", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "command": command,
        "report": report,
    }
    target = root / SNAPSHOT
    target.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    snap = sub.add_parser("snapshot", help="copy a run's report into docs/conformance/matrix.json")
    snap.add_argument("report", type=Path, help="the run's conformance.json")
    snap.add_argument(
        "--run-command",
        default="python -m conformance.runner --jobs 1",
        help="the command that made the report, shown on the page",
    )
    args = parser.parse_args(argv)
    root = Path(__file__).resolve().parents[2]
    written = snapshot(args.report, root, args.run_command)
    print(f"wrote {written.relative_to(root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
