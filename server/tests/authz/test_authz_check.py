"""check(): every operator, their nesting, realistic models, cycles and depth."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from secinfra_server.authz import (
    FAILED_PRECONDITION,
    MAX_DEPTH,
    InMemoryTupleStore,
    RequestError,
    ResolutionTooComplex,
    TupleError,
    TupleKey,
    check,
    parse_dsl,
)

API = "workload:spiffe://example.org/ns/prod/sa/api"
PASSWORD = "secret:prod/db/password"


def key(text: str) -> TupleKey:
    """``object#relation@user`` -> TupleKey."""
    left, _, user = text.partition("@")
    obj, _, relation = left.partition("#")
    return TupleKey(user, relation, obj)


# (world, "object#relation@user", expected)
CASES = [
    # --- direct, usersets, nested groups, wildcards
    ("ops", "doc:1#a@user:anne", True),
    ("ops", "doc:1#a@user:carl", False),
    ("ops", "doc:1#a@user:gina", True),  # via group:g#member
    ("ops", "doc:1#a@user:hank", True),  # via group:h#member inside group:g
    ("ops", "doc:1#a@user:ivan", False),
    ("ops", "doc:1#b@user:anne", False),
    ("ops", "doc:2#a@user:anne", False),  # no tuples on the object
    ("ops", "doc:pub#a@user:zed", True),  # user:* matches any user
    ("ops", "doc:pub#a@employee:zed", False),  # ...but not another type
    ("ops", "doc:pub#a@user:*", True),  # asking about the wildcard itself
    ("ops", "doc:1#a@user:*", False),  # no public tuple on doc:1
    ("ops", "doc:1#a@group:g#member", True),  # userset as the user
    ("ops", "doc:1#a@group:h#member", True),  # nested userset as the user
    ("ops", "group:g#member@group:g#member", True),  # a userset contains itself
    ("ops", "doc:1#b@group:g#member", False),
    # --- union
    ("ops", "doc:1#a_or_b@user:anne", True),
    ("ops", "doc:1#a_or_b@user:erin", True),
    ("ops", "doc:1#a_or_b@user:carl", False),
    ("ops", "doc:1#a_or_b@user:hank", True),
    # --- intersection
    ("ops", "doc:1#a_and_b@user:bob", True),
    ("ops", "doc:1#a_and_b@user:fred", True),
    ("ops", "doc:1#a_and_b@user:anne", False),
    ("ops", "doc:1#a_and_b@user:erin", False),
    ("ops", "doc:1#direct_and_c@user:dana", True),  # [user] and c
    ("ops", "doc:1#direct_and_c@user:anne", False),  # direct, but not c
    ("ops", "doc:1#direct_and_c@user:carl", False),  # c, but not direct
    # --- exclusion
    ("ops", "doc:1#a_not_b@user:anne", True),
    ("ops", "doc:1#a_not_b@user:bob", False),
    ("ops", "doc:1#a_not_b@user:carl", False),
    ("ops", "doc:1#a_not_b@user:gina", True),
    ("ops", "doc:1#a_not_b@user:dana", True),
    # --- (a or b) and c
    ("ops", "doc:1#ab_or_and_c@user:dana", True),
    ("ops", "doc:1#ab_or_and_c@user:erin", True),
    ("ops", "doc:1#ab_or_and_c@user:fred", True),
    ("ops", "doc:1#ab_or_and_c@user:carl", False),
    ("ops", "doc:1#ab_or_and_c@user:anne", False),
    # --- a but not (b or c)
    ("ops", "doc:1#a_not_b_or_c@user:anne", True),
    ("ops", "doc:1#a_not_b_or_c@user:bob", False),
    ("ops", "doc:1#a_not_b_or_c@user:dana", False),
    ("ops", "doc:1#a_not_b_or_c@user:carl", False),
    ("ops", "doc:1#a_not_b_or_c@user:gina", True),
    # --- (a and b) or c
    ("ops", "doc:1#a_and_b_or_c@user:bob", True),
    ("ops", "doc:1#a_and_b_or_c@user:carl", True),
    ("ops", "doc:1#a_and_b_or_c@user:anne", False),
    # --- (a or b) but not c
    ("ops", "doc:1#a_or_b_not_c@user:anne", True),
    ("ops", "doc:1#a_or_b_not_c@user:bob", True),
    ("ops", "doc:1#a_or_b_not_c@user:dana", False),
    ("ops", "doc:1#a_or_b_not_c@user:erin", False),
    ("ops", "doc:1#a_or_b_not_c@user:carl", False),
    # --- tuple to userset, and exclusion of one
    ("ops", "doc:1#parent_viewer@user:ivan", True),
    ("ops", "doc:1#parent_viewer@user:anne", False),
    ("ops", "doc:1#a_not_parent_banned@user:anne", False),
    ("ops", "doc:1#a_not_parent_banned@user:bob", True),
    ("ops", "doc:1#a_not_parent_banned@user:ivan", False),
    # --- ((a and b) or (c and d)) but not (b and d)
    ("ops", "doc:1#nested@user:bob", True),
    ("ops", "doc:1#nested@user:fred", True),
    ("ops", "doc:1#nested@user:carl", True),
    ("ops", "doc:1#nested@user:erin", False),  # c and d, but also b and d
    ("ops", "doc:1#nested@user:anne", False),
    # --- Drive: multi-level folder inheritance, groups, wildcard, exclusion
    ("drive", "document:plan#viewer@user:alice", True),  # owner of root, 3 levels up
    ("drive", "document:plan#editor@user:alice", True),
    ("drive", "document:plan#owner@user:alice", False),
    ("drive", "document:plan#viewer@user:bob", True),
    ("drive", "document:plan#editor@user:bob", False),
    ("drive", "document:plan#viewer@user:carol", True),
    ("drive", "document:plan#can_view@user:carol", False),  # blocked
    ("drive", "document:plan#can_view@user:alice", True),
    ("drive", "document:plan#can_view@user:bob", True),
    ("drive", "document:plan#viewer@user:dave", True),  # nested group, 2 folders up
    ("drive", "document:plan#viewer@user:eve", False),
    ("drive", "document:plan#viewer@group:eng#member", True),
    ("drive", "document:plan#viewer@user:*", False),
    ("drive", "document:public#viewer@user:anyone", True),
    ("drive", "document:public#viewer@user:*", True),
    ("drive", "document:public#editor@user:anyone", False),
    ("drive", "document:public#can_view@user:anyone", True),
    ("drive", "document:readme#can_share@user:alice", True),
    ("drive", "document:readme#can_share@user:carol", True),
    ("drive", "document:readme#can_share@user:bob", False),
    ("drive", "folder:root#viewer@user:carol", False),  # inheritance goes down only
    ("drive", "folder:eng#viewer@user:dave", True),
    ("drive", "folder:eng-secret#editor@user:alice", True),
    # --- GitHub: org roles through TTU, nested teams, public repos
    ("github", "repo:api#admin@user:alan", True),
    ("github", "repo:api#maintainer@user:alan", True),
    ("github", "repo:api#reader@user:alan", True),
    ("github", "repo:api#reader@user:mike", True),  # org member via repo_reader
    ("github", "repo:api#writer@user:mike", False),
    ("github", "repo:api#reader@user:olivia", True),  # owner -> member -> reader
    ("github", "repo:api#admin@user:olivia", False),
    ("github", "repo:api#writer@user:will", True),
    ("github", "repo:api#admin@user:will", False),
    ("github", "repo:api#writer@user:cora", True),  # team core inside backend
    ("github", "repo:api#triager@user:cora", True),
    ("github", "repo:api#triager@user:tess", True),
    ("github", "repo:api#writer@user:tess", False),
    ("github", "repo:api#reader@user:stranger", False),
    ("github", "repo:site#reader@user:stranger", True),
    ("github", "repo:site#writer@user:stranger", False),
    ("github", "repo:site#triager@user:*", False),
    # --- secrets: folder inheritance, workloads, groups, platform admins
    ("secrets", f"{PASSWORD}#can_read@{API}", True),
    ("secrets", f"{PASSWORD}#can_read@workload:other", False),
    ("secrets", f"{PASSWORD}#reader@workload:legacy", True),
    ("secrets", f"{PASSWORD}#can_read@workload:legacy", False),  # revoked
    ("secrets", f"{PASSWORD}#can_rotate@{API}", False),  # reader, not writer
    ("secrets", f"{PASSWORD}#writer@user:dina", True),
    ("secrets", f"{PASSWORD}#can_rotate@user:dina", True),
    ("secrets", f"{PASSWORD}#writer@user:olly", True),  # nested group
    ("secrets", f"{PASSWORD}#reader@group:oncall#member", True),
    ("secrets", f"{PASSWORD}#can_delete@user:root", True),  # platform admin
    ("secrets", f"{PASSWORD}#can_delete@user:sam", True),  # owner
    ("secrets", f"{PASSWORD}#can_delete@user:dina", False),
    ("secrets", f"{PASSWORD}#reader@user:root", True),
    ("secrets", "folder:prod/db#admin@user:root", True),
    ("secrets", "secret:staging/token#reader@user:dina", False),
    ("secrets", "secret:staging/token#can_rotate@user:sam", True),
    # --- cycles terminate with the right answer
    ("cycles", "group:loop#member@user:zed", False),
    ("cycles", "group:x#member@user:yan", True),
    ("cycles", "group:y#member@user:yan", True),
    ("cycles", "group:x#member@user:zed", False),
    ("cycles", "doc:1#a@user:ben", True),  # a -> b -> a
    ("cycles", "doc:1#b@user:ann", True),
    ("cycles", "doc:1#a@user:zed", False),
    ("cycles", "doc:1#b@user:zed", False),
    ("cycles", "doc:1#both@user:ann", True),
    ("cycles", "doc:x#viewer@user:vic", True),  # parent cycle x <-> y
    ("cycles", "doc:y#viewer@user:vic", True),
    ("cycles", "doc:x#viewer@user:zed", False),
]


