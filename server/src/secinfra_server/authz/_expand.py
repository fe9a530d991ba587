"""Expand: one level of the userset tree of ``object#relation``, in OpenFGA's shape.

Leaves hold the direct users (objects, usersets, wildcards), a computed userset
(``document:1#editor``) or a tuple-to-userset (``document:1#parent`` and the
``folder:x#viewer`` usersets it points at); union, intersection and difference
are inner nodes. Callers expand the usersets in the leaves further if they need to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from ._model import (
    AuthorizationModel,
    ComputedUserset,
    Intersection,
    JSONObject,
    Relation,
    Rewrite,
    This,
    TupleToUserset,
    Union,
)
from ._store import TupleReader
from ._tuples import ObjectRef, parse_object, require_relation


@dataclass(frozen=True)
class UsersLeaf:
    """The users written directly in tuples (``user:anne``, ``group:eng#member``,
    ``user:*``), sorted; ``conditions`` names, per user whose tuple has one, the
    condition it holds under (Expand evaluates none: it shows them)."""

    name: str
    users: tuple[str, ...]
    conditions: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> JSONObject:
        """Render as ``{"name", "leaf": {"users": {"users": [...]}}}``, plus
        ``"conditions": {user: condition}`` beside ``users`` when any tuple has one."""
        users: JSONObject = {"users": list(self.users)}
        if self.conditions:
            users["conditions"] = dict(self.conditions)
        return {"name": self.name, "leaf": {"users": users}}


@dataclass(frozen=True)
class ComputedLeaf:
    """Users of another relation on the same object (``userset`` is ``type:id#relation``)."""

    name: str
    userset: str

    def to_dict(self) -> JSONObject:
        """Render as ``{"name", "leaf": {"computed": {"userset": ...}}}``."""
        return {"name": self.name, "leaf": {"computed": {"userset": self.userset}}}


@dataclass(frozen=True)
class TupleToUsersetLeaf:
    """Users of ``computed`` (sorted usersets) reached through the ``tupleset`` tuples."""

    name: str
    tupleset: str
    computed: tuple[str, ...]

    def to_dict(self) -> JSONObject:
        """Render as ``{"name", "leaf": {"tupleToUserset": {"tupleset", "computed"}}}``."""
        return {
            "name": self.name,
            "leaf": {
                "tupleToUserset": {
                    "tupleset": self.tupleset,
                    "computed": [{"userset": u} for u in self.computed],
                }
            },
        }


@dataclass(frozen=True)
class UnionNode:
    """Users in any child node."""

    name: str
    nodes: tuple[UsersetTreeNode, ...]

    def to_dict(self) -> JSONObject:
        """Render as ``{"name", "union": {"nodes": [...]}}``."""
        return {"name": self.name, "union": {"nodes": [n.to_dict() for n in self.nodes]}}


@dataclass(frozen=True)
class IntersectionNode:
    """Users in every child node."""

    name: str
    nodes: tuple[UsersetTreeNode, ...]

    def to_dict(self) -> JSONObject:
        """Render as ``{"name", "intersection": {"nodes": [...]}}``."""
        return {"name": self.name, "intersection": {"nodes": [n.to_dict() for n in self.nodes]}}


@dataclass(frozen=True)
class DifferenceNode:
    """Users in ``base`` but not in ``subtract``."""

    name: str
    base: UsersetTreeNode
    subtract: UsersetTreeNode

    def to_dict(self) -> JSONObject:
        """Render as ``{"name", "difference": {"base": ..., "subtract": ...}}``."""
        return {
            "name": self.name,
            "difference": {"base": self.base.to_dict(), "subtract": self.subtract.to_dict()},
        }


UsersetTreeNode: TypeAlias = (
    UsersLeaf | ComputedLeaf | TupleToUsersetLeaf | UnionNode | IntersectionNode | DifferenceNode
)


@dataclass(frozen=True)
class UsersetTree:
    """The result of :func:`expand`."""

    root: UsersetTreeNode

    def to_dict(self) -> JSONObject:
        """Render as OpenFGA's ``{"root": {...}}`` (the ``tree`` of an expand response)."""
        return {"root": self.root.to_dict()}


def expand(
    model: AuthorizationModel, reader: TupleReader, object: str, relation: str
) -> UsersetTree:
    """Expand ``object#relation`` one level into a :class:`UsersetTree`.

    Raises:
        TupleError: the object is malformed, or its type or the relation is not in
            the model.
    """
    obj = parse_object(object)
    rel = require_relation(model, obj.type, relation)
    return UsersetTree(_node(model, reader, obj, rel, rel.rewrite))


def _node(
    model: AuthorizationModel, reader: TupleReader, obj: ObjectRef, rel: Relation, rewrite: Rewrite
) -> UsersetTreeNode:
    name = f"{obj}#{rel.name}"
    if isinstance(rewrite, This):
        keys = [
            key for key in reader.read(obj.type, obj.id, rel.name) if rel.allows(key.reference())
        ]
        conditions = sorted((k.user, k.condition.name) for k in keys if k.condition is not None)
        return UsersLeaf(name, tuple(sorted({k.user for k in keys})), tuple(conditions))
    if isinstance(rewrite, ComputedUserset):
        return ComputedLeaf(name, f"{obj}#{rewrite.relation}")
    if isinstance(rewrite, TupleToUserset):
        return _tuple_to_userset_leaf(model, reader, obj, name, rewrite)
    if isinstance(rewrite, Union):
        return UnionNode(name, tuple(_node(model, reader, obj, rel, c) for c in rewrite.children))
    if isinstance(rewrite, Intersection):
        return IntersectionNode(
            name, tuple(_node(model, reader, obj, rel, c) for c in rewrite.children)
        )
    return DifferenceNode(
        name,
        _node(model, reader, obj, rel, rewrite.base),
        _node(model, reader, obj, rel, rewrite.subtract),
    )


def _tuple_to_userset_leaf(
    model: AuthorizationModel,
    reader: TupleReader,
    obj: ObjectRef,
    name: str,
    rewrite: TupleToUserset,
) -> TupleToUsersetLeaf:
    tupleset = model.relation(obj.type, rewrite.tupleset)
    computed = set()
    for key in reader.read(obj.type, obj.id, rewrite.tupleset):
        parent = key.user_ref
        if (
            tupleset is not None
            and tupleset.allows(key.reference())
            and model.relation(parent.type, rewrite.computed_relation) is not None
        ):
            computed.add(f"{parent}#{rewrite.computed_relation}")
    return TupleToUsersetLeaf(name, f"{obj}#{rewrite.tupleset}", tuple(sorted(computed)))
