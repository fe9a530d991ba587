"""The authorization model: typed, frozen dataclasses, OpenFGA JSON in and out.

The JSON shape is OpenFGA's ``schema_version: "1.1"`` authorization model::

    {"schema_version": "1.1",
     "type_definitions": [
        {"type": "document",
         "relations": {"viewer": {"union": {"child": [
                          {"this": {}},
                          {"computedUserset": {"object": "", "relation": "editor"}}]}}},
         "metadata": {"relations": {"viewer": {"directly_related_user_types": [
                          {"type": "user"}, {"type": "group", "relation": "member"},
                          {"type": "user", "wildcard": {}},
                          {"type": "user", "condition": "in_office"}]}}}}],
     "conditions": {"in_office": {"name": "in_office",
                                  "expression": "ip.in_cidr(office)",
                                  "parameters": {"ip": {"type_name": "TYPE_NAME_IPADDRESS"},
                                                 "office": {"type_name": "TYPE_NAME_STRING"}}}}}

Conditions (:mod:`._conditions`) are compiled when the model is built.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, TypeAlias

from ._conditions import Condition, parameter_type_from_dict
from ._errors import ModelError

SCHEMA_VERSION: Final = "1.1"
MAX_TYPE_NAME_LENGTH: Final = 254
MAX_RELATION_NAME_LENGTH: Final = 50
RESERVED_RELATION_NAMES: Final = frozenset({"this", "self"})
#: How deeply userset rewrites may nest (``a or (b and (c ...))`` counts three).
#: Real models nest a few levels; the bound keeps every recursive walk over a
#: rewrite (parsing, validation, checks, rendering) far from Python's recursion
#: limit, whatever a caller sends.
MAX_REWRITE_DEPTH: Final = 16
_TOO_DEEP: Final = f"userset rewrites nest deeper than the limit of {MAX_REWRITE_DEPTH} levels"

_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")

JSONObject: TypeAlias = dict[str, object]
_Fail: TypeAlias = Callable[[str], ModelError]


# --------------------------------------------------------------------------- rewrites


@dataclass(frozen=True)
class This:
    """Direct assignment: the users written in tuples on ``object#relation``."""


@dataclass(frozen=True)
class ComputedUserset:
    """Users who have ``relation`` on the same object."""

    relation: str


@dataclass(frozen=True)
class TupleToUserset:
    """Users who have ``computed_relation`` on the objects related via ``tupleset``.

    DSL: ``<computed_relation> from <tupleset>``.
    """

    tupleset: str
    computed_relation: str


@dataclass(frozen=True)
class Union:
    """Users in any child."""

    children: tuple[Rewrite, ...]


@dataclass(frozen=True)
class Intersection:
    """Users in every child."""

    children: tuple[Rewrite, ...]


@dataclass(frozen=True)
class Difference:
    """Users in ``base`` and not in ``subtract`` (DSL: ``base but not subtract``)."""

    base: Rewrite
    subtract: Rewrite


Rewrite: TypeAlias = This | ComputedUserset | TupleToUserset | Union | Intersection | Difference


# --------------------------------------------------------------------- definitions


@dataclass(frozen=True)
class RelationReference:
    """One entry of a relation's directly related user types.

    ``RelationReference("user")`` is ``user``; ``RelationReference("group", "member")``
    is ``group#member``; ``RelationReference("user", wildcard=True)`` is ``user:*``;
    ``RelationReference("user", condition="c")`` is ``user with c`` (a tuple for it
    must carry condition ``c``, and holds only while ``c`` does).
    """

    type: str
    relation: str | None = None
    wildcard: bool = False
    condition: str | None = None

    def __str__(self) -> str:
        text = self.subject
        return f"{text} with {self.condition}" if self.condition is not None else text

    @property
    def subject(self) -> str:
        """The user type part, without the condition: ``user``, ``group#member``, ``user:*``."""
        if self.wildcard:
            return f"{self.type}:*"
        if self.relation is not None:
            return f"{self.type}#{self.relation}"
        return self.type


