"""Validation errors name the element and say what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from codegen_testlib import REPO

from secinfra_codegen.errors import CodegenError, ValidationError
from secinfra_codegen.pipeline import load

HEAD = """// File.
syntax = "proto3";
package t.v1;
import "secinfra/v1/options.proto";
import "google/protobuf/duration.proto";
"""

GOOD_RPC = """
// Svc.
service S {
  // Get.
  rpc Get(Req) returns (Req) {
    option (secinfra.v1.rpc) = {
      method: "GET" path: "/v1/x/{name}" idempotency: IDEMPOTENCY_READ_ONLY
    };
  }
}
"""

REQ = """
// Req.
message Req {
  // Name.
  string name = 1;
  // Items.
  repeated string items = 2;
}
"""


def _load(tmp_path: Path, body: str) -> None:
    (tmp_path / "t.proto").write_text(HEAD + body, encoding="utf-8")
    load(["t.proto"], [tmp_path, REPO / "api"])


def _problems(tmp_path: Path, body: str) -> str:
    with pytest.raises(ValidationError) as info:
        _load(tmp_path, body)
    return "\n".join(info.value.problems)


def test_valid_file_loads(tmp_path: Path) -> None:
    _load(tmp_path, GOOD_RPC + REQ)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            GOOD_RPC + "message Req {\n  // Name.\n  string name = 1;\n}\n",
            "message t.v1.Req has no comment",
        ),
        (
            GOOD_RPC + "// Req.\nmessage Req {\n  string name = 1;\n}\n",
            "field t.v1.Req.name has no comment",
        ),
        (
            GOOD_RPC.replace("// Get.\n", "") + REQ,
            "RPC t.v1.S.Get has no comment",
        ),
        (
            GOOD_RPC.replace("// Svc.\n", "") + REQ,
            "service t.v1.S has no comment",
        ),
        (
            GOOD_RPC + REQ + "// E.\nenum E {\n  E_UNSPECIFIED = 0;\n}\n",
            "enum value t.v1.E.E_UNSPECIFIED has no comment",
        ),
    ],
)
def test_missing_comment(tmp_path: Path, body: str, expected: str) -> None:
    assert expected in _problems(tmp_path, body)


def _rpc(option: str) -> str:
    return f"""
