"""Case files: the shipped ones load, and mistakes get clear messages."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from conformance.runner.cases import SCHEMA_PATH, CaseError, load_all, parse_document


def doc(**case: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "ok-case",
        "spec": "3.4",
        "description": "does a thing",
        "steps": [{"call": "GetCallerIdentity", "id": "whoami"}],
        "checks": [{"client": "whoami", "ok": True}],
    }
    base.update(case)
    return {"suite": "retries", "cases": [base]}


def problems(document: Any) -> str:
    with pytest.raises(CaseError) as info:
        parse_document(document, "retries", "retries.yaml")
    return str(info.value)


def test_shipped_cases_load() -> None:
    cases = load_all()
    assert len(cases) >= 30
    assert all(c.full_name.count("/") == 1 for c in cases)


def test_valid_case_parses() -> None:
    (case,) = parse_document(doc(), "retries", "retries.yaml")
    assert case.full_name == "retries/ok-case"
    assert case.step_ids == ["whoami"]


def test_covers_lists_the_requirements_a_case_tests() -> None:
    (case,) = parse_document(doc(covers=["5.1.3", "5.4.1"]), "retries", "retries.yaml")
    (plain,) = parse_document(doc(), "retries", "retries.yaml")
    assert case.covers == ("5.1.3", "5.4.1")
    assert plain.covers == ()


def test_replicas_and_endpoint_options_imply_the_endpoints_feature() -> None:
    (replicas,) = parse_document(doc(setup={"replicas": 2}), "retries", "retries.yaml")
    (option,) = parse_document(
        doc(setup={"client": {"endpoint_order": "listed"}}), "retries", "retries.yaml"
    )
    (plain,) = parse_document(doc(), "retries", "retries.yaml")
    assert replicas.features == option.features == frozenset({"endpoints"})
    assert plain.features == frozenset()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"spec": 3.4}, "'spec' must cite a spec subsection as a quoted string"),
        ({"spec": "3"}, 'like "3.4" or "3.4.2"'),
        ({"spec": "15"}, "sections 1-14"),
        ({"name": "Bad Name"}, "'name' must match"),
        ({"description": ""}, "'description' is required"),
        ({"checks": []}, "every case checks something"),
        ({"steps": [{"call": "GetSecrets"}]}, "unknown RPC 'GetSecrets'"),
        ({"steps": [{"call": "GetSecret", "sleep": 1}]}, "give exactly one action"),
        ({"steps": [{"sleep": 1, "request": {}}]}, "sleep does not take ['request']"),
        ({"checks": [{"client": "nope", "ok": True}]}, "no step has id 'nope'"),
        ({"checks": [{"server": "GetSecret", "cnt": 1}]}, "unknown key 'cnt' for a server check"),
        ({"checks": [{"server": "GetSecret"}]}, "the check checks nothing"),
        (
            {"checks": [{"client": "whoami", "error": {"code": {"$gtee": 1}}}]},
            "unknown operator $gtee",
        ),
        ({"checks": [{"server": "*", "idempotency_key": "equal"}]}, "idempotency_key: one of"),
        ({"setup": {"server": {"leaf_ttl": 5}}}, "unknown setting 'leaf_ttl'"),
        ({"setup": {"client": {"retries": 5}}}, "unknown option 'retries'"),
        (
            {"setup": {"scripts": {"GetSecret": [{"status": 503, "delay": 5}]}}},
            "unknown key 'delay'",
        ),
        (
            {"share_server": True, "setup": {"server": {"leaf_ttl_seconds": 5}}},
            "share_server: true cannot change the server",
        ),
        ({"steps": [{"call": "GetCallerIdentity", "id": "configure"}]}, "implicit enrolment step"),
        ({"unknown": 1}, "unknown keys ['unknown']"),
        ({"covers": "5.1.3"}, "'covers' must be a non-empty list of distinct spec requirements"),
        ({"covers": []}, "'covers' must be a non-empty list"),
        ({"covers": ["5.1"]}, 'like "5.1.3"'),
        ({"covers": ["5.1.3", "5.1.3"]}, "'covers' must be a non-empty list of distinct"),
        # replica cases (spec 12)
        ({"setup": {"replicas": 5}}, "2 or 3 (replicas a, b[, c] on one PostgreSQL)"),
        ({"steps": [{"stop": "a"}]}, "stopping needs setup.replicas"),
        ({"setup": {"replicas": 2}, "steps": [{"stop": "c"}]}, "no replica 'c' (this case has"),
        (
            {"setup": {"replicas": 2}, "steps": [{"stop": "b", "after_request": "GetSecrets"}]},
            "unknown RPC 'GetSecrets'",
        ),
        ({"setup": {"replicas": 2, "stopped": ["a", "b"]}}, "at least one replica must be running"),
        ({"setup": {"replicas": 2}, "steps": [{"stop": "b", "signal": "HUP"}]}, "'KILL', 'TERM'"),
        (
            {"setup": {"replicas": 2}, "checks": [{"server": "*", "replica": "c", "count": 0}]},
            "checks[0].replica: no replica 'c'",
        ),
        (
            {"share_server": True, "setup": {"replicas": 2}},
            "share_server: true cannot have replicas",
        ),
    ],
)
def test_invalid_case_is_named_with_its_problem(change: dict[str, Any], message: str) -> None:
    text = problems(doc(**change))
    assert message in text
    assert text.startswith("retries.yaml: ")


@pytest.mark.parametrize(
    ("change", "exact"),
    [
        # an unknown key, deep in a step: file, case and path are named
        (
            {"steps": [{"call": "GetSecret", "id": "g", "call_options": {"retries": 2}}]},
            "retries.yaml: case retries/ok-case: steps[0].call_options: unknown option 'retries'",
        ),
        # a wrong type
        (
            {"steps": [{"concurrent": "GetSecret", "id": "g", "count": "many"}]},
            "retries.yaml: case retries/ok-case: steps[0].count: an integer from 2 to 256",
        ),
        (
            {"setup": {"server": {"leaf_ttl_seconds": "5"}}},
            "retries.yaml: case retries/ok-case: setup.server.leaf_ttl_seconds: '5' is not of type",
        ),
        # a missing spec
        (
            {"spec": None},
            "retries.yaml: case retries/ok-case: 'spec' must cite a spec subsection",
        ),
    ],
)
def test_the_schema_refuses_a_bad_case(change: dict[str, Any], exact: str) -> None:
    document = doc(**change)
    if change.get("spec", "") is None:
        del document["cases"][0]["spec"]
    assert exact in problems(document)


def test_the_schema_is_valid_json_schema() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.validators.validator_for(schema).check_schema(schema)
    assert schema["$schema"].endswith("/2020-12/schema")


def test_every_problem_of_a_file_is_reported() -> None:
    document = doc(spec="x")
    document["cases"].append({"name": "second", "spec": "3.3"})
    text = problems(document)
    assert "case retries/ok-case: 'spec'" in text
    assert "case retries/second: 'description' is required" in text


def test_suite_must_match_file_name() -> None:
    document = doc()
    document["suite"] = "caching"
    assert "'suite' must be 'retries'" in problems(document)


def test_duplicate_names_across_files_are_rejected(tmp_path: Any) -> None:
    body = (
        "suite: {suite}\ncases:\n  - name: a\n    spec: '3.3'\n    description: d\n"
        "    steps: [{{call: GetCallerIdentity, id: w}}]\n    checks: [{{client: w, ok: true}}]\n"
        "  - name: a\n    spec: '3.3'\n    description: d\n"
        "    steps: [{{call: GetCallerIdentity, id: w}}]\n    checks: [{{client: w, ok: true}}]\n"
    )
    (tmp_path / "x.yaml").write_text(body.format(suite="x"))
    with pytest.raises(CaseError, match="x/a is defined twice"):
        load_all(tmp_path)


SPEC_DIR = Path(__file__).resolve().parents[2] / "docs" / "spec"


def _spec_sections() -> set[str]:
    """Every subsection ("## N.M ...") and requirement ("**N.M.K**") of docs/spec."""
    found: set[str] = set()
    for page in SPEC_DIR.glob("*.md"):
        text = page.read_text()
        found |= set(re.findall(r"^## ([0-9]+\.[0-9]+) ", text, flags=re.MULTILINE))
        found |= set(re.findall(r"\*\*([0-9]+\.[0-9]+\.[0-9]+)\*\*", text))
    return found


def test_every_case_cites_a_section_the_spec_has() -> None:
    sections = _spec_sections()
    assert "9.2.3" in sections  # the parser sees requirements too
    missing = sorted(f"{c.full_name} cites {c.spec}" for c in load_all() if c.spec not in sections)
    assert not missing, missing
