"""Sphinx extension: the spec coverage map, computed from the checkout at build time.

Which conformance cases test each MUST and SHOULD of ``docs/spec/``, or why
none can yet: ``conformance/runner/coverage.py`` joins the spec's numbered
items with the cases' ``covers`` lists (``conformance/cases/*.yaml``) and the
reasons file (``conformance/coverage/uncovered.yaml``). The map needs no run,
so the page always shows the checkout's own files; a ``covers`` entry naming
no requirement, or a stale reason, fails the build, and each requirement links
to its heading in the spec (through the conformance matrix's ``spec_link``),
so a number without a heading fails it too::

    ```{spec-coverage}
    ```

The same map, as JSON and Markdown, comes from
``python -m conformance.runner --coverage``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from conformance_matrix import spec_link, spec_sections, table_cell

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from conformance.runner import coverage  # noqa: E402 - needs the repository root on sys.path


def coverage_markdown(
    spec_map: coverage.Coverage, sections: Mapping[str, tuple[str, str]]
) -> list[str]:
    """The page body: the summary, one row per spec section, then every requirement."""
    if spec_map.problems:
        raise coverage.CoverageError("; ".join(spec_map.problems))
    must = spec_map.counts(coverage.MUST)
    lines = [
        f"**{must.covered} of {must.total} MUSTs** are covered by a case"
        f" ({100 * must.covered / must.total:.1f} %); {must.reason} have a written"
        f" reason why no case tests them yet; {must.neither} have neither.",
        "",
        "| § | MUST | covered | reason | neither | SHOULD | covered | reason | neither |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for number in sorted({e.requirement.section for e in spec_map.entries}, key=int):
        m = spec_map.counts(coverage.MUST, number)
        s = spec_map.counts(coverage.SHOULD, number)
        lines.append(
            f"| {spec_link(number, sections)} {table_cell(spec_map.sections.get(number, ''))}"
            f" | {m.total} | {m.covered} | {m.reason} | {m.neither}"
            f" | {s.total} | {s.covered} | {s.reason} | {s.neither} |"
        )
    total_should = spec_map.counts(coverage.SHOULD)
    lines.append(
        f"| all | {must.total} | {must.covered} | {must.reason} | {must.neither}"
        f" | {total_should.total} | {total_should.covered} | {total_should.reason}"
        f" | {total_should.neither} |"
    )
    lines += [
        "",
        "## Every requirement",
        "",
        "Level is the strongest key word of the item (a MUST item may hold a"
        " SHOULD sentence too: `MUST + SHOULD`); `-` marks an item without one"
        " (a definition or a consequence).",
        "",
        "| requirement | level | cases, or why none yet |",
        "| --- | --- | --- |",
    ]
    for entry in spec_map.entries:
        requirement = entry.requirement
        level = " + ".join((requirement.level, *requirement.also)) if requirement.level else "-"
        if requirement.withdrawn:
            tested = "withdrawn"
        elif entry.cases:
            tested = ", ".join(f"`{case}`" for case in entry.cases)
        elif entry.reason is not None:
            tested = table_cell(entry.reason)
        elif requirement.level in coverage.CHECKED_LEVELS:
            tested = "**neither a case nor a reason**"
        else:
            tested = ""
        lines.append(f"| {spec_link(requirement.id, sections)} | {level} | {tested} |")
    return lines


def _setup_sphinx() -> Any:
    from docutils import nodes
    from docutils.statemachine import StringList
    from sphinx.util.docutils import SphinxDirective

    class SpecCoverage(SphinxDirective):
        """``spec-coverage``: every requirement of the spec and the cases that test it."""

        has_content: ClassVar[bool] = False

        def run(self) -> list[nodes.Node]:
            root = Path(self.env.srcdir).parent
            try:
                spec_map = coverage.compute(
                    spec_dir=root / "docs" / "spec",
                    cases_dir=root / "conformance" / "cases",
                    reasons_path=root / "conformance" / "coverage" / "uncovered.yaml",
                )
                for path in [
                    *sorted((root / "conformance" / "cases").glob("*.yaml")),
                    root / "conformance" / "coverage" / "uncovered.yaml",
                ]:
                    self.env.note_dependency(str(path))
                lines = coverage_markdown(spec_map, spec_sections(root / "docs" / "spec"))
            except (OSError, ValueError, KeyError) as exc:
                raise self.error(f"spec-coverage: {exc}") from exc
            container = nodes.container()
            self.state.nested_parse(
                StringList(lines, source=self.get_source_info()[0]), 0, container
            )
            return container.children

    return SpecCoverage


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("spec-coverage", _setup_sphinx())
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