// Svc.
service S {{
  // Get.
  rpc Get(Req) returns (Req) {{
    {option}
  }}
}}
"""


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("", "RPC t.v1.S.Get: missing option (secinfra.v1.rpc)"),
        (
            'option (secinfra.v1.rpc) = {method: "GET" path: "/v1/x"};',
            "RPC t.v1.S.Get: option idempotency must be set",
        ),
        (
            'option (secinfra.v1.rpc) = {path: "/v1/x" idempotency: IDEMPOTENCY_READ_ONLY};',
            "option method '' must be one of GET, POST, PUT, PATCH, DELETE",
        ),
        (
            'option (secinfra.v1.rpc) = {method: "GET" idempotency: IDEMPOTENCY_READ_ONLY};',
            "option path is empty",
        ),
        (
            'option (secinfra.v1.rpc) = {method: "GET" path: "/v1/x/{nope}" '
            "idempotency: IDEMPOTENCY_READ_ONLY};",
            "path variable {nope} names no field of t.v1.Req",
        ),
        (
            'option (secinfra.v1.rpc) = {method: "GET" path: "/v1/x/{items}" '
            "idempotency: IDEMPOTENCY_READ_ONLY};",
            "path variable {items}: t.v1.Req.items is repeated",
        ),
        (
            'option (secinfra.v1.rpc) = {method: "GET" path: "/v1/x/{name=*}" '
            "idempotency: IDEMPOTENCY_READ_ONLY};",
            "option path '/v1/x/{name=*}'",
        ),
        (
            'option (secinfra.v1.rpc) = {method: "POST" path: "/v1/x" '
            'idempotency: IDEMPOTENCY_IDEMPOTENT cache: {cacheable: true resource: "x"}};',
            "only IDEMPOTENCY_READ_ONLY RPCs may be cacheable",
        ),
        (
            'option (secinfra.v1.rpc) = {method: "POST" path: "/v1/x" '
            'idempotency: IDEMPOTENCY_IDEMPOTENT invalidates: {resource: "x" key_field: "nope"}};',
            "option invalidates.key_field 'nope' names no field of t.v1.Req",
        ),
    ],
)
def test_bad_rpc_option(tmp_path: Path, option: str, expected: str) -> None:
    assert expected in _problems(tmp_path, _rpc(option) + REQ)


def test_message_in_query_string_is_rejected(tmp_path: Path) -> None:
    body = GOOD_RPC + REQ.replace(
        "  repeated string items = 2;", "  repeated string items = 2;\n  // Sub.\n  Req sub = 3;"
    )
    assert "field t.v1.Req.sub would travel in the query string of a GET" in _problems(
        tmp_path, body
    )


def test_unsupported_well_known_type(tmp_path: Path) -> None:
    body = GOOD_RPC.replace("GET", "POST") + REQ.replace(
        "  repeated string items = 2;",
        "  repeated string items = 2;\n  // D.\n  google.protobuf.Duration d = 3;",
    )
    assert "well-known type google.protobuf.Duration is not supported" in _problems(tmp_path, body)


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    body = _rpc("") + "message Req {\n  string name = 1;\n}\n"
    with pytest.raises(ValidationError) as info:
        _load(tmp_path, body)
    assert len(info.value.problems) == 3
    assert "3 problem(s)" in str(info.value)


def test_protoc_errors_are_reported(tmp_path: Path) -> None:
    with pytest.raises(CodegenError, match="protoc failed"):
        _load(tmp_path, "message {")


EXAMPLE_API = """
// Svc.
service S {
  // Put.
  rpc Put(Ex) returns (Ex) {
    option (secinfra.v1.rpc) = {
      method: "POST" path: "/v1/x" idempotency: IDEMPOTENCY_IDEMPOTENT
      example: {request: '%s' response: '{"name": "n\u2026"}'}
    };
  }
}
// Colour.
enum Colour {
  // Not set.
  COLOUR_UNSPECIFIED = 0;
  // Red.
  COLOUR_RED = 1;
}
// Ex.
message Ex {
  // Name.
  string name = 1;
  // Count.
  int32 count = 2;
  // Big.
  int64 big = 3;
  // Flag.
  bool flag = 4;
  // Colour.
  Colour colour = 5;
  // Children.
  map<string, Ex> children = 6;
  // List.
  repeated int32 list = 7;
}
"""


def test_an_example_that_fits_its_messages_loads(tmp_path: Path) -> None:
    request = (
        '{"name": "${Other.name}", "count": 3, "big": "9007199254740993", "flag": true,'
        ' "colour": "red", "children": {"a": {"name": "b\u2026"}}, "list": [1, 2]}'
    )
    (tmp_path / "t.proto").write_text(HEAD + EXAMPLE_API % request, encoding="utf-8")
    api = load(["t.proto"], [tmp_path, REPO / "api"])
    example = api.services[0].methods[0].example
    assert example is not None
    assert example.request["children"] == {"a": {"name": "b\u2026"}}
    assert example.response == {"name": "n\u2026"}


@pytest.mark.parametrize(
    ("request_json", "expected"),
    [
        ('{"name": ', "option example.request is not JSON"),
        ("[]", "request: t.v1.Ex needs a JSON object"),
        ('{"nope": 1}', "request: t.v1.Ex has no field 'nope'"),
        ('{"count": "3"}', "request.count: str does not fit the field's type"),
        ('{"big": 3}', "request.big: int does not fit the field's type"),
        ('{"flag": "true"}', "request.flag: str does not fit the field's type"),
        ('{"colour": "COLOUR_RED"}', "request.colour: 'COLOUR_RED' is not one of unspecified, red"),
        ('{"children": {"a": {"nope": 1}}}', "request.children.a: t.v1.Ex has no field 'nope'"),
        ('{"list": 1}', "request.list: a repeated field needs a JSON array"),
        ('{"list": [1, "2"]}', "request.list.1: str does not fit the field's type"),
    ],
)
def test_an_example_that_does_not_fit_is_rejected(
    tmp_path: Path, request_json: str, expected: str
) -> None:
    problems = _problems(tmp_path, EXAMPLE_API % request_json)
    assert "RPC t.v1.S.Put: option example." in problems
    assert expected in problems
