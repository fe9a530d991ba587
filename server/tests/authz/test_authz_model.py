"""The JSON authorization model: parsing, typed result, validation errors."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from secinfra_server.authz import (
    INVALID_ARGUMENT,
    AuthorizationModel,
    AuthzError,
    ComputedUserset,
    Difference,
    Intersection,
    ModelError,
    RelationReference,
    This,
    TupleToUserset,
    TypeDefinition,
    Union,
    parse_model,
)


def base_model() -> dict[str, Any]:
    """A valid OpenFGA JSON model; error cases mutate a copy of it."""
    return {
        "schema_version": "1.1",
        "type_definitions": [
            {"type": "user"},
            {
                "type": "group",
                "relations": {"member": {"this": {}}},
                "metadata": {
                    "relations": {"member": {"directly_related_user_types": [{"type": "user"}]}}
                },
            },
            {
                "type": "folder",
                "relations": {"viewer": {"this": {}}},
                "metadata": {
                    "relations": {"viewer": {"directly_related_user_types": [{"type": "user"}]}}
                },
            },
            {
                "type": "document",
                "relations": {
                    "parent": {"this": {}},
                    "editor": {"this": {}},
                    "viewer": {
                        "union": {
                            "child": [
                                {"this": {}},
                                {"computedUserset": {"object": "", "relation": "editor"}},
                                {
                                    "tupleToUserset": {
                                        "tupleset": {"object": "", "relation": "parent"},
                                        "computedUserset": {"object": "", "relation": "viewer"},
                                    }
                                },
                            ]
                        }
                    },
                    "can_view": {
                        "difference": {
                            "base": {"computedUserset": {"relation": "viewer"}},
                            "subtract": {
                                "intersection": {
                                    "child": [
                                        {"computedUserset": {"relation": "editor"}},
                                        {"computedUserset": {"relation": "viewer"}},
                                    ]
                                }
                            },
                        }
                    },
                },
                "metadata": {
                    "relations": {
                        "parent": {"directly_related_user_types": [{"type": "folder"}]},
                        "editor": {"directly_related_user_types": [{"type": "user"}]},
                        "viewer": {
                            "directly_related_user_types": [
                                {"type": "user"},
                                {"type": "group", "relation": "member"},
                                {"type": "user", "wildcard": {}},
                            ]
                        },
                        "can_view": {"directly_related_user_types": []},
                    }
                },
            },
        ],
    }


def doc(model: dict[str, Any]) -> dict[str, Any]:
    types: list[dict[str, Any]] = model["type_definitions"]
    return types[3]


def test_parses_into_typed_frozen_dataclasses() -> None:
    model = parse_model(base_model())
    assert [t.name for t in model.type_definitions] == ["user", "group", "folder", "document"]
    viewer = model.relation("document", "viewer")
    assert viewer is not None
    assert viewer.rewrite == Union(
        (This(), ComputedUserset("editor"), TupleToUserset("parent", "viewer"))
    )
    assert viewer.directly_related_user_types == (
        RelationReference("user"),
        RelationReference("group", "member"),
        RelationReference("user", wildcard=True),
    )
    can_view = model.relation("document", "can_view")
    assert can_view is not None
    assert can_view.rewrite == Difference(
        ComputedUserset("viewer"),
        Intersection((ComputedUserset("editor"), ComputedUserset("viewer"))),
    )
    assert model.relation("document", "nope") is None
    assert model.type("user") == TypeDefinition("user")
    with pytest.raises(AttributeError):
        model.schema_version = "1.2"  # type: ignore[misc]


def test_to_dict_is_openfga_json_and_parses_back_equal() -> None:
    model = parse_model(base_model())
    rendered = json.loads(json.dumps(model.to_dict()))
    assert rendered["schema_version"] == "1.1"
    assert rendered["type_definitions"][0] == {"type": "user", "relations": {}, "metadata": None}
    assert doc(rendered)["relations"]["viewer"]["union"]["child"][1] == {
        "computedUserset": {"object": "", "relation": "editor"}
    }
    assert doc(rendered)["metadata"]["relations"]["viewer"]["directly_related_user_types"] == [
        {"type": "user"},
        {"type": "group", "relation": "member"},
        {"type": "user", "wildcard": {}},
    ]
    assert parse_model(rendered) == model


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(model: dict[str, Any]) -> None:
        target: Any = model
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return mutate


def _delete(path: list[Any]) -> Callable[[dict[str, Any]], None]:
    def mutate(model: dict[str, Any]) -> None:
        target: Any = model
        for step in path[:-1]:
            target = target[step]
        del target[path[-1]]

    return mutate


DOC = ["type_definitions", 3]
DOC_REL = [*DOC, "relations"]
DOC_META = [*DOC, "metadata", "relations"]

# (name, mutation, type at fault, relation at fault, message fragment)
ERROR_CASES = [
    ("schema-1.0", _set(["schema_version"], "1.0"), None, None, 'schema_version must be "1.1"'),
    ("no-types", _set(["type_definitions"], []), None, None, "type_definitions must be"),
    (
        "condition-undeclared-variable",
        _set(["conditions"], {"ip": {"name": "ip", "expression": "x"}}),
        None,
        None,
        "undeclared reference to 'x'",
    ),
    (
        "duplicate-type",
        _set(["type_definitions", 2], {"type": "user"}),
        "user",
        None,
        "type is defined more than once",
    ),
    ("bad-type-name", _set([*DOC, "type"], "my doc"), "my doc", None, "bad type name"),
    (
        "bad-relation-name",
        _set([*DOC_REL, "can:view"], {"computedUserset": {"relation": "viewer"}}),
        "document",
        "can:view",
        "bad relation name",
    ),
    (
        "reserved-relation-name",
        _set([*DOC_REL, "self"], {"computedUserset": {"relation": "viewer"}}),
        "document",
        "self",
        "relation name is reserved",
    ),
    (
        "computed-undefined",
        _set([*DOC_REL, "can_view", "difference", "base"], {"computedUserset": {"relation": "x"}}),
        "document",
        "can_view",
        'computed relation "x" is not defined',
    ),
    (
        "computed-with-object",
        _set([*DOC_REL, "can_view"], {"computedUserset": {"object": "doc:1", "relation": "x"}}),
        "document",
        "can_view",
        "object is not supported",
    ),
    (
        "tupleset-undefined",
        _set(
            [*DOC_REL, "viewer", "union", "child", 2, "tupleToUserset", "tupleset", "relation"],
            "folder",
        ),
        "document",
        "viewer",
        'tupleset relation "folder" is not defined',
    ),
    (
        "tupleset-not-direct",
        _set([*DOC_REL, "parent"], {"union": {"child": [{"this": {}}, {"this": {}}]}}),
        "document",
        "viewer",
        'tupleset relation "parent" must be a direct relation',
    ),
    (
        "tupleset-with-userset-type",
        _set(
            [*DOC_META, "parent", "directly_related_user_types"],
            [{"type": "group", "relation": "member"}],
        ),
        "document",
        "viewer",
        'tupleset relation "parent" may only relate plain types, not "group#member"',
    ),
    (
        "ttu-computed-undefined-on-parent",
        _set(
            [*DOC_REL, "viewer", "union", "child", 2, "tupleToUserset", "computedUserset"],
            {"relation": "owner"},
        ),
        "document",
        "viewer",
        'computed relation "owner" (from "parent") is not defined on any of the types',
    ),
    (
        "this-without-metadata",
        _delete([*DOC_META, "editor"]),
        "document",
        "editor",
        "needs at least one directly related user type",
    ),
    (
        "metadata-null",
        _set([*DOC, "metadata"], None),
        "document",
        "parent",
        "needs at least one directly related user type",
    ),
    (
        "types-without-this",
        _set([*DOC_META, "can_view", "directly_related_user_types"], [{"type": "user"}]),
        "document",
        "can_view",
        "has directly related user types but no direct assignment",
    ),
    (
        "related-type-undefined",
        _set([*DOC_META, "editor", "directly_related_user_types"], [{"type": "robot"}]),
        "document",
        "editor",
        'names undefined type "robot"',
    ),
    (
        "related-relation-undefined",
        _set(
            [*DOC_META, "editor", "directly_related_user_types"],
            [{"type": "group", "relation": "owner"}],
        ),
        "document",
        "editor",
        'names undefined relation "owner" on type "group"',
    ),
    (
        "related-type-listed-twice",
        _set(
            [*DOC_META, "editor", "directly_related_user_types"],
            [{"type": "user"}, {"type": "user"}],
        ),
        "document",
        "editor",
        'directly related user type "user" is listed more than once',
    ),
    (
        "related-type-condition",
        _set(
            [*DOC_META, "editor", "directly_related_user_types"],
            [{"type": "user", "condition": "in_office"}],
        ),
        "document",
        "editor",
        'directly related user type "user with in_office" names undefined condition',
    ),
    (
        "related-type-userset-and-wildcard",
        _set(
            [*DOC_META, "editor", "directly_related_user_types"],
            [{"type": "group", "relation": "member", "wildcard": {}}],
        ),
        "document",
        "editor",
        "cannot be both userset and wildcard",
    ),
    (
        "metadata-for-undefined-relation",
        _set([*DOC_META, "owner"], {"directly_related_user_types": [{"type": "user"}]}),
        "document",
        "owner",
        "metadata is given for a relation that is not defined",
    ),
    (
        "unknown-rewrite",
        _set([*DOC_REL, "editor"], {"exclusion": {}}),
        "document",
        "editor",
        "unknown userset rewrite 'exclusion'",
    ),
    (
        "two-rewrites",
        _set([*DOC_REL, "editor"], {"this": {}, "computedUserset": {"relation": "viewer"}}),
        "document",
        "editor",
        "needs exactly one of",
    ),
    (
        "union-one-child",
        _set([*DOC_REL, "viewer"], {"union": {"child": [{"this": {}}]}}),
        "document",
        "viewer",
        "union needs a child list of at least two",
    ),
    (
        "difference-without-subtract",
        _set([*DOC_REL, "can_view"], {"difference": {"base": {"this": {}}}}),
        "document",
        "can_view",
        "difference needs both base and subtract",
    ),
    (
        "no-entrypoint",
        _set([*DOC_REL, "can_view"], {"computedUserset": {"relation": "can_view"}}),
        "document",
        "can_view",
        "no entrypoint",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "type_name", "relation", "fragment"),
    [c[1:] for c in ERROR_CASES],
    ids=[c[0] for c in ERROR_CASES],
)
def test_model_errors_name_the_type_and_relation(
    mutate: Callable[[dict[str, Any]], None],
    type_name: str | None,
    relation: str | None,
    fragment: str,
) -> None:
    raw = copy.deepcopy(base_model())
    mutate(raw)
    with pytest.raises(ModelError) as info:
        parse_model(raw)
    err = info.value
    assert isinstance(err, AuthzError)
    assert err.code == INVALID_ARGUMENT
    assert (err.type_name, err.relation) == (type_name, relation)
    assert fragment in str(err)
    subject = "".join(
        [
            f'type "{type_name}" ' if type_name else "",
            f'relation "{relation}"' if relation else "",
        ]
    ).strip()
    assert str(err).startswith(f"secinfra: authz: model: {subject}")


def test_the_message_reads_as_documented() -> None:
    raw = base_model()
    raw["type_definitions"][3]["relations"]["viewer"] = {"computedUserset": {"relation": "owner"}}
    raw["type_definitions"][3]["metadata"]["relations"]["viewer"] = {}
    with pytest.raises(ModelError) as info:
        parse_model(raw)
    assert str(info.value) == (
        'secinfra: authz: model: type "document" relation "viewer": '
        'computed relation "owner" is not defined'
    )


def test_mutual_recursion_without_a_way_in_has_no_entrypoint() -> None:
    raw = base_model()
    raw["type_definitions"][3]["relations"]["a"] = {"computedUserset": {"relation": "b"}}
    raw["type_definitions"][3]["relations"]["b"] = {"computedUserset": {"relation": "a"}}
    with pytest.raises(ModelError, match='relation "a": no entrypoint'):
        parse_model(raw)


@pytest.mark.parametrize(
    "raw",
    [[], "model", {"schema_version": "1.1", "type_definitions": [{"type": 3}]}],
    ids=["list", "string", "type-not-a-string"],
)
def test_malformed_json_shapes_are_model_errors(raw: Any) -> None:
    with pytest.raises(ModelError, match=r"^secinfra: authz: model: "):
        parse_model(raw)


def test_constructing_a_model_directly_validates_it() -> None:
    with pytest.raises(ModelError, match='type "user": type is defined more than once'):
        AuthorizationModel((TypeDefinition("user"), TypeDefinition("user")))
