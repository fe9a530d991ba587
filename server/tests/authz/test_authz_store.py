"""InMemoryTupleStore: the TupleReader contract, writes, deletes, concurrency."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from secinfra_server.authz import (
    ContextualReader,
    InMemoryTupleStore,
    TupleKey,
    TupleReader,
    check,
    list_objects,
    parse_dsl,
)

DSL = """
model
  schema 1.1
type user
type group
  relations
    define member: [user, group#member]
type doc
  relations
    define viewer: [user, user:*, group#member]
"""

TUPLES = [
    TupleKey("user:anne", "viewer", "doc:1"),
    TupleKey("user:*", "viewer", "doc:2"),
    TupleKey("group:eng#member", "viewer", "doc:1"),
    TupleKey("group:eng#member", "viewer", "doc:3"),
    TupleKey("user:anne", "member", "group:eng"),
]


def test_it_is_a_tuple_reader() -> None:
    reader: TupleReader = InMemoryTupleStore()
    assert list(reader.read("doc", "1", "viewer")) == []


@pytest.mark.parametrize(
    ("object_type", "object_id", "relation", "expected_users"),
    [
        ("doc", "1", "viewer", {"user:anne", "group:eng#member"}),
        ("doc", "2", "viewer", {"user:*"}),
        ("doc", "1", "owner", set()),
        ("doc", "9", "viewer", set()),
        ("group", "eng", "member", {"user:anne"}),
    ],
)
def test_read_returns_every_user_kind_on_object_and_relation(
    object_type: str, object_id: str, relation: str, expected_users: set[str]
) -> None:
    store = InMemoryTupleStore(TUPLES)
    got = list(store.read(object_type, object_id, relation))
    assert {k.user for k in got} == expected_users
    assert len(got) == len(expected_users)
    assert all(k.object == f"{object_type}:{object_id}" and k.relation == relation for k in got)


@pytest.mark.parametrize(
    ("object_type", "relation", "user", "expected"),
    [
        ("doc", "viewer", "user:anne", ["1"]),
        ("doc", "viewer", "group:eng#member", ["1", "3"]),
        ("doc", "viewer", "user:*", ["2"]),
        ("doc", "viewer", "user:bob", []),  # exact match: user:* is not expanded
        ("group", "member", "user:anne", ["eng"]),
        ("doc", "member", "user:anne", []),
    ],
)
def test_read_objects_is_an_exact_reverse_lookup(
    object_type: str, relation: str, user: str, expected: list[str]
) -> None:
    store = InMemoryTupleStore(TUPLES)
    assert sorted(store.read_objects(object_type, relation, user)) == expected


def test_write_is_idempotent_and_delete_removes_from_both_indexes() -> None:
    store = InMemoryTupleStore(TUPLES)
    store.write(TUPLES)
    assert len(store) == len(TUPLES)
    store.delete([TupleKey("group:eng#member", "viewer", "doc:1")])
    store.delete([TupleKey("user:zed", "viewer", "doc:1")])  # absent: no-op
    assert len(store) == len(TUPLES) - 1
    assert [k.user for k in store.read("doc", "1", "viewer")] == ["user:anne"]
    assert list(store.read_objects("doc", "viewer", "group:eng#member")) == ["3"]


def test_concurrent_checks_and_writes_are_safe() -> None:
    model = parse_dsl(DSL)
    store = InMemoryTupleStore(TUPLES)

    def reader_task(i: int) -> tuple[bool, list[str]]:
        allowed = check(model, store, TupleKey("user:anne", "viewer", "doc:3"))
        objects = list_objects(model, store, "doc", "viewer", "user:anne")
        return allowed, objects

    def writer_task(i: int) -> None:
        store.write([TupleKey(f"user:u{i}", "viewer", f"doc:w{i}")])

    with ThreadPoolExecutor(max_workers=4) as pool:
        reads = [pool.submit(reader_task, i) for i in range(40)]
        writes = [pool.submit(writer_task, i) for i in range(40)]
        results = [f.result() for f in reads]
        for f in writes:
            f.result()
    assert len(store) == len(TUPLES) + 40
    assert all(r == (True, ["doc:1", "doc:2", "doc:3"]) for r in results)


def test_contextual_reader_adds_tuples_to_every_operator_and_stores_nothing() -> None:
    model = parse_dsl(
        "model\n  schema 1.1\ntype user\ntype group\n  relations\n    define member: [user]\n"
        "type doc\n  relations\n    define blocked: [user]\n"
        "    define viewer: [user, group#member] but not blocked\n"
    )
    store = InMemoryTupleStore([TupleKey("group:eng#member", "viewer", "doc:1")])
    anne_member = TupleKey("user:anne", "member", "group:eng")
    anne_blocked = TupleKey("user:anne", "blocked", "doc:1")
    viewer = TupleKey("user:anne", "viewer", "doc:1")
    assert not check(model, store, viewer)
    assert check(model, ContextualReader(store, [anne_member]), viewer)
    # The subtracted side of "but not" sees them too.
    assert not check(model, ContextualReader(store, [anne_member, anne_blocked]), viewer)
    listed = list_objects(
        model, ContextualReader(store, [anne_member]), "doc", "viewer", "user:anne"
    )
    assert listed == ["doc:1"]
    # A contextual tuple that is also stored is read once.
    both = ContextualReader(store, [TupleKey("group:eng#member", "viewer", "doc:1")])
    assert both.read("doc", "1", "viewer") == [TupleKey("group:eng#member", "viewer", "doc:1")]
    assert len(store) == 1
