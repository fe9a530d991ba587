"""What the identity and entries handlers share: their audit events, the
in-transaction audit step, and the admin gate that audits a refusal.

A handler class mixes :class:`AuditedHandlers` in, names its audit action
prefix (``identity``, ``entries``) in :attr:`AuditedHandlers.audit_prefix`,
and sets ``_audit``, ``_clock`` and ``_admin`` in its constructor.
"""

from __future__ import annotations

import sqlite3
from typing import Any, ClassVar, Protocol

from . import ca
from ._clock import Clock
from ._rpc import RequestContext
from .audit import AuditEvent, AuditLog
from .errors import ApiError
from .storage import InTransaction


class AdminPolicy(Protocol):
    """Decides whether a caller may use admin RPCs."""

    async def is_admin(self, spiffe_id: str) -> bool:
        """Whether ``spiffe_id`` holds the admin relation."""
        ...


class AuditedHandlers:
    """Audit events named ``<audit_prefix>.<handler>`` and the admin gate."""

    audit_prefix: ClassVar[str]
    _audit: AuditLog
    _clock: Clock
    _admin: AdminPolicy

    def _event(
        self, ctx: RequestContext, resource: str, outcome: str = "allowed", **details: Any
    ) -> AuditEvent:
        return AuditEvent(
            actor=ctx.peer.spiffe_id if ctx.peer is not None else "anonymous",
            action=f"{self.audit_prefix}.{ctx.route.handler}",
            resource=resource,
            outcome=outcome,
            request_id=ctx.request_id,
            details=details,
        )

    def _with_audit(self, event: AuditEvent) -> InTransaction:
        """The write's audit entry, appended in the write's own transaction."""

        def append(conn: sqlite3.Connection) -> None:
            self._audit.chain.append(conn, event, self._clock.now())

        return append

    async def _require_admin(self, ctx: RequestContext, resource: str) -> ca.Peer:
        assert ctx.peer is not None
        if not await self._admin.is_admin(ctx.peer.spiffe_id):
            await self._audit.record(self._event(ctx, resource, "denied"))
            raise ApiError(
                "permission_denied",
                f"secinfra: auth: {ctx.peer.spiffe_id} may not call"
                f" {ctx.route.rpc}; it needs the admin relation",
            )
        return ctx.peer
