"""OpenFGA's condition semantics, as our own table-driven cases.

Each case cites where upstream (github.com/openfga/openfga) states the
behaviour it restates:

- ``eval``: ``internal/condition/eval/eval.go`` ``EvaluateTupleCondition``: the
  request context and the tuple's context merge, the tuple's value winning
  (the tuple's fields are copied over the request's); any missing parameter is
  an evaluation error;
- ``condition``: ``internal/condition/condition.go``: ``Compile`` type-checks
  the expression against the declared parameters and requires a ``bool``
  result; ``CastContextToTypedParameters`` ignores request keys that are not
  parameters and fails on a value that does not convert;
- ``converters``: ``internal/condition/types/converters.go``: numbers from JSON
  numbers or numeric strings, ``int`` must be integral, ``uint`` non-negative,
  ``duration`` in Go syntax, ``timestamp`` RFC 3339, ``ipaddress`` well formed;
- ``list_objects``: ``pkg/server/commands/list_objects.go``: a candidate whose
  condition fails to evaluate is dropped, and the error is returned only when
  fewer than the page's results were found;
- ``list_users``: ``pkg/server/commands/listusers/list_users_rpc.go``: an
  evaluation error fails the call.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from secinfra_server.authz import (
    ConditionError,
    ConditionTooComplex,
    ContextualReader,
    InMemoryTupleStore,
    ModelError,
    TupleCondition,
    TupleError,
    TupleKey,
    check,
    expand,
    list_objects,
    list_users,
    parse_dsl,
    validate_tuple,
)

MODEL = parse_dsl(
    """
model
  schema 1.1
type user
type group
  relations
    define member: [user, user with in_network]
