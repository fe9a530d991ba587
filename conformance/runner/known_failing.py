"""The known-failing list of one SDK (``conformance/known-failing/<sdk>.txt``).

One case name per line, then ``#`` and the reason (required)::

    retries/retry-after-http-date  # parses only delta-seconds (issue 123)

A listed case that fails is expected ("known failing"); a listed case that
passes fails the run ("unexpected pass"), so the list cannot go stale; a
listed name that is no case fails the run too, and so does a listed case
that is skipped (its client does not declare a feature it needs: it cannot
fail, so the entry is stale).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

KNOWN_FAILING_DIR: Final = Path(__file__).resolve().parent.parent / "known-failing"

KNOWN_FAILING: Final = "known_failing"
UNEXPECTED_PASS: Final = "unexpected_pass"
SKIPPED: Final = "skipped"
ERROR: Final = "error"


class KnownFailingError(ValueError):
    """The list is malformed."""


@dataclass(frozen=True)
class Entry:
    case: str
    reason: str
    line: int


def parse(text: str, source: str = "known-failing") -> dict[str, Entry]:
    entries: dict[str, Entry] = {}
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, reason = line.partition("#")
        name, reason = name.strip(), reason.strip()
        if not reason:
            problems.append(f"{source}:{number}: give a reason after '#' for {name}")
        if "/" not in name or " " in name:
            problems.append(f"{source}:{number}: {name!r} is not a case name (suite/case)")
        if name in entries:
            problems.append(f"{source}:{number}: {name} is listed twice")
        entries[name] = Entry(name, reason, number)
    if problems:
        raise KnownFailingError("\n".join(problems))
    return entries


def load(sdk: str, directory: Path = KNOWN_FAILING_DIR) -> dict[str, Entry]:
    path = directory / f"{sdk}.txt"
    if not path.exists():
        return {}
    return parse(path.read_text(), str(path))


def classify(outcome: str, listed: Entry | None) -> str:
    """The final status of a case from its outcome and whether it is listed.

    ``passed`` and ``failed`` (also ``error``, ``unsupported`` and
    ``skipped``) stay as they are for unlisted cases; a listed case becomes
    ``known_failing`` if it did not pass, ``unexpected_pass`` if it did, and
    ``error`` if it was skipped (see `stale_skip`).
    """
    if listed is None:
        return outcome
    if outcome == SKIPPED:
        return ERROR
    return UNEXPECTED_PASS if outcome == "passed" else KNOWN_FAILING


def stale_skip(entry: Entry, skip_reason: str) -> str:
    """The failure of a listed case that was skipped: the list is stale."""
    return (
        f"listed as known failing (line {entry.line}: {entry.reason}) but {skip_reason}:"
        " a skipped case cannot fail, remove it from the list"
    )


#: Final statuses that make the run fail.
FAILING_STATUSES: Final = frozenset({"failed", "error", "unsupported", UNEXPECTED_PASS})


def stale_entries(entries: dict[str, Entry], case_names: set[str]) -> list[str]:
    """Problems for listed names that are not cases."""
    return [
        f"known-failing line {e.line}: {e.case} is not a case (renamed or removed?)"
        for e in entries.values()
        if e.case not in case_names
    ]