@pytest.mark.parametrize(("world", "tuple_text", "expected"), CASES, ids=[c[1] for c in CASES])
def test_check(request: pytest.FixtureRequest, world: str, tuple_text: str, expected: bool) -> None:
    w = request.getfixturevalue(world)
    assert check(w.model, w.store, key(tuple_text)) is expected


def test_there_are_at_least_80_cases_covering_every_world() -> None:
    assert len(CASES) >= 80
    assert {c[0] for c in CASES} == {"ops", "drive", "github", "secrets", "cycles"}
    assert {c[2] for c in CASES} == {True, False}


CHAIN_DSL = """
model
  schema 1.1
type user
type group
  relations
    define member: [user, group#member]
type doc
  relations
    define owner: [user]
    define viewer: [group#member] or owner
"""


def chain_store(length: int) -> InMemoryTupleStore:
    """group:g0 <- g1 <- ... <- g<length-1>, whose member is user:deep."""
    tuples = [
        TupleKey(f"group:g{i + 1}#member", "member", f"group:g{i}") for i in range(length - 1)
    ]
    tuples.append(TupleKey("user:deep", "member", f"group:g{length - 1}"))
    tuples.append(TupleKey("group:g0#member", "viewer", "doc:1"))
    return InMemoryTupleStore(tuples)


