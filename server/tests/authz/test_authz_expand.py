"""expand(): one level of the userset tree, in OpenFGA's shape."""

from __future__ import annotations

import json

import pytest

from secinfra_server.authz import (
    ComputedLeaf,
    DifferenceNode,
    IntersectionNode,
    TupleError,
    TupleToUsersetLeaf,
    UnionNode,
    UsersetTree,
    UsersLeaf,
    expand,
)


def test_union_of_direct_computed_and_tuple_to_userset(request: pytest.FixtureRequest) -> None:
    w = request.getfixturevalue("drive")
    tree = expand(w.model, w.store, "document:plan", "viewer")
    name = "document:plan#viewer"
    assert tree == UsersetTree(
        UnionNode(
            name,
            (
                UsersLeaf(name, ("user:bob",)),
                ComputedLeaf(name, "document:plan#editor"),
                TupleToUsersetLeaf(name, "document:plan#parent", ("folder:eng-secret#viewer",)),
            ),
        )
    )
    assert json.loads(json.dumps(tree.to_dict())) == {
        "root": {
            "name": name,
            "union": {
                "nodes": [
                    {"name": name, "leaf": {"users": {"users": ["user:bob"]}}},
                    {"name": name, "leaf": {"computed": {"userset": "document:plan#editor"}}},
                    {
                        "name": name,
                        "leaf": {
                            "tupleToUserset": {
                                "tupleset": "document:plan#parent",
                                "computed": [{"userset": "folder:eng-secret#viewer"}],
                            }
                        },
                    },
                ]
            },
        }
    }


def test_direct_users_include_usersets_and_wildcards_sorted(
    request: pytest.FixtureRequest,
) -> None:
    w = request.getfixturevalue("ops")
    tree = expand(w.model, w.store, "doc:1", "a")
    assert tree.root == UsersLeaf(
        "doc:1#a", ("group:g#member", "user:anne", "user:bob", "user:dana", "user:fred")
    )
    assert expand(w.model, w.store, "doc:pub", "a").to_dict() == {
        "root": {"name": "doc:pub#a", "leaf": {"users": {"users": ["user:*"]}}}
    }


def test_difference_and_intersection_nodes(request: pytest.FixtureRequest) -> None:
    w = request.getfixturevalue("ops")
    tree = expand(w.model, w.store, "doc:1", "ab_or_and_c")
    name = "doc:1#ab_or_and_c"
    assert tree.root == IntersectionNode(
        name,
        (
            UnionNode(name, (ComputedLeaf(name, "doc:1#a"), ComputedLeaf(name, "doc:1#b"))),
            ComputedLeaf(name, "doc:1#c"),
        ),
    )
    excl = expand(w.model, w.store, "doc:1", "a_not_parent_banned")
    assert excl.to_dict() == {
        "root": {
            "name": "doc:1#a_not_parent_banned",
            "difference": {
                "base": {
                    "name": "doc:1#a_not_parent_banned",
                    "leaf": {"computed": {"userset": "doc:1#a"}},
                },
                "subtract": {
                    "name": "doc:1#a_not_parent_banned",
                    "leaf": {
                        "tupleToUserset": {
                            "tupleset": "doc:1#parent",
                            "computed": [{"userset": "folder:f#banned"}],
                        }
                    },
                },
            },
        }
    }
    assert isinstance(excl.root, DifferenceNode)


def test_an_object_without_tuples_expands_to_empty_leaves(
    request: pytest.FixtureRequest,
) -> None:
    w = request.getfixturevalue("drive")
    tree = expand(w.model, w.store, "document:new", "viewer")
    assert isinstance(tree.root, UnionNode)
    assert tree.root.nodes[0] == UsersLeaf("document:new#viewer", ())
    assert tree.root.nodes[2] == TupleToUsersetLeaf(
        "document:new#viewer", "document:new#parent", ()
    )


@pytest.mark.parametrize(
    ("obj", "relation", "fragment"),
    [
        ("document:plan", "reader", 'type "document" relation "reader": relation is not defined'),
        ("robot:1", "viewer", 'type "robot": type is not defined'),
        ("document", "viewer", 'object "document" must be "type:id"'),
    ],
)
def test_expand_rejects_what_the_model_does_not_define(
    request: pytest.FixtureRequest, obj: str, relation: str, fragment: str
) -> None:
    w = request.getfixturevalue("drive")
    with pytest.raises(TupleError) as info:
        expand(w.model, w.store, obj, relation)
    assert fragment in str(info.value)
