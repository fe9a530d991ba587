"""The built-in authorization model: the types the server itself decides with.

See the package docstring for the types and how user models are merged with
them. Here: the model text, model ids (SHA-256 of canonical JSON), merging a
user's model, and the checks a tuple on a built-in type must pass.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Final

from .. import ca
from ..authz import (
    AuthorizationModel,
    ModelError,
    TupleError,
    TupleKey,
    parse_dsl,
    parse_model,
)
from ..secrets import InvalidSecretName, validate_prefix, validate_secret_name
from ..storage.authz_tables import (
    FOLDER_TYPE,
    SECRET_TYPE,
    SYSTEM_ROOT,
    SYSTEM_ROOT_ID,
    SYSTEM_TYPE,
    is_structural,
)

WORKLOAD_TYPE: Final = "workload"
GROUP_TYPE: Final = "group"
ADMIN_RELATION: Final = "admin"
READER_RELATION: Final = "reader"
WRITER_RELATION: Final = "writer"
#: A registration entry (see ``_entries_api``); its one relation, ``node``,
#: is the node agent that may get SVIDs signed for it.
ENTRY_TYPE: Final = "registration_entry"
NODE_RELATION: Final = "node"
ENTRY_ID_PATTERN: Final = re.compile(r"[0-9a-f]{32}")

BUILTIN_DSL: Final = """\
model
  schema 1.1

type workload