@dataclass(frozen=True)
class Relation:
    """A relation of a type: its rewrite and the user types it can be assigned to."""

    name: str
    rewrite: Rewrite
    directly_related_user_types: tuple[RelationReference, ...] = ()

    def allows(self, ref: RelationReference) -> bool:
        """Whether ``ref`` (a user type, userset type or wildcard) may be assigned."""
        return ref in self.directly_related_user_types


@dataclass(frozen=True)
class TypeDefinition:
    """An object type and its relations, in declaration order."""

    name: str
    relations: tuple[Relation, ...] = ()
    _by_name: Mapping[str, Relation] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {r.name: r for r in self.relations})

    def relation(self, name: str) -> Relation | None:
        """Return the relation called ``name``, or None."""
        return self._by_name.get(name)


@dataclass(frozen=True)
class AuthorizationModel:
    """A validated authorization model (build it with :func:`parse_model` or
    :func:`parse_dsl`; constructing it directly validates it too)."""

    type_definitions: tuple[TypeDefinition, ...]
    schema_version: str = SCHEMA_VERSION
    conditions: tuple[Condition, ...] = ()
    _by_name: Mapping[str, TypeDefinition] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _conditions: Mapping[str, Condition] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {t.name: t for t in self.type_definitions})
        object.__setattr__(self, "_conditions", {c.name: c for c in self.conditions})
        _validate(self)

    def condition(self, name: str) -> Condition | None:
        """Return the condition called ``name``, or None."""
        return self._conditions.get(name)

    def type(self, name: str) -> TypeDefinition | None:
        """Return the type definition called ``name``, or None."""
        return self._by_name.get(name)

    def relation(self, type_name: str, relation: str) -> Relation | None:
        """Return ``type_name``'s relation called ``relation``, or None."""
        type_def = self._by_name.get(type_name)
        return type_def.relation(relation) if type_def is not None else None

    def to_dict(self) -> JSONObject:
        """Render the model in OpenFGA's JSON shape (``json.dumps``-able)."""
        return {
            "schema_version": self.schema_version,
            "type_definitions": [_type_to_dict(t) for t in self.type_definitions],
            "conditions": {c.name: c.to_dict() for c in self.conditions},
        }


# ------------------------------------------------------------------------ rendering


def rewrite_to_dict(rewrite: Rewrite) -> JSONObject:
    """Render one userset rewrite in OpenFGA's JSON shape."""
    if isinstance(rewrite, This):
        return {"this": {}}
    if isinstance(rewrite, ComputedUserset):
        return {"computedUserset": {"object": "", "relation": rewrite.relation}}
    if isinstance(rewrite, TupleToUserset):
        return {
            "tupleToUserset": {
                "tupleset": {"object": "", "relation": rewrite.tupleset},
                "computedUserset": {"object": "", "relation": rewrite.computed_relation},
            }
        }
    if isinstance(rewrite, Union):
        return {"union": {"child": [rewrite_to_dict(c) for c in rewrite.children]}}
    if isinstance(rewrite, Intersection):
        return {"intersection": {"child": [rewrite_to_dict(c) for c in rewrite.children]}}
    return {
        "difference": {
            "base": rewrite_to_dict(rewrite.base),
            "subtract": rewrite_to_dict(rewrite.subtract),
        }
    }


def _reference_to_dict(ref: RelationReference) -> JSONObject:
    out: JSONObject = {"type": ref.type}
    if ref.relation is not None:
        out["relation"] = ref.relation
    if ref.wildcard:
        out["wildcard"] = {}
    if ref.condition is not None:
        out["condition"] = ref.condition
    return out


