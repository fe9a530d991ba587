"""Check resolution: does a user have a relation on an object?

The resolver walks the model's userset rewrites, reading tuples through a
:class:`TupleReader`. Within one call it:

- memoizes each ``object#relation@user`` answer, so diamond-shaped graphs are
  resolved once per node, not once per path;
- cuts cycles: meeting a node that is already being resolved on the current path
  contributes "not found" on that path, except on the subtracted side of ``but
  not``, where it denies (OpenFGA's rule: the exclusion has no consistent answer).
  Answers that depended on such a cut are not memoized until the node that
  started the cycle is finished, so a cut never leaks into an answer reached
  another way;
- bounds depth: each hop to another ``object#relation`` (computed userset,
  tuple-to-userset, userset tuple) is one step; more than ``max_depth`` nested
  steps raise :class:`ResolutionTooComplex`. In a union a branch that is too
  complex does not hide another branch that grants; in an intersection, one that
  denies.

Tuples whose user does not match the relation's directly related user types
(left over from an older model, say) are ignored.

A tuple written with a condition holds only while its condition does, given
the tuple's context merged with the request's (see :mod:`._conditions`). A
condition that cannot be evaluated (a missing parameter, say) is an error, but
like a resolution that is too complex it does not hide another branch of a
union that grants, or of an intersection that denies: OpenFGA's rule.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from ._conditions import Context, EvaluationBudget
from ._errors import AuthzError, ConditionError, RequestError, ResolutionTooComplex
from ._model import (
    AuthorizationModel,
    ComputedUserset,
    Intersection,
    Relation,
    Rewrite,
    This,
    TupleToUserset,
    Union,
)
from ._store import TupleReader
from ._tuples import ObjectRef, TupleKey, UserRef, require_relation, validate_user

MAX_DEPTH: Final = 25
MAX_BATCH_CHECK: Final = 100
MAX_CORRELATION_ID_LENGTH: Final = 36

_CORRELATION_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]+")

_NodeKey = tuple[str, str, str, str]


@dataclass(frozen=True)
class _Outcome:
    """An answer, and the cycle cuts (nodes still on the path) it depended on."""

    allowed: bool
    cuts: frozenset[_NodeKey] = frozenset()


_DENIED: Final = _Outcome(False)
_ALLOWED: Final = _Outcome(True)

_Thunk = Callable[[], _Outcome]
#: Errors that stop one branch, not its siblings.
_BranchError = ResolutionTooComplex | ConditionError


class Resolver:
    """Resolves checks against one model and one reader, memoizing across calls.

    Not thread-safe: use one per thread (the module-level functions create one
    per call). Reuse one only while the tuples it reads do not change. Its
    answers hold for one request ``context`` (the values conditions read).
    """

    def __init__(
        self,
        model: AuthorizationModel,
        reader: TupleReader,
        max_depth: int = MAX_DEPTH,
        *,
        context: Context | None = None,
        budget: EvaluationBudget | None = None,
    ) -> None:
        if max_depth < 1:
            raise RequestError(f"max_depth must be at least 1, got {max_depth}")
        self._model = model
        self._reader = reader
        self._max_depth = max_depth
        self._context: Context = context or {}
        self._budget = budget or EvaluationBudget()
        self._memo: dict[_NodeKey, bool] = {}
        self._path: set[_NodeKey] = set()

    def check(self, obj: ObjectRef, relation: str, user: UserRef) -> bool:
        """Whether ``user`` has ``relation`` on ``obj`` (inputs already validated)."""
        return self._check(obj, relation, user, 1).allowed

    def _check(self, obj: ObjectRef, relation: str, user: UserRef, depth: int) -> _Outcome:
        key = (obj.type, obj.id, relation, str(user))
        memo = self._memo.get(key)
        if memo is not None:
            return _ALLOWED if memo else _DENIED
        if key in self._path:
            return _Outcome(False, frozenset({key}))
        if user.relation == relation and user.object == obj:
            return _ALLOWED  # a userset always contains itself
        if depth > self._max_depth:
            raise ResolutionTooComplex(self._max_depth, f"{obj}#{relation}@{user}")
        rel = self._model.relation(obj.type, relation)
        if rel is None:
            return _DENIED
        self._path.add(key)
        try:
            outcome = self._rewrite(obj, rel, rel.rewrite, user, depth)
        finally:
            self._path.discard(key)
        cuts = outcome.cuts - {key}
        if not cuts:
            self._memo[key] = outcome.allowed
        return _Outcome(outcome.allowed, cuts)

    def _rewrite(
        self, obj: ObjectRef, rel: Relation, rewrite: Rewrite, user: UserRef, depth: int
    ) -> _Outcome:
        if isinstance(rewrite, This):
            return self._direct(obj, rel, user, depth)
        if isinstance(rewrite, ComputedUserset):
            return self._check(obj, rewrite.relation, user, depth + 1)
        if isinstance(rewrite, TupleToUserset):
            return self._tuple_to_userset(obj, rewrite, user, depth)
        if isinstance(rewrite, Union):
            return _any([_bind(self._rewrite, obj, rel, c, user, depth) for c in rewrite.children])
        if isinstance(rewrite, Intersection):
            return _all([_bind(self._rewrite, obj, rel, c, user, depth) for c in rewrite.children])
        return _difference(
            _bind(self._rewrite, obj, rel, rewrite.base, user, depth),
            _bind(self._rewrite, obj, rel, rewrite.subtract, user, depth),
        )

    def _direct(self, obj: ObjectRef, rel: Relation, user: UserRef, depth: int) -> _Outcome:
        conditional: list[_Thunk] = []
        usersets: list[_Thunk] = []
        for key in self._reader.read(obj.type, obj.id, rel.name):
            ref = key.user_ref
            if not rel.allows(key.reference()):
                continue  # stale: the model no longer allows this kind of user here
            if _matches(ref, user):
                if key.condition is None:
                    return _ALLOWED
                conditional.append(self._when(key, lambda: _ALLOWED))
            elif ref.relation is not None:
                then = _bind_check(self._check, ref.object, ref.relation, user, depth + 1)
                usersets.append(self._when(key, then))
        return _any(conditional + usersets)

    def _when(self, key: TupleKey, then: _Thunk) -> _Thunk:
        """``then``, behind ``key``'s condition if it has one."""
        cond = key.condition
        if cond is None:
            return then

        def guarded() -> _Outcome:
            return then() if self.holds(key) else _DENIED

        return guarded

    def holds(self, key: TupleKey) -> bool:
        """Whether ``key``'s condition (if any) holds in this resolver's context.

        Raises:
            ConditionError: the condition is not in the model (a tuple left from an
                older model) or cannot be evaluated.
        """
        cond = key.condition
        if cond is None:
            return True
        condition = self._model.condition(cond.name)
        if condition is None:
            raise ConditionError(cond.name, f"tuple {key} names a condition the model lacks")
        return condition.evaluate(cond.context, self._context, self._budget, at=f"'{key}'")

    def _tuple_to_userset(
        self, obj: ObjectRef, rewrite: TupleToUserset, user: UserRef, depth: int
    ) -> _Outcome:
        tupleset = self._model.relation(obj.type, rewrite.tupleset)
        if tupleset is None:
            return _DENIED
        return _any(
            [
                self._when(
                    key,
                    _bind_check(
                        self._check, key.user_ref.object, rewrite.computed_relation, user, depth + 1
                    ),
                )
                for key in self._reader.read(obj.type, obj.id, rewrite.tupleset)
                if tupleset.allows(key.reference())
                and self._model.relation(key.user_ref.type, rewrite.computed_relation) is not None
            ]
        )


