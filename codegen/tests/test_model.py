"""The front end: comments, the path/query/body split, wire names, path templates."""

from __future__ import annotations

import pytest

from secinfra_codegen import model as m
from secinfra_codegen.loader import clean_comment, parse_path
from secinfra_codegen.naming import enum_wire_name, snake, upper_snake

PKG = "secinfra.kitchensink.v1"


def test_comments_are_attached_to_every_element(kitchen_api: m.Api) -> None:
    scalars = kitchen_api.message(f"{PKG}.Scalars")
    assert scalars.comment.startswith("Every scalar type, once singular")
    assert '"""' in scalars.comment
    assert "*/" in scalars.comment
    assert "🔐" in scalars.comment
    assert scalars.field("int64_value").comment == (
        "A 64-bit signed integer: a JSON string on the wire."
    )
    container = kitchen_api.message(f"{PKG}.Container")
    assert container.oneofs[0].comment == "One of several shapes; at most one is set."
    kind = kitchen_api.enum(f"{PKG}.Container.Item.Kind")
    assert kind.values[1].comment == "A small item."
    (thing_service, ping_service) = kitchen_api.services
    assert ping_service.comment == "A second service, without authentication."
    assert thing_service.methods[0].comment == "Read one thing by name; names may contain '/'."


def test_nested_messages_are_flattened_with_qualified_names(kitchen_api: m.Api) -> None:
    item = kitchen_api.message(f"{PKG}.Container.Item")
    assert item.qualified_name == "Container.Item"
    assert kitchen_api.enum(f"{PKG}.Container.Item.Kind").qualified_name == "Container.Item.Kind"
    names = [msg.qualified_name for msg in kitchen_api.messages]
    assert names.index("Container") < names.index("Container.Item")


def test_field_shapes(kitchen_api: m.Api) -> None:
    scalars = kitchen_api.message(f"{PKG}.Scalars")
    assert scalars.field("maybe_int64").optional
    assert scalars.field("maybe_int64").nullable
    assert not scalars.field("int64_value").nullable
    assert scalars.field("fixed64_value").type.is_64bit
    container = kitchen_api.message(f"{PKG}.Container")
    by_id = container.field("names_by_id")
    assert by_id.is_map
    assert by_id.map_key == m.TypeRef(m.Kind.SCALAR, scalar="int32")
    assert container.field("created_at").type.kind is m.Kind.TIMESTAMP
    assert container.field("attributes").type.kind is m.Kind.STRUCT
    assert container.field("label").oneof == "shape"
    assert container.field("tags").is_list
    assert [o.fields for o in container.oneofs] == [("radius", "square", "label")]
    node = kitchen_api.message(f"{PKG}.Node")
    assert node.field("parent").type.ref == f"{PKG}.Node"
    assert all(f.json_name == f.name for f in kitchen_api.message(f"{PKG}.Keywords").fields)


@pytest.mark.parametrize(
    ("rpc", "http_method", "path_params", "query", "body"),
    [
        ("GetThing", "GET", ("name",), ("version", "fields", "color", "since"), ()),
        ("PutThing", "PUT", ("name",), (), ("thing", "if_version")),
        ("DeleteThing", "DELETE", ("name",), ("purge",), ()),
        ("ListThings", "GET", (), ("prefix", "page_size", "page_token"), ()),
        ("TouchThing", "POST", ("shard", "name"), (), ()),
        ("Ping", "POST", (), (), ("payload", "class")),
        ("Time", "GET", ("payload",), ("class",), ()),
    ],
)
def test_path_query_body_split(
    kitchen_api: m.Api,
    rpc: str,
    http_method: str,
    path_params: tuple[str, ...],
    query: tuple[str, ...],
    body: tuple[str, ...],
) -> None:
    method = next(mm for s in kitchen_api.services for mm in s.methods if mm.name == rpc)
    assert method.http_method == http_method
    assert method.path_params == path_params
    assert method.query_params == query
    assert method.body_fields == body


def test_rpc_options(kitchen_api: m.Api) -> None:
    methods = {mm.name: mm for s in kitchen_api.services for mm in s.methods}
    assert methods["GetThing"].cache == m.CachePolicy(True, "thing", "name")
    assert methods["PutThing"].invalidates == m.Invalidation("thing", "name")
    assert methods["DeleteThing"].admin
    assert methods["Ping"].auth is m.Auth.NONE
    assert methods["GetThing"].auth is m.Auth.MTLS  # unset means mTLS
    assert methods["TouchThing"].path.verb == "touch"
    assert methods["TouchThing"].snake_name == "touch_thing"
    assert {mm.idempotency for mm in methods.values()} == set(m.Idempotency)


@pytest.mark.parametrize(
    ("enum", "value", "wire"),
    [
        ("ErrorCode", "ERROR_CODE_PERMISSION_DENIED", "permission_denied"),
        ("Consistency", "CONSISTENCY_MINIMIZE_LATENCY", "minimize_latency"),
        ("Color", "BLUE", "blue"),
        ("HTTPMethod", "HTTP_METHOD_GET", "get"),
        ("Color", "COLOR_", "color_"),
    ],
)
def test_enum_wire_names(enum: str, value: str, wire: str) -> None:
    assert enum_wire_name(enum, value) == wire


def test_kitchen_enum_wire_names(kitchen_api: m.Api) -> None:
    color = kitchen_api.enum(f"{PKG}.Color")
    assert [v.wire_name for v in color.values] == ["unspecified", "red", "dark_green", "blue"]
    assert color.zero.name == "COLOR_UNSPECIFIED"


@pytest.mark.parametrize(
    ("name", "upper", "lower"),
    [
        ("GetSecret", "GET_SECRET", "get_secret"),
        ("HTTPMethod", "HTTP_METHOD", "http_method"),
        ("GetCrl", "GET_CRL", "get_crl"),
    ],
)
def test_case_conversions(name: str, upper: str, lower: str) -> None:
    assert upper_snake(name) == upper
    assert snake(name) == lower


def test_clean_comment_dedents_and_strips_doc_stars() -> None:
    assert clean_comment(" First line.\n   indented\n") == "First line.\n  indented"
    assert clean_comment("* block\n comment ") == "block\ncomment"


@pytest.mark.parametrize(
    ("template", "variables", "verb"),
    [
        ("/v1/things", (), ""),
        ("/v1/things/{name=**}", (m.PathVariable("name", True),), ""),
        ("/v1/secrets/{name=**}:metadata", (m.PathVariable("name", True),), "metadata"),
        (
            "/v1/shards/{shard}/things/{name}",
            (m.PathVariable("shard", False), m.PathVariable("name", False)),
            "",
        ),
        ("/v1/authz:batch-check", (), "batch-check"),
    ],
)
def test_parse_path(template: str, variables: tuple[m.PathVariable, ...], verb: str) -> None:
    parsed = parse_path(template)
    assert parsed.variables == variables
    assert parsed.verb == verb


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ("v1/things", "must start with '/'"),
        ("/v1/things/", "must not end with '/'"),
        ("/v1/things/x{name}", "whole segment"),
        ("/v1/things/{name=*}", "variables must be"),
        ("/v1/{a}/{a}", "appears twice"),
        ("/v1/{a=**}/{b=**}", "at most one"),
        ("/v1/a:b/c", "':verb' must end the path"),
        ("/v1/a b", "bad path segment"),
    ],
)
def test_parse_path_errors(template: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_path(template)
