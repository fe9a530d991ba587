"""The conformance target: the adapter protocol's types beside each conformance client.

Generated from the repo's own protocol proto (conformance/protocol/), so these
tests hold the shipped protocol to the target: one exclusive folder per
language with the standard header, Python types that speak the protocol's
JSON (strictly, when asked), Go that gofmt leaves alone, and no services.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from codegen_testlib import REPO, RUFF_CONFIG

from secinfra_codegen.errors import CodegenError
from secinfra_codegen.model import Api
from secinfra_codegen.pipeline import load, protocol_inputs, render_protocol
from secinfra_codegen.targets import HEADER, Output, conformance
from secinfra_codegen.targets.go import find_gofmt

LAYOUT = conformance.ConformanceLayout()


@pytest.fixture(scope="module")
def protocol() -> Api:
    return load(protocol_inputs(REPO), [REPO / conformance.PROTOCOL_DIR])


@pytest.fixture(scope="module")
def outputs(protocol: Api) -> dict[str, Output]:
    return {o.directory: o for o in render_protocol(protocol, LAYOUT, RUFF_CONFIG)}


@pytest.fixture(scope="module")
def python_protocol(
    outputs: dict[str, Output], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModuleType]:
    """The generated Python package, importable as ``conf_gen``."""
    root = tmp_path_factory.mktemp("conformance-python")
    package = root / "conf_gen"
    package.mkdir()
    for name, text in outputs[LAYOUT.python].files.items():
        (package / name).write_text(text, encoding="utf-8")
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module("conf_gen.adapter")
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m == "conf_gen" or m.startswith("conf_gen.")]:
            del sys.modules[name]


def test_one_exclusive_folder_per_language_with_the_header(outputs: dict[str, Output]) -> None:
    assert set(outputs) == {LAYOUT.python, LAYOUT.go, LAYOUT.java, LAYOUT.ruby}
    for out in outputs.values():
        assert out.exclusive
        for name, text in out.files.items():
            first = text.splitlines()[0]
            assert HEADER in first, f"{out.directory}/{name}: {first}"
    assert "adapter.py" in outputs[LAYOUT.python].files
    assert "adapter.go" in outputs[LAYOUT.go].files
    assert {"HelloLine.java", "Feature.java", "CallAnswer.java"} <= set(outputs[LAYOUT.java].files)
    assert {"adapter.rb", "all.rb"} <= set(outputs[LAYOUT.ruby].files)


def test_go_is_package_protocol_and_gofmt_clean(outputs: dict[str, Output], tmp_path: Path) -> None:
    for name, text in outputs[LAYOUT.go].files.items():
        assert "\npackage protocol\n" in text, name
        (tmp_path / name).write_text(text)
    unformatted = subprocess.run(
        [find_gofmt(), "-l", str(tmp_path)], capture_output=True, text=True, check=True, timeout=60
    )
    assert unformatted.stdout == ""


def test_java_records_are_in_the_conformance_package(outputs: dict[str, Output]) -> None:
    for name, text in outputs[LAYOUT.java].files.items():
        assert f"package {conformance.JAVA_PACKAGE};" in text, name


def test_python_hello_is_the_protocols_json(python_protocol: ModuleType) -> None:
    p = python_protocol
    hello = p.HelloLine(
        hello=p.Hello(
            protocol=1, sdk="python", sdk_version="1", ops=("call",), features=(p.Feature.EVENTS,)
        )
    )
    line = json.dumps(hello.to_json(), separators=(",", ":"))
    assert line == (
        '{"hello":{"protocol":1,"sdk":"python","sdk_version":"1","ops":["call"],'
        '"features":["events"]}}'
    )


def test_python_requests_decode_strictly(python_protocol: ModuleType) -> None:
    p = python_protocol
    line = {
        "id": 2,
        "op": "call",
        "rpc": "GetSecret",
        "request": {"name": "a"},
        "call_options": {"use_cache": False},
    }
    call = p.CallRequest.from_json(line, strict=True)
    assert call.request == {"name": "a"}
    assert call.call_options_.use_cache is False
    with pytest.raises(ValueError, match=r"\$\.call_options"):
        p.CallRequest.from_json({**line, "call_options": {"retries": 2}}, strict=True)


def test_python_answers_leave_out_unset_fields(python_protocol: ModuleType) -> None:
    p = python_protocol
    answer = p.ErrorAnswer(id=3, ok=False, error=p.Failure(type="Unsupported", message="op 'x'"))
    assert answer.to_json() == {
        "id": 3,
        "ok": False,
        "error": {"type": "Unsupported", "message": "op 'x'"},
    }


def test_a_protocol_with_services_is_refused(protocol: Api) -> None:
    api = load(["secinfra/v1/secrets.proto"], [REPO / "api"])
    with pytest.raises(CodegenError, match="declares no services"):
        conformance.generate(api, LAYOUT)
    assert not protocol.services