def _matches(stored: UserRef, user: UserRef) -> bool:
    """Whether a stored tuple's user is ``user`` itself, or a wildcard covering it."""
    if stored == user:
        return True
    return (
        stored.is_wildcard
        and stored.relation is None
        and user.relation is None
        and stored.type == user.type
    )


def _bind(
    fn: Callable[[ObjectRef, Relation, Rewrite, UserRef, int], _Outcome],
    obj: ObjectRef,
    rel: Relation,
    rewrite: Rewrite,
    user: UserRef,
    depth: int,
) -> _Thunk:
    return lambda: fn(obj, rel, rewrite, user, depth)


def _bind_check(
    fn: Callable[[ObjectRef, str, UserRef, int], _Outcome],
    obj: ObjectRef,
    relation: str,
    user: UserRef,
    depth: int,
) -> _Thunk:
    return lambda: fn(obj, relation, user, depth)


def _run(thunk: _Thunk) -> _Outcome | _BranchError:
    try:
        return thunk()
    except (ResolutionTooComplex, ConditionError) as exc:
        return exc


def _any(thunks: Iterable[_Thunk]) -> _Outcome:
    """Union: the first branch that grants decides; an error only if none grants."""
    cuts: frozenset[_NodeKey] = frozenset()
    error: _BranchError | None = None
    for thunk in thunks:
        outcome = _run(thunk)
        if not isinstance(outcome, _Outcome):
            error = error or outcome
            continue
        if outcome.allowed:
            return outcome
        cuts |= outcome.cuts
    if error is not None:
        raise error
    return _Outcome(False, cuts)


def _all(thunks: Iterable[_Thunk]) -> _Outcome:
    """Intersection: the first branch that denies decides; an error only if none does."""
    cuts: frozenset[_NodeKey] = frozenset()
    error: _BranchError | None = None
    for thunk in thunks:
        outcome = _run(thunk)
        if not isinstance(outcome, _Outcome):
            error = error or outcome
            continue
        if not outcome.allowed:
            return outcome
        cuts |= outcome.cuts
    if error is not None:
        raise error
    return _Outcome(True, cuts)


