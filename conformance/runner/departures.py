"""Each SDK's departures from the spec's SHOULDs, as its README lists them (spec 1.1.2).

``sdk-<sdk>/README.md`` has a section headed ``## Departures from the
specification's SHOULDs (spec 1.1.2)``. Its body is either a paragraph that
starts with ``None`` or one bullet per departure, each citing the
requirement, giving the reason, and naming its evidence in backticks::

    - **10.2.2**: bundle refreshes are not conditional (reason ...).
      Evidence: `known-failing: identity/bundle-refresh-is-conditional`.
    - **9.8.4**: ... Evidence: `feature: events`.

The evidence ties the prose to what the suite sees, in both directions:

- every bullet cites a requirement of docs/spec whose text says SHOULD (or
  RECOMMENDED), and names at least one piece of evidence;
- ``known-failing: <case>`` must be on the SDK's known-failing list, and the
  case must cite the requirement (or the subsection holding it);
- ``feature: <name>`` must be a protocol feature the SDK's conformance client
  does not declare (checked when the declaration is known: the runner has it
  from the client's hello);
- conversely, every known-failing case that cites a SHOULD requirement, and
  every feature the client does not declare, must be named by a bullet.

A known-failing case that cites a MUST is not a departure a README can
excuse: it stays a failure of the SDK, and this module ignores it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[2]
SPEC_DIR: Final = ROOT / "docs" / "spec"
HEADING: Final = "## Departures from the specification's SHOULDs (spec 1.1.2)"
PROTO: Final = ROOT / "conformance" / "protocol" / "secinfra" / "conformance" / "v1"
PROTO_FILE: Final = PROTO / "adapter.proto"


def _protocol_features() -> frozenset[str]:
    """The wire names of the protocol's ``Feature`` enum (as clients declare them)."""
    text = PROTO_FILE.read_text(encoding="utf-8")
    start = text.index("enum Feature {")
    body = text[start : text.index("}", start)]
    return frozenset(m.lower() for m in re.findall(r"FEATURE_([A-Z_]+) = [1-9]", body))


FEATURES: Final = _protocol_features()

#: A requirement in docs/spec, and a departure bullet in a README: ``- **N.M.K**``.
_REQUIREMENT: Final = re.compile(r"(?m)^- \*\*([0-9]+\.[0-9]+\.[0-9]+)\*\*")
_EVIDENCE: Final = re.compile(r"`(known-failing|feature): *([^`]+?) *`")
_SHOULD: Final = re.compile(r"\b(SHOULD|RECOMMENDED)\b")


class DeparturesError(ValueError):
    """A README's departures section is missing or malformed."""


@dataclass(frozen=True)
class Departure:
    """One bullet: the requirement, its text, and the evidence it names."""

    requirement: str
    text: str
    known_failing: tuple[str, ...]
    features: tuple[str, ...]


def readme_path(sdk: str, root: Path = ROOT) -> Path:
    """The README that lists ``sdk``'s departures: its folder's (sdks.py)."""
    from .sdks import SDKS  # (sdks.py imports nothing of this module)

    known = SDKS.get(sdk)
    return root / (known.folder if known is not None else f"sdk-{sdk}") / "README.md"


def parse(text: str, source: str = "README.md") -> list[Departure]:
    """The departures a README lists (none for a section that says ``None``)."""
    start = text.find(HEADING + "\n")
    if start < 0:
        raise DeparturesError(f"{source}: no section {HEADING!r} (spec 1.1.2)")
    body = text[start + len(HEADING) + 1 :]
    following = re.search(r"(?m)^#{1,2} ", body)
    if following:
        body = body[: following.start()]
    body = body.strip()
    bullets = list(_REQUIREMENT.finditer(body))
    if not bullets:
        if not body.startswith("None"):
            raise DeparturesError(
                f"{source}: the departures section must start with 'None' or list bullets"
                " '- **N.M.K**: reason. Evidence: `known-failing: suite/case` or"
                " `feature: name`'"
            )
        return []
    if body[: bullets[0].start()].strip():
        raise DeparturesError(f"{source}: text before the first departure bullet")
    departures = []
    for i, match in enumerate(bullets):
        end = bullets[i + 1].start() if i + 1 < len(bullets) else len(body)
        item = body[match.start() : end]
        evidence = _EVIDENCE.findall(item)
        departures.append(
            Departure(
                requirement=match.group(1),
                text=" ".join(item.split()),
                known_failing=tuple(v for k, v in evidence if k == "known-failing"),
                features=tuple(v for k, v in evidence if k == "feature"),
            )
        )
    return departures