type group
  relations
    define member: [workload, group#member]

type system
  relations
    define admin: [workload, group#member]

type folder
  relations
    define system: [system]
    define parent: [folder]
    define writer: [workload, group#member] or writer from parent or admin from system
    define reader: [workload, group#member] or writer or reader from parent

type secret
  relations
    define system: [system]
    define parent: [folder]
    define writer: [workload, group#member] or writer from parent or admin from system
    define reader: [workload, group#member] or writer or reader from parent

type registration_entry
  relations
    define node: [workload]
"""

BUILTIN_MODEL: Final = parse_dsl(BUILTIN_DSL)
BUILTIN_TYPES: Final = frozenset(t.name for t in BUILTIN_MODEL.type_definitions)

_BUILTIN_NAMES_TEXT: Final = ", ".join(t.name for t in BUILTIN_MODEL.type_definitions)
_DSL_TYPE_LINE: Final = re.compile(r"^\s*type\s+(\S+)\s*(?:#.*)?$")


# ----------------------------------------------------------------------- the model


def canonical_json(model: AuthorizationModel) -> str:
    """The canonical JSON of a model: keys sorted, no whitespace (what ids hash)."""
    return json.dumps(model.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def model_id(model: AuthorizationModel) -> str:
    """A model's id: the SHA-256 (hex) of its canonical JSON."""
    return hashlib.sha256(canonical_json(model).encode()).hexdigest()


def stored_json(model: AuthorizationModel) -> str:
    """The JSON a model is stored as: compact, in declaration order."""
    return json.dumps(model.to_dict(), separators=(",", ":"), ensure_ascii=False)


BUILTIN_MODEL_ID: Final = model_id(BUILTIN_MODEL)


def with_current_builtins(model: AuthorizationModel) -> AuthorizationModel:
    """A stored merged model with this server's built-in types in place of the
    ones it was stored with: a model written before a built-in type was added
    (``registration_entry``) decides the server's own questions as a new one
    does. User types cannot be named like built-in ones, so none is lost."""
    user_types = [t for t in model.type_definitions if t.name not in BUILTIN_TYPES]
    return AuthorizationModel(
        (*BUILTIN_MODEL.type_definitions, *user_types), conditions=model.conditions
    )


def _builtin_collision(name: str, line: int | None = None) -> ModelError:
    return ModelError(
        "this type is built in: the server defines it and adds it to every model; "
        f"leave it out of your model (built-in types: {_BUILTIN_NAMES_TEXT})",
        type_name=name,
        line=line,
    )


def merge_user_model(
    *, model: Mapping[str, object] | None = None, dsl: str | None = None
) -> AuthorizationModel:
    """Validate a user's model (JSON or DSL) and merge it with the built-in types.

    The user's types may refer to the built-in ones (``[workload, group#member]``).
    The result lists the built-in types first, then the user's in their order.

    Raises:
        ModelError: the model is malformed, or defines a type named like a
            built-in one (the message names the type).
    """
    if (model is None) == (dsl is None):
        raise ModelError("give exactly one of model (JSON) or dsl")
    if dsl is not None:
        merged = _merge_dsl(dsl)
    else:
        assert model is not None
        merged = _merge_json(model)
    return with_current_builtins(merged)


def _merge_json(model: Mapping[str, object]) -> AuthorizationModel:
    if not isinstance(model, Mapping):
        raise ModelError("the model must be a JSON object")
    raw_types = model.get("type_definitions")
    if not isinstance(raw_types, list):
        return parse_model(model)  # reports the malformed field
    for raw in raw_types:
        name = raw.get("type") if isinstance(raw, Mapping) else None
        if isinstance(name, str) and name in BUILTIN_TYPES:
            raise _builtin_collision(name)
    builtin_types = BUILTIN_MODEL.to_dict()["type_definitions"]
    assert isinstance(builtin_types, list)
    return parse_model({**model, "type_definitions": [*builtin_types, *raw_types]})


def _merge_dsl(dsl: str) -> AuthorizationModel:
    if not dsl.strip():
        raise ModelError("empty model: expected 'model'", line=1)
    for number, line in enumerate(dsl.splitlines(), start=1):
        match = _DSL_TYPE_LINE.match(line)
        if match is not None and match.group(1) in BUILTIN_TYPES:
            raise _builtin_collision(match.group(1), number)
    # The built-in types go after the user's text, so DSL errors keep their lines.
    builtin_body = BUILTIN_DSL.split("\n", 2)[2]
    try:
        return parse_dsl(dsl.rstrip("\n") + "\n\n" + builtin_body)
    except ModelError as exc:
        if exc.type_name in BUILTIN_TYPES and exc.reason.startswith("type is already defined"):
            raise _builtin_collision(exc.type_name) from exc
        raise


# ----------------------------------------------------------------------- tuples


def validate_builtin_tuple(key: TupleKey) -> None:
    """Extra rules for tuples on (or naming) the built-in types.

    Structural relations (``parent``, ``system`` of folders and secrets) cannot be
    written; ``workload`` ids must be SPIFFE IDs, ``secret`` ids secret names,
    ``folder`` ids secret-name prefixes ending in ``/``, and the only ``system``
    object is ``system:root``.

    Raises:
        TupleError: naming the type and relation at fault.
    """
    if is_structural(key.object_type, key.relation):
        raise TupleError(
            "relation is structural: the server derives it from names; it cannot be written",
            type_name=key.object_type,
            relation=key.relation,
        )
    if key.object_type == ENTRY_TYPE:
        raise TupleError(
            "relation is managed by the EntriesService: CreateEntry writes it and DeleteEntry"
            " deletes it; it cannot be written directly",
            type_name=key.object_type,
            relation=key.relation,
        )
    _check_builtin_id(key, key.object_type, key.object_id, "object")
    user = key.user_ref
    if not user.is_wildcard:
        _check_builtin_id(key, user.type, user.id, "user")


def _check_builtin_id(key: TupleKey, type_name: str, object_id: str, side: str) -> None:
    """Check the id of one side (object or user) of ``key`` if its type is built in."""

    def fail(reason: str) -> TupleError:
        return TupleError(
            f'{side} "{type_name}:{object_id}": {reason}',
            type_name=key.object_type,
            relation=key.relation,
        )

    if type_name == WORKLOAD_TYPE:
        try:
            spiffe_id = ca.SpiffeId.parse(object_id)
        except ca.InvalidSpiffeId as exc:
            raise fail(f"a workload id is a SPIFFE ID (spiffe://<td>/<path>): {exc}") from None
        if str(spiffe_id) != object_id:
            raise fail(f"write the SPIFFE ID in its canonical form, {spiffe_id}")
    elif type_name == SECRET_TYPE:
        try:
            validate_secret_name(object_id)
        except InvalidSecretName as exc:
            raise fail(f"a secret id is a secret name: it {exc.reason}") from None
    elif type_name == FOLDER_TYPE:
        try:
            valid = object_id.endswith("/") and validate_prefix(object_id) == object_id
        except InvalidSecretName:
            valid = False
        if not valid:
            raise fail('a folder id is a secret-name prefix ending in "/", e.g. "payments/db/"')
    elif type_name == SYSTEM_TYPE and object_id != SYSTEM_ROOT_ID:
        raise fail(f'the only system object is "{SYSTEM_ROOT}"')