@pytest.mark.parametrize(
    ("start", "max_depth", "expected"),
    [
        ("g29", MAX_DEPTH, True),
        ("g10", MAX_DEPTH, True),  # 20 nested steps
        ("g0", 40, True),  # the bound is configurable
        ("g0", 5, None),
        ("g0", MAX_DEPTH, None),  # 30 nested steps
    ],
)
def test_depth_is_bounded(start: str, max_depth: int, expected: bool | None) -> None:
    model, store = parse_dsl(CHAIN_DSL), chain_store(30)
    tk = TupleKey("user:deep", "member", f"group:{start}")
    if expected is None:
        with pytest.raises(ResolutionTooComplex) as info:
            check(model, store, tk, max_depth=max_depth)
        assert info.value.code == FAILED_PRECONDITION
        assert info.value.max_depth == max_depth
        assert str(info.value).startswith(
            f"secinfra: authz: resolution: too complex: exceeded the maximum depth of {max_depth}"
        )
    else:
        assert check(model, store, tk, max_depth=max_depth) is expected


def test_a_too_deep_branch_does_not_hide_a_granting_branch() -> None:
    model, store = parse_dsl(CHAIN_DSL), chain_store(30)
    store.write([TupleKey("user:deep", "owner", "doc:1")])
    assert check(model, store, TupleKey("user:deep", "viewer", "doc:1")) is True


