"""The coverage map of the spec: which conformance cases test each requirement.

Three sources are joined:

- the spec (``docs/spec/*.md``): every numbered item ``- **N.M.K** text`` is a
  requirement, its number the stable identifier (spec 1.2.2: numbers are never
  reused); its *level* is the strongest BCP 14 key word in its own text
  (MUST, else SHOULD, else MAY, else none: informative);
- the cases' ``covers`` lists (``conformance/cases/*.yaml``): the requirements
  a case tests;
- the reasons file (``conformance/coverage/uncovered.yaml``): for a MUST or
  SHOULD that no case tests, why it cannot have one yet.

A MUST with neither a case nor a reason fails the map
(``python -m conformance.runner --coverage`` exits non-zero, and
``conformance/tests/test_coverage.py`` fails); so do a ``covers`` entry naming
no requirement and a reason for a requirement that a case covers (stale).
This module needs only the standard library and PyYAML, so the docs build can
render the map from the checkout (``docs/_ext/spec_coverage.py``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

ROOT: Final = Path(__file__).resolve().parents[2]
SPEC_DIR: Final = ROOT / "docs" / "spec"
CASES_DIR: Final = ROOT / "conformance" / "cases"
REASONS_PATH: Final = ROOT / "conformance" / "coverage" / "uncovered.yaml"
COVERAGE_VERSION: Final = 1

MUST: Final = "MUST"
SHOULD: Final = "SHOULD"
MAY: Final = "MAY"
INFORMATIVE: Final = ""
#: Levels from strongest to weakest; the key words of BCP 14 that give each.
LEVEL_WORDS: Final = {
    MUST: ("MUST NOT", "MUST", "SHALL NOT", "SHALL", "REQUIRED"),
    SHOULD: ("SHOULD NOT", "SHOULD", "NOT RECOMMENDED", "RECOMMENDED"),
    MAY: ("MAY", "OPTIONAL"),
}
#: Levels whose requirements need a case or a reason.
CHECKED_LEVELS: Final = (MUST, SHOULD)

COVERED: Final = "covered"
REASON: Final = "reason"
NEITHER: Final = "neither"

_KEYWORD: Final = "|".join(
    sorted((w for words in LEVEL_WORDS.values() for w in words), key=len, reverse=True)
)
_KEYWORD_RE: Final = re.compile(rf"\b(?:{_KEYWORD})\b")
#: Key words mentioned rather than used: a list of two or more (``MUST, MUST NOT,
#: ... and OPTIONAL``), or one after an article (``every MUST``, ``a SHOULD``).
_MENTIONS: Final = (
    re.compile(rf"\b(?:{_KEYWORD})(?:(?:,\s+|,?\s+(?:and|or)\s+)(?:{_KEYWORD})\b)+"),
    re.compile(rf"\b(?:a|an|any|each|every|the)\s+(?:{_KEYWORD})\b", re.IGNORECASE),
)
#: Informative text inside an item runs from its marker to the item's end (spec 1.1.3).
_INFORMATIVE_RE: Final = re.compile(r"\*(?:Note|Example|Rationale)\b")
_ITEM_RE: Final = re.compile(r"^- \*\*(?P<id>\d+\.\d+\.\d+)\*\*(?:\s+(?P<text>.*))?$")
_HEADING_RE: Final = re.compile(r"^(?P<hashes>#{1,3}) (?P<number>\d+(?:\.\d+)?) (?P<title>.+)$")
_WITHDRAWN_RE: Final = re.compile(r"^Withdrawn\.")
ID_RE: Final = re.compile(r"^\d+\.\d+\.\d+$")


class CoverageError(ValueError):
    """The spec, a case file or the reasons file cannot be read as the map needs."""


@dataclass(frozen=True)
class Requirement:
    """One numbered item of the spec."""

    id: str
    level: str
    """MUST, SHOULD, MAY, or "" (informative: no key word in its own text)."""
    text: str
    page: str
    """The spec page's file name (``deadlines.md``)."""
    line: int
    withdrawn: bool = False
    also: tuple[str, ...] = ()
    """Weaker levels the item uses too (a MUST item with a SHOULD sentence: SHOULD)."""

    @property
    def section(self) -> str:
        return self.id.split(".")[0]

    @property
    def subsection(self) -> str:
        return ".".join(self.id.split(".")[:2])


