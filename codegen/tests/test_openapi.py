"""The OpenAPI documents (kitchen sink and the real API) are valid OpenAPI 3.1."""

from __future__ import annotations

import json
from typing import Any

import pytest
from codegen_testlib import GOLDEN_LAYOUT, REPO
from openapi_spec_validator import validate

from secinfra_codegen.targets import Output


@pytest.fixture(scope="module")
def doc(kitchen_outputs: list[Output]) -> dict[str, Any]:
    out = next(o for o in kitchen_outputs if o.directory == "docs")
    text = out.files[GOLDEN_LAYOUT.openapi.rsplit("/", 1)[1]]
    result: dict[str, Any] = json.loads(text)
    return result


def test_kitchen_sink_document_validates(doc: dict[str, Any]) -> None:
    validate(doc)
    assert doc["openapi"] == "3.1.0"
    assert next(iter(doc)) == "x-generated"


def test_repo_document_validates() -> None:
    path = REPO / "docs/api/openapi.json"
    if not path.is_file():
        pytest.skip("docs/api/openapi.json not generated yet")
    validate(json.loads(path.read_text(encoding="utf-8")))


def test_operations(doc: dict[str, Any]) -> None:
    get = doc["paths"]["/v1/things/{name}"]["get"]
    assert get["operationId"] == "ThingService_GetThing"
    name = get["parameters"][0]
    assert name["in"] == "path"
    assert name["x-secinfra-multi-segment"] is True
    assert [p["name"] for p in get["parameters"][1:]] == ["version", "fields", "color", "since"]
    assert get["x-secinfra-idempotency"] == "read_only"
    assert get["x-secinfra-cache"] == {"cacheable": True, "resource": "thing", "key_field": "name"}
    assert get["x-secinfra-admin"] is False
    assert get["security"] == [{"mutualTLS": []}]
    assert get["x-secinfra-example"] == {
        "sequence": 1,
        "request": {"name": "a/b", "version": "2", "color": "red", "since": "2026-01-02T03:04:05Z"},
        "response": {"name": "a/b", "tree": "\u2026"},
    }
    assert "x-secinfra-example" not in doc["paths"]["/v1/ping:echo"]["post"]
    envelope = {"$ref": "#/components/schemas/secinfra.kitchensink.v1.ErrorResponse"}
    assert get["responses"]["default"]["content"]["application/json"]["schema"] == envelope
    ping = doc["paths"]["/v1/ping:echo"]["post"]
    assert ping["security"] == []
    body = ping["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/secinfra.kitchensink.v1.PingRequest"}
    put = doc["paths"]["/v1/things/{name}"]["put"]
    props = put["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert list(props) == ["thing", "if_version"]
    assert doc["paths"]["/v1/things/{name}"]["delete"]["x-secinfra-admin"] is True
    assert "mutualTLS" in doc["components"]["securitySchemes"]


def test_schemas(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    color = schemas["secinfra.kitchensink.v1.Color"]
    assert color["enum"] == ["unspecified", "red", "dark_green", "blue"]
    scalars = schemas["secinfra.kitchensink.v1.Scalars"]["properties"]
    assert scalars["int64_value"]["type"] == "string"
    assert scalars["bytes_value"]["contentEncoding"] == "base64"
    container = schemas["secinfra.kitchensink.v1.Container"]["properties"]
    assert container["created_at"]["format"] == "date-time"
    assert container["attributes"]["type"] == "object"
    assert container["names_by_id"]["propertyNames"] == {"pattern": "^-?[0-9]+$"}
    assert container["label"]["x-secinfra-oneof"] == "shape"
    assert "secinfra.kitchensink.v1.Container.Item.Kind" in schemas
    assert "int64" in doc["info"]["description"]
