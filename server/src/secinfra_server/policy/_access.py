"""Who may do what on the server: the access policy the services ask.

:class:`AccessPolicy` is the contract: the handful of questions the identity,
secrets and test-mode code ask about a caller. :class:`EnginePolicy` answers
them through the authorization engine over the built-in model (dogfooding):
each answer is one check of a relation in :mod:`._builtin_model`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from .._tracing import NO_TRACING, Tracing
from ..authz import (
    ResolutionTooComplex,
    Resolver,
    TupleError,
    TupleKey,
    check,
    parse_object,
    parse_user,
)
from ..storage.authz_tables import (
    SECRET_TYPE,
    SYSTEM_ROOT,
    SYSTEM_TYPE,
)
from ._builtin_model import (
    ADMIN_RELATION,
    ENTRY_TYPE,
    NODE_RELATION,
    READER_RELATION,
    WORKLOAD_TYPE,
    WRITER_RELATION,
)
from ._engine import AuthzEngine, Snapshot

log = logging.getLogger("secinfra.authz")


class AccessPolicy(Protocol):
    """Decisions about one caller (a SPIFFE ID). Default deny."""

    async def is_admin(self, spiffe_id: str) -> bool:
        """Whether the caller holds the admin relation on the system."""
        ...

    async def can_read_secret(self, spiffe_id: str, name: str) -> bool:
        """Whether the caller may read the secret ``name`` (via folder inheritance too)."""
        ...

    async def can_write_secret(self, spiffe_id: str, name: str) -> bool:
        """Whether the caller may write, delete or destroy the secret ``name``."""
        ...

    async def readable_secrets(self, spiffe_id: str, names: Sequence[str]) -> list[str]:
        """The subset of ``names`` the caller may see, in the given order."""
        ...

    async def can_sign_for_entry(self, spiffe_id: str, entry_id: str) -> bool:
        """Whether the caller (a node agent) may get SVIDs signed for the
        registration entry ``entry_id``: whether it is the entry's node."""
        ...


class EnginePolicy:
    """:class:`AccessPolicy` over the engine and the built-in model.

    Default deny: a caller or name the engine cannot even express (not a
    SPIFFE ID, not a secret name) is denied. Each decision is a span of
    ``tracing`` (object type, relation, outcome; see ``_tracing``)."""

    def __init__(self, engine: AuthzEngine, *, tracing: Tracing = NO_TRACING) -> None:
        self._engine = engine
        self._tracing = tracing

    @property
    def engine(self) -> AuthzEngine:
        """The engine this policy decides with (the AuthzService shares it)."""
        return self._engine

    async def is_admin(self, spiffe_id: str) -> bool:
        """Whether the caller holds ``admin`` on ``system:root``."""
        return await self._decide(spiffe_id, ADMIN_RELATION, SYSTEM_TYPE, SYSTEM_ROOT)

    async def can_read_secret(self, spiffe_id: str, name: str) -> bool:
        """Whether the caller is a ``reader`` of ``secret:<name>``."""
        return await self._decide(spiffe_id, READER_RELATION, SECRET_TYPE, f"{SECRET_TYPE}:{name}")

    async def can_write_secret(self, spiffe_id: str, name: str) -> bool:
        """Whether the caller is a ``writer`` of ``secret:<name>``."""
        return await self._decide(spiffe_id, WRITER_RELATION, SECRET_TYPE, f"{SECRET_TYPE}:{name}")

    async def can_sign_for_entry(self, spiffe_id: str, entry_id: str) -> bool:
        """Whether the caller is the ``node`` of ``registration_entry:<entry_id>``."""
        return await self._decide(spiffe_id, NODE_RELATION, ENTRY_TYPE, f"{ENTRY_TYPE}:{entry_id}")

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

        with self._tracing.authz_filter(SECRET_TYPE, READER_RELATION) as span:
            readable = await self._engine.read(run)
            span.filtered(len(names), len(readable))
            return readable

    async def _decide(self, spiffe_id: str, relation: str, object_type: str, obj: str) -> bool:
        """One check of ``relation`` on ``obj`` (``type:id``), traced under its
        ``object_type`` alone: an object's id (a secret's name) is not in spans."""
        with self._tracing.authz_check(object_type, relation) as span:
            allowed = await self._check(spiffe_id, relation, obj)
            span.allowed(allowed)
            return allowed

    async def _check(self, spiffe_id: str, relation: str, obj: str) -> bool:
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
