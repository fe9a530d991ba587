"""Nesting bounds of the model and DSL parsers: deep rewrites are a ModelError
that names the limit, never a RecursionError."""

from __future__ import annotations

from typing import Any

import pytest

from secinfra_server.authz import (
    AuthorizationModel,
    ComputedUserset,
    ModelError,
    Relation,
    Rewrite,
    TypeDefinition,
    Union,
    parse_dsl,
    parse_model,
)

LIMIT = 16  # authz._model.MAX_REWRITE_DEPTH
HEADER = "model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define a: [user]\n"


def _json_model(depth: int) -> dict[str, Any]:
    """A model whose relation ``b`` nests unions ``depth`` levels (leaves included)."""
    rewrite: dict[str, Any] = {"computedUserset": {"object": "", "relation": "a"}}
    for _ in range(depth - 1):
        rewrite = {"union": {"child": [rewrite, {"computedUserset": {"relation": "a"}}]}}
    return {
        "schema_version": "1.1",
        "type_definitions": [
            {"type": "user"},
            {
                "type": "doc",
                "relations": {"a": {"this": {}}, "b": rewrite},
                "metadata": {
                    "relations": {"a": {"directly_related_user_types": [{"type": "user"}]}}
                },
            },
        ],
    }


def _dsl(parentheses: int) -> str:
    expression = "a"
    for _ in range(parentheses):
        expression = f"a or ({expression})"
    return HEADER + f"    define b: {expression}\n"


def test_json_rewrites_at_the_limit_parse() -> None:
    parse_model(_json_model(LIMIT))


@pytest.mark.parametrize("depth", [LIMIT + 1, 990, 5000])
def test_json_rewrites_past_the_limit_are_a_model_error(depth: int) -> None:
    with pytest.raises(ModelError, match=f"limit of {LIMIT} levels"):
        parse_model(_json_model(depth))


def test_dsl_parentheses_within_the_limit_parse() -> None:
    # "a or (a or (... (a)))": one union per parenthesis, then the leaf.
    model = parse_dsl(_dsl(LIMIT - 1))
    assert model.relation("doc", "b") is not None


@pytest.mark.parametrize("parentheses", [LIMIT, LIMIT + 1, 990, 5000])
def test_dsl_past_the_limit_is_a_model_error(parentheses: int) -> None:
    with pytest.raises(ModelError, match=f"limit of {LIMIT} levels"):
        parse_dsl(_dsl(parentheses))


def test_redundant_dsl_parentheses_past_the_limit_are_refused_before_recursing() -> None:
    with pytest.raises(ModelError, match="parentheses nest deeper than the limit"):
        parse_dsl(HEADER + "    define b: " + "(" * 5000 + "a" + ")" * 5000 + "\n")


def test_a_model_built_in_code_is_measured_without_recursion() -> None:
    rewrite: Rewrite = ComputedUserset("a")
    for _ in range(5000):
        rewrite = Union((rewrite, ComputedUserset("a")))
    doc = TypeDefinition("doc", (Relation("a", ComputedUserset("b")), Relation("b", rewrite)))
    with pytest.raises(ModelError, match=f"limit of {LIMIT} levels"):
        AuthorizationModel((doc,))