type document
  relations
    define viewer: [user with fresh, group#member, user:* with in_network]
    define banned: [user with flagged]
    define can_read: viewer but not banned

condition fresh(now: timestamp, granted: timestamp, ttl: duration) {
  now < granted + ttl
}
condition in_network(ip: ipaddress, cidrs: list<string>) {
  cidrs.exists(c, ip.in_cidr(c))
}
condition flagged(flags: map<bool>, who: string) {
  who in flags && flags[who]
}
condition loops(xs: list<int>) {
  xs.all(a, xs.all(b, xs.all(c, a + b + c >= 0)))
}
"""
)

GRANT = TupleCondition("fresh", {"granted": "2026-01-01T00:00:00Z", "ttl": "1h"})
OFFICE = TupleCondition("in_network", {"cidrs": ["10.0.0.0/8"]})
TUPLES = [
    TupleKey("user:anne", "viewer", "document:1", GRANT),
    TupleKey("user:anne", "viewer", "document:2", GRANT),
    TupleKey("group:eng#member", "viewer", "document:1"),
    TupleKey("user:bob", "member", "group:eng", OFFICE),
    TupleKey("user:anne", "member", "group:eng"),
    TupleKey("user:*", "viewer", "document:3", OFFICE),
    TupleKey("user:anne", "banned", "document:2", TupleCondition("flagged", {"who": "anne"})),
]
EARLY = "2026-01-01T00:10:00Z"
LATE = "2026-01-01T03:00:00Z"


@dataclass(frozen=True)
class Case:
    name: str
    source: str
    user: str
    relation: str
    object: str
    context: dict[str, object]
    want: bool | type[Exception]
    fragment: str = ""


CHECKS = [
    Case("condition-met", "eval", "user:anne", "viewer", "document:1", {"now": EARLY}, True),
    Case(
        "not-met-other-path-grants",
        "eval",
        "user:anne",
        "viewer",
        "document:1",
        {"now": LATE},
        True,
    ),
    Case(
        "not-met-no-other-path", "eval", "user:anne", "viewer", "document:2", {"now": LATE}, False
    ),
    Case(
        "tuple-context-wins",
        "eval",
        "user:anne",
        "viewer",
        "document:2",
        {"now": LATE, "ttl": "10h", "granted": "2026-01-01T02:00:00Z"},
        False,
    ),
    Case(
        "missing-parameter-errors",
        "eval",
        "user:anne",
        "viewer",
        "document:2",
        {},
        ConditionError,
        'missing context parameters "now"',
    ),
    Case(
        "missing-parameter-hidden-by-a-granting-branch",
        "eval",
        "user:anne",
        "viewer",
        "document:1",
        {},
        True,
    ),
    Case(
        "unknown-request-keys-ignored",
        "condition",
        "user:anne",
        "viewer",
        "document:2",
        {"now": EARLY, "unrelated": [1, 2]},
        True,
    ),
    Case(
        "wrong-type-errors",
        "converters",
        "user:anne",
        "viewer",
        "document:2",
        {"now": 1767225600},
        ConditionError,
        "RFC 3339",
    ),
    Case(
        "bad-ip-errors",
        "converters",
        "user:carl",
        "viewer",
        "document:3",
        {"ip": "10.1.2"},
        ConditionError,
        "well-formed IP address",
    ),
    Case(
        "wildcard-with-condition",
        "eval",
        "user:carl",
        "viewer",
        "document:3",
        {"ip": "10.9.9.9"},
        True,
    ),
    Case(
        "wildcard-not-met",
        "eval",
        "user:carl",
        "viewer",
        "document:3",
        {"ip": "192.168.0.1"},
        False,
    ),
    Case(
        "userset-tuple-condition",
        "eval",
        "user:bob",
        "viewer",
        "document:1",
        {"ip": "192.168.0.1", "now": EARLY},
        False,
    ),
    Case(
        "condition-in-subtract-excludes",
        "eval",
        "user:anne",
        "can_read",
        "document:2",
        {"now": EARLY, "flags": {"anne": True}},
        False,
    ),
    Case(
        "condition-in-subtract-not-met",
        "eval",
        "user:anne",
        "can_read",
        "document:2",
        {"now": EARLY, "flags": {"anne": False}},
        True,
    ),
]


@pytest.mark.parametrize("case", CHECKS, ids=lambda c: f"{c.source}:{c.name}")
def test_check_condition_semantics(case: Case) -> None:
    store = InMemoryTupleStore(TUPLES)
    key = TupleKey(case.user, case.relation, case.object)
    if isinstance(case.want, bool):
        assert check(MODEL, store, key, context=case.context) is case.want
        return
    with pytest.raises(case.want) as info:
        check(MODEL, store, key, context=case.context)
    assert case.fragment in str(info.value)
    assert info.value.code == "invalid_argument"


def test_list_objects_drops_a_failing_candidate_only_when_the_page_fills() -> None:
    """list_objects: document:1 is granted through the group, document:2 needs
    ``now``; a full page of one answers, a page of two fails."""
    store = InMemoryTupleStore(TUPLES)
    context = {"ip": "10.1.1.1"}
    assert list_objects(MODEL, store, "document", "viewer", "user:anne", max_results=1) == [
        "document:1"
    ]
    with pytest.raises(ConditionError, match="missing context parameters"):
        list_objects(MODEL, store, "document", "viewer", "user:anne", context=context)
    context = {"now": EARLY, "ip": "192.168.0.1"}
    assert list_objects(MODEL, store, "document", "viewer", "user:anne", context=context) == [
        "document:1",
        "document:2",
    ]


def test_list_users_fails_on_an_evaluation_error() -> None:
    store = InMemoryTupleStore(TUPLES)
    with pytest.raises(ConditionError, match="missing context parameters"):
        list_users(MODEL, store, "document:1", "viewer", "user", context={"now": EARLY})
    page = list_users(
        MODEL, store, "document:1", "viewer", "user", context={"now": EARLY, "ip": "10.0.0.1"}
    )
    assert page.users == ["user:anne", "user:bob"]


def test_runaway_expression_is_refused_with_a_typed_error() -> None:
    model = parse_dsl(
        "model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define v: [user with loops]\n"
        "condition loops(xs: list<int>) {\n  xs.all(a, xs.all(b, xs.all(c, a + b + c >= 0)))\n}\n"
    )
    store = InMemoryTupleStore([TupleKey("user:a", "v", "doc:1", TupleCondition("loops"))])
    with pytest.raises(ConditionTooComplex, match="too complex"):
        check(model, store, TupleKey("user:a", "v", "doc:1"), context={"xs": list(range(200))})
    assert check(model, store, TupleKey("user:a", "v", "doc:1"), context={"xs": [1, 2]})


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("now < 1", "no matching overload"),  # condition: Compile type-checks
        ("ttl", "must yield bool"),  # condition: output must be bool
        ("nope", "undeclared reference"),
        ("now <", "Syntax error"),
    ],
)
def test_model_rejects_bad_expressions(expression: str, fragment: str) -> None:
    with pytest.raises(ModelError, match=fragment):
        parse_dsl(
            "model\n  schema 1.1\ntype user\n"
            f"condition c(now: timestamp, ttl: duration) {{ {expression} }}\n"
        )


@pytest.mark.parametrize(
    ("condition", "fragment"),
    [
        (None, "is not one of"),  # the relation takes only "user with fresh"
        (TupleCondition("nope"), 'condition "nope" is not defined'),
        (TupleCondition("fresh", {"extra": 1}), '"extra", which is not a parameter'),
        (TupleCondition("fresh", {"ttl": "forever"}), "a duration such as"),
        (TupleCondition("in_network", {}), "is not one of"),
    ],
)
def test_writes_validate_the_condition(condition: TupleCondition | None, fragment: str) -> None:
    with pytest.raises(TupleError, match=fragment):
        validate_tuple(MODEL, TupleKey("user:anne", "viewer", "document:9", condition))


@pytest.mark.parametrize(
    ("ptype", "value", "ok"),
    [
        ("int", 3, True),
        ("int", "3", True),  # converters: numeric strings
        ("int", 3.5, False),
        ("uint", -1, False),
        ("double", "2.5", True),
        ("double", 10**400, False),
        ("double", "nan", False),
        ("duration", "1e999h", False),
        ("timestamp", "2026-13-01T00:00:00Z", False),
        ("any", {"deep": [1, None, 2.5]}, True),
        ("bool", 1, False),
        ("duration", "1h30m", True),
        ("duration", "90", False),
        ("timestamp", "2026-01-01T00:00:00+02:00", True),
        ("ipaddress", "::1", True),
        ("list<int>", [1, "2"], True),
        ("map<string>", {"a": 1}, False),
    ],
)
def test_context_values_convert_as_openfga_converts(ptype: str, value: object, ok: bool) -> None:
    model = parse_dsl(f"model\n  schema 1.1\ntype user\ncondition c(p: {ptype}) {{ true }}\n")
    condition = model.condition("c")
    assert condition is not None
    if ok:
        condition.validate_context({"p": value})
    else:
        with pytest.raises(ConditionError):
            condition.validate_context({"p": value})


def test_expand_shows_each_users_condition() -> None:
    tree = expand(MODEL, InMemoryTupleStore(TUPLES), "document:1", "viewer").to_dict()
    leaf = tree["root"]["leaf"]["users"]
    assert leaf == {
        "users": ["group:eng#member", "user:anne"],
        "conditions": {"user:anne": "fresh"},
    }


def test_contextual_tuples_may_carry_a_condition() -> None:
    extra = [TupleKey("user:dora", "viewer", "document:7", GRANT)]
    validate_tuple(MODEL, extra[0])
    reader = ContextualReader(InMemoryTupleStore(TUPLES), extra)
    key = TupleKey("user:dora", "viewer", "document:7")
    assert check(MODEL, reader, key, context={"now": EARLY})
    assert not check(MODEL, reader, key, context={"now": LATE})
