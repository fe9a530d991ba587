"""check, batch_check, list_objects and list_users against a naive least-fixpoint reference,
on random group graphs full of cycles (self-membership, mutual membership,
parent loops) and diamonds, where some tuples carry a condition (``need`` in the
tuple's context, ``level`` in the request's): the reference counts a
conditional tuple only when ``level >= need``."""

from __future__ import annotations

import random

import pytest

from secinfra_server.authz import (
    BatchCheckItem,
    InMemoryTupleStore,
    TupleCondition,
    TupleKey,
    batch_check,
    check,
    list_objects,
    list_users,
    parse_dsl,
)

MODEL = parse_dsl(
    """
model
  schema 1.1
type user
type group
  relations
    define member: [user, group#member, user with cleared,
                    group#member with cleared] or owner or member from parent
    define owner: [user, group#member, user with cleared]
    define parent: [group, group with cleared]
    define both: member and owner

condition cleared(level: int, need: int) {
  level >= need
}
"""
)

Fact = tuple[str, str, str]  # (group, relation, user)


def reference(tuples: list[TupleKey], groups: set[str], users: set[str], level: int) -> set[Fact]:
    """Iterate the rules to their least fixpoint (no cycle tricks, no memo)."""

    def holds_condition(t: TupleKey) -> bool:
        return t.condition is None or level >= int(t.condition.context["need"])  # type: ignore[call-overload]

    def direct(group: str, relation: str) -> list[str]:
        return [
            t.user
            for t in tuples
            if t.object == group and t.relation == relation and holds_condition(t)
        ]

    def holds(facts: set[Fact], group: str, relation: str, user: str) -> bool:
        for stored in direct(group, relation):
            if stored == user:
                return True
            inner_group, _, inner_relation = stored.partition("#")
            if inner_relation and (inner_group, inner_relation, user) in facts:
                return True
        if relation != "member":
            return False
        if (group, "owner", user) in facts:
            return True
        return any((p, "member", user) in facts for p in direct(group, "parent"))

    facts: set[Fact] = set()
    changed = True
    while changed:
        changed = False
        for group in groups:
            for user in users:
                for relation in ("member", "owner"):
                    fact = (group, relation, user)
                    if fact not in facts and holds(facts, group, relation, user):
                        facts.add(fact)
                        changed = True
    return facts


def random_tuples(rng: random.Random) -> list[TupleKey]:
    size = rng.randint(2, 6)
    out: set[TupleKey] = set()
    for _ in range(rng.randint(1, 12)):
        group = f"group:g{rng.randrange(size)}"
        other = f"group:g{rng.randrange(size)}"
        roll = rng.random()
        cond = TupleCondition("cleared", {"need": rng.randrange(3)}) if rng.random() < 0.4 else None
        if roll < 0.3:
            user = f"user:u{rng.randrange(3)}"
            out.add(TupleKey(user, rng.choice(["member", "owner"]), group, cond))
        elif roll < 0.7:
            relation = "member" if cond is not None else rng.choice(["member", "owner"])
            out.add(TupleKey(f"{other}#member", relation, group, cond))
        else:
            out.add(TupleKey(other, "parent", group, cond))
    return sorted(out, key=str)


def expected(facts: set[Fact], group: str, relation: str, user: str) -> bool:
    if relation == "both":
        return (group, "member", user) in facts and (group, "owner", user) in facts
    return (group, relation, user) in facts


@pytest.mark.parametrize("seed", range(4))
def test_engine_matches_the_fixpoint_reference(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(25):
        tuples = random_tuples(rng)
        store = InMemoryTupleStore(tuples)
        groups = {t.object for t in tuples} | {
            t.user.partition("#")[0] for t in tuples if t.user.startswith("group:")
        }
        users = {f"user:u{i}" for i in range(3)}
        level = rng.randrange(3)
        context = {"level": level}
        facts = reference(tuples, groups, users, level)
        items: list[BatchCheckItem] = []
        want: dict[str, bool] = {}
        for group in sorted(groups):
            for user in sorted(users):
                for relation in ("member", "owner", "both"):
                    answer = expected(facts, group, relation, user)
                    got = check(MODEL, store, TupleKey(user, relation, group), context=context)
                    assert got is answer, (
                        tuples,
                        group,
                        relation,
                        user,
                    )
                    cid = f"c{len(items)}"
                    items.append(BatchCheckItem(TupleKey(user, relation, group), cid, context))
                    want[cid] = answer
        rng.shuffle(items)  # one memo across the batch, in any order
        for start in range(0, len(items), 100):
            results = batch_check(MODEL, store, items[start : start + 100])
            assert {cid: r.allowed for cid, r in results.items()} == {
                cid: want[cid] for cid in results
            }
        for user in sorted(users):
            for relation in ("member", "owner", "both"):
                listed = list_objects(MODEL, store, "group", relation, user, context=context)
                assert listed == sorted(g for g in groups if expected(facts, g, relation, user))
        for group in sorted(groups):
            for relation in ("member", "owner", "both"):
                who = list_users(MODEL, store, group, relation, "user", context=context).users
                assert who == sorted(u for u in users if expected(facts, group, relation, u))