@dataclass(frozen=True)
class Spec:
    requirements: tuple[Requirement, ...]
    sections: Mapping[str, str]
    """Heading number (``5`` or ``5.1``) -> its title."""
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class Entry:
    requirement: Requirement
    cases: tuple[str, ...]
    reason: str | None

    @property
    def status(self) -> str:
        if self.cases:
            return COVERED
        if self.reason is not None:
            return REASON
        return NEITHER


@dataclass(frozen=True)
class Counts:
    total: int = 0
    covered: int = 0
    reason: int = 0
    neither: int = 0

    def to_json(self) -> dict[str, int]:
        return {
            "total": self.total,
            "covered": self.covered,
            "reason": self.reason,
            "neither": self.neither,
        }


@dataclass(frozen=True)
class Coverage:
    entries: tuple[Entry, ...]
    sections: Mapping[str, str]
    problems: tuple[str, ...] = field(default=())

    def counts(self, level: str, section: str | None = None) -> Counts:
        """Requirements of ``level`` (in ``section``, else all) by status."""
        found = [
            e
            for e in self.entries
            if e.requirement.level == level
            and not e.requirement.withdrawn
            and (section is None or e.requirement.section == section)
        ]
        statuses = [e.status for e in found]
        return Counts(
            total=len(found),
            covered=statuses.count(COVERED),
            reason=statuses.count(REASON),
            neither=statuses.count(NEITHER),
        )

    def neither(self, level: str = MUST) -> list[Entry]:
        """Requirements of ``level`` with neither a case nor a reason."""
        return [
            e
            for e in self.entries
            if e.requirement.level == level and not e.requirement.withdrawn and e.status == NEITHER
        ]

    @property
    def ok(self) -> bool:
        """No problem, and every MUST has a case or a reason."""
        return not self.problems and not self.neither(MUST)


def levels_of(text: str) -> tuple[str, ...]:
    """The levels whose key words the text uses (not mentions) outside its
    informative part, strongest first."""
    normative = _INFORMATIVE_RE.split(text, maxsplit=1)[0]
    for mention in _MENTIONS:
        normative = mention.sub(" ", normative)
    used = set(_KEYWORD_RE.findall(normative))
    return tuple(level for level, words in LEVEL_WORDS.items() if used.intersection(words))


def level_of(text: str) -> str:
    """The strongest key word the text uses: the requirement's level ("" if none)."""
    levels = levels_of(text)
    return levels[0] if levels else INFORMATIVE


def parse_page(text: str, page: str) -> Spec:
    """The requirements and numbered headings of one spec page."""
    requirements: list[Requirement] = []
    sections: dict[str, str] = {}
    problems: list[str] = []
    lines = text.split("\n")
    subsection: str | None = None
    fenced = False
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if line.startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            continue
        heading = _HEADING_RE.match(line)
        if heading:
            sections[heading["number"]] = heading["title"].strip()
            subsection = heading["number"] if "." in heading["number"] else None
            continue
        item = _ITEM_RE.match(line)
        if not item:
            continue
        start = index
        body = [item["text"] or ""]
        # The item goes on while lines are indented; a blank line inside it is
        # kept when the next line is indented again (a table or list in the item).
        while index < len(lines):
            following = lines[index]
            if following.startswith("  "):
                body.append(following.strip())
            elif (
                not following.strip()
                and index + 1 < len(lines)
                and lines[index + 1].startswith("  ")
            ):
                pass
            else:
                break
            index += 1
        number = item["id"]
        where = f"docs/spec/{page}:{start}"
        parent = ".".join(number.split(".")[:2])
        if parent != subsection:
            problems.append(
                f"{where}: requirement {number} is under heading {subsection or 'none'},"
                f" not {parent}"
            )
        joined = " ".join(part for part in body if part)
        levels = levels_of(joined)
        requirements.append(
            Requirement(
                id=number,
                level=levels[0] if levels else INFORMATIVE,
                text=joined,
                page=page,
                line=start,
                withdrawn=bool(_WITHDRAWN_RE.match(joined)),
                also=levels[1:],
            )
        )
    return Spec(tuple(requirements), sections, tuple(problems))


