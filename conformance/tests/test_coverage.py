"""The spec coverage map: the parser on small inputs, the join, and the real map.

The last tests hold the checkout to the map's rules: every MUST of docs/spec/
has a case that covers it or a reason in conformance/coverage/uncovered.yaml,
and no ``covers`` entry or reason is unknown or stale.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.runner import __main__ as cli
from conformance.runner import coverage
from conformance.runner.cases import load_all

PAGE = """# 5 Deadlines

Intro text that says MUST is not an item.

## 5.1 Per-call deadline

- **5.1.1** Every call MUST have a deadline.
- **5.1.2** The deadline bounds everything the call does:
  attempts and waits.
- **5.1.3** A client SHOULD say so. *Note.* It MUST NOT matter here.

## 5.2 Per-attempt timeout

- **5.2.1** A call MAY be short; it MUST NOT be negative.
- **5.2.2** A table follows:

  | a | b |
  | --- | --- |

  and the item goes on, RECOMMENDED.
- **5.2.3** Withdrawn.

```text
- **5.2.9** inside a fence MUST be ignored
```
"""


def spec_of(text: str, page: str = "deadlines.md") -> coverage.Spec:
    return coverage.parse_page(text, page)


def by_id(spec: coverage.Spec) -> dict[str, coverage.Requirement]:
    return {r.id: r for r in spec.requirements}


def test_items_are_requirements_with_their_continuation_lines() -> None:
    found = by_id(spec_of(PAGE))
    assert sorted(found) == ["5.1.1", "5.1.2", "5.1.3", "5.2.1", "5.2.2", "5.2.3"]
    assert found["5.1.2"].text == (
        "The deadline bounds everything the call does: attempts and waits."
    )
    # A blank line inside an item (before a table) does not end it.
    assert found["5.2.2"].text.endswith("and the item goes on, RECOMMENDED.")
    assert found["5.1.1"].line == 7
    assert found["5.2.3"].withdrawn


@pytest.mark.parametrize(
    ("number", "level", "also"),
    [
        ("5.1.1", "MUST", ()),
        ("5.1.2", "", ()),  # no key word: informative
        ("5.1.3", "SHOULD", ()),  # the MUST NOT is in its Note
        ("5.2.1", "MUST", ("MAY",)),
        ("5.2.2", "SHOULD", ()),  # RECOMMENDED, after the table
    ],
)
def test_level_is_the_strongest_key_word_used(
    number: str, level: str, also: tuple[str, ...]
) -> None:
    requirement = by_id(spec_of(PAGE))[number]
    assert (requirement.level, requirement.also) == (level, also)


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("The key words MUST, MUST NOT, SHOULD, MAY and OPTIONAL are as in BCP 14.", ""),
        ("It meets every MUST and MUST NOT; each departure from a SHOULD MUST be noted.", "MUST"),
        ("A client SHALL NOT do it.", "MUST"),
        ("It is REQUIRED.", "MUST"),
        ("It is NOT RECOMMENDED.", "SHOULD"),
        ("It is OPTIONAL.", "MAY"),
        ("Lower-case must and may are ordinary English.", ""),
        ("*Rationale.* Clients MUST agree.", ""),
        ("A client MUST do it. *Example.* It SHOULD look so.", "MUST"),
        ("*Server:* the server checks. A client MUST report it.", "MUST"),
    ],
)
def test_key_words_mentioned_or_informative_do_not_count(text: str, level: str) -> None:
    assert coverage.level_of(text) == level


def test_an_item_under_another_subsection_is_a_problem() -> None:
    spec = spec_of("## 5.1 One\n\n- **5.2.1** A client MUST.\n")
    assert spec.problems == (
        "docs/spec/deadlines.md:3: requirement 5.2.1 is under heading 5.1, not 5.2",
    )


def test_a_number_used_twice_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("## 5.1 One\n\n- **5.1.1** It MUST.\n")
    (tmp_path / "b.md").write_text("## 5.1 One again\n\n- **5.1.1** It MUST too.\n")
    spec = coverage.parse_spec(tmp_path)
    assert len(spec.problems) == 1
    assert "requirement 5.1.1 is numbered twice" in spec.problems[0]


def build(covers: dict[str, list[str]], reasons: dict[str, str]) -> coverage.Coverage:
    return coverage.build(spec_of(PAGE), covers, reasons, "uncovered.yaml")


def test_join_counts_covered_reason_and_neither() -> None:
    result = build({"deadlines/a": ["5.1.1"], "deadlines/b": ["5.1.1", "5.1.2"]}, {"5.2.1": "x"})
    assert result.problems == ()
    assert result.counts("MUST") == coverage.Counts(total=2, covered=1, reason=1, neither=0)
    assert result.counts("SHOULD") == coverage.Counts(total=2, covered=0, reason=0, neither=2)
    entries = {e.requirement.id: e for e in result.entries}
    assert entries["5.1.1"].cases == ("deadlines/a", "deadlines/b")
    assert entries["5.1.2"].status == coverage.COVERED  # an informative item may be covered
    assert result.ok  # SHOULDs with neither are shown, not failed


def test_a_must_with_neither_fails_the_map() -> None:
    result = build({"deadlines/a": ["5.1.1"]}, {})
    assert [e.requirement.id for e in result.neither()] == ["5.2.1"]
    assert not result.ok
    assert "1 with neither" in coverage.summary_line(result)


@pytest.mark.parametrize(
    ("covers", "reasons", "problem"),
    [
        ({"deadlines/a": ["5.9.9"]}, {}, "case deadlines/a covers '5.9.9': no such requirement"),
        ({"deadlines/a": ["5.2.3"]}, {}, "case deadlines/a covers 5.2.3, which is withdrawn"),
        ({}, {"5.9.9": "x"}, "uncovered.yaml: 5.9.9: no such requirement"),
        (
            {"deadlines/a": ["5.1.1"]},
            {"5.1.1": "x"},
            "uncovered.yaml: 5.1.1: stale: covered by deadlines/a; remove the reason",
        ),
        ({}, {"5.1.2": "x"}, "5.1.2: level none: only a MUST or SHOULD takes a reason"),
        ({}, {"5.2.1": " "}, "5.2.1: the reason must be a non-empty string"),
    ],
)
def test_unknown_and_stale_entries_are_problems(
    covers: dict[str, list[str]], reasons: dict[str, str], problem: str
) -> None:
    result = build(covers, reasons)
    assert not result.ok
    assert any(problem in found for found in result.problems), result.problems


def test_reports_hold_every_requirement(tmp_path: Path) -> None:
    result = build({"deadlines/a": ["5.1.1"]}, {"5.2.1": "needs a thing"})
    json_path, md_path = coverage.write(result, tmp_path)
    data = json.loads(json_path.read_text())
    assert data["coverage_version"] == coverage.COVERAGE_VERSION
    assert data["summary"]["must"] == {"total": 2, "covered": 1, "reason": 1, "neither": 0}
    rows = {row["id"]: row for row in data["requirements"]}
    assert rows["5.1.1"]["cases"] == ["deadlines/a"]
    assert rows["5.2.1"] == rows["5.2.1"] | {"status": "reason", "reason": "needs a thing"}
    assert rows["5.2.1"]["also"] == ["MAY"]
    markdown = md_path.read_text()
    assert "| 5.1.1 | MUST | `deadlines/a` |" in markdown
    assert "| 5.2.1 | MUST + MAY | no case: needs a thing |" in markdown
    assert "| 5.1.3 | SHOULD | **neither a case nor a reason** |" in markdown


def test_cli_writes_the_map_and_fails_on_a_must_with_neither(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec_dir = tmp_path / "spec"
    spec_dir.mkdir()
    (spec_dir / "deadlines.md").write_text(PAGE)
    cases_dir = tmp_path / "cases"
    cases_dir.mkdir()
    (cases_dir / "demo.yaml").write_text(
        "suite: demo\ncases:\n  - name: one\n    spec: '5.1'\n    covers: ['5.1.1']\n"
        "    description: d\n    steps: [{call: GetCallerIdentity, id: w}]\n"
        "    checks: [{client: w, ok: true}]\n"
    )
    reasons = tmp_path / "uncovered.yaml"
    reasons.write_text("")
    argv = ["--coverage", "--spec-dir", str(spec_dir), "--cases-dir", str(cases_dir)]
    argv += ["--reasons", str(reasons), "--report-dir", str(tmp_path / "out")]
    assert cli.main(argv) == 1
    out, err = capsys.readouterr()
    assert "MUST 5.2.1 (docs/spec/deadlines.md:14) has neither a case nor a reason" in err
    assert "coverage: FAILED: 1 of 2 MUSTs covered by a case (50.0 %)" in out
    assert (tmp_path / "out" / "coverage.json").is_file()
    reasons.write_text('"5.2.1": needs runner capability X (issue 17 item 2)\n')
    assert cli.main(argv) == 0
    assert "coverage: ok: 1 of 2 MUSTs" in capsys.readouterr().out


def test_cli_coverage_runs_no_cases() -> None:
    with pytest.raises(SystemExit):
        cli.parse_args(["--coverage", "--sdk", "python"])


# The checkout itself.


@pytest.fixture(scope="module")
def spec_map() -> coverage.Coverage:
    return coverage.compute(case_covers={case.full_name: case.covers for case in load_all()})


def test_every_must_has_a_case_or_a_reason(spec_map: coverage.Coverage) -> None:
    missing = [
        f"{e.requirement.id} (docs/spec/{e.requirement.page}:{e.requirement.line})"
        for e in spec_map.neither()
    ]
    assert not missing, (
        "these MUSTs have neither a case whose 'covers' names them nor a reason in"
        f" conformance/coverage/uncovered.yaml: {missing}"
    )


def test_no_unknown_or_stale_covers_or_reasons(spec_map: coverage.Coverage) -> None:
    assert spec_map.problems == ()


def test_every_should_has_a_case_or_a_reason(spec_map: coverage.Coverage) -> None:
    assert [e.requirement.id for e in spec_map.neither(coverage.SHOULD)] == []


def test_the_spec_numbers_every_requirement(spec_map: coverage.Coverage) -> None:
    # docs/spec/ holds some 300 numbered items; most are MUSTs.
    assert spec_map.counts(coverage.MUST).total > 200
    assert spec_map.counts(coverage.SHOULD).total > 5


def test_the_light_reader_agrees_with_the_validated_cases() -> None:
    # The docs build reads 'covers' without the runner; both must see the same lists.
    assert coverage.read_case_covers() == {case.full_name: case.covers for case in load_all()}
