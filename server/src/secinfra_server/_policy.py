"""The server's own access control, run through the authorization engine (dogfooding).

The **built-in model** (:data:`BUILTIN_DSL`) has the types the server itself
decides with:

- ``workload``: a caller; ids are SPIFFE IDs (``workload:spiffe://td/app``).
- ``group``: ``member`` holds workloads and other groups' members.
- ``system``: one object, ``system:root``; ``admin`` may do every admin action
  (write tuples and models, create join tokens, rotate the CA) and implies
  ``writer`` on every folder and secret.
- ``folder`` and ``secret``: ``reader`` and ``writer``; ``writer`` implies
  ``reader``; both are inherited from every enclosing folder
  (``secret:payments/db/password`` from ``folder:payments/db/`` and
  ``folder:payments/``). Folder ids are secret-name prefixes ending in ``/``.

The ``parent`` and ``system`` links of folders and secrets are **structural**:
the SQLite reader derives them from names (see
:mod:`secinfra_server.storage._authz`), so they are never written and cannot be.
Nothing else is granted by default: no tuple, no access.

**Bootstrap.** The init-time admin (``spiffe://<td>/secinfra/admin``) becomes the
only admin through one stored tuple, ``system:root#admin@workload:<admin id>``,
written (and audited) the first time the server reads or changes authorization
state after its first start, exactly once per database: an operator who later
deletes it (after granting admin to someone else) does not see it come back.

**User models.** WriteAuthorizationModel takes the user's own types; the server
stores the *merged* model (built-in types first, then the user's), so users
may relate their types to ``workload`` and ``group``, and grants on the built-in
types keep working. A user type named like a built-in one is rejected. A model's
id is the SHA-256 of its canonical JSON, so writing the same model twice is a
no-op. Until a user writes a model, the current model is the built-in one.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

from . import ca
from ._clock import Clock
from .audit import AuditEvent, append_in_transaction
from .authz import (
    FAILED_PRECONDITION,
    AuthorizationModel,
    AuthzError,
    ModelError,
    ResolutionTooComplex,
    TupleError,
    TupleKey,
    check,
    parse_dsl,
    parse_model,
    parse_object,
    parse_user,
)
from .authz._check import Resolver
from .secrets import InvalidSecretName, validate_prefix, validate_secret_name
from .storage import SqliteStorage
from .storage._authz import (
    FOLDER_TYPE,
    SECRET_TYPE,
    SYSTEM_ROOT,
    SYSTEM_ROOT_ID,
    SYSTEM_TYPE,
    SqliteTupleReader,
    apply_tuple_changes,
    current_model_id,
    current_revision,
    is_bootstrapped,
    is_structural,
    load_model_json,
    mark_bootstrapped,
)

log = logging.getLogger("secinfra.authz")

T = TypeVar("T")

WORKLOAD_TYPE: Final = "workload"
GROUP_TYPE: Final = "group"
ADMIN_RELATION: Final = "admin"
READER_RELATION: Final = "reader"
WRITER_RELATION: Final = "writer"
#: The audit actor of changes the server makes on its own (the bootstrap grant).
SERVER_ACTOR: Final = "secinfra-server"
#: Parsed models kept in memory, by id (the current one, plus a few read by id).
MODEL_CACHE_SIZE: Final = 8

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
    user_types = [t for t in merged.type_definitions if t.name not in BUILTIN_TYPES]
    return AuthorizationModel((*BUILTIN_MODEL.type_definitions, *user_types))


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


# ----------------------------------------------------------------------- the engine


class RevisionTooNew(AuthzError):
    """An at_least_as_fresh revision token is ahead of this server's state."""

    code = FAILED_PRECONDITION

    def __init__(self, wanted: int, current: int) -> None:
        super().__init__(
            f"secinfra: authz: revision: the token asks for revision {wanted}, but this "
            f"server is at revision {current}; the token comes from a different server "
            "or database"
        )
        self.wanted = wanted
        self.current = current


@dataclass(frozen=True)
class Snapshot:
    """Authorization state as one transaction sees it: the revision, the current
    model and a tuple reader over the same connection."""

    conn: sqlite3.Connection
    revision: int
    model_id: str
    model: AuthorizationModel
    reader: SqliteTupleReader