def _type_to_dict(type_def: TypeDefinition) -> JSONObject:
    relations = {r.name: rewrite_to_dict(r.rewrite) for r in type_def.relations}
    metadata: JSONObject | None = None
    if type_def.relations:
        metadata = {
            "relations": {
                r.name: {
                    "directly_related_user_types": [
                        _reference_to_dict(ref) for ref in r.directly_related_user_types
                    ]
                }
                for r in type_def.relations
            }
        }
    return {"type": type_def.name, "relations": relations, "metadata": metadata}


# -------------------------------------------------------------------------- parsing


def parse_model(data: Mapping[str, object]) -> AuthorizationModel:
    """Parse and validate an OpenFGA JSON authorization model (a decoded JSON object).

    Raises:
        ModelError: the model is malformed; the message names the type and relation
            at fault.
    """
    if not isinstance(data, Mapping):
        raise ModelError("the model must be a JSON object")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ModelError(f'schema_version must be "{SCHEMA_VERSION}", got {version!r}')
    raw_types = data.get("type_definitions")
    if not isinstance(raw_types, list) or not raw_types:
        raise ModelError("type_definitions must be a non-empty list")
    types = tuple(_parse_type(raw) for raw in raw_types)
    return AuthorizationModel(types, conditions=_parse_conditions(data.get("conditions")))


