"""Relationship tuples: ``user`` has ``relation`` on ``object``.

Syntax (checked when a :class:`TupleKey` is built):

- object: ``type:id``
- user: ``type:id`` (an object), ``type:id#relation`` (a userset) or ``type:*``
  (a wildcard: every object of that type)

Ids may contain ``:`` and ``/`` (``workload:spiffe://example.org/api``) but no
whitespace and no ``#``; ``*`` is only valid as a user id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from ._conditions import TupleCondition
from ._errors import ConditionError, TupleError
from ._model import (
    MAX_RELATION_NAME_LENGTH,
    MAX_TYPE_NAME_LENGTH,
    AuthorizationModel,
    Relation,
    RelationReference,
    This,
    is_valid_name,
    iter_rewrites,
)

MAX_ID_LENGTH: Final = 256
WILDCARD: Final = "*"

_ID_RE: Final = re.compile(r"[^\s#]+")


@dataclass(frozen=True)
class ObjectRef:
    """An object, ``type:id``."""

    type: str
    id: str

    def __str__(self) -> str:
        return f"{self.type}:{self.id}"


@dataclass(frozen=True)
class UserRef:
    """The user side of a tuple: an object, a userset (``relation`` set) or a wildcard."""

    type: str
    id: str
    relation: str | None = None

    @property
    def is_wildcard(self) -> bool:
        """Whether this is ``type:*``."""
        return self.id == WILDCARD

    @property
    def object(self) -> ObjectRef:
        """The ``type:id`` part (for a userset: the object whose relation it names)."""
        return ObjectRef(self.type, self.id)

    def reference(self) -> RelationReference:
        """The model's directly-related-user-type entry this user needs."""
        return RelationReference(self.type, self.relation, self.is_wildcard)

    def __str__(self) -> str:
        if self.relation is not None:
            return f"{self.type}:{self.id}#{self.relation}"
        return f"{self.type}:{self.id}"


def parse_object(text: str) -> ObjectRef:
    """Parse ``type:id``.

    Raises:
        TupleError: the text is not a well-formed object.
    """
    type_name, sep, object_id = text.partition(":")
    if not sep or not is_valid_name(type_name, MAX_TYPE_NAME_LENGTH):
        raise TupleError(f'object "{text}" must be "type:id"')
    if object_id == WILDCARD or not _valid_id(object_id):
        raise TupleError(
            f'object "{text}" has a bad id: 1 to {MAX_ID_LENGTH} characters, '
            'no whitespace, no "#", not "*"'
        )
    return ObjectRef(type_name, object_id)


def parse_user(text: str) -> UserRef:
    """Parse ``type:id``, ``type:id#relation`` or ``type:*``.

    Raises:
        TupleError: the text is not a well-formed user.
    """
    obj_text, sep, relation = text.partition("#")
    type_name, colon, user_id = obj_text.partition(":")
    if not colon or not is_valid_name(type_name, MAX_TYPE_NAME_LENGTH):
        raise TupleError(f'user "{text}" must be "type:id", "type:id#relation" or "type:*"')
    if user_id != WILDCARD and not _valid_id(user_id):
        raise TupleError(
            f'user "{text}" has a bad id: 1 to {MAX_ID_LENGTH} characters, no whitespace, no "#"'
        )
    if not sep:
        return UserRef(type_name, user_id)
    if user_id == WILDCARD:
        raise TupleError(f'user "{text}": a wildcard cannot name a relation')
    if not is_valid_name(relation, MAX_RELATION_NAME_LENGTH):
        raise TupleError(f'user "{text}" has a bad relation name "{relation}"')
    return UserRef(type_name, user_id, relation)


def _valid_id(text: str) -> bool:
    return len(text) <= MAX_ID_LENGTH and _ID_RE.fullmatch(text) is not None


