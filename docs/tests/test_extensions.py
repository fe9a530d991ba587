"""Tests of the docs build's own extensions (docs/_ext): the rules they compute."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Final

import pytest
from sphinx.errors import ExtensionError

ROOT: Final = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "docs" / "_ext"))

import architecture  # noqa: E402
import conformance_matrix  # noqa: E402
import mtls_matrix  # noqa: E402
import openapi_operations  # noqa: E402
import quickstart_tabs  # noqa: E402
import server_settings  # noqa: E402


@pytest.mark.parametrize(
    ("operation_id", "want"),
    [
        (
            "SecretsService_GetSecret",
            {
                "Python": "client.secrets.get_secret",
                "Go": "client.Secrets.GetSecret",
                "Java": "client.secrets().getSecret",
                "Ruby": "client.secrets.get_secret",
            },
        ),
        (
            "IdentityService_GetCaStatus",
            {
                "Python": "client.identity.get_ca_status",
                "Go": "client.Identity.GetCaStatus",
                "Java": "client.identity().getCaStatus",
                "Ruby": "client.identity.get_ca_status",
            },
        ),
        (
            "AuthzService_BatchCheck",
            {
                "Python": "client.authz.batch_check",
                "Go": "client.Authz.BatchCheck",
                "Java": "client.authz().batchCheck",
                "Ruby": "client.authz.batch_check",
            },
        ),
    ],
)
def test_sdk_method_names_follow_each_languages_rule(
    operation_id: str, want: dict[str, str]
) -> None:
    assert openapi_operations.sdk_methods(operation_id) == want


@pytest.mark.parametrize("bad", ["GetSecret", "Secrets_GetSecret", "SecretsService_getSecret"])
def test_operation_ids_outside_the_convention_are_rejected(bad: str) -> None:
    with pytest.raises(openapi_operations.OpenApiError):
        openapi_operations.sdk_methods(bad)


def test_every_computed_python_name_exists_in_the_installed_sdk() -> None:
    document = json.loads((ROOT / "docs" / "api" / "openapi.json").read_text(encoding="utf-8"))
    operations = openapi_operations.load_operations(document)
    assert len(operations) > 0
    assert openapi_operations.check_python_sdk(operations) == []


def test_a_wrong_python_name_is_reported() -> None:
    op = openapi_operations.Operation(
        method="GET",
        path="/v1/x",
        operation_id="SecretsService_NoSuchRpc",
        summary="x",
        tag="SecretsService",
        idempotency="read_only",
        cache="-",
        caller="workload",
    )
    assert openapi_operations.check_python_sdk([op]) == [
        "SecretsService_NoSuchRpc: secinfra has no client.secrets.no_such_rpc"
    ]


def test_every_setting_of_the_server_has_a_flag_except_the_tables() -> None:
    found = server_settings.settings()
    names = {s.name for s in found}
    assert {"data_dir", "leaf_ttl_seconds", "jwt.issuer", "login.issuer"} <= names
    for setting in found:
        if setting.name.startswith("jwt."):
            assert setting.flags == ()
        elif setting.name.startswith("login."):
            assert (setting.flags, setting.env) == ((), "")  # TOML only
        else:
            assert setting.flags, setting.name
            assert setting.env == "SECINFRA_" + setting.name.upper()


def test_boolean_settings_show_both_flag_spellings() -> None:
    by_name = {s.name: s for s in server_settings.settings()}
    assert by_name["ca_auto_rotate"].flags == ("--ca-auto-rotate", "--no-ca-auto-rotate")


def test_meanings_parse_with_continuation_lines() -> None:
    parsed = server_settings.parse_meanings(["host: Address.", "  Use an IP.", "", "port: TCP."])
    assert parsed == {"host": "Address. Use an IP.", "port": "TCP."}


@pytest.mark.parametrize(
    "lines", [["host: a", "host: b"], ["  stray continuation"], ["not an entry"]]
)
def test_malformed_meanings_are_errors(lines: list[str]) -> None:
    with pytest.raises(ValueError, match="line"):
        server_settings.parse_meanings(lines)


def test_metrics_are_read_from_the_servers_registry() -> None:
    by_name = {m.name: m for m in server_settings.metrics()}
    requests = by_name["secinfra_requests"]
    assert requests.exposed == "secinfra_requests_total"
    assert requests.labels == ("route", "code")


def _report(sdk: str, status: str = "passed") -> dict[str, Any]:
    return {
        "report_version": 1,
        "ok": status == "passed",
        "wall_seconds": 1.0,
        "sdks": [sdk],
        "summary": {status: 1},
        "problems": [],
        "results": [
            {
                "case": "retries/retry-on-503",
                "suite": "retries",
                "spec": "3.3.2",
                "description": "503 is retried.",
                "sdk": sdk,
                "status": status,
                "seconds": 0.5,
                "failures": [],
                "known_failing_reason": None,
            }
        ],
    }


def test_the_latest_run_wins_over_the_snapshot(tmp_path: Path) -> None:
    snapshot = tmp_path / conformance_matrix.SNAPSHOT
    snapshot.parent.mkdir(parents=True)
    snapshot.write_text(
        json.dumps(
            {
                "ran_at": "then",
                "commit": "abc",
                "dirty": False,
                "command": "c",
                "report": _report("go"),
            }
        )
    )
    assert conformance_matrix.load_source(tmp_path).label.startswith("a snapshot")
    latest = tmp_path / conformance_matrix.LATEST_RUN
    latest.parent.mkdir(parents=True)
    latest.write_text(json.dumps(_report("ruby")))
    os.utime(latest, (0, 0))
    source = conformance_matrix.load_source(tmp_path)
    assert source.label.startswith("the latest run in this checkout")
    assert "1970-01-01 00:00 UTC" in source.label
    assert source.report["sdks"] == ["ruby"]


def test_a_report_of_another_version_is_refused(tmp_path: Path) -> None:
    latest = tmp_path / conformance_matrix.LATEST_RUN
    latest.parent.mkdir(parents=True)
    latest.write_text(json.dumps({**_report("go"), "report_version": 2}))
    with pytest.raises(conformance_matrix.MatrixError, match="version 1"):
        conformance_matrix.load_source(tmp_path)


def test_spec_links_point_at_the_heading_holding_a_requirement() -> None:
    sections = conformance_matrix.spec_sections(ROOT / "docs" / "spec")
    assert (
        conformance_matrix.spec_link("3.3.2", sections)
        == "[3.3.2](../spec/retries.md#33-what-is-retryable)"
    )
    with pytest.raises(conformance_matrix.MatrixError, match=r"99\.1"):
        conformance_matrix.spec_link("99.1", sections)


def test_the_matrix_lists_what_does_not_pass(tmp_path: Path) -> None:
    source = conformance_matrix.Source(_report("go", "failed"), tmp_path, "a test run")
    sections = conformance_matrix.spec_sections(ROOT / "docs" / "spec")
    lines = conformance_matrix.matrix_markdown(source, sections)
    assert "| `retries/retry-on-503` | [3.3.2](../spec/retries.md#33-what-is-retryable) |" in (
        "\n".join(lines)
    )
    assert any(line.startswith("- go `retries/retry-on-503` (failed)") for line in lines)


def test_quickstart_tabs_need_the_run_script_and_a_source_file(tmp_path: Path) -> None:
    go = tmp_path / "sdk-go" / "examples"
    (go / "quickstart").mkdir(parents=True)
    (go / "quickstart" / "main.go").write_text("package main\n")
    assert quickstart_tabs.present(tmp_path) == []  # no run script yet
    (go / "run-quickstart.sh").write_text("#!/bin/sh\n")
    found = quickstart_tabs.present(tmp_path)
    assert [(lang.name, [p.name for p in files]) for lang, files in found] == [("Go", ["main.go"])]


# What each generated SDK reference page writes for a method, from the names
# this site computes: the pages come from the other SDKs' codegen targets, so
# this catches a naming rule that drifted on either side.
REFERENCE_SPELLING: Final = {
    "Go": ("sdk-go.md", lambda name: name.split(".", 1)[1].split(".")[1] + "("),
    "Java": ("sdk-java.md", lambda name: name.split(".", 1)[1] + "("),
    "Ruby": ("sdk-ruby.md", lambda name: name + "("),
}


@pytest.mark.parametrize("language", sorted(REFERENCE_SPELLING))
def test_generated_sdk_references_use_the_computed_method_names(language: str) -> None:
    page_name, spelling = REFERENCE_SPELLING[language]
    page = ROOT / "docs" / "reference" / page_name
    if not page.is_file():
        pytest.skip(f"{page_name} is not generated in this checkout")
    text = page.read_text(encoding="utf-8")
    document = json.loads((ROOT / "docs" / "api" / "openapi.json").read_text(encoding="utf-8"))
    missing = [
        openapi_operations.sdk_methods(op.operation_id)[language]
        for op in openapi_operations.load_operations(document)
        if spelling(openapi_operations.sdk_methods(op.operation_id)[language]) not in text
    ]
    assert missing == [], f"{page_name} does not show {missing}"


def test_floor_plan_picture_has_every_subject_of_the_table() -> None:
    subjects = architecture.floor_plan_subjects()
    dot = architecture.floor_plan_dot(subjects)
    for name in subjects:
        if name != "testing":
            assert architecture._node_id(name) in dot


def test_floor_plan_picture_refuses_an_arrow_to_a_subject_the_table_lacks() -> None:
    subjects = [s for s in architecture.floor_plan_subjects() if s != "retry budget"]
    with pytest.raises(ExtensionError, match="retry budget"):
        architecture.floor_plan_dot(subjects)


def test_floor_plan_picture_refuses_a_subject_without_an_arrow() -> None:
    subjects = [*architecture.floor_plan_subjects(), "telemetry"]
    with pytest.raises(ExtensionError, match="telemetry"):
        architecture.floor_plan_dot(subjects)


def test_server_layers_come_from_the_layer_table_bottom_first() -> None:
    layers = architecture.load_layers(ROOT / "server" / "layers.toml")
    names = [layer["name"] for layer in layers]
    assert names[-1] == "wiring"
    assert all(layer["modules"] for layer in layers)
    dot = architecture.layers_dot(layers)
    # Drawn top first: the wiring band is the first node, the bottom layer the last.
    assert dot.index(">wiring<") < dot.index(f">{names[0]}<")


def test_server_layers_refuse_a_layer_without_modules(tmp_path: Path) -> None:
    table = tmp_path / "layers.toml"
    table.write_text('[[layer]]\nname = "x"\nsummary = "y"\nmodules = []\n', encoding="utf-8")
    with pytest.raises(ExtensionError, match="needs name, summary, modules"):
        architecture.load_layers(table)


def _mtls_report(status: str) -> dict[str, Any]:
    pairs = [
        {
            "server": server,
            "client": client,
            "status": status if "java" in (server, client) else "passed",
            "seconds": 0.1,
            "server_spiffe_id": f"spiffe://secinfra.local/w/mtls-matrix/{server}-server",
            "client_spiffe_id": f"spiffe://secinfra.local/w/mtls-matrix/{client}-client",
            "failures": [] if status != "failed" else ["the call failed"],
            "skip_reason": "skipped: the java client does not declare the feature mtls"
            if status == "skipped"
            else "",
        }
        for server in ("go", "java")
        for client in ("go", "java")
    ]
    return {
        "report_version": 1,
        "ok": status != "failed",
        "wall_seconds": 3.0,
        "sdks": ["go", "java"],
        "summary": {"passed": 1, status: 3},
        "pairs": pairs,
    }


def test_the_mtls_matrix_shows_the_latest_run_else_the_snapshot(tmp_path: Path) -> None:
    snapshot = tmp_path / mtls_matrix.SNAPSHOT
    snapshot.parent.mkdir(parents=True)
    snapshot.write_text(
        json.dumps(
            {
                "ran_at": "then",
                "commit": "abc",
                "dirty": False,
                "command": "c",
                "report": _mtls_report("skipped"),
            }
        )
    )
    report, _, label = mtls_matrix.load(tmp_path)
    assert label.startswith("a snapshot")
    lines = mtls_matrix.matrix_markdown(report, label)
    assert "| **go** | pass | skipped |" in lines
    assert (
        "- go serving, java calling (skipped): skipped: the java client does not declare"
        " the feature mtls" in lines
    )
    latest = tmp_path / mtls_matrix.LATEST_RUN
    latest.parent.mkdir(parents=True)
    latest.write_text(json.dumps(_mtls_report("failed")))
    report, _, label = mtls_matrix.load(tmp_path)
    assert label.startswith("the latest run in this checkout")
    lines = mtls_matrix.matrix_markdown(report, label)
    assert "| **java** | **FAIL** | **FAIL** |" in lines
    assert any(line.startswith("Result: **FAILED**") for line in lines)


def test_an_mtls_matrix_report_of_another_version_is_refused(tmp_path: Path) -> None:
    latest = tmp_path / mtls_matrix.LATEST_RUN
    latest.parent.mkdir(parents=True)
    latest.write_text(json.dumps({**_mtls_report("passed"), "report_version": 2}))
    with pytest.raises(mtls_matrix.MatrixError, match="version 1"):
        mtls_matrix.load(tmp_path)


def test_the_matrix_summarises_each_suite(tmp_path: Path) -> None:
    report = _report("go")
    extra = {**report["results"][0], "case": "retries/other", "status": "failed"}
    report["results"].append(extra)
    report["results"].append({**extra, "case": "caching/hit", "suite": "caching", "sdk": "ruby"})
    source = conformance_matrix.Source(report, tmp_path, "a test run")
    sections = conformance_matrix.spec_sections(ROOT / "docs" / "spec")
    lines = conformance_matrix.matrix_markdown(source, sections)
    assert "| suite | cases | go | ruby |" in lines
    assert "| caching | 1 | - | 0/1 |" in lines
    assert "| retries | 2 | 1/2 | - |" in lines
