"""The built-in model, merging user models into it, model ids, model -> DSL
rendering (by round trip) and the extra tuple rules of the built-in types."""

from __future__ import annotations

from typing import Any

import pytest

from secinfra_server.authz import (
    ModelError,
    TupleError,
    TupleKey,
    parse_dsl,
    parse_model,
    render_dsl,
)
from secinfra_server.policy import (
    BUILTIN_DSL,
    BUILTIN_MODEL,
    BUILTIN_MODEL_ID,
    BUILTIN_TYPES,
    merge_user_model,
    model_id,
    validate_builtin_tuple,
    with_current_builtins,
)

USER_DSL = """model
  schema 1.1

type document
  relations
    define owner: [workload]
    define viewer: [workload, group#member, workload:*] or owner
"""

ROUND_TRIP_MODELS = {
    "builtin": BUILTIN_DSL,
    "every-operator": """model
  schema 1.1
type user
type group
  relations
    define member: [user, group#member]
type folder
  relations
    define viewer: [user, user:*]
type document
  relations
    define parent: [folder]
    define owner: [user]
    define blocked: [user, group#member]
    define editor: [user] or owner
    define viewer: ([user, group#member] or editor or viewer from parent) but not blocked
    define auditor: [user] and (editor or owner)
    define nested: (editor or (owner and viewer)) but not (blocked or auditor)
""",
    "types-without-relations": """model
  schema 1.1
type a
type b
  relations
    define r: [a]
type c
""",
}


@pytest.mark.parametrize("name", sorted(ROUND_TRIP_MODELS))
def test_dsl_rendering_round_trips(name: str) -> None:
    model = parse_dsl(ROUND_TRIP_MODELS[name])
    rendered = render_dsl(model)
    assert parse_dsl(rendered) == model
    assert render_dsl(parse_dsl(rendered)) == rendered


def test_json_models_render_to_the_same_model() -> None:
    model = parse_dsl(ROUND_TRIP_MODELS["every-operator"])
    from_json = parse_model(model.to_dict())
    assert parse_dsl(render_dsl(from_json)) == model


def test_builtin_model_types_and_default_id() -> None:
    assert {
        "workload",
        "group",
        "system",
        "folder",
        "secret",
        "registration_entry",
    } == BUILTIN_TYPES
    assert model_id(BUILTIN_MODEL) == BUILTIN_MODEL_ID
    assert len(BUILTIN_MODEL_ID) == 64


def test_merged_model_has_builtin_types_first_then_the_users() -> None:
    merged = merge_user_model(dsl=USER_DSL)
    names = [t.name for t in merged.type_definitions]
    builtin = ["workload", "group", "system", "folder", "secret", "registration_entry"]
    assert names == [*builtin, "document"]
    assert merged.relation("secret", "reader") == BUILTIN_MODEL.relation("secret", "reader")


def test_model_stored_before_a_builtin_type_gets_it_on_load() -> None:
    # A merged model written by an older server: the built-in types of then
    # (no registration_entry) and the user's. Loaded, it decides the server's
    # questions with today's built-in types, and keeps the user's.
    merged: Any = merge_user_model(dsl=USER_DSL).to_dict()
    merged["type_definitions"] = [
        t for t in merged["type_definitions"] if t["type"] != "registration_entry"
    ]
    old = parse_model(merged)
    assert "registration_entry" not in {t.name for t in old.type_definitions}
    loaded = with_current_builtins(old)
    assert loaded == merge_user_model(dsl=USER_DSL)
    assert loaded.relation("registration_entry", "node") is not None


def test_entry_node_tuple_is_managed_by_the_entry_service() -> None:
    key = TupleKey("workload:spiffe://td/node", "node", "registration_entry:" + "a" * 32)
    with pytest.raises(TupleError, match="EntriesService"):
        validate_builtin_tuple(key)


def test_dsl_and_json_of_one_model_get_one_id() -> None:
    from_dsl = merge_user_model(dsl=USER_DSL)
    types: Any = from_dsl.to_dict()["type_definitions"]
    user_json = {
        "schema_version": "1.1",
        "type_definitions": [t for t in types if t["type"] == "document"],
    }
    from_json = merge_user_model(model=user_json)
    assert from_json == from_dsl
    assert model_id(from_json) == model_id(from_dsl)
    assert model_id(merge_user_model(dsl=USER_DSL)) == model_id(from_dsl)
    assert model_id(from_dsl) != BUILTIN_MODEL_ID


@pytest.mark.parametrize("builtin", sorted(BUILTIN_TYPES))
def test_user_types_named_like_builtin_ones_are_rejected(builtin: str) -> None:
    dsl = USER_DSL + f"\ntype {builtin}\n"
    with pytest.raises(ModelError) as raised:
        merge_user_model(dsl=dsl)
    assert f'type "{builtin}"' in str(raised.value)
    assert "built in" in str(raised.value)
    assert raised.value.line == dsl.splitlines().index(f"type {builtin}") + 1
    json_model = {"schema_version": "1.1", "type_definitions": [{"type": builtin}]}
    with pytest.raises(ModelError, match=f'type "{builtin}".*built in'):
        merge_user_model(model=json_model)


def test_dsl_errors_keep_the_users_line_numbers() -> None:
    dsl = "model\n  schema 1.1\ntype doc\n  relations\n    define viewer: [nobody]\n"
    with pytest.raises(ModelError) as raised:
        merge_user_model(dsl=dsl)
    assert raised.value.line == 5
    assert "nobody" in str(raised.value)


@pytest.mark.parametrize(
    "model",
    [
        {"schema_version": "1.0", "type_definitions": [{"type": "doc"}]},
        {"schema_version": "1.1", "type_definitions": "doc"},
        {"schema_version": "1.1"},
    ],
)
def test_malformed_json_models_are_model_errors(model: dict[str, object]) -> None:
    with pytest.raises(ModelError):
        merge_user_model(model=model)


def test_exactly_one_source() -> None:
    with pytest.raises(ModelError, match="exactly one"):
        merge_user_model()
    with pytest.raises(ModelError, match="exactly one"):
        merge_user_model(model={}, dsl=USER_DSL)


ADMIN = "spiffe://td.test/secinfra/admin"


@pytest.mark.parametrize(
    ("user", "relation", "obj", "error"),
    [
        (f"workload:{ADMIN}", "admin", "system:root", None),
        ("group:ops#member", "reader", "folder:payments/db/", None),
        ("workload:spiffe://td.test/app", "writer", "secret:payments/db/password", None),
        ("workload:spiffe://td.test/app", "member", "group:anything-goes", None),
        ("folder:payments/", "parent", "secret:payments/x", "structural"),
        ("system:root", "system", "folder:payments/", "structural"),
        ("workload:app", "reader", "secret:x", "SPIFFE ID"),
        ("workload:spiffe://TD.test/app", "reader", "secret:x", "SPIFFE ID"),
        ("workload:spiffe://td.test/app", "reader", "secret:Payments", "secret name"),
        ("workload:spiffe://td.test/app", "reader", "secret:a//b", "secret name"),
        ("workload:spiffe://td.test/app", "reader", "folder:payments", "ending in"),
        ("workload:spiffe://td.test/app", "reader", "folder:/", "ending in"),
        ("workload:spiffe://td.test/app", "admin", "system:other", "system:root"),
    ],
)
def test_builtin_tuple_rules(user: str, relation: str, obj: str, error: str | None) -> None:
    key = TupleKey(user, relation, obj)
    if error is None:
        validate_builtin_tuple(key)
        return
    with pytest.raises(TupleError, match=error):
        validate_builtin_tuple(key)
