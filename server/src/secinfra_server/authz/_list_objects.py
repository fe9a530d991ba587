"""List objects: which objects of a type does a user have a relation on?

Two phases, both driven by the user rather than by the number of objects:

1. Reverse expansion finds candidates. Starting from the tuples naming the user
   (and ``type:*`` for it), it follows the model's edges backwards with
   :meth:`TupleReader.read_objects`: a userset tuple (``group:eng#member`` is a
   viewer of ``document:1``), a tuple-to-userset (``document:1#parent@folder:x``
   carries ``folder:x#viewer`` to ``document:1#viewer``) and computed usersets on
   the same object. It ignores intersections and exclusions, so it yields a
   superset of the answer; each node is visited once, so cycles terminate.
2. Each candidate of the wanted type and relation is confirmed with a check
   (sharing one memo), in id order, until ``max_results`` are found; one more
   confirmed candidate says whether there is a next page.

Conditions are evaluated in phase 2 only. As in OpenFGA, a candidate whose
check fails on a condition (a missing parameter, say) is left out, and the
call fails with that error only if the page is not full without it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from ._check import MAX_DEPTH, Resolver
from ._conditions import Context
from ._errors import ConditionError, RequestError
from ._model import (
    AuthorizationModel,
    ComputedUserset,
    Difference,
    Intersection,
    Rewrite,
    TupleToUserset,
    Union,
)
from ._store import TupleReader
from ._tuples import ObjectRef, UserRef, parse_user, require_relation, validate_user

DEFAULT_MAX_RESULTS: Final = 1000

_Node = tuple[str, str, str]  # (object type, object id, relation)
_TypeRelation = tuple[str, str]


@dataclass
class _ReverseEdges:
    """The model's edges, indexed by the relation they lead away from."""

    # (T, R) -> relations R' of T that include "R" (computed userset)
    computed: dict[_TypeRelation, list[str]] = field(default_factory=dict)
    # (P, R) -> (T, tupleset, R') where R' of T is "R from tupleset" and P fits tupleset
    tuple_to_userset: dict[_TypeRelation, list[tuple[str, str, str]]] = field(default_factory=dict)
    # (T, R) -> (O, rel) where O#rel accepts "T#R" directly
    usersets: dict[_TypeRelation, list[_TypeRelation]] = field(default_factory=dict)
    # T -> (O, rel) where O#rel accepts "T" directly; wildcards keyed by "T:*"
    direct: dict[str, list[_TypeRelation]] = field(default_factory=dict)


def _granting(rewrite: Rewrite) -> Iterator[Rewrite]:
    """Yield the rewrites that can grant (everything except exclusions' subtract)."""
    yield rewrite
    if isinstance(rewrite, Union | Intersection):
        for child in rewrite.children:
            yield from _granting(child)
    elif isinstance(rewrite, Difference):
        yield from _granting(rewrite.base)


def _reverse_edges(model: AuthorizationModel) -> _ReverseEdges:
    edges = _ReverseEdges()
    for type_def in model.type_definitions:
        for rel in type_def.relations:
            for ref in rel.directly_related_user_types:
                target = (type_def.name, rel.name)
                if ref.relation is not None:
                    edges.usersets.setdefault((ref.type, ref.relation), []).append(target)
                else:
                    edges.direct.setdefault(ref.subject, []).append(target)
            for node in _granting(rel.rewrite):
                _add_rewrite_edge(model, edges, type_def.name, rel.name, node)
    return edges


def _add_rewrite_edge(
    model: AuthorizationModel, edges: _ReverseEdges, type_name: str, relation: str, node: Rewrite
) -> None:
    if isinstance(node, ComputedUserset):
        edges.computed.setdefault((type_name, node.relation), []).append(relation)
    elif isinstance(node, TupleToUserset):
        tupleset = model.relation(type_name, node.tupleset)
        for ref in tupleset.directly_related_user_types if tupleset else ():
            edges.tuple_to_userset.setdefault((ref.type, node.computed_relation), []).append(
                (type_name, node.tupleset, relation)
            )


