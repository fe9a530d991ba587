"""Each SDK README's departures from SHOULDs match the suite's evidence (spec 1.1.2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.runner import departures, known_failing
from conformance.runner.cases import CASES_DIR, load_all
from conformance.runner.sdks import SDKS

ROOT = Path(__file__).resolve().parents[2]
CASE_SPECS = {c.full_name: c.spec for c in load_all(CASES_DIR)}
REQUIREMENTS = departures.should_requirements()
ALL = departures.FEATURES

SECTION = departures.HEADING + "\n\n"
CONDITIONAL = "identity/bundle-refresh-is-conditional"  # cites SHOULD 10.2.2


def readme(body: str) -> str:
    return "# sdk\n\nintro\n\n" + SECTION + body + "\n## Next\n\nmore\n"


def problems(
    body: str, *, failing: tuple[str, ...] = (), declared: frozenset[str] | None = ALL
) -> list[str]:
    return departures.check(
        "demo",
        departures.parse(readme(body)),
        known_failing=failing,
        case_specs=CASE_SPECS,
        requirements=REQUIREMENTS,
        declared=declared,
    )


@pytest.mark.parametrize("sdk", sorted(SDKS))
def test_every_sdk_readme_lists_its_departures_truly(sdk: str) -> None:
    """The checkout's READMEs, against the known-failing lists; the runner adds the
    features each client declares in its hello."""
    found = departures.check_sdk(
        sdk,
        known_failing=known_failing.load(sdk),
        case_specs=CASE_SPECS,
        declared=None,
    )
    assert found == []


def test_the_python_package_ships_its_readme() -> None:
    assert 'readme = "README.md"' in (ROOT / "sdk-python" / "pyproject.toml").read_text()


def test_none_is_no_departure() -> None:
    assert departures.parse(readme("None known. Every SHOULD is met.\n")) == []
    assert problems("None.\n") == []


def test_a_departure_names_its_requirement_and_evidence() -> None:
    body = (
        "- **10.2.2**: refreshes are unconditional (reason).\n"
        f"  Evidence: `known-failing: {CONDITIONAL}`.\n"
        "- **9.8.4**: no events. Evidence: `feature: events`.\n"
    )
    first, second = departures.parse(readme(body))
    assert (first.requirement, first.known_failing, first.features) == (
        "10.2.2",
        (CONDITIONAL,),
        (),
    )
    assert (second.requirement, second.known_failing, second.features) == (
        "9.8.4",
        (),
        ("events",),
    )
    assert problems(body, failing=(CONDITIONAL,), declared=ALL - {"events"}) == []


@pytest.mark.parametrize(
    ("name", "body", "failing", "declared", "want"),
    [
        pytest.param(
            "not-a-should",
            f"- **8.5.1**: x. Evidence: `known-failing: {CONDITIONAL}`.\n",
            (CONDITIONAL,),
            ALL,
            "8.5.1 is not a SHOULD",
            id="must",
        ),
        pytest.param(
            "unknown",
            "- **99.1.1**: x. Evidence: `feature: events`.\n",
            (),
            ALL - {"events"},
            "99.1.1 is not a requirement",
            id="unknown-requirement",
        ),
        pytest.param(
            "no evidence",
            "- **10.2.2**: refreshes are unconditional.\n",
            (),
            ALL,
            "names no evidence",
            id="no-evidence",
        ),
        pytest.param(
            "not listed",
            f"- **10.2.2**: x. Evidence: `known-failing: {CONDITIONAL}`.\n",
            (),
            ALL,
            "is not on known-failing/demo.txt",
            id="case-not-known-failing",
        ),
        pytest.param(
            "other requirement",
            "- **10.2.2**: x. Evidence: `known-failing: retries/status-503-is-retried`.\n",
            ("retries/status-503-is-retried",),
            ALL,
            "cites 3.3, not 10.2.2",
            id="case-cites-another-number",
        ),
        pytest.param(
            "declared",
            "- **9.8.4**: x. Evidence: `feature: events`.\n",
            (),
            ALL,
            "the client declares events",
            id="feature-declared",
        ),
        pytest.param(
            "no such feature",
            "- **9.8.4**: x. Evidence: `feature: telepathy`.\n",
            (),
            ALL,
            "'telepathy' is not a protocol feature",
            id="unknown-feature",
        ),
        pytest.param(
            "unlisted failing",
            "None.\n",
            (CONDITIONAL,),
            ALL,
            f"{CONDITIONAL} is known failing and tests SHOULD 10.2.2",
            id="known-failing-should-case-unlisted",
        ),
        pytest.param(
            "unlisted feature",
            "None.\n",
            (),
            ALL - {"use_cache"},
            "does not declare use_cache",
            id="undeclared-feature-unlisted",
        ),
    ],
)
def test_a_departure_that_the_evidence_contradicts_is_reported(
    name: str, body: str, failing: tuple[str, ...], declared: frozenset[str], want: str
) -> None:
    found = problems(body, failing=failing, declared=declared)
    assert any(want in p for p in found), (name, found)


def test_a_known_failing_case_citing_a_must_is_no_departure() -> None:
    assert problems("None.\n", failing=("retries/status-503-is-retried",)) == []


def test_features_are_not_checked_without_the_hello() -> None:
    body = "- **9.8.4**: x. Evidence: `feature: events`.\n"
    assert problems(body, declared=None) == []


@pytest.mark.parametrize(
    ("text", "want"),
    [
        pytest.param("# sdk\n\nno section\n", "no section", id="missing"),
        pytest.param(readme("We try hard.\n"), "must start with 'None'", id="prose"),
        pytest.param(
            readme("Intro.\n\n- **10.2.2**: x. Evidence: `feature: events`.\n"),
            "text before the first departure bullet",
            id="prose-before-bullets",
        ),
    ],
)
def test_a_malformed_section_is_an_error(text: str, want: str) -> None:
    with pytest.raises(departures.DeparturesError, match=want):
        departures.parse(text)


def test_should_requirements_are_read_from_the_spec() -> None:
    assert REQUIREMENTS["10.2.2"] is True  # "A client SHOULD make them conditional"
    assert REQUIREMENTS["8.5.1"] is False
    assert REQUIREMENTS["1.1.1"] is False  # names the key words, requires nothing
