"""Sphinx extension: the cross-language mTLS matrix (server SDK x client SDK).

Which run the page shows, in order (as the conformance matrix does):

1. ``reports/conformance/mtls-matrix.json``: the latest
   ``python -m conformance.runner --mtls-matrix`` in this checkout (the
   ``conformance`` nox session runs it after the cases);
2. ``docs/conformance/mtls-matrix.json``: a committed snapshot, written by
   ``python -m conformance.runner --mtls-matrix --write-snapshot``.

The report's shape is written by ``conformance/runner/mtls_matrix.py``
(``report_version`` 1)::

    ```{mtls-matrix}
    ```
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Final

# The conformance matrix's loader, error and cell text serve this page too.
from conformance_matrix import MatrixError, load_report, table_cell

REPORT_VERSION: Final = 1
LATEST_RUN: Final = Path("reports/conformance/mtls-matrix.json")
SNAPSHOT: Final = Path("docs/conformance/mtls-matrix.json")
STATUS_TEXT: Final = {"passed": "pass", "failed": "**FAIL**", "skipped": "skipped"}


def _checked(report: Any, path: Path) -> Mapping[str, Any]:
    if not isinstance(report, Mapping) or report.get("report_version") != REPORT_VERSION:
        raise MatrixError(f"{path}: not an mTLS matrix report of version {REPORT_VERSION}")
    if not report.get("pairs"):
        raise MatrixError(f"{path}: the report has no pairs")
    return report


def load(root: Path) -> tuple[Mapping[str, Any], Path, str]:
    """The report shown, its file, and a sentence saying which run it is."""
    source = load_report(root, LATEST_RUN, SNAPSHOT, _checked)
    return source.report, source.path, source.label


def matrix_markdown(report: Mapping[str, Any], label: str) -> list[str]:
    """The page body: which run, the summary, the table, what did not pass."""
    pairs = report["pairs"]
    sdks = sorted({p["server"] for p in pairs} | {p["client"] for p in pairs})
    cells = {(p["server"], p["client"]): p for p in pairs}
    counts = ", ".join(f"{status}: {n}" for status, n in sorted(report["summary"].items()))
    lines = [
        f"This matrix shows {label}.",
        "",
        f"Result: **{'ok' if report['ok'] else 'FAILED'}**; {len(pairs)} pairs of"
        f" {len(sdks)} SDKs; {counts}; wall time {report['wall_seconds']:.0f} s.",
        "",
        "| server \\\\ client | " + " | ".join(sdks) + " |",
        "| --- | " + " | ".join("---" for _ in sdks) + " |",
    ]
    for server in sdks:
        marks = []
        for client in sdks:
            found = cells.get((server, client))
            marks.append(STATUS_TEXT.get(found["status"], found["status"]) if found else "-")
        lines.append(f"| **{server}** | " + " | ".join(marks) + " |")
    lines += ["", "## Not passing", ""]
    not_passing = [p for p in pairs if p["status"] != "passed"]
    if not not_passing:
        lines.append("Every pair passed in this run.")
    for pair in not_passing:
        why = pair.get("skip_reason") or "; ".join(pair.get("failures") or [])
        lines.append(
            f"- {pair['server']} serving, {pair['client']} calling ({pair['status']}):"
            f" {table_cell(str(why))}"
        )
    return lines


def _setup_sphinx() -> Any:
    from docutils import nodes
    from docutils.statemachine import StringList
    from sphinx.util.docutils import SphinxDirective

    class MtlsMatrix(SphinxDirective):
        """``mtls-matrix``: the server x client table of the latest or snapshot run."""

        has_content: ClassVar[bool] = False

        def run(self) -> list[nodes.Node]:
            root = Path(self.env.srcdir).parent
            try:
                report, path, label = load(root)
                self.env.note_dependency(str(path))
                lines = matrix_markdown(report, label)
            except (OSError, ValueError, KeyError) as exc:
                raise self.error(f"mtls-matrix: {exc}") from exc
            container = nodes.container()
            self.state.nested_parse(
                StringList(lines, source=self.get_source_info()[0]), 0, container
            )
            return container.children

    return MtlsMatrix


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("mtls-matrix", _setup_sphinx())
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