def should_requirements(spec_dir: Path = SPEC_DIR) -> dict[str, bool]:
    """Every requirement number of docs/spec, and whether its text says SHOULD."""
    found: dict[str, bool] = {}
    for page in sorted(spec_dir.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        marks = list(_REQUIREMENT.finditer(text))
        for i, match in enumerate(marks):
            end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
            # A requirement's text runs to the next line that is not indented.
            item = re.split(r"\n(?=\S)", text[match.end() : end], maxsplit=1)[0]
            number = match.group(1)
            # Section 1 names the key words without using them (1.1.1).
            found[number] = number.split(".")[0] != "1" and bool(_SHOULD.search(item))
    return found


def _cites(case_spec: str, requirement: str) -> bool:
    return case_spec == requirement or requirement.startswith(case_spec + ".")


def check(
    sdk: str,
    departures: Iterable[Departure],
    *,
    known_failing: Iterable[str],
    case_specs: Mapping[str, str],
    requirements: Mapping[str, bool],
    declared: frozenset[str] | None,
) -> list[str]:
    """What is wrong with ``sdk``'s departures; empty when the README is true.

    ``known_failing`` is the SDK's list, ``case_specs`` maps every case name to
    the spec number it cites, ``requirements`` is `should_requirements`, and
    ``declared`` the features the client declares (None: not known here, so
    the feature rules are not checked).
    """
    listed = list(departures)
    failing = set(known_failing)
    problems: list[str] = []
    where = f"{sdk}: {readme_path(sdk, ROOT).relative_to(ROOT)}"
    for d in listed:
        if d.requirement not in requirements:
            problems.append(f"{where}: {d.requirement} is not a requirement of docs/spec")
            continue
        if not requirements[d.requirement]:
            problems.append(
                f"{where}: {d.requirement} is not a SHOULD: a departure from a MUST is a"
                " failure, and one from a MAY needs no entry"
            )
        if not d.known_failing and not d.features:
            problems.append(
                f"{where}: {d.requirement} names no evidence: add `known-failing: suite/case`"
                " (a case on the known-failing list) or `feature: name` (a feature the"
                " conformance client does not declare)"
            )
        for case in d.known_failing:
            if case not in case_specs:
                problems.append(f"{where}: {d.requirement}: {case} is not a case")
            elif case not in failing:
                problems.append(
                    f"{where}: {d.requirement}: {case} is not on known-failing/{sdk}.txt"
                )
            elif not _cites(case_specs[case], d.requirement):
                problems.append(
                    f"{where}: {d.requirement}: {case} cites {case_specs[case]},"
                    f" not {d.requirement}"
                )
        for feature in d.features:
            if feature not in FEATURES:
                problems.append(
                    f"{where}: {d.requirement}: {feature!r} is not a protocol feature"
                    f" (known: {sorted(FEATURES)})"
                )
            elif declared is not None and feature in declared:
                problems.append(
                    f"{where}: {d.requirement}: the client declares {feature}, so it is no"
                    " departure"
                )
    named_cases = {c for d in listed for c in d.known_failing}
    for case in sorted(failing):
        spec = case_specs.get(case)
        if spec is None or requirements.get(spec) is not True:
            continue  # not a case, or it cites a MUST or a subsection: not a SHOULD departure
        if case not in named_cases:
            problems.append(
                f"{where}: {case} is known failing and tests SHOULD {spec}: list the"
                f" departure with `known-failing: {case}`"
            )
    if declared is not None:
        named_features = {f for d in listed for f in d.features}
        for feature in sorted(FEATURES - declared - named_features):
            problems.append(
                f"{where}: the conformance client does not declare {feature}: list the"
                f" departure with `feature: {feature}` (its cases are skipped)"
            )
    return problems


def check_sdk(
    sdk: str,
    *,
    known_failing: Iterable[str],
    case_specs: Mapping[str, str],
    declared: frozenset[str] | None,
    root: Path = ROOT,
) -> list[str]:
    """`check` on ``sdk``'s README as it is in the checkout."""
    path = readme_path(sdk, root)
    try:
        departures = parse(path.read_text(encoding="utf-8"), str(path.relative_to(root)))
    except FileNotFoundError:
        return [f"{sdk}: {path.relative_to(root)} is missing; it must list departures (spec 1.1.2)"]
    except DeparturesError as exc:
        return [f"{sdk}: {exc}"]
    return check(
        sdk,
        departures,
        known_failing=known_failing,
        case_specs=case_specs,
        requirements=should_requirements(root / "docs" / "spec"),
        declared=declared,
    )