def parse_spec(directory: Path = SPEC_DIR) -> Spec:
    """Every requirement of every page, in section order; duplicate numbers are problems."""
    requirements: list[Requirement] = []
    sections: dict[str, str] = {}
    problems: list[str] = []
    for path in sorted(directory.glob("*.md")):
        page = parse_page(path.read_text(encoding="utf-8"), path.name)
        requirements += page.requirements
        sections.update(page.sections)
        problems += page.problems
    seen: dict[str, Requirement] = {}
    for requirement in requirements:
        earlier = seen.get(requirement.id)
        if earlier is not None:
            problems.append(
                f"docs/spec/{requirement.page}:{requirement.line}: requirement"
                f" {requirement.id} is numbered twice (also docs/spec/{earlier.page}:"
                f"{earlier.line}); numbers are never reused (spec 1.2.2)"
            )
        seen[requirement.id] = requirement
    requirements.sort(key=lambda r: tuple(int(part) for part in r.id.split(".")))
    return Spec(tuple(requirements), sections, tuple(problems))


def read_case_covers(directory: Path = CASES_DIR) -> dict[str, tuple[str, ...]]:
    """``suite/name`` -> its ``covers`` list, read from the case files as they are.

    The runner validates case files (``cases.load_all``); this reader takes only
    the names and ``covers`` lists, so the docs build needs no runner.
    """
    found: dict[str, tuple[str, ...]] = {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise CoverageError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("cases"), list):
            raise CoverageError(f"{path}: not a case file (a mapping with 'suite' and 'cases')")
        for case in doc["cases"]:
            if isinstance(case, dict):
                covers = case.get("covers") or ()
                found[f"{doc.get('suite')}/{case.get('name')}"] = tuple(str(c) for c in covers)
    return found


def load_reasons(path: Path = REASONS_PATH) -> dict[str, str]:
    """The reasons file: a mapping of requirement id to why no case tests it."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CoverageError(f"{path}: cannot be read: {exc}") from exc
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise CoverageError(f"{path}: must be a mapping of requirement id to reason")
    reasons: dict[str, str] = {}
    for key, value in doc.items():
        reasons[str(key)] = value if isinstance(value, str) else ""
    return reasons


def build(
    spec: Spec,
    case_covers: Mapping[str, Iterable[str]],
    reasons: Mapping[str, str],
    reasons_source: str = "conformance/coverage/uncovered.yaml",
) -> Coverage:
    """Join the spec with the cases' ``covers`` lists and the reasons; list every problem."""
    problems = list(spec.problems)
    by_id = {r.id: r for r in spec.requirements}
    cases_of: dict[str, list[str]] = {r.id: [] for r in spec.requirements}
    for case, covers in sorted(case_covers.items()):
        for item in covers:
            requirement = by_id.get(item)
            if requirement is None:
                problems.append(
                    f"case {case} covers {item!r}: no such requirement in docs/spec"
                    " (a number N.M.K of a '- **N.M.K**' item)"
                )
            elif requirement.withdrawn:
                problems.append(f"case {case} covers {item}, which is withdrawn")
            else:
                cases_of[item].append(case)
    for item, reason in sorted(reasons.items()):
        requirement = by_id.get(item)
        where = f"{reasons_source}: {item}"
        if requirement is None:
            problems.append(f"{where}: no such requirement in docs/spec")
        elif not reason.strip():
            problems.append(f"{where}: the reason must be a non-empty string")
        elif cases_of[item]:
            problems.append(
                f"{where}: stale: covered by {', '.join(sorted(cases_of[item]))}; remove the reason"
            )
        elif requirement.level not in CHECKED_LEVELS or requirement.withdrawn:
            what = "withdrawn" if requirement.withdrawn else f"level {requirement.level or 'none'}"
            problems.append(f"{where}: {what}: only a MUST or SHOULD takes a reason")
    entries = tuple(
        Entry(
            requirement=r,
            cases=tuple(sorted(cases_of[r.id])),
            reason=" ".join(reasons[r.id].split()) if r.id in reasons else None,
        )
        for r in spec.requirements
    )
    return Coverage(entries, spec.sections, tuple(problems))