def _parse_conditions(raw: object) -> tuple[Condition, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise ModelError("conditions must be a JSON object keyed by condition name")
    out = []
    for key, body in raw.items():
        if not isinstance(body, Mapping):
            raise ModelError(f'condition "{key}" must be a JSON object')
        name = body.get("name", key)
        if name != key:
            raise ModelError(f'condition "{key}" has a different name inside: {name!r}')
        expression = body.get("expression")
        if not isinstance(expression, str):
            raise ModelError(f'condition "{key}": expression must be a string')
        params = body.get("parameters") or {}
        if not isinstance(params, Mapping):
            raise ModelError(f'condition "{key}": parameters must be a JSON object')
        try:
            parsed = tuple((str(p), parameter_type_from_dict(t)) for p, t in params.items())
        except ModelError as exc:
            raise ModelError(f'condition "{key}": {exc.reason}') from None
        out.append(Condition(str(key), expression, parsed))
    return tuple(out)


def _parse_type(raw: object) -> TypeDefinition:
    if not isinstance(raw, Mapping):
        raise ModelError("each type definition must be a JSON object")
    name = raw.get("type")
    if not isinstance(name, str):
        raise ModelError(f"type name must be a string, got {name!r}")
    raw_relations = _object_or_empty(raw.get("relations"), name, None, "relations")
    metadata = _object_or_empty(raw.get("metadata"), name, None, "metadata")
    meta_relations = _object_or_empty(metadata.get("relations"), name, None, "metadata")
    for rel_name in meta_relations:
        if rel_name not in raw_relations:
            raise ModelError(
                "metadata is given for a relation that is not defined",
                type_name=name,
                relation=str(rel_name),
            )
    relations = []
    for rel_name, raw_rewrite in raw_relations.items():
        rel_meta = _object_or_empty(meta_relations.get(rel_name), name, rel_name, "metadata")
        relations.append(
            Relation(
                name=rel_name,
                rewrite=_parse_rewrite(raw_rewrite, name, rel_name, depth=1),
                directly_related_user_types=_parse_references(rel_meta, name, rel_name),
            )
        )
    return TypeDefinition(name, tuple(relations))


def _object_or_empty(
    value: object, type_name: str, relation: str | None, what: str
) -> Mapping[str, object]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ModelError(f"{what} must be a JSON object", type_name=type_name, relation=relation)
    return value


def _parse_references(
    rel_meta: Mapping[str, object], type_name: str, relation: str
) -> tuple[RelationReference, ...]:
    raw_refs = rel_meta.get("directly_related_user_types", [])
    if raw_refs is None:
        return ()
    if not isinstance(raw_refs, list):
        raise ModelError(
            "directly_related_user_types must be a list", type_name=type_name, relation=relation
        )
    return tuple(_parse_reference(raw, type_name, relation) for raw in raw_refs)


def _parse_reference(raw: object, type_name: str, relation: str) -> RelationReference:
    def fail(reason: str) -> ModelError:
        return ModelError(reason, type_name=type_name, relation=relation)

    if not isinstance(raw, Mapping):
        raise fail("each directly related user type must be a JSON object")
    condition = raw.get("condition") or None
    if condition is not None and not isinstance(condition, str):
        raise fail("a directly related user type's condition must be a string")
    ref_type = raw.get("type")
    if not isinstance(ref_type, str):
        raise fail(f"directly related user type has no type name: {dict(raw)!r}")
    ref_relation = raw.get("relation") or None
    if ref_relation is not None and not isinstance(ref_relation, str):
        raise fail(f"directly related user type {ref_type!r} has a non-string relation")
    wildcard = raw.get("wildcard") is not None
    if wildcard and ref_relation is not None:
        raise fail(f'directly related user type "{ref_type}" cannot be both userset and wildcard')
    return RelationReference(ref_type, ref_relation, wildcard, condition)


_REWRITE_KEYS: Final = (
    "this",
    "computedUserset",
    "tupleToUserset",
    "union",
    "intersection",
    "difference",
)


def _parse_rewrite(raw: object, type_name: str, relation: str, *, depth: int) -> Rewrite:
    def fail(reason: str) -> ModelError:
        return ModelError(reason, type_name=type_name, relation=relation)

    if depth > MAX_REWRITE_DEPTH:
        raise fail(_TOO_DEEP)
    if not isinstance(raw, Mapping):
        raise fail("a userset rewrite must be a JSON object")
    keys = [k for k in _REWRITE_KEYS if raw.get(k) is not None]
    unknown = sorted(str(k) for k in raw if k not in _REWRITE_KEYS)
    if unknown:
        raise fail(f"unknown userset rewrite {unknown[0]!r}")
    if len(keys) != 1:
        raise fail(f"a userset rewrite needs exactly one of {', '.join(_REWRITE_KEYS)}")
    key = keys[0]
    body = raw[key]
    if key == "this":
        return This()
    if not isinstance(body, Mapping):
        raise fail(f"{key} must be a JSON object")
    if key == "computedUserset":
        return ComputedUserset(_object_relation(body, fail, key))
    if key == "tupleToUserset":
        return TupleToUserset(
            _object_relation(body.get("tupleset"), fail, "tupleToUserset.tupleset"),
            _object_relation(body.get("computedUserset"), fail, "tupleToUserset.computedUserset"),
        )
    if key == "difference":
        if body.get("base") is None or body.get("subtract") is None:
            raise fail("difference needs both base and subtract")
        return Difference(
            _parse_rewrite(body["base"], type_name, relation, depth=depth + 1),
            _parse_rewrite(body["subtract"], type_name, relation, depth=depth + 1),
        )
    children = body.get("child")
    if not isinstance(children, list) or len(children) < 2:
        raise fail(f"{key} needs a child list of at least two rewrites")
    parsed = tuple(_parse_rewrite(c, type_name, relation, depth=depth + 1) for c in children)
    return Union(parsed) if key == "union" else Intersection(parsed)


def _object_relation(raw: object, fail: _Fail, what: str) -> str:
    if not isinstance(raw, Mapping):
        raise fail(f"{what} must be a JSON object")
    if raw.get("object"):
        raise fail(f"{what}.object is not supported in schema {SCHEMA_VERSION}")
    rel = raw.get("relation")
    if not isinstance(rel, str) or not rel:
        raise fail(f"{what}.relation must be a non-empty string")
    return rel


# ----------------------------------------------------------------------- validation


def _validate(model: AuthorizationModel) -> None:
    if model.schema_version != SCHEMA_VERSION:
        raise ModelError(f'schema_version must be "{SCHEMA_VERSION}", got {model.schema_version!r}')
    if not model.type_definitions:
        raise ModelError("the model defines no types")
    names = [c.name for c in model.conditions]
    if len(set(names)) != len(names):
        raise ModelError("a condition is defined more than once")
    seen: set[str] = set()
    for type_def in model.type_definitions:
        _check_type_name(type_def.name)
        if type_def.name in seen:
            raise ModelError("type is defined more than once", type_name=type_def.name)
        seen.add(type_def.name)
        _check_relation_names(type_def)
    for type_def in model.type_definitions:
        for rel in type_def.relations:
            _validate_relation(model, type_def, rel)
    for type_def in model.type_definitions:
        for rel in type_def.relations:
            if not _has_entrypoint(model, type_def.name, rel.name, set()):
                raise ModelError(
                    "no entrypoint: no user can ever have this relation "
                    "(every path needs itself, an undefined relation or a cycle)",
                    type_name=type_def.name,
                    relation=rel.name,
                )


def is_valid_name(name: str, max_length: int) -> bool:
    """Whether ``name`` is a well-formed type or relation name."""
    return 0 < len(name) <= max_length and _NAME_RE.fullmatch(name) is not None


def _check_type_name(name: str) -> None:
    if not is_valid_name(name, MAX_TYPE_NAME_LENGTH):
        raise ModelError(
            "bad type name: use letters, digits, '_' and '-', starting with a letter "
            f"or '_', at most {MAX_TYPE_NAME_LENGTH} characters",
            type_name=name,
        )


def _check_relation_names(type_def: TypeDefinition) -> None:
    seen: set[str] = set()
    for rel in type_def.relations:
        if not is_valid_name(rel.name, MAX_RELATION_NAME_LENGTH):
            raise ModelError(
                "bad relation name: use letters, digits, '_' and '-', starting with a "
                f"letter or '_', at most {MAX_RELATION_NAME_LENGTH} characters",
                type_name=type_def.name,
                relation=rel.name,
            )
        if rel.name in RESERVED_RELATION_NAMES:
            raise ModelError(
                "relation name is reserved", type_name=type_def.name, relation=rel.name
            )
        if rel.name in seen:
            raise ModelError(
                "relation is defined more than once", type_name=type_def.name, relation=rel.name
            )
        seen.add(rel.name)


def rewrite_depth(rewrite: Rewrite) -> int:
    """How many levels ``rewrite`` nests (a leaf is 1), found without recursion,
    so a model built in code, however deep, is measured safely."""
    deepest = 0
    pending: list[tuple[Rewrite, int]] = [(rewrite, 1)]
    while pending:
        node, depth = pending.pop()
        deepest = max(deepest, depth)
        if isinstance(node, Union | Intersection):
            pending.extend((child, depth + 1) for child in node.children)
        elif isinstance(node, Difference):
            pending.extend(((node.base, depth + 1), (node.subtract, depth + 1)))
    return deepest


def iter_rewrites(rewrite: Rewrite) -> Sequence[Rewrite]:
    """Return ``rewrite`` and all rewrites nested in it, depth first."""
    out: list[Rewrite] = [rewrite]
    if isinstance(rewrite, Union | Intersection):
        for child in rewrite.children:
            out.extend(iter_rewrites(child))
    elif isinstance(rewrite, Difference):
        out.extend(iter_rewrites(rewrite.base))
        out.extend(iter_rewrites(rewrite.subtract))
    return out


def _validate_relation(model: AuthorizationModel, type_def: TypeDefinition, rel: Relation) -> None:
    def fail(reason: str) -> ModelError:
        return ModelError(reason, type_name=type_def.name, relation=rel.name)

    if rewrite_depth(rel.rewrite) > MAX_REWRITE_DEPTH:
        raise fail(_TOO_DEEP)
    nodes = iter_rewrites(rel.rewrite)
    has_this = any(isinstance(n, This) for n in nodes)
    if has_this and not rel.directly_related_user_types:
        raise fail("direct assignment ([...] / this) needs at least one directly related user type")
    if not has_this and rel.directly_related_user_types:
        raise fail("has directly related user types but no direct assignment (this)")
    _validate_references(model, rel, fail)
    for node in nodes:
        if isinstance(node, ComputedUserset) and type_def.relation(node.relation) is None:
            raise fail(f'computed relation "{node.relation}" is not defined')
        if isinstance(node, TupleToUserset):
            _validate_tuple_to_userset(model, type_def, node, fail)


def _validate_references(model: AuthorizationModel, rel: Relation, fail: _Fail) -> None:
    seen: set[RelationReference] = set()
    for ref in rel.directly_related_user_types:
        if ref in seen:
            raise fail(f'directly related user type "{ref}" is listed more than once')
        seen.add(ref)
        if ref.condition is not None and model.condition(ref.condition) is None:
            raise fail(f'directly related user type "{ref}" names undefined condition')
        if model.type(ref.type) is None:
            raise fail(f'directly related user type "{ref}" names undefined type "{ref.type}"')
        if ref.relation is not None and model.relation(ref.type, ref.relation) is None:
            raise fail(
                f'directly related user type "{ref}" names undefined relation '
                f'"{ref.relation}" on type "{ref.type}"'
            )


def _validate_tuple_to_userset(
    model: AuthorizationModel, type_def: TypeDefinition, node: TupleToUserset, fail: _Fail
) -> None:
    tupleset = type_def.relation(node.tupleset)
    if tupleset is None:
        raise fail(f'tupleset relation "{node.tupleset}" is not defined')
    if not isinstance(tupleset.rewrite, This):
        raise fail(f'tupleset relation "{node.tupleset}" must be a direct relation ([...] only)')
    for ref in tupleset.directly_related_user_types:
        if ref.relation is not None or ref.wildcard:
            raise fail(
                f'tupleset relation "{node.tupleset}" may only relate plain types, not "{ref}"'
            )
    refs = tupleset.directly_related_user_types
    if not any(model.relation(ref.type, node.computed_relation) is not None for ref in refs):
        names = ", ".join(str(r) for r in refs)
        raise fail(
            f'computed relation "{node.computed_relation}" (from "{node.tupleset}") is not '
            f"defined on any of the types it relates: {names}"
        )


def _has_entrypoint(
    model: AuthorizationModel, type_name: str, relation: str, visiting: set[tuple[str, str]]
) -> bool:
    """Whether some user could ever have ``type_name#relation`` (cycles do not count)."""
    key = (type_name, relation)
    rel = model.relation(type_name, relation)
    if rel is None or key in visiting:
        return False
    visiting.add(key)
    try:
        return _rewrite_has_entrypoint(model, type_name, rel, rel.rewrite, visiting)
    finally:
        visiting.discard(key)


def _rewrite_has_entrypoint(
    model: AuthorizationModel,
    type_name: str,
    rel: Relation,
    rewrite: Rewrite,
    visiting: set[tuple[str, str]],
) -> bool:
    if isinstance(rewrite, This):
        return any(
            ref.relation is None or _has_entrypoint(model, ref.type, ref.relation, visiting)
            for ref in rel.directly_related_user_types
        )
    if isinstance(rewrite, ComputedUserset):
        return _has_entrypoint(model, type_name, rewrite.relation, visiting)
    if isinstance(rewrite, TupleToUserset):
        tupleset = model.relation(type_name, rewrite.tupleset)
        refs = tupleset.directly_related_user_types if tupleset is not None else ()
        return any(
            _has_entrypoint(model, ref.type, rewrite.computed_relation, visiting) for ref in refs
        )
    if isinstance(rewrite, Union):
        return any(
            _rewrite_has_entrypoint(model, type_name, rel, c, visiting) for c in rewrite.children
        )
    if isinstance(rewrite, Intersection):
        return all(
            _rewrite_has_entrypoint(model, type_name, rel, c, visiting) for c in rewrite.children
        )
    return _rewrite_has_entrypoint(model, type_name, rel, rewrite.base, visiting)