@dataclass(frozen=True)
class TupleKey:
    """A relationship tuple: ``user`` has ``relation`` on ``object``.

    Building one checks the syntax of all three parts (not the model: see
    :func:`validate_tuple`). ``condition`` is the condition it is written with,
    if any; it is not part of the tuple's identity (one tuple per object,
    relation and user, as in OpenFGA).

    Raises:
        TupleError: a part is malformed.
    """

    user: str
    relation: str
    object: str
    condition: TupleCondition | None = field(default=None, compare=False)
    user_ref: UserRef = field(init=False, repr=False, compare=False)
    object_ref: ObjectRef = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not is_valid_name(self.relation, MAX_RELATION_NAME_LENGTH):
            raise TupleError(f'bad relation name "{self.relation}"')
        object.__setattr__(self, "user_ref", parse_user(self.user))
        object.__setattr__(self, "object_ref", parse_object(self.object))

    @property
    def object_type(self) -> str:
        """The object's type."""
        return self.object_ref.type

    @property
    def object_id(self) -> str:
        """The object's id."""
        return self.object_ref.id

    def reference(self) -> RelationReference:
        """The directly-related-user-type entry this tuple needs, condition included."""
        ref = self.user_ref.reference()
        if self.condition is None:
            return ref
        return RelationReference(ref.type, ref.relation, ref.wildcard, self.condition.name)

    def __str__(self) -> str:
        text = f"{self.object}#{self.relation}@{self.user}"
        return f"{text} with {self.condition.name}" if self.condition is not None else text


def validate_tuple(model: AuthorizationModel, key: TupleKey) -> None:
    """Check that ``key`` may be written under ``model``.

    The object's type must exist, the relation must exist on it and be directly
    assignable, and the user's type / userset / wildcard (with the tuple's
    condition, if any) must be one of the relation's directly related user types.
    A condition must be defined in the model, and its context may name only the
    condition's parameters, each with a value of its type.

    Raises:
        TupleError: naming the type and relation at fault.
    """
    object_type, relation = key.object_type, key.relation
    type_def = model.type(object_type)
    if type_def is None:
        raise TupleError("type is not defined in the model", type_name=object_type)
    rel = type_def.relation(relation)
    if rel is None:
        raise TupleError("relation is not defined", type_name=object_type, relation=relation)
    if not any(isinstance(node, This) for node in iter_rewrites(rel.rewrite)):
        raise TupleError(
            "relation is not directly assignable (it has no [...] type restrictions)",
            type_name=object_type,
            relation=relation,
        )
    if key.condition is not None:
        _validate_condition(model, key, key.condition)
    ref = key.reference()
    if not rel.allows(ref):
        allowed = ", ".join(str(r) for r in rel.directly_related_user_types)
        raise TupleError(
            f'user "{key.user}" is not allowed: "{ref}" is not one of [{allowed}]',
            type_name=object_type,
            relation=relation,
        )


def _validate_condition(model: AuthorizationModel, key: TupleKey, cond: TupleCondition) -> None:
    condition = model.condition(cond.name)
    if condition is None:
        raise TupleError(
            f'condition "{cond.name}" is not defined in the model',
            type_name=key.object_type,
            relation=key.relation,
        )
    try:
        condition.validate_context(cond.context, what="the tuple's context")
    except ConditionError as exc:
        raise TupleError(
            exc.message.removeprefix("secinfra: authz: "),
            type_name=key.object_type,
            relation=key.relation,
        ) from None


def require_relation(model: AuthorizationModel, object_type: str, relation: str) -> Relation:
    """Return ``object_type#relation`` (for check, expand, list_objects requests).

    Raises:
        TupleError: the type or the relation is not defined.
    """
    if model.type(object_type) is None:
        raise TupleError("type is not defined in the model", type_name=object_type)
    rel = model.relation(object_type, relation)
    if rel is None:
        raise TupleError("relation is not defined", type_name=object_type, relation=relation)
    return rel


def validate_user(model: AuthorizationModel, user: UserRef) -> None:
    """Check that a request's user names a defined type (and relation, for a userset).

    Raises:
        TupleError: the user's type or relation is not defined.
    """
    if user.relation is None:
        if model.type(user.type) is None:
            raise TupleError(f'user "{user}": type is not defined', type_name=user.type)
        return
    require_relation(model, user.type, user.relation)
