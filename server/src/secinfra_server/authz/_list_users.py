"""List users: which users of a type have a relation on one object?

OpenFGA's ListUsers, in the same two phases as :mod:`._list_objects`, the other
way round:

1. Forward expansion finds candidates. Starting from ``object#relation`` it
   follows the relation's rewrite (direct tuples, computed usersets on the same
   object, tuple-to-usersets to parent objects) and every userset a tuple names
   (``group:eng#member`` leads to the members of ``group:eng``). Intersections
   contribute every child and exclusions their base, so the candidates are a
   superset of the answer; each node is visited once, so cycles terminate.
2. Each candidate of the filter's kind is confirmed with a check (sharing one
   memo), in order, so the answer is exactly what Check says, ``but not``
   and cycles included.

The filter is a type (``user``: objects of that type, and ``user:*`` when the
relation is public) or a userset type (``group#member``: usersets such as
``group:eng#member`` that have the relation as a whole).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from ._check import MAX_DEPTH, Resolver
from ._errors import RequestError, TupleError
from ._list_objects import DEFAULT_MAX_RESULTS
from ._model import (
    AuthorizationModel,
    ComputedUserset,
    Difference,
    Intersection,
    Rewrite,
    This,
    TupleToUserset,
    Union,
)
from ._store import TupleReader
from ._tuples import ObjectRef, UserRef, parse_object, parse_user, require_relation

_Node = tuple[str, str, str]  # (object type, object id, relation)


@dataclass(frozen=True)
class UserPage:
    """One page of :func:`list_users`: users (``type:id``, ``type:*`` or
    ``type:id#relation``, sorted) and whether confirmed users follow."""

    users: list[str]
    more: bool


class _ForwardExpansion:
    """Breadth-first walk from ``object#relation`` to every user it may include."""

    def __init__(self, model: AuthorizationModel, reader: TupleReader) -> None:
        self._model = model
        self._reader = reader
        self._seen: set[_Node] = set()
        self._queue: deque[_Node] = deque()
        self.users: set[str] = set()

    def run(self, start: _Node) -> set[str]:
        self._add(start)
        while self._queue:
            self._visit(self._queue.popleft())
        return self.users

    def _add(self, node: _Node) -> None:
        if node not in self._seen:
            self._seen.add(node)
            self._queue.append(node)
            object_type, object_id, relation = node
            self.users.add(f"{object_type}:{object_id}#{relation}")  # a userset has itself

    def _visit(self, node: _Node) -> None:
        object_type, object_id, relation = node
        rel = self._model.relation(object_type, relation)
        if rel is not None:
            self._rewrite(object_type, object_id, relation, rel.rewrite)

    def _rewrite(self, object_type: str, object_id: str, relation: str, rewrite: Rewrite) -> None:
        if isinstance(rewrite, This):
            for key in self._reader.read(object_type, object_id, relation):
                self.users.add(key.user)
                user = parse_user(key.user)
                if user.relation is not None:
                    self._add((user.type, user.id, user.relation))
        elif isinstance(rewrite, ComputedUserset):
            self._add((object_type, object_id, rewrite.relation))
        elif isinstance(rewrite, TupleToUserset):
            for key in self._reader.read(object_type, object_id, rewrite.tupleset):
                parent = parse_user(key.user)
                if parent.relation is None and not parent.is_wildcard:
                    self._add((parent.type, parent.id, rewrite.computed_relation))
        elif isinstance(rewrite, Union | Intersection):
            for child in rewrite.children:
                self._rewrite(object_type, object_id, relation, child)
        elif isinstance(rewrite, Difference):
            self._rewrite(object_type, object_id, relation, rewrite.base)


def _fits(user: UserRef, filter_type: str, filter_relation: str | None) -> bool:
    if user.type != filter_type:
        return False
    return user.relation == filter_relation


def list_users(
    model: AuthorizationModel,
    reader: TupleReader,
    object: str,
    relation: str,
    user_filter: str,
    *,
    max_results: int = DEFAULT_MAX_RESULTS,
    after: str | None = None,
    max_depth: int = MAX_DEPTH,
) -> UserPage:
    """The users of ``user_filter`` that have ``relation`` on ``object``: the first
    ``max_results`` (sorted) after ``after``, and whether there are more.

    ``user_filter`` is a type (``user``) or a userset type (``group#member``).

    Raises:
        TupleError: the object, relation or filter does not fit the model.
        RequestError: ``max_results`` or ``max_depth`` is below 1.
        ResolutionTooComplex: confirming a candidate exceeded ``max_depth``.
    """
    if max_results < 1:
        raise RequestError(f"max_results must be at least 1, got {max_results}")
    obj = parse_object(object)
    require_relation(model, obj.type, relation)
    filter_type, sep, filter_relation = user_filter.partition("#")
    if model.type(filter_type) is None:
        raise TupleError("type is not defined in the model", type_name=filter_type)
    if sep:
        require_relation(model, filter_type, filter_relation)
    wanted = filter_relation if sep else None
    reached = _ForwardExpansion(model, reader).run((obj.type, obj.id, relation))
    candidates = sorted(
        text
        for text in reached
        if (after is None or text > after) and _fits(parse_user(text), filter_type, wanted)
    )
    resolver = Resolver(model, reader, max_depth)
    found: list[str] = []
    for text in candidates:
        if resolver.check(ObjectRef(obj.type, obj.id), relation, parse_user(text)):
            if len(found) == max_results:
                return UserPage(found, more=True)
            found.append(text)
    return UserPage(found, more=False)