def test_a_too_deep_branch_fails_the_check_when_nothing_else_grants() -> None:
    model, store = parse_dsl(CHAIN_DSL), chain_store(30)
    with pytest.raises(ResolutionTooComplex, match=r"doc:1#viewer|group:g\d+#member"):
        check(model, store, TupleKey("user:deep", "viewer", "doc:1"))


def test_max_depth_below_one_is_rejected() -> None:
    model, store = parse_dsl(CHAIN_DSL), chain_store(2)
    with pytest.raises(RequestError, match="max_depth must be at least 1"):
        check(model, store, TupleKey("user:deep", "member", "group:g0"), max_depth=0)


class CountingReader:
    """Wraps a store and counts the engine's reads."""

    def __init__(self, store: InMemoryTupleStore) -> None:
        self.store = store
        self.reads = 0

    def read(self, object_type: str, object_id: str, relation: str) -> Iterable[TupleKey]:
        self.reads += 1
        return self.store.read(object_type, object_id, relation)

    def read_objects(self, object_type: str, relation: str, user: str) -> Iterable[str]:
        self.reads += 1
        return self.store.read_objects(object_type, relation, user)


def test_diamonds_are_memoized_not_recomputed_per_path() -> None:
    # 20 levels, each group holding both groups of the next level: 2**20 paths.
    levels = 20
    tuples = []
    for level in range(levels - 1):
        for here in "ab":
            for below in "ab":
                tuples.append(
                    TupleKey(f"group:l{level + 1}{below}#member", "member", f"group:l{level}{here}")
                )
    model = parse_dsl(CHAIN_DSL)
    reader = CountingReader(InMemoryTupleStore(tuples))
    assert check(model, reader, TupleKey("user:nobody", "member", "group:l0a")) is False
    assert reader.reads <= 2 * levels


def test_unknown_relation_or_type_in_a_check_is_a_tuple_error() -> None:
    model = parse_dsl(CHAIN_DSL)
    store = InMemoryTupleStore()
    with pytest.raises(TupleError, match='type "doc" relation "nope": relation is not defined'):
        check(model, store, TupleKey("user:a", "nope", "doc:1"))
    with pytest.raises(TupleError, match='type "folder": type is not defined'):
        check(model, store, TupleKey("user:a", "viewer", "folder:1"))
    with pytest.raises(TupleError, match='user "robot:a": type is not defined'):
        check(model, store, TupleKey("robot:a", "viewer", "doc:1"))
    with pytest.raises(TupleError, match='type "group" relation "admin"'):
        check(model, store, TupleKey("group:x#admin", "viewer", "doc:1"))


def test_tuples_that_no_longer_fit_the_model_are_ignored() -> None:
    model = parse_dsl(CHAIN_DSL)
    # doc#viewer only accepts group#member directly: a plain user tuple is stale.
    store = InMemoryTupleStore([TupleKey("user:anne", "viewer", "doc:1")])
    assert check(model, store, TupleKey("user:anne", "viewer", "doc:1")) is False


def test_check_sees_writes_and_deletes() -> None:
    model = parse_dsl(CHAIN_DSL)
    store = InMemoryTupleStore()
    owner = TupleKey("user:anne", "owner", "doc:1")
    viewer = TupleKey("user:anne", "viewer", "doc:1")
    assert check(model, store, viewer) is False
    store.write([owner])
    assert check(model, store, viewer) is True
    store.delete([owner])
    assert check(model, store, viewer) is False