class _ReverseExpansion:
    """Breadth-first walk from a user to every ``object#relation`` it may reach."""

    def __init__(self, model: AuthorizationModel, reader: TupleReader) -> None:
        self._edges = _reverse_edges(model)
        self._reader = reader
        self._seen: set[_Node] = set()
        self._queue: deque[_Node] = deque()

    def run(self, user: UserRef) -> set[_Node]:
        self._seed(user)
        while self._queue:
            self._visit(self._queue.popleft())
        return self._seen

    def _add(self, node: _Node) -> None:
        if node not in self._seen:
            self._seen.add(node)
            self._queue.append(node)

    def _add_tuples(self, targets: list[_TypeRelation], user: str) -> None:
        for object_type, relation in targets:
            for object_id in self._reader.read_objects(object_type, relation, user):
                self._add((object_type, object_id, relation))

    def _seed(self, user: UserRef) -> None:
        if user.relation is not None:
            self._add((user.type, user.id, user.relation))
            return
        wildcard = f"{user.type}:*"
        self._add_tuples(self._edges.direct.get(wildcard, []), wildcard)
        if not user.is_wildcard:
            self._add_tuples(self._edges.direct.get(user.type, []), str(user))

    def _visit(self, node: _Node) -> None:
        object_type, object_id, relation = node
        for other in self._edges.computed.get((object_type, relation), []):
            self._add((object_type, object_id, other))
        userset = f"{object_type}:{object_id}#{relation}"
        self._add_tuples(self._edges.usersets.get((object_type, relation), []), userset)
        parent = f"{object_type}:{object_id}"
        for child_type, tupleset, child_relation in self._edges.tuple_to_userset.get(
            (object_type, relation), []
        ):
            for child_id in self._reader.read_objects(child_type, tupleset, parent):
                self._add((child_type, child_id, child_relation))


@dataclass(frozen=True)
class ObjectPage:
    """One page of :func:`list_objects`: objects (``type:id``, sorted by id) and
    whether confirmed objects follow the last one."""

    objects: list[str]
    more: bool


def list_objects_page(
    model: AuthorizationModel,
    reader: TupleReader,
    object_type: str,
    relation: str,
    user: str,
    *,
    max_results: int = DEFAULT_MAX_RESULTS,
    after: str | None = None,
    max_depth: int = MAX_DEPTH,
    context: Context | None = None,
) -> ObjectPage:
    """The objects of ``object_type`` on which ``user`` has ``relation``: the
    first ``max_results`` by id whose id sorts after ``after`` (a page), and
    whether there are more. Never a silent cut: ``more`` is true exactly when
    another confirmed object follows the page.

    ``user`` is ``type:id``, ``type:id#relation`` or ``type:*``; ``context``
    holds the values conditions read.

    Raises:
        TupleError: the type, relation or user does not fit the model.
        RequestError: ``max_results`` or ``max_depth`` is below 1.
        ResolutionTooComplex: confirming a candidate exceeded ``max_depth``.
        ConditionError: a candidate's condition could not be evaluated and the
            page is not full without it.
    """
    if max_results < 1:
        raise RequestError(f"max_results must be at least 1, got {max_results}")
    require_relation(model, object_type, relation)
    user_ref = parse_user(user)
    validate_user(model, user_ref)
    resolver = Resolver(model, reader, max_depth, context=context)
    reached = _ReverseExpansion(model, reader).run(user_ref)
    candidates = sorted(
        i
        for t, i, r in reached
        if t == object_type and r == relation and (after is None or i > after)
    )
    found: list[str] = []
    failed: ConditionError | None = None
    for object_id in candidates:
        try:
            allowed = resolver.check(ObjectRef(object_type, object_id), relation, user_ref)
        except ConditionError as exc:
            failed = failed or exc
            continue
        if allowed:
            if len(found) == max_results:
                return ObjectPage(found, more=True)
            found.append(f"{object_type}:{object_id}")
    if failed is not None and len(found) < max_results:
        raise failed
    return ObjectPage(found, more=False)


def list_objects(
    model: AuthorizationModel,
    reader: TupleReader,
    object_type: str,
    relation: str,
    user: str,
    *,
    max_results: int = DEFAULT_MAX_RESULTS,
    max_depth: int = MAX_DEPTH,
    context: Context | None = None,
) -> list[str]:
    """The first page of :func:`list_objects_page`, as a list: at most
    ``max_results`` objects, the first by id."""
    page = list_objects_page(
        model,
        reader,
        object_type,
        relation,
        user,
        max_results=max_results,
        max_depth=max_depth,
        context=context,
    )
    return page.objects
