"""List users: which users of a type have a relation on one object?

OpenFGA's ListUsers, in the same two phases as :mod:`._list_objects`, the other
way round:

1. Forward expansion finds candidates. Starting from ``object#relation`` it
   follows the relation's rewrite (direct tuples, computed usersets on the same
   object, tuple-to-usersets to parent objects) and every userset a tuple names
   (``group:eng#member`` leads to the members of ``group:eng``). Intersections
   and exclusions contribute every side, so the candidates are a superset of
   the answer; each node is visited once, so cycles terminate.
2. Each candidate of the filter's kind is confirmed with a check (sharing one
   memo), in order, so the answer is exactly what Check says, ``but not``
   and cycles included. A condition that cannot be evaluated while confirming
   fails the call, as in OpenFGA's ListUsers.

The filter is a type (``user``: objects of that type, and ``user:*`` when the
relation is public) or a userset type (``group#member``: usersets such as
``group:eng#member`` that have the relation as a whole).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from ._check import MAX_DEPTH, Resolver
from ._conditions import Context
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


#: How many ``but not`` subtracted sides lie on the way to a user: 0, 1, or 2
#: for two or more (a user named under "blocked but not unblocked" of "viewer
#: but not blocked" is behind two).
_Negations = int
_MAX_NEGATIONS = 2


class _ForwardExpansion:
    """Breadth-first walk from ``object#relation`` to every user it may include,
    noting for each user the fewest subtracted sides on the way to it."""

    def __init__(self, model: AuthorizationModel, reader: TupleReader) -> None:
        self._model = model
        self._reader = reader
        self._seen: set[tuple[_Node, _Negations]] = set()
        self._queue: deque[tuple[_Node, _Negations]] = deque()
        self.users: dict[str, _Negations] = {}

    def run(self, start: _Node) -> dict[str, _Negations]:
        self._add(start, 0)
        while self._queue:
            node, negations = self._queue.popleft()
            self._visit(node, negations)
        return self.users

    def _user(self, user: str, negations: _Negations) -> None:
        if negations < self.users.get(user, _MAX_NEGATIONS + 1):
            self.users[user] = negations

    def _add(self, node: _Node, negations: _Negations) -> None:
        state = (node, min(negations, _MAX_NEGATIONS))
        if state not in self._seen:
            self._seen.add(state)
            self._queue.append(state)
            object_type, object_id, relation = node
            self._user(f"{object_type}:{object_id}#{relation}", negations)  # it has itself

    def _visit(self, node: _Node, negations: _Negations) -> None:
        object_type, _, relation = node
        rel = self._model.relation(object_type, relation)
        if rel is not None:
            self._rewrite(node, rel.rewrite, negations)

    def _rewrite(self, node: _Node, rewrite: Rewrite, negations: _Negations) -> None:
        object_type, object_id, relation = node
        if isinstance(rewrite, This):
            for key in self._reader.read(object_type, object_id, relation):
                self._user(key.user, negations)
                user = parse_user(key.user)
                if user.relation is not None:
                    self._add((user.type, user.id, user.relation), negations)
        elif isinstance(rewrite, ComputedUserset):
            self._add((object_type, object_id, rewrite.relation), negations)
        elif isinstance(rewrite, TupleToUserset):
            for key in self._reader.read(object_type, object_id, rewrite.tupleset):
                parent = parse_user(key.user)
                if parent.relation is None and not parent.is_wildcard:
                    self._add((parent.type, parent.id, rewrite.computed_relation), negations)
        elif isinstance(rewrite, Union | Intersection):
            for child in rewrite.children:
                self._rewrite(node, child, negations)
        elif isinstance(rewrite, Difference):
            # Both sides: a user met under the subtracted side may still be
            # granted (an exception to a wildcard that is not excluded after
            # all, or a nested "but not" lifting the exclusion); check decides.
            self._rewrite(node, rewrite.base, negations)
            self._rewrite(node, rewrite.subtract, min(negations + 1, _MAX_NEGATIONS))


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
    context: Context | None = None,
) -> UserPage:
    """The users of ``user_filter`` that have ``relation`` on ``object``: the first
    ``max_results`` (sorted) after ``after``, and whether there are more.

    ``user_filter`` is a type (``user``) or a userset type (``group#member``);
    ``context`` holds the values conditions read.

    Raises:
        TupleError: the object, relation or filter does not fit the model.
        RequestError: ``max_results`` or ``max_depth`` is below 1.
        ResolutionTooComplex: confirming a candidate exceeded ``max_depth``.
        ConditionError: a condition could not be evaluated.
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
    resolver = Resolver(model, reader, max_depth, context=context)
    target = ObjectRef(obj.type, obj.id)
    wildcard = f"{filter_type}:*"
    # As in OpenFGA: a user met only behind two or more subtracted sides (an
    # exception to an exception) is listed only when the type's wildcard is
    # not: otherwise the wildcard already says it.
    public = (
        wanted is None
        and wildcard in reached
        and resolver.check(target, relation, parse_user(wildcard))
    )
    candidates = sorted(
        text
        for text, negations in reached.items()
        if (after is None or text > after)
        and _fits(parse_user(text), filter_type, wanted)
        and not (public and negations >= _MAX_NEGATIONS and text != wildcard)
    )
    found: list[str] = []
    for text in candidates:
        if resolver.check(target, relation, parse_user(text)):
            if len(found) == max_results:
                return UserPage(found, more=True)
            found.append(text)
    return UserPage(found, more=False)
