"""list_objects(): reverse lookups through usersets, TTU and wildcards, confirmed by check."""

from __future__ import annotations

import pytest

from secinfra_server.authz import (
    RequestError,
    TupleError,
    TupleKey,
    check,
    list_objects,
)

API = "workload:spiffe://example.org/ns/prod/sa/api"

# (world, object type, relation, user, expected)
CASES = [
    ("drive", "document", "viewer", "user:dave", ["document:plan", "document:public",
                                                  "document:readme"]),
    ("drive", "document", "can_view", "user:carol", ["document:public", "document:readme"]),
    ("drive", "document", "viewer", "user:stranger", ["document:public"]),
    ("drive", "document", "viewer", "user:*", ["document:public"]),
    ("drive", "document", "editor", "user:stranger", []),
    ("drive", "document", "viewer", "group:eng#member", ["document:plan", "document:readme"]),
    ("drive", "folder", "viewer", "user:alice", ["folder:eng", "folder:eng-secret", "folder:root"]),
    ("drive", "folder", "editor", "user:carol", ["folder:eng", "folder:eng-secret"]),
    ("drive", "document", "can_share", "user:alice", ["document:plan", "document:readme"]),
    ("github", "repo", "reader", "user:mike", ["repo:api", "repo:site"]),
    ("github", "repo", "writer", "user:cora", ["repo:api"]),
    ("github", "repo", "admin", "user:olivia", []),
    ("github", "team", "member", "user:cora", ["team:backend", "team:core"]),
    ("secrets", "secret", "can_read", API, ["secret:prod/db/password"]),
    ("secrets", "secret", "can_read", "workload:legacy", []),
    ("secrets", "secret", "can_delete", "user:root", ["secret:prod/db/password"]),
    ("secrets", "secret", "can_rotate", "user:sam", ["secret:prod/db/password",
                                                     "secret:staging/token"]),
    ("secrets", "folder", "writer", "user:olly", ["folder:prod", "folder:prod/db"]),
    ("ops", "doc", "a", "user:hank", ["doc:1", "doc:pub"]),  # group, and user:*
    ("ops", "doc", "a", "user:zed", ["doc:pub"]),
    ("ops", "doc", "a_not_b", "user:bob", ["doc:pub"]),  # b only on doc:1
    ("ops", "doc", "nested", "user:erin", []),
    ("ops", "doc", "ab_or_and_c", "user:dana", ["doc:1"]),
    ("ops", "doc", "parent_viewer", "user:ivan", ["doc:1"]),
    ("ops", "doc", "a_not_parent_banned", "user:anne", ["doc:pub"]),  # banned via doc:1's parent
    ("ops", "doc", "a_not_parent_banned", "user:bob", ["doc:1", "doc:pub"]),
    ("cycles", "group", "member", "user:yan", ["group:x", "group:y"]),
    ("cycles", "doc", "viewer", "user:vic", ["doc:x", "doc:y"]),
    ("cycles", "doc", "b", "user:ann", ["doc:1"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("world", "object_type", "relation", "user", "expected"),
    CASES,
    ids=[f"{c[0]}-{c[1]}#{c[2]}@{c[3]}" for c in CASES],
)
def test_list_objects(
    request: pytest.FixtureRequest,
    world: str,
    object_type: str,
    relation: str,
    user: str,
    expected: list[str],
) -> None:
    w = request.getfixturevalue(world)
    assert list_objects(w.model, w.store, object_type, relation, user) == expected


@pytest.mark.parametrize("world", ["ops", "drive", "github", "secrets", "cycles"])
def test_list_objects_agrees_with_check_everywhere(
    request: pytest.FixtureRequest, world: str
) -> None:
    """For every type, relation and user in a world, list_objects == the objects
    that check allows (the objects being those named in any tuple)."""
    w = request.getfixturevalue(world)
    tuples = w.tuples
    objects = {k.object for k in tuples} | {str(k.user_ref.object) for k in tuples}
    users = {k.user for k in tuples} | {"user:nobody"}
    for type_def in w.model.type_definitions:
        for rel in type_def.relations:
            of_type = sorted(o for o in objects if o.startswith(f"{type_def.name}:"))
            for user in sorted(users):
                if w.model.type(user.partition(":")[0]) is None:
                    continue
                expected = [
                    o
                    for o in of_type
                    if not o.endswith(":*") and check(w.model, w.store, TupleKey(user, rel.name, o))
                ]
                got = list_objects(w.model, w.store, type_def.name, rel.name, user)
                assert got == expected, (type_def.name, rel.name, user)


def test_max_results_keeps_the_first_by_id(request: pytest.FixtureRequest) -> None:
    w = request.getfixturevalue("drive")
    assert list_objects(w.model, w.store, "document", "viewer", "user:dave", max_results=1) == [
        "document:plan"
    ]
    assert list_objects(w.model, w.store, "document", "viewer", "user:dave", max_results=2) == [
        "document:plan",
        "document:public",
    ]


@pytest.mark.parametrize(
    ("args", "max_results", "max_depth", "error", "fragment"),
    [
        (("document", "viewer", "user:dave"), 0, 25, RequestError, "max_results"),
        (("document", "viewer", "user:dave"), 10, 0, RequestError, "max_depth"),
        (("document", "reader", "user:dave"), 10, 25, TupleError, 'relation "reader"'),
        (("robot", "viewer", "user:dave"), 10, 25, TupleError, 'type "robot"'),
        (("document", "viewer", "robot:r"), 10, 25, TupleError, 'user "robot:r"'),
        (("document", "viewer", "dave"), 10, 25, TupleError, 'user "dave" must be'),
    ],
)
def test_list_objects_rejects_bad_requests(
    request: pytest.FixtureRequest,
    args: tuple[str, str, str],
    max_results: int,
    max_depth: int,
    error: type[Exception],
    fragment: str,
) -> None:
    w = request.getfixturevalue("drive")
    with pytest.raises(error) as info:
        list_objects(w.model, w.store, *args, max_results=max_results, max_depth=max_depth)
    assert fragment in str(info.value)
