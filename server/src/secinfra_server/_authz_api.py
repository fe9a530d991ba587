"""Handlers for secinfra.v1.AuthzService.

Admin RPCs (WriteAuthorizationModel, WriteTuples, ReadTuples) need ``admin`` on
``system:root``; a refusal is audited. Any enrolled workload may read the model.

**Who may ask what (least privilege).** Questions about the operator's own
(application) types are open to every enrolled workload: that is what services
use the engine for. A question whose *object* is of a built-in type
(``workload``, ``group``, ``system``, ``folder``, ``secret``: the server's own
access control) is answered only

- for Check, each BatchCheck item and ListObjects: when its user is exactly the
  caller itself (``workload:<caller SPIFFE ID>``), or the caller is an admin;
- for Expand (which lists every user of the relation): when the caller is an admin.

"Admin" is ``admin`` on ``system:root``, decided as for the admin RPCs, and only
asked when a question needs it (own-user and application-type questions never
do). A refusal is ``permission_denied`` (in BatchCheck: that item's ``error``)
and is audited like the admin RPCs' refusals (``authz.<rpc>``, ``denied``, the
object as the resource). Syntax is checked first, so a malformed question is
still ``invalid_argument``.

**Revision tokens.** Every change to authorization state (tuples written or
deleted, a new current model) advances one counter; a token is that counter as
a zero-padded, 20-digit decimal string (``00000000000000000042``). Clients treat
tokens as opaque, but may compare two as decimal numbers, which is how the SDK
caches decide that an entry predates the client's own write.

**Consistency.** ``minimize_latency`` (the default) answers from the current
state. ``at_least_as_fresh`` with a revision token answers only from state at
least that new: one SQLite database is always that fresh after the write
returned, so here it only refuses a token from the future (failed_precondition:
it came from another server or database); replicas would wait or redirect.
A malformed token is invalid_argument under either preference; a well-formed
one is only used with ``at_least_as_fresh``.

Check and BatchCheck answers carry ``Cache-Control: private, max-age=N``
(``authz_check_max_age_seconds``) and the revision they were computed at.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Protocol

from . import authz, ca
from ._gen import authz as m
from ._rpc import Handler, Reply, RequestContext, ServiceContext
from .audit import AuditEvent
from .authz import render_dsl
from .errors import ApiError
from .policy import (
    BUILTIN_TYPES,
    WORKLOAD_TYPE,
    AuthzEngine,
    Snapshot,
    merge_user_model,
    model_id,
    stored_json,
    validate_builtin_tuple,
)
from .storage import to_ms
from .storage.authz_tables import (
    SYSTEM_ROOT,
    ConditionConflict,
    ModelCursor,
    TupleCursor,
    TupleFilter,
    apply_tuple_changes,
    list_models,
    read_tuples,
    store_model,
)

#: Digits in a revision token.
REVISION_DIGITS: Final = 20
#: Tuples (writes plus deletes) one WriteTuples call may carry.
MAX_TUPLES_PER_WRITE: Final = 1000
DEFAULT_PAGE_SIZE: Final = 100
MAX_PAGE_SIZE: Final = 1000
#: ListAuthorizationModels pages: whole models, so smaller ones.
DEFAULT_MODELS_PAGE: Final = 20
MAX_MODELS_PAGE: Final = 100
#: Contextual tuples per question (OpenFGA's limit too).
MAX_CONTEXTUAL_TUPLES: Final = 100

_REVISION_RE: Final = re.compile(rf"[0-9]{{1,{REVISION_DIGITS}}}")
_MAX_REVISION: Final = 2**63 - 1
#: The engine's rule for correlation ids (checked here too, before parsing tuples).
_CORRELATION_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]+")
_PREFIX: Final = "secinfra: authz: "


def format_revision(revision: int) -> str:
    """A revision as its token: 20 decimal digits, zero-padded."""
    return f"{revision:0{REVISION_DIGITS}d}"


def parse_revision(token: str) -> int:
    """A revision token's counter.

    Raises:
        ApiError: invalid_argument if the token is not one this server issues.
    """
    if not _REVISION_RE.fullmatch(token) or int(token) > _MAX_REVISION:
        raise ApiError(
            "invalid_argument",
            f"{_PREFIX}revision: {token[:40]!r} is not a revision token; pass the"
            " revision a write or a check returned",
            details={"field": "revision"},
        )
    return int(token)


def _min_revision(consistency: m.Consistency, token: str) -> int | None:
    """The revision a read must reach, from its consistency preference."""
    if consistency == m.Consistency.AT_LEAST_AS_FRESH:
        if not token:
            raise ApiError(
                "invalid_argument",
                f"{_PREFIX}revision: at_least_as_fresh needs the revision token of a write",
                details={"field": "revision"},
            )
        return parse_revision(token)
    if token:
        parse_revision(token)  # malformed is an error; well-formed is ignored
    return None


def _tuple_key(key: m.TupleKey | None, where: str) -> authz.TupleKey:
    if key is None:
        raise ApiError(
            "invalid_argument", f"{_PREFIX}{where} is required", details={"field": where}
        )
    condition = None
    if key.condition is not None:
        if not key.condition.name:
            raise ApiError(
                "invalid_argument",
                f"{_PREFIX}{where}.condition.name is required: name a condition of the model,"
                " or leave condition out",
                details={"field": f"{where}.condition.name"},
            )
        condition = authz.TupleCondition(key.condition.name, dict(key.condition.context or {}))
    try:
        return authz.TupleKey(key.user, key.relation, key.object, condition)
    except authz.TupleError as exc:
        raise _at(where, exc) from exc


def _version(engine: AuthzEngine, snapshot: Snapshot, wanted: str) -> authz.AuthorizationModel:
    """The model version a request names (``authorization_model_id``), read in its
    snapshot; empty: the current one."""
    if not wanted or wanted == snapshot.model_id:
        return snapshot.model
    model = engine.load_model(snapshot.conn, wanted)
    if model is None:
        raise ApiError(
            "not_found",
            f"{_PREFIX}authorization_model_id: no authorization model has id {wanted[:80]!r};"
            " ListAuthorizationModels lists them",
            details={"field": "authorization_model_id"},
        )
    return model


class _PagedQuestion(Protocol):
    """What ListObjects and ListUsers requests share (read-only: the generated
    messages are frozen)."""

    @property
    def page_size(self) -> int: ...
    @property
    def page_token(self) -> str: ...
    @property
    def contextual_tuples(self) -> Sequence[m.TupleKey]: ...
    @property
    def authorization_model_id(self) -> str: ...
    @property
    def context(self) -> dict[str, Any] | None: ...


def _objects(page: authz.ObjectPage) -> tuple[list[str], str, bool]:
    """A ListObjects page: objects, the cursor (the last object's id), more."""
    last = page.objects[-1].partition(":")[2] if page.objects else ""
    return page.objects, last, page.more


def _users(page: authz.UserPage) -> tuple[list[str], str, bool]:
    """A ListUsers page: users, the cursor (the last user), more."""
    return page.users, page.users[-1] if page.users else "", page.more


def _page_size(value: int, *, default: int = MAX_PAGE_SIZE, maximum: int = MAX_PAGE_SIZE) -> int:
    """A requested page size, checked: 0 is ``default``."""
    if not 0 <= value <= maximum:
        raise ApiError(
            "invalid_argument",
            f"{_PREFIX}page_size must be between 0 (the default, {default}) and {maximum}",
            details={"field": "page_size"},
        )
    return value or default


def _builtin_index(contextual: Sequence[authz.TupleKey]) -> int | None:
    """The first contextual tuple on a built-in type, if any."""
    return next((i for i, key in enumerate(contextual) if key.object_type in BUILTIN_TYPES), None)


def _contextual_rule(key: authz.TupleKey) -> str:
    return (
        f"contextual tuples on the built-in type {key.object_type} need an admin"
        f" (admin on {SYSTEM_ROOT})"
    )


def _contextual(keys: Sequence[m.TupleKey], where: str) -> list[authz.TupleKey]:
    """A request's contextual tuples, parsed (each fits the model later, in the
    snapshot the question reads: :func:`_reader`)."""
    if len(keys) > MAX_CONTEXTUAL_TUPLES:
        raise ApiError(
            "invalid_argument",
            f"{_PREFIX}{where}: at most {MAX_CONTEXTUAL_TUPLES} contextual tuples, got {len(keys)}",
            details={"field": where},
        )
    return [_tuple_key(key, f"{where}[{i}]") for i, key in enumerate(keys)]


def _reader(
    snapshot: Snapshot,
    model: authz.AuthorizationModel,
    contextual: Sequence[authz.TupleKey],
    where: str,
) -> authz.TupleReader:
    """The snapshot's tuples plus the contextual ones, each validated as a write
    is (``model``'s types and relations, the built-in types' rules)."""
    if not contextual:
        return snapshot.reader
    for index, key in enumerate(contextual):
        try:
            authz.validate_tuple(model, key)
            validate_builtin_tuple(key)
        except authz.TupleError as exc:
            raise _at(f"{where}[{index}]", exc) from exc
    return authz.ContextualReader(snapshot.reader, contextual)


def _at(where: str, exc: authz.AuthzError) -> ApiError:
    """An engine error, placed at a request field (``writes[3]``)."""
    details: dict[str, Any] = {"field": where}
    type_name = getattr(exc, "type_name", None)
    relation = getattr(exc, "relation", None)
    if type_name is not None:
        details["type"] = type_name
    if relation is not None:
        details["relation"] = relation
    reason = exc.message.removeprefix(_PREFIX)
    return ApiError(exc.code, f"{_PREFIX}{where}: {reason}", details=details)


def _wire_key(key: authz.TupleKey) -> m.TupleKey:
    condition = None
    if key.condition is not None:
        condition = m.RelationshipCondition(
            name=key.condition.name, context=dict(key.condition.context) or None
        )
    return m.TupleKey(user=key.user, relation=key.relation, object=key.object, condition=condition)


class AuthzApi:
    """The AuthzService RPCs over the engine the access policy uses."""

    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx
        self._engine = ctx.engine

    def handlers(self) -> Mapping[str, Handler]:
        """Handlers by RPC handler name (snake_case)."""
        return {
            "write_authorization_model": self.write_authorization_model,
            "read_authorization_model": self.read_authorization_model,
            "list_authorization_models": self.list_authorization_models,
            "write_tuples": self.write_tuples,
            "read_tuples": self.read_tuples,
            "check": self.check,
            "batch_check": self.batch_check,
            "list_objects": self.list_objects,
            "list_users": self.list_users,
            "expand": self.expand,
        }

    async def _require_admin(self, ctx: RequestContext) -> ca.Peer:
        assert ctx.peer is not None
        if not await self._ctx.policy.is_admin(ctx.peer.spiffe_id):
            await self._ctx.audit.record(
                AuditEvent(
                    actor=ctx.peer.spiffe_id,
                    action=f"authz.{ctx.route.handler}",
                    resource=SYSTEM_ROOT,
                    outcome="denied",
                    request_id=ctx.request_id,
                    details={"reason": "not an admin"},
                )
            )
            raise ApiError(
                "permission_denied",
                f"{_PREFIX}{ctx.peer.spiffe_id} may not call {ctx.route.rpc};"
                f" it needs admin on {SYSTEM_ROOT}",
            )
        return ctx.peer

    # -- who may ask what ----------------------------------------------------------------
    async def _is_admin(self, ctx: RequestContext) -> bool:
        assert ctx.peer is not None
        return await self._ctx.policy.is_admin(ctx.peer.spiffe_id)

    async def _refuse(
        self, ctx: RequestContext, where: str, resource: str, details: dict[str, str], rule: str
    ) -> str:
        """Audit a refused question and return its message (``where``: the field)."""
        assert ctx.peer is not None
        await self._ctx.audit.record(
            AuditEvent(
                actor=ctx.peer.spiffe_id,
                action=f"authz.{ctx.route.handler}",
                resource=resource,
                outcome="denied",
                request_id=ctx.request_id,
                details={"reason": rule, **details},
            )
        )
        return f"{_PREFIX}{where}: {rule}"

    async def _guard_contextual(
        self, ctx: RequestContext, contextual: Sequence[authz.TupleKey], where: str
    ) -> None:
        """Refuse (permission_denied, audited) contextual tuples on a built-in type
        from a non-admin: those types are the server's own policy, and a
        hypothetical grant on them answers nothing a workload may rely on."""
        index = _builtin_index(contextual)
        if index is None or await self._is_admin(ctx):
            return
        key = contextual[index]
        details = {"user": key.user, "relation": key.relation}
        raise ApiError(
            "permission_denied",
            await self._refuse(
                ctx, f"{where}[{index}]", key.object, details, _contextual_rule(key)
            ),
            details={"field": f"{where}[{index}]"},
        )

    def _own_user_rule(self, ctx: RequestContext, about: str) -> str:
        return (
            f"questions about {about} may only ask about the caller itself"
            f" ({_caller(ctx)}) unless the caller is an admin"
        )

    async def _guard_own_user(
        self,
        ctx: RequestContext,
        where: str,
        object_type: str,
        resource: str,
        user: str,
        relation: str,
        about: str | None = None,
    ) -> None:
        """Refuse (permission_denied) a question about a built-in type whose user is
        not the caller itself, unless the caller is an admin.

        ``resource`` is the object asked about (the audit resource); ``about``
        names it in the message when that reads better (default: ``resource``).
        """
        if object_type not in BUILTIN_TYPES or user == _caller(ctx):
            return
        authz.parse_user(user)  # a malformed user stays the engine's invalid_argument
        if await self._is_admin(ctx):
            return
        rule = self._own_user_rule(ctx, about or resource)
        details = {"user": user, "relation": relation}
        raise ApiError("permission_denied", await self._refuse(ctx, where, resource, details, rule))

    # -- models ------------------------------------------------------------------------
    async def write_authorization_model(
        self, ctx: RequestContext, req: m.WriteAuthorizationModelRequest
    ) -> m.AuthorizationModel:
        peer = await self._require_admin(ctx)
        if req.model is None and req.dsl is None:
            raise ApiError(
                "invalid_argument",
                f"{_PREFIX}model: give the model as model (OpenFGA JSON) or dsl",
                details={"field": "model"},
            )
        merged = merge_user_model(model=req.model, dsl=req.dsl)
        new_id = model_id(merged)
        text = stored_json(merged)
        now = self._ctx.clock.now()

        answer = m.AuthorizationModel(id=new_id, model=merged.to_dict(), dsl=render_dsl(merged))

        def write(snapshot: Snapshot) -> None:
            changed = store_model(snapshot.conn, new_id, text, to_ms(now))
            self._ctx.audit.chain.append(
                snapshot.conn,
                AuditEvent(
                    actor=peer.spiffe_id,
                    action="authz.write_authorization_model",
                    resource=f"authz_model:{new_id}",
                    outcome="allowed",
                    request_id=ctx.request_id,
                    details={"model_id": new_id, "previous": snapshot.model_id, "changed": changed},
                ),
                now,
            )
            ctx.commit_answer(snapshot.conn, answer)

        await self._engine.write(write)
        return answer

    async def read_authorization_model(
        self, ctx: RequestContext, req: m.ReadAuthorizationModelRequest
    ) -> m.AuthorizationModel:
        def read(snapshot: Snapshot) -> tuple[str, authz.AuthorizationModel | None]:
            if not req.id:
                return snapshot.model_id, snapshot.model
            return req.id, self._engine.load_model(snapshot.conn, req.id)

        found_id, model = await self._engine.read(read)
        if model is None:
            raise ApiError(
                "not_found",
                f"{_PREFIX}model: no authorization model has id {req.id[:80]!r}",
                details={"field": "id"},
            )
        return m.AuthorizationModel(id=found_id, model=model.to_dict(), dsl=render_dsl(model))

    async def list_authorization_models(
        self, ctx: RequestContext, req: m.ListAuthorizationModelsRequest
    ) -> m.ListAuthorizationModelsResponse:
        size = _page_size(req.page_size, default=DEFAULT_MODELS_PAGE, maximum=MAX_MODELS_PAGE)
        after: ModelCursor | None = None
        if req.page_token:
            created, last_id = _decode_cursor(req.page_token, ["models"], 2)
            if not created.isdigit():
                raise ApiError(
                    "invalid_argument",
                    f"{_PREFIX}page_token: not a page token; pass the next_page_token of the"
                    " previous page",
                    details={"field": "page_token"},
                )
            after = (int(created), last_id)

        def read(
            snapshot: Snapshot,
        ) -> tuple[list[tuple[str, str]], ModelCursor | None, str]:
            rows, cursor = list_models(snapshot.conn, after=after, limit=size)
            return rows, cursor, snapshot.model_id

        rows, cursor, current = await self._engine.read(read)
        models = []
        for found_id, text in rows:
            model = authz.parse_model(json.loads(text))
            models.append(
                m.AuthorizationModel(id=found_id, model=model.to_dict(), dsl=render_dsl(model))
            )
        token = _encode_cursor(["models"], [str(cursor[0]), cursor[1]]) if cursor else ""
        return m.ListAuthorizationModelsResponse(
            models=models, next_page_token=token, current_id=current
        )

    # -- tuples ------------------------------------------------------------------------
    async def write_tuples(
        self, ctx: RequestContext, req: m.WriteTuplesRequest
    ) -> m.WriteTuplesResponse:
        peer = await self._require_admin(ctx)
        count = len(req.writes) + len(req.deletes)
        if count > MAX_TUPLES_PER_WRITE:
            raise ApiError(
                "invalid_argument",
                f"{_PREFIX}request: at most {MAX_TUPLES_PER_WRITE} tuples (writes plus"
                f" deletes) per call, got {count}",
            )
        writes = [_tuple_key(k, f"writes[{i}]") for i, k in enumerate(req.writes)]
        deletes = [_tuple_key(k, f"deletes[{i}]") for i, k in enumerate(req.deletes)]
        both = set(writes) & set(deletes)
        if both:
            index = next(i for i, k in enumerate(writes) if k in both)
            raise ApiError(
                "invalid_argument",
                f"{_PREFIX}writes[{index}]: tuple {writes[index]} is also in deletes;"
                " a call may write or delete a tuple, not both",
                details={"field": f"writes[{index}]"},
            )
        now = self._ctx.clock.now()

        def write(snapshot: Snapshot) -> m.WriteTuplesResponse:
            model = _version(self._engine, snapshot, req.authorization_model_id)
            for index, key in enumerate(writes):
                try:
                    authz.validate_tuple(model, key)
                    validate_builtin_tuple(key)
                except authz.TupleError as exc:
                    raise _at(f"writes[{index}]", exc) from exc
            try:
                change = apply_tuple_changes(snapshot.conn, writes, deletes)
            except ConditionConflict as exc:
                raise ApiError(
                    "already_exists",
                    f"{_PREFIX}writes[{exc.index}]: tuple {exc.key.object}#{exc.key.relation}"
                    f"@{exc.key.user} is stored with a different condition; delete it first"
                    " (in an earlier call), then write it with the new one",
                    details={"field": f"writes[{exc.index}]"},
                ) from None
            self._ctx.audit.chain.append(
                snapshot.conn,
                AuditEvent(
                    actor=peer.spiffe_id,
                    action="authz.write_tuples",
                    resource="authz_tuples",
                    outcome="allowed",
                    request_id=ctx.request_id,
                    details={
                        "writes": [str(k) for k in writes],
                        "deletes": [str(k) for k in deletes],
                        "written": change.written,
                        "deleted": change.deleted,
                        "revision": change.revision,
                    },
                ),
                now,
            )
            answer = m.WriteTuplesResponse(revision=format_revision(change.revision))
            ctx.commit_answer(snapshot.conn, answer)
            return answer

        return await self._engine.write(write)

    async def read_tuples(
        self, ctx: RequestContext, req: m.ReadTuplesRequest
    ) -> m.ReadTuplesResponse:
        peer = await self._require_admin(ctx)
        where = _tuple_filter(req)
        if req.page_size < 0:
            raise ApiError(
                "invalid_argument",
                f"{_PREFIX}page_size must not be negative",
                details={"field": "page_size"},
            )
        limit = min(req.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        after = _decode_page_token(req.page_token, where) if req.page_token else None

        def read(snapshot: Snapshot) -> tuple[list[authz.TupleKey], TupleCursor | None]:
            return read_tuples(snapshot.conn, where, after=after, limit=limit)

        tuples, cursor = await self._engine.read(read)
        await self._ctx.audit.record(
            AuditEvent(
                actor=peer.spiffe_id,
                action="authz.read_tuples",
                resource="authz_tuples",
                outcome="allowed",
                request_id=ctx.request_id,
                details={"filter": req.to_json(), "returned": len(tuples)},
            )
        )
        return m.ReadTuplesResponse(
            tuples=[_wire_key(k) for k in tuples],
            next_page_token=_encode_page_token(where, cursor) if cursor else "",
        )

    # -- questions -----------------------------------------------------------------------
    def _cache_headers(self) -> dict[str, str]:
        max_age = self._ctx.config.authz_check_max_age_seconds
        return {"Cache-Control": f"private, max-age={max_age}"}

    async def check(self, ctx: RequestContext, req: m.CheckRequest) -> Reply:
        key = _tuple_key(req.tuple_key, "tuple_key")
        contextual = _contextual(req.contextual_tuples, "contextual_tuples")
        at_least = _min_revision(req.consistency, req.revision)
        await self._guard_own_user(
            ctx, "check", key.object_type, key.object, key.user, key.relation
        )
        await self._guard_contextual(ctx, contextual, "contextual_tuples")

        def run(snapshot: Snapshot) -> tuple[bool, int]:
            model = _version(self._engine, snapshot, req.authorization_model_id)
            reader = _reader(snapshot, model, contextual, "contextual_tuples")
            allowed = authz.check(model, reader, key, context=req.context or {})
            return allowed, snapshot.revision

        with self._ctx.tracing.authz_check(key.object_type, key.relation) as span:
            allowed, revision = await self._engine.read(run, at_least=at_least)
            span.allowed(allowed)
        return Reply(
            body=m.CheckResponse(allowed=allowed, revision=format_revision(revision)),
            headers=self._cache_headers(),
        )

    async def batch_check(self, ctx: RequestContext, req: m.BatchCheckRequest) -> Reply:
        """Up to :data:`authz.MAX_BATCH_CHECK` checks, each answered on its own.

        A refused item (a question about a built-in type whose user is not the
        caller, from a non-admin) gets ``allowed: false`` and an ``error`` naming
        ``checks[i]`` and what to fix, and is audited; the other items are still
        answered. That is how the batch already treats a malformed tuple or one
        that does not fit the model: whether an item may be asked depends on that
        item alone, so it fails alone, and one question the caller may not ask
        does not hide the answers it may have. Only problems with the call itself
        (too many items, bad correlation ids, a bad revision) fail the whole call.
        The admin check runs at most once per call, and only if an item needs it.
        """
        if len(req.checks) > authz.MAX_BATCH_CHECK:
            raise ApiError(
                "invalid_argument",
                f"{_PREFIX}request: batch_check takes at most {authz.MAX_BATCH_CHECK}"
                f" checks, got {len(req.checks)}",
                details={"field": "checks"},
            )
        at_least = _min_revision(req.consistency, req.revision)
        items, failed, contextual = _batch_items(req.checks)
        items = await self._drop_refused(ctx, req.checks, items, failed, contextual)

        def run(snapshot: Snapshot) -> tuple[dict[str, authz.BatchCheckResult], int]:
            # One memo for the items that see the stored tuples alone; an item with
            # contextual tuples sees its own tuples, so it is answered on its own.
            model = _version(self._engine, snapshot, req.authorization_model_id)
            plain = [item for item in items if item.correlation_id not in contextual]
            results = authz.batch_check(model, snapshot.reader, plain)
            for item in items:
                cid = item.correlation_id
                if cid in contextual:
                    where, keys = contextual[cid]
                    try:
                        reader = _reader(snapshot, model, keys, where)
                    except ApiError as exc:
                        failed[cid] = exc.message
                        continue
                    results.update(authz.batch_check(model, reader, [item]))
            return results, snapshot.revision

        results, revision = await self._engine.read(run, at_least=at_least)
        wire = {
            cid: m.BatchCheckResult(
                allowed=result.allowed, error=result.error.message if result.error else ""
            )
            for cid, result in results.items()
        }
        wire.update({cid: m.BatchCheckResult(allowed=False, error=e) for cid, e in failed.items()})
        return Reply(
            body=m.BatchCheckResponse(results=wire, revision=format_revision(revision)),
            headers=self._cache_headers(),
        )

    async def _drop_refused(
        self,
        ctx: RequestContext,
        checks: Sequence[m.BatchCheckItem],
        items: list[authz.BatchCheckItem],
        failed: dict[str, str],
        contextual: Mapping[str, tuple[str, list[authz.TupleKey]]],
    ) -> list[authz.BatchCheckItem]:
        """The items the caller may ask; each refused one goes to ``failed``: a
        question about a built-in type whose user is not the caller, or one with
        contextual tuples on a built-in type, from a non-admin (one admin check
        for the whole batch)."""
        me = _caller(ctx)
        index = {check.correlation_id: i for i, check in enumerate(checks)}
        # (correlation id, field, audited resource, the refused tuple, rule)
        refusals: list[tuple[str, str, str, authz.TupleKey, str]] = []
        for item in items:
            key = item.tuple_key
            cid = item.correlation_id
            if key.object_type in BUILTIN_TYPES and key.user != me:
                rule = self._own_user_rule(ctx, key.object)
                refusals.append((cid, f"checks[{index[cid]}]", key.object, key, rule))
            elif cid in contextual:
                where, keys = contextual[cid]
                at = _builtin_index(keys)
                if at is not None:
                    extra = keys[at]
                    rule = _contextual_rule(extra)
                    refusals.append((cid, f"{where}[{at}]", extra.object, extra, rule))
        if not refusals or await self._is_admin(ctx):
            return items
        for cid, where, resource, key, rule in refusals:
            details = {"user": key.user, "relation": key.relation, "correlation_id": cid}
            failed[cid] = await self._refuse(ctx, where, resource, details, rule)
        return [item for item in items if item.correlation_id not in failed]

    async def list_objects(
        self, ctx: RequestContext, req: m.ListObjectsRequest
    ) -> m.ListObjectsResponse:
        at_least = _min_revision(req.consistency, req.revision)
        await self._guard_own_user(
            ctx,
            "list_objects",
            req.type,
            f"{req.type}:",  # every object of the type, as in ReadTuples filters
            req.user,
            req.relation,
            about=f"objects of type {req.type}",
        )

        objects, token = await self._page(
            ctx,
            req,
            at_least,
            [req.type, req.relation, req.user],
            lambda model, reader, page: _objects(
                authz.list_objects_page(model, reader, req.type, req.relation, req.user, **page)
            ),
        )
        return m.ListObjectsResponse(objects=objects, next_page_token=token)

    async def list_users(self, ctx: RequestContext, req: m.ListUsersRequest) -> m.ListUsersResponse:
        at_least = _min_revision(req.consistency, req.revision)
        obj = authz.parse_object(req.object)  # malformed: the engine's invalid_argument
        if obj.type in BUILTIN_TYPES and not await self._is_admin(ctx):
            rule = (
                f"list_users of {obj} lists every user of the relation; only an admin"
                f" (admin on {SYSTEM_ROOT}) may list the users of the built-in type {obj.type}"
            )
            details = {"relation": req.relation, "user_filter": req.user_filter}
            raise ApiError(
                "permission_denied",
                await self._refuse(ctx, "list_users", str(obj), details, rule),
            )
        users, token = await self._page(
            ctx,
            req,
            at_least,
            [req.object, req.relation, req.user_filter],
            lambda model, reader, page: _users(
                authz.list_users(model, reader, req.object, req.relation, req.user_filter, **page)
            ),
        )
        return m.ListUsersResponse(users=users, next_page_token=token)

    async def _page(
        self,
        ctx: RequestContext,
        req: _PagedQuestion,
        at_least: int | None,
        query: list[str],
        listing: Callable[
            [authz.AuthorizationModel, authz.TupleReader, dict[str, Any]],
            tuple[list[str], str, bool],
        ],
    ) -> tuple[list[str], str]:
        """One page of a ListObjects or ListUsers question: its page token (bound to
        ``query``), contextual tuples and model version applied; the items and the
        next page's token. ``listing`` gives the items, the cursor after the last
        one and whether more follow, given the engine's page options
        (``max_results``, ``after``, ``context``)."""
        size = _page_size(req.page_size)
        after = _decode_cursor(req.page_token, query, 1)[0] if req.page_token else None
        contextual = _contextual(req.contextual_tuples, "contextual_tuples")
        await self._guard_contextual(ctx, contextual, "contextual_tuples")

        page = {"max_results": size, "after": after, "context": req.context or {}}

        def run(snapshot: Snapshot) -> tuple[list[str], str, bool]:
            model = _version(self._engine, snapshot, req.authorization_model_id)
            return listing(model, _reader(snapshot, model, contextual, "contextual_tuples"), page)

        items, last, more = await self._engine.read(run, at_least=at_least)
        return items, _encode_cursor(query, [last]) if more else ""

    async def expand(self, ctx: RequestContext, req: m.ExpandRequest) -> m.ExpandResponse:
        at_least = _min_revision(req.consistency, req.revision)
        # The engine's own first step: a malformed object is its invalid_argument.
        obj = authz.parse_object(req.object)
        if obj.type in BUILTIN_TYPES and not await self._is_admin(ctx):
            rule = (
                f"expand of {obj} lists every user of the relation; only an admin"
                f" (admin on {SYSTEM_ROOT}) may expand objects of the built-in type {obj.type}"
            )
            details = {"relation": req.relation}
            raise ApiError(
                "permission_denied", await self._refuse(ctx, "expand", str(obj), details, rule)
            )

        contextual = _contextual(req.contextual_tuples, "contextual_tuples")
        await self._guard_contextual(ctx, contextual, "contextual_tuples")

        def run(snapshot: Snapshot) -> dict[str, Any]:
            model = _version(self._engine, snapshot, req.authorization_model_id)
            reader = _reader(snapshot, model, contextual, "contextual_tuples")
            return authz.expand(model, reader, req.object, req.relation).to_dict()

        return m.ExpandResponse(tree=await self._engine.read(run, at_least=at_least))


def _caller(ctx: RequestContext) -> str:
    """The caller as a user: ``workload:<its SPIFFE ID>``."""
    assert ctx.peer is not None
    return f"{WORKLOAD_TYPE}:{ctx.peer.spiffe_id}"


def _batch_items(
    checks: Sequence[m.BatchCheckItem],
) -> tuple[list[authz.BatchCheckItem], dict[str, str], dict[str, tuple[str, list[authz.TupleKey]]]]:
    """Engine items for the well-formed checks, errors for the malformed ones, and
    the contextual tuples (with their field) of the items that have some.

    Correlation ids are checked for all (malformed or repeated: the whole call
    is invalid); a malformed tuple, contextual ones included, fails only its own
    check.
    """
    items: list[authz.BatchCheckItem] = []
    failed: dict[str, str] = {}
    contextual: dict[str, tuple[str, list[authz.TupleKey]]] = {}
    seen: set[str] = set()
    for index, check in enumerate(checks):
        cid = check.correlation_id
        if cid in seen:
            raise ApiError(
                "invalid_argument",
                f"{_PREFIX}checks[{index}]: correlation id {cid!r} is used more than once",
                details={"field": f"checks[{index}].correlation_id"},
            )
        seen.add(cid)
        if len(cid) > authz.MAX_CORRELATION_ID_LENGTH or not _CORRELATION_ID_RE.fullmatch(cid):
            raise ApiError(
                "invalid_argument",
                f"{_PREFIX}checks[{index}]: correlation id {cid[:40]!r} must be 1 to"
                f" {authz.MAX_CORRELATION_ID_LENGTH} letters, digits, '_' or '-'",
                details={"field": f"checks[{index}].correlation_id"},
            )
        where = f"checks[{index}].contextual_tuples"
        try:
            key = _tuple_key(check.tuple_key, f"checks[{index}].tuple_key")
            extra = _contextual(check.contextual_tuples, where)
        except ApiError as exc:
            failed[cid] = exc.message
            continue
        items.append(authz.BatchCheckItem(key, cid, dict(check.context or {})))
        if extra:
            contextual[cid] = (where, extra)
    return items, failed, contextual


def _tuple_filter(req: m.ReadTuplesRequest) -> TupleFilter:
    object_type = object_id = ""
    if req.object:
        object_type, sep, object_id = req.object.partition(":")
        if not sep or not object_type:
            raise ApiError(
                "invalid_argument",
                f'{_PREFIX}object filter {req.object[:80]!r} must be "type:" or "type:id"',
                details={"field": "object"},
            )
    return TupleFilter(object_type, object_id, req.relation, req.user)


def _encode_cursor(query: list[str], cursor: list[str]) -> str:
    """A page token: the query it pages (so that it cannot page another) and the
    cursor after which the next page starts, as unpadded base64url JSON."""
    raw = json.dumps([*query, *cursor], separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(token: str, query: list[str], size: int) -> list[str]:
    """The cursor of a token from :func:`_encode_cursor` for the same query."""

    def bad(reason: str) -> ApiError:
        return ApiError(
            "invalid_argument",
            f"{_PREFIX}page_token: {reason}; pass the next_page_token of the previous page",
            details={"field": "page_token"},
        )

    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        state = json.loads(raw)
    except (binascii.Error, ValueError):
        raise bad("not a page token") from None
    if not (
        isinstance(state, list)
        and len(state) == len(query) + size
        and all(isinstance(s, str) for s in state)
    ):
        raise bad("not a page token")
    if state[: len(query)] != query:
        raise bad("the token belongs to a different query")
    return state[len(query) :]


def _encode_page_token(where: TupleFilter, cursor: TupleCursor) -> str:
    return _encode_cursor(_filter_fields(where), list(cursor))


def _decode_page_token(token: str, where: TupleFilter) -> TupleCursor:
    a, b, c, d = _decode_cursor(token, _filter_fields(where), 4)
    return (a, b, c, d)


def _filter_fields(where: TupleFilter) -> list[str]:
    return [where.object_type, where.object_id, where.relation, where.user]
