"""list_users(): OpenFGA's ListUsers, forward expansion confirmed by check."""

from __future__ import annotations

import pytest

from secinfra_server.authz import (
    InMemoryTupleStore,
    RequestError,
    TupleError,
    TupleKey,
    check,
    list_users,
    parse_dsl,
)

WORLDS = ["ops", "drive", "github", "secrets", "cycles"]


def _filters(world: object) -> list[tuple[str, str | None]]:
    """Every filter of a world's model: each type, and each type#relation."""
    model = world.model  # type: ignore[attr-defined]
    found: list[tuple[str, str | None]] = []
    for type_def in model.type_definitions:
        found.append((type_def.name, None))
        found += [(type_def.name, rel.name) for rel in type_def.relations]
    return found


@pytest.mark.parametrize("world", WORLDS)
def test_list_users_agrees_with_check_everywhere(
    request: pytest.FixtureRequest, world: str
) -> None:
    """For every object, relation and filter of a world, list_users is exactly the
    users of the filter's kind that check allows, among every user the world
    names (objects, usersets and wildcards of every tuple) and more."""
    w = request.getfixturevalue(world)
    objects = sorted({k.object for k in w.tuples} | {str(k.user_ref.object) for k in w.tuples})
    users = {k.user for k in w.tuples} | {"user:nobody", "user:*"}
    users |= {
        f"{o}#{rel.name}"
        for o in objects
        if not o.endswith(":*")
        for rel in (w.model.type(o.partition(":")[0]) or type("T", (), {"relations": ()})).relations
    }
    compared = 0
    for obj in objects:
        if obj.endswith(":*"):
            continue
        type_def = w.model.type(obj.partition(":")[0])
        for rel in type_def.relations:
            for filter_type, filter_relation in _filters(w):
                spelled = f"{filter_type}#{filter_relation}" if filter_relation else filter_type
                allowed = {
                    user
                    for user in users
                    if user.partition(":")[0] == filter_type
                    and (user.partition("#")[2] or None) == filter_relation
                    and check(w.model, w.store, TupleKey(user, rel.name, obj))
                }
                got = list_users(w.model, w.store, obj, rel.name, spelled).users
                where = (obj, rel.name, spelled)
                assert got == sorted(set(got)), where
                # Everything listed is allowed; everything allowed is listed, or, as
                # in OpenFGA, stands behind the type's wildcard when that is listed.
                assert set(got) <= allowed, where
                missing = allowed - set(got)
                public = f"{filter_type}:*" in got
                assert all(public and not u.endswith(":*") for u in missing), (where, missing)
                compared += 1
    assert compared > 0


def test_cases_from_the_drive_world(request: pytest.FixtureRequest) -> None:
    w = request.getfixturevalue("drive")
    public = list_users(w.model, w.store, "document:public", "viewer", "user").users
    assert "user:*" in public
    groups = list_users(w.model, w.store, "document:plan", "viewer", "group#member").users
    assert "group:eng#member" in groups


def test_pages_are_sorted_and_never_cut_silently() -> None:
    model = parse_dsl(
        "model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define viewer: [user]\n"
    )
    store = InMemoryTupleStore(TupleKey(f"user:u{i}", "viewer", "doc:1") for i in range(5))
    everyone = list_users(model, store, "doc:1", "viewer", "user").users
    assert everyone == [f"user:u{i}" for i in range(5)]
    first = list_users(model, store, "doc:1", "viewer", "user", max_results=2)
    assert (first.users, first.more) == (everyone[:2], True)
    rest = list_users(model, store, "doc:1", "viewer", "user", after=first.users[-1])
    assert (rest.users, rest.more) == (everyone[2:], False)
    exact = list_users(model, store, "doc:1", "viewer", "user", max_results=5)
    assert (exact.users, exact.more) == (everyone, False)


@pytest.mark.parametrize(
    ("args", "error", "fragment"),
    [
        (("document:plan", "viewer", "robot"), TupleError, 'type "robot"'),
        (("document:plan", "viewer", "group#boss"), TupleError, 'relation "boss"'),
        (("document:plan", "reader", "user"), TupleError, 'relation "reader"'),
        (("plan", "viewer", "user"), TupleError, "must be"),
    ],
)
def test_list_users_rejects_bad_requests(
    request: pytest.FixtureRequest,
    args: tuple[str, str, str],
    error: type[Exception],
    fragment: str,
) -> None:
    w = request.getfixturevalue("drive")
    with pytest.raises(error) as info:
        list_users(w.model, w.store, *args)
    assert fragment in str(info.value)
    with pytest.raises(RequestError):
        list_users(w.model, w.store, "document:plan", "viewer", "user", max_results=0)