class AuthzEngine:
    """The engine over SQLite: snapshots, a model cache, the one-time bootstrap.

    Every engine call runs inside one :meth:`read` (one snapshot, on a reader
    thread, off the event loop); every change inside one :meth:`write` (one
    IMMEDIATE transaction on the writer thread).
    """

    def __init__(self, storage: SqliteStorage, *, clock: Clock, admin_id: str) -> None:
        self._storage = storage
        self._clock = clock
        self._admin_id = admin_id
        self._bootstrapped = False
        self._bootstrap_lock = asyncio.Lock()
        self._models: OrderedDict[str, AuthorizationModel] = OrderedDict()
        self._models_lock = threading.Lock()

    @property
    def admin_id(self) -> str:
        """The init-time admin's SPIFFE ID."""
        return self._admin_id

    async def ensure_bootstrapped(self) -> None:
        """Grant the init-time admin, unless this database ever did (see the module)."""
        if self._bootstrapped:
            return
        async with self._bootstrap_lock:
            if not self._bootstrapped:
                await self._storage.write(self._bootstrap)
                self._bootstrapped = True

    def _bootstrap(self, conn: sqlite3.Connection) -> None:
        if is_bootstrapped(conn):
            return
        grant = TupleKey(f"{WORKLOAD_TYPE}:{self._admin_id}", ADMIN_RELATION, SYSTEM_ROOT)
        change = apply_tuple_changes(conn, [grant], [])
        mark_bootstrapped(conn, change.revision)
        append_in_transaction(
            conn,
            AuditEvent(
                actor=SERVER_ACTOR,
                action="authz.bootstrap_admin",
                resource=SYSTEM_ROOT,
                outcome="allowed",
                request_id="",
                details={"writes": [str(grant)], "revision": change.revision},
            ),
            self._clock.now(),
        )
        log.info("granted the init-time admin", extra={"fields": {"tuple": str(grant)}})

    async def read(self, fn: Callable[[Snapshot], T], *, at_least: int | None = None) -> T:
        """Run ``fn`` on one snapshot.

        Raises:
            RevisionTooNew: the snapshot's revision is below ``at_least``.
        """
        await self.ensure_bootstrapped()

        def run(conn: sqlite3.Connection) -> T:
            snapshot = self.snapshot(conn)
            if at_least is not None and snapshot.revision < at_least:
                raise RevisionTooNew(at_least, snapshot.revision)
            return fn(snapshot)

        return await self._storage.read(run)

    async def write(self, fn: Callable[[Snapshot], T]) -> T:
        """Run ``fn`` in one write transaction (with the current model at hand)."""
        await self.ensure_bootstrapped()
        return await self._storage.write(lambda conn: fn(self.snapshot(conn)))

    def snapshot(self, conn: sqlite3.Connection) -> Snapshot:
        """The state as ``conn``'s open transaction sees it."""
        current = current_model_id(conn) or BUILTIN_MODEL_ID
        model = self.load_model(conn, current)
        if model is None:
            raise RuntimeError(f"secinfra: authz: the current model {current} is not stored")
        return Snapshot(conn, current_revision(conn), current, model, SqliteTupleReader(conn))

    def load_model(self, conn: sqlite3.Connection, wanted: str) -> AuthorizationModel | None:
        """The model with id ``wanted`` (the built-in one needs no storage), or None."""
        if wanted == BUILTIN_MODEL_ID:
            return BUILTIN_MODEL
        with self._models_lock:
            cached = self._models.get(wanted)
            if cached is not None:
                self._models.move_to_end(wanted)
                return cached
        text = load_model_json(conn, wanted)
        if text is None:
            return None
        model = parse_model(json.loads(text))
        with self._models_lock:
            self._models[wanted] = model
            while len(self._models) > MODEL_CACHE_SIZE:
                self._models.popitem(last=False)
        return model


# ----------------------------------------------------------------------- the policy


class EnginePolicy:
    """:class:`~secinfra_server.access.AccessPolicy` over the engine and the
    built-in model. Default deny: a caller or name the engine cannot even
    express (not a SPIFFE ID, not a secret name) is denied."""

    def __init__(self, engine: AuthzEngine) -> None:
        self._engine = engine

    @property
    def engine(self) -> AuthzEngine:
        """The engine this policy decides with (the AuthzService shares it)."""
        return self._engine

    async def is_admin(self, spiffe_id: str) -> bool:
        """Whether the caller holds ``admin`` on ``system:root``."""
        return await self._decide(spiffe_id, ADMIN_RELATION, SYSTEM_ROOT)

    async def can_read_secret(self, spiffe_id: str, name: str) -> bool:
        """Whether the caller is a ``reader`` of ``secret:<name>``."""
        return await self._decide(spiffe_id, READER_RELATION, f"{SECRET_TYPE}:{name}")

    async def can_write_secret(self, spiffe_id: str, name: str) -> bool:
        """Whether the caller is a ``writer`` of ``secret:<name>``."""
        return await self._decide(spiffe_id, WRITER_RELATION, f"{SECRET_TYPE}:{name}")

    async def readable_secrets(self, spiffe_id: str, names: Sequence[str]) -> list[str]:
        """The names the caller may read, in order: one snapshot and one memo for
        the whole list, so shared folders and groups are resolved once."""
        try:
            user = parse_user(f"{WORKLOAD_TYPE}:{spiffe_id}")
        except TupleError:
            return []

        def run(snapshot: Snapshot) -> list[str]:
            resolver = Resolver(snapshot.model, snapshot.reader)
            readable: list[str] = []
            for name in names:
                try:
                    obj = parse_object(f"{SECRET_TYPE}:{name}")
                except TupleError:
                    continue  # not even expressible: not readable
                try:
                    if resolver.check(obj, READER_RELATION, user):
                        readable.append(name)
                except ResolutionTooComplex as exc:
                    _log_too_complex(exc, f"{obj}#{READER_RELATION}@{user}")
            return readable

        return await self._engine.read(run)

    async def _decide(self, spiffe_id: str, relation: str, obj: str) -> bool:
        try:
            key = TupleKey(f"{WORKLOAD_TYPE}:{spiffe_id}", relation, obj)
        except TupleError:
            return False

        def run(snapshot: Snapshot) -> bool:
            try:
                return check(snapshot.model, snapshot.reader, key)
            except ResolutionTooComplex as exc:
                _log_too_complex(exc, str(key))
                return False

        return await self._engine.read(run)


def _log_too_complex(exc: ResolutionTooComplex, what: str) -> None:
    log.warning(
        "access check too complex; denied",
        extra={"fields": {"check": what, "error": exc.message}},
    )
