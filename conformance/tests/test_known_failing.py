"""The known-failing list: parsing, classification, and what fails a run."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.runner import known_failing
from conformance.runner.known_failing import FAILING_STATUSES, classify, parse, stale_entries


def test_parse_reads_names_and_reasons() -> None:
    entries = parse("# header\n\nretries/a  # SDK bug 12\ncaching/b # slow\n")
    assert entries["retries/a"].reason == "SDK bug 12"
    assert set(entries) == {"retries/a", "caching/b"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("retries/a\n", "give a reason"),
        ("retries/a # x\nretries/a # y\n", "listed twice"),
        ("not-a-case # x\n", "is not a case name"),
    ],
)
def test_parse_rejects_bad_lines(text: str, message: str) -> None:
    with pytest.raises(known_failing.KnownFailingError, match=message):
        parse(text, "python.txt")


def test_listed_and_passing_fails_the_run() -> None:
    entry = parse("retries/a # bug\n")["retries/a"]
    assert classify("passed", entry) == "unexpected_pass"
    assert "unexpected_pass" in FAILING_STATUSES


@pytest.mark.parametrize("outcome", ["failed", "error", "unsupported"])
def test_listed_and_failing_is_known(outcome: str) -> None:
    entry = parse("retries/a # bug\n")["retries/a"]
    assert classify(outcome, entry) == "known_failing"
    assert "known_failing" not in FAILING_STATUSES


@pytest.mark.parametrize("outcome", ["passed", "failed", "error", "unsupported"])
def test_unlisted_outcome_is_kept(outcome: str) -> None:
    assert classify(outcome, None) == outcome


def test_listed_name_that_is_no_case_is_reported() -> None:
    entries = parse("retries/gone # old\n")
    assert "retries/gone is not a case" in stale_entries(entries, {"retries/a"})[0]


def test_shipped_lists_parse_and_name_real_cases() -> None:
    from conformance.runner.cases import load_all

    names = {c.full_name for c in load_all()}
    for path in Path(known_failing.KNOWN_FAILING_DIR).glob("*.txt"):
        entries = parse(path.read_text(), str(path))
        assert stale_entries(entries, names) == []