def compute(
    spec_dir: Path = SPEC_DIR,
    cases_dir: Path = CASES_DIR,
    reasons_path: Path = REASONS_PATH,
    case_covers: Mapping[str, Iterable[str]] | None = None,
) -> Coverage:
    """The map of the checkout (``case_covers`` from validated cases when given)."""
    covers = read_case_covers(cases_dir) if case_covers is None else case_covers
    return build(parse_spec(spec_dir), covers, load_reasons(reasons_path), _shown(reasons_path))


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "n/a"


def summary_line(coverage: Coverage) -> str:
    must, should = coverage.counts(MUST), coverage.counts(SHOULD)
    verdict = "ok" if coverage.ok else "FAILED"
    line = (
        f"coverage: {verdict}: {must.covered} of {must.total} MUSTs covered by a case"
        f" ({_percent(must.covered, must.total)}), {must.reason} with a reason,"
        f" {must.neither} with neither; SHOULDs: {should.covered} of {should.total} covered,"
        f" {should.reason} with a reason, {should.neither} with neither"
    )
    if coverage.problems:
        line += f"; {len(coverage.problems)} problems"
    return line


def to_json(coverage: Coverage) -> dict[str, Any]:
    top = sorted({e.requirement.section for e in coverage.entries}, key=int)
    return {
        "coverage_version": COVERAGE_VERSION,
        "ok": coverage.ok,
        "summary": {level.lower(): coverage.counts(level).to_json() for level in CHECKED_LEVELS},
        "sections": [
            {
                "section": number,
                "title": coverage.sections.get(number, ""),
                **{
                    level.lower(): coverage.counts(level, number).to_json()
                    for level in CHECKED_LEVELS
                },
            }
            for number in top
        ],
        "requirements": [
            {
                "id": e.requirement.id,
                "level": e.requirement.level or None,
                "also": list(e.requirement.also),
                "page": e.requirement.page,
                "withdrawn": e.requirement.withdrawn,
                "status": e.status if e.requirement.level in CHECKED_LEVELS or e.cases else None,
                "cases": list(e.cases),
                "reason": e.reason,
                "text": e.requirement.text,
            }
            for e in coverage.entries
        ],
        "problems": list(coverage.problems),
    }


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def to_markdown(coverage: Coverage) -> str:
    """The map as a Markdown page: summary, one row per section, then every requirement."""
    data = to_json(coverage)
    lines = ["# Spec coverage", "", summary_line(coverage), ""]
    for problem in coverage.problems:
        lines.append(f"- {_cell(problem)}")
    if coverage.problems:
        lines.append("")
    lines += [
        "| § | title | MUST | covered | reason | neither | SHOULD | covered | reason | neither |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in data["sections"]:
        must, should = row["must"], row["should"]
        lines.append(
            f"| {row['section']} | {_cell(row['title'])} | {must['total']} | {must['covered']}"
            f" | {must['reason']} | {must['neither']} | {should['total']} | {should['covered']}"
            f" | {should['reason']} | {should['neither']} |"
        )
    lines += ["", "| id | level | cases, or why none |", "| --- | --- | --- |"]
    for entry in coverage.entries:
        lines.append(
            f"| {entry.requirement.id} | {_level_cell(entry.requirement)} | {_tested_by(entry)} |"
        )
    return "\n".join(lines) + "\n"


def _level_cell(requirement: Requirement) -> str:
    if not requirement.level:
        return "-"
    return " + ".join((requirement.level, *requirement.also))


def _tested_by(entry: Entry) -> str:
    if entry.requirement.withdrawn:
        return "withdrawn"
    if entry.cases:
        return ", ".join(f"`{case}`" for case in entry.cases)
    if entry.reason is not None:
        return "no case: " + _cell(entry.reason)
    if entry.requirement.level in CHECKED_LEVELS:
        return "**neither a case nor a reason**"
    return ""


def write(coverage: Coverage, report_dir: Path) -> list[Path]:
    """``coverage.json`` and ``coverage.md`` in ``report_dir``."""
    report_dir.mkdir(parents=True, exist_ok=True)
    json_path = report_dir / "coverage.json"
    json_path.write_text(json.dumps(to_json(coverage), indent=1) + "\n", encoding="utf-8")
    md_path = report_dir / "coverage.md"
    md_path.write_text(to_markdown(coverage), encoding="utf-8")
    return [json_path, md_path]
