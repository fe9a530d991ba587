"""The OpenFGA DSL: parsing, errors with line numbers, DSL <-> JSON round trip."""

from __future__ import annotations

import json

import pytest

from secinfra_server.authz import (
    ComputedUserset,
    Difference,
    Intersection,
    ModelError,
    RelationReference,
    This,
    TupleToUserset,
    Union,
    parse_dsl,
    parse_model,
)

HEADER = "model\n  schema 1.1\n"
cu = ComputedUserset

BRIEF_DSL = """model
  schema 1.1
type user
type group
  relations
    define member: [user]
type folder
  relations
    define viewer: [user]
type document
  relations
    define viewer: [user, group#member, user:*] or editor
    define editor: [user]
    define blocked: [user]
    define can_view: viewer but not blocked
    define parent: [folder]
    define inherited: viewer from parent
"""


def test_parses_the_documented_example() -> None:
    model = parse_dsl(BRIEF_DSL)
    viewer = model.relation("document", "viewer")
    assert viewer is not None
    assert viewer.rewrite == Union((This(), ComputedUserset("editor")))
    assert viewer.directly_related_user_types == (
        RelationReference("user"),
        RelationReference("group", "member"),
        RelationReference("user", wildcard=True),
    )
    can_view = model.relation("document", "can_view")
    inherited = model.relation("document", "inherited")
    assert can_view is not None
    assert inherited is not None
    assert can_view.rewrite == Difference(ComputedUserset("viewer"), ComputedUserset("blocked"))
    assert inherited.rewrite == TupleToUserset("parent", "viewer")
    assert inherited.directly_related_user_types == ()
    user = model.type("user")
    assert user is not None
    assert user.relations == ()


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("a", cu("a")),
        ("a or b or c", Union((cu("a"), cu("b"), cu("c")))),
        ("a and b", Intersection((cu("a"), cu("b")))),
        ("(a or b) and c", Intersection((Union((cu("a"), cu("b"))), cu("c")))),
        ("a but not (b or c)", Difference(cu("a"), Union((cu("b"), cu("c"))))),
        ("a but not c from p", Difference(cu("a"), TupleToUserset("p", "c"))),
        ("((a))", cu("a")),
        (
            "(a and (b or c from p)) but not b",
            Difference(
                Intersection((cu("a"), Union((cu("b"), TupleToUserset("p", "c"))))), cu("b")
            ),
        ),
    ],
)
def test_expressions_nest(expression: str, expected: object) -> None:
    model = parse_dsl(
        HEADER
        + "type user\ntype folder\n  relations\n    define c: [user]\n"
        + "type doc\n  relations\n"
        + "    define a: [user]\n    define b: [user]\n    define c: [user]\n"
        + "    define p: [folder]\n"
        + f"    define x: {expression}\n"
    )
    x = model.relation("doc", "x")
    assert x is not None
    assert x.rewrite == expected


def test_comments_blank_lines_and_multi_line_expressions() -> None:
    model = parse_dsl(
        """# a comment before the header
model
  schema 1.1   # trailing comment

type user  # people
type doc
  relations
    # comment inside relations
    define a: [user]
    define b: [user]
    define x: (
      a or   # first
      b
    ) but not a
"""
    )
    x = model.relation("doc", "x")
    assert x is not None
    assert x.rewrite == Difference(
        Union((ComputedUserset("a"), ComputedUserset("b"))), ComputedUserset("a")
    )


def test_dsl_to_json_to_model_equals_dsl_to_model_for_the_documented_example() -> None:
    from_dsl = parse_dsl(BRIEF_DSL)
    as_json = json.loads(json.dumps(from_dsl.to_dict()))
    assert parse_model(as_json) == from_dsl


@pytest.mark.parametrize("world", ["ops", "drive", "github", "secrets", "cycles"])
def test_dsl_to_json_to_model_equals_dsl_to_model(
    request: pytest.FixtureRequest, world: str
) -> None:
    from_dsl = request.getfixturevalue(world).model
    as_json = json.loads(json.dumps(from_dsl.to_dict()))
    assert parse_model(as_json) == from_dsl
    assert parse_model(as_json).to_dict() == as_json


def test_dsl_renders_to_the_openfga_json_shape() -> None:
    rendered = parse_dsl(BRIEF_DSL).to_dict()
    document = rendered["type_definitions"][3]  # type: ignore[index]
    assert document == {
        "type": "document",
        "relations": {
            "viewer": {
                "union": {
                    "child": [
                        {"this": {}},
                        {"computedUserset": {"object": "", "relation": "editor"}},
                    ]
                }
            },
            "editor": {"this": {}},
            "blocked": {"this": {}},
            "can_view": {
                "difference": {
                    "base": {"computedUserset": {"object": "", "relation": "viewer"}},
                    "subtract": {"computedUserset": {"object": "", "relation": "blocked"}},
                }
            },
            "parent": {"this": {}},
            "inherited": {
                "tupleToUserset": {
                    "tupleset": {"object": "", "relation": "parent"},
                    "computedUserset": {"object": "", "relation": "viewer"},
                }
            },
        },
        "metadata": {
            "relations": {
                "viewer": {
                    "directly_related_user_types": [
                        {"type": "user"},
                        {"type": "group", "relation": "member"},
                        {"type": "user", "wildcard": {}},
                    ]
                },
                "editor": {"directly_related_user_types": [{"type": "user"}]},
                "blocked": {"directly_related_user_types": [{"type": "user"}]},
                "can_view": {"directly_related_user_types": []},
                "parent": {"directly_related_user_types": [{"type": "folder"}]},
                "inherited": {"directly_related_user_types": []},
            }
        },
    }