def _difference(base: _Thunk, subtract: _Thunk) -> _Outcome:
    """Exclusion: granted by ``base`` and not by ``subtract``."""
    base_outcome = _run(base)
    if isinstance(base_outcome, _Outcome) and not base_outcome.allowed:
        return base_outcome
    sub_outcome = _run(subtract)
    # A subtracted side that grants excludes. So does one that was denied only
    # because it met a node still being resolved above it: "viewer but not
    # blocked" where blocked leads back to viewer has no consistent answer, and,
    # as in OpenFGA, such a cycle on the subtracted side denies (a cycle resolved
    # within the subtracted side leaves no cut and excludes nothing).
    if isinstance(sub_outcome, _Outcome) and (sub_outcome.allowed or sub_outcome.cuts):
        return _Outcome(False, sub_outcome.cuts)
    if not isinstance(base_outcome, _Outcome):
        raise base_outcome
    if not isinstance(sub_outcome, _Outcome):
        raise sub_outcome
    return _Outcome(True, base_outcome.cuts | sub_outcome.cuts)


# ------------------------------------------------------------------------- public API


def check(
    model: AuthorizationModel,
    reader: TupleReader,
    tuple_key: TupleKey,
    *,
    max_depth: int = MAX_DEPTH,
    context: Context | None = None,
) -> bool:
    """Whether ``tuple_key.user`` has ``tuple_key.relation`` on ``tuple_key.object``.

    The user may be an object (``user:anne``), a userset (``group:eng#member``:
    does every member have it, via a tuple naming that userset) or a wildcard
    (``user:*``: is it public). ``context`` holds the values conditions read
    (a tuple's own context wins over it).

    Raises:
        TupleError: the object type, relation or user type is not in the model.
        ResolutionTooComplex: resolution needed more than ``max_depth`` nested steps.
        ConditionError: a condition the answer depends on could not be evaluated
            (a missing parameter, a value of the wrong type, a failed expression)
            or ran past its budget (:class:`ConditionTooComplex`).
        RequestError: ``max_depth`` is below 1.
    """
    _validate_check(model, tuple_key)
    resolver = Resolver(model, reader, max_depth, context=context)
    return resolver.check(tuple_key.object_ref, tuple_key.relation, tuple_key.user_ref)


def _validate_check(model: AuthorizationModel, tuple_key: TupleKey) -> None:
    require_relation(model, tuple_key.object_type, tuple_key.relation)
    validate_user(model, tuple_key.user_ref)


@dataclass(frozen=True)
class BatchCheckItem:
    """One check of a batch; ``correlation_id`` keys its result (1-36 characters of
    letters, digits, ``_`` and ``-``, unique in the batch); ``context`` is its own
    request context, as in OpenFGA's BatchCheck."""

    tuple_key: TupleKey
    correlation_id: str
    context: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchCheckResult:
    """The outcome of one batch item: ``allowed``, or the ``error`` that stopped it
    (then ``allowed`` is False)."""

    allowed: bool
    error: AuthzError | None = None


def batch_check(
    model: AuthorizationModel,
    reader: TupleReader,
    items: Sequence[BatchCheckItem],
    *,
    max_depth: int = MAX_DEPTH,
) -> dict[str, BatchCheckResult]:
    """Run up to :data:`MAX_BATCH_CHECK` checks; results are keyed by correlation id.

    An item that fails (a tuple that does not fit the model, a resolution that is
    too complex, a condition that cannot be evaluated) gets a result carrying its
    error; the other items still run. Answers are memoized across the items
    that share one context; the batch reads one snapshot.

    Raises:
        RequestError: more than :data:`MAX_BATCH_CHECK` items, or a correlation id
            that is malformed or used twice.
    """
    _validate_batch(items)
    resolvers: dict[str, Resolver] = {}
    budget = EvaluationBudget()
    results: dict[str, BatchCheckResult] = {}
    for item in items:
        key = item.tuple_key
        try:
            _validate_check(model, key)
            context_key = json.dumps(
                item.context, sort_keys=True, separators=(",", ":"), default=str
            )
            resolver = resolvers.get(context_key)
            if resolver is None:
                resolver = Resolver(model, reader, max_depth, context=item.context, budget=budget)
                resolvers[context_key] = resolver
            allowed = resolver.check(key.object_ref, key.relation, key.user_ref)
        except AuthzError as exc:
            results[item.correlation_id] = BatchCheckResult(False, exc)
        else:
            results[item.correlation_id] = BatchCheckResult(allowed)
    return results


def _validate_batch(items: Sequence[BatchCheckItem]) -> None:
    if len(items) > MAX_BATCH_CHECK:
        raise RequestError(f"batch_check takes at most {MAX_BATCH_CHECK} items, got {len(items)}")
    seen: set[str] = set()
    for item in items:
        cid = item.correlation_id
        if len(cid) > MAX_CORRELATION_ID_LENGTH or not _CORRELATION_ID_RE.fullmatch(cid):
            raise RequestError(
                f"correlation id {cid!r} must be 1 to {MAX_CORRELATION_ID_LENGTH} "
                "letters, digits, '_' or '-'"
            )
        if cid in seen:
            raise RequestError(f"correlation id {cid!r} is used more than once")
        seen.add(cid)