TYPES = "type user\ntype doc\n  relations\n    define a: [user]\n"  # lines 3-6


def after_types(*lines: str) -> str:
    """A valid header and types (lines 1-6), then ``lines`` from line 7 on."""
    return HEADER + TYPES + "".join(f"{line}\n" for line in lines)


# (name, dsl, line, fragment)
ERROR_CASES = [
    ("empty", "", 1, "expected 'model'"),
    ("no-header", "type user\n", 1, "expected 'model' as the first statement"),
    ("no-schema", "model\ntype user\n", 2, "expected 'schema 1.1'"),
    ("schema-1.0", "model\n  schema 1.0\ntype user\n", 2, "schema version must be 1.1, got 1.0"),
    ("bad-character", after_types("define b: a & a"), 7, "unexpected character '&'"),
    ("mixed-operators", after_types("define b: a or a and a"), 7, "cannot mix 'or' and 'and'"),
    ("chained-but-not", after_types("define b: a but not a but not a"), 7, "two operands"),
    ("but-without-not", after_types("define b: a but a"), 7, "expected 'not' after 'but'"),
    ("trailing-token", after_types("define b: [user] a"), 7, "unexpected 'a'"),
    ("empty-definition", after_types("define b:"), 7, "expected a relation, '[' or '('"),
    ("missing-colon", after_types("define b [user]"), 7, "expected 'define <relation>: "),
    ("keyword-as-relation", after_types("define b: or"), 7, "or '(', got 'or'"),
    ("from-without-relation", after_types("define b: a from"), 7, "a relation after 'from'"),
    ("two-type-restrictions", after_types("define b: [user] or [user]"), 7, "only once"),
    ("unclosed-bracket", after_types("define b: [user, "), 7, "unclosed"),
    ("unclosed-paren-across-lines", after_types("define b: (a or", " a"), 7, "unclosed"),
    ("unclosed-then-next-define", after_types("define b: (a or", "define c: a"), 7, "unclosed"),
    ("missing-close-paren", after_types("define b: (a or a]"), 7, "expected ')'"),
    ("wildcard-without-star", after_types("define b: [user:]"), 7, "expected '*'"),
    (
        "condition-undefined",
        after_types("define b: [user with ok]"),
        7,
        "names undefined condition",
    ),
    ("condition-unclosed", after_types("condition ok(x: bool) {"), 7, "no closing '}'"),
    ("condition-type-error", after_types("condition ok(x: int) { x == 'a' }"), 7, "no matching"),
    ("condition-not-bool", after_types("condition ok(x: int) { x + 1 }"), 7, "must yield bool"),
    ("condition-bad-type", after_types("condition ok(x: float) { true }"), 7, "parameter type"),
    ("condition-no-params", after_types("condition ok() { true }"), 7, "<param>: <type>"),
    ("module", "module secrets\n", 1, "expected 'model'"),
    ("extend", after_types("extend type doc"), 7, "modular models"),
    ("define-outside-relations", HEADER + "type user\n define a: [user]\n", 4, "'relations' block"),
    ("relations-twice", after_types("relations"), 7, "must follow a 'type' line, once"),
    ("relations-before-type", HEADER + "relations\n", 3, "must follow a 'type' line"),
    ("unknown-statement", after_types("permissions"), 7, "unexpected 'permissions'"),
    ("type-without-name", HEADER + "type\n", 3, "expected 'type <name>'"),
    (
        "duplicate-type",
        after_types("type user"),
        7,
        'type "user": type is already defined on line 3',
    ),
    ("duplicate-relation", after_types("define a: [user]"), 7, "already defined on line 6"),
    (
        "undefined-computed",
        after_types("define b: [user]", "define c: b or z"),
        8,
        'type "doc" relation "c": computed relation "z" is not defined',
    ),
    ("undefined-type-in-restriction", after_types("define b: [robot]"), 7, 'type "robot"'),
    ("bad-type-name", HEADER + "type user\ntype 9doc\n", 4, 'type "9doc": bad type name'),
    (
        "tupleset-not-direct",
        after_types("define p: a", "define q: a from p"),
        8,
        'tupleset relation "p" must be a direct relation',
    ),
]


@pytest.mark.parametrize(
    ("dsl", "line", "fragment"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
def test_dsl_errors_carry_line_numbers(dsl: str, line: int, fragment: str) -> None:
    with pytest.raises(ModelError) as info:
        parse_dsl(dsl)
    assert info.value.line == line
    assert str(info.value).startswith(f"secinfra: authz: model: line {line}: ")
    assert fragment in str(info.value)


def test_semantic_errors_from_the_dsl_name_type_relation_and_line() -> None:
    dsl = after_types("define b: [user]", "define c: b or z")
    with pytest.raises(ModelError) as info:
        parse_dsl(dsl)
    assert (info.value.type_name, info.value.relation, info.value.line) == ("doc", "c", 8)
    assert str(info.value) == (
        'secinfra: authz: model: line 8: type "doc" relation "c": '
        'computed relation "z" is not defined'
    )
    assert isinstance(info.value.__cause__, ModelError)
