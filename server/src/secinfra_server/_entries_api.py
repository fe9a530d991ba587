"""Handlers for secinfra.v1.EntriesService: registration entries and the
workload SVIDs node agents get signed for them.

Admins create, read, list and delete entries (the admin relation, decided by
the authorization engine). Creating an entry writes, in the same transaction
as the entry and its audit entry, the tuple
``registration_entry:<id>#node@workload:<parent>``; deleting it deletes that
tuple. SignWorkloadSvid is for node agents, authenticated by their node SVID
over mTLS: the engine must find the caller to be the entry's ``node``, and
the entry must still have the caller as its parent in the transaction that
records the certificate. A revoked node cannot authenticate at all (the
server re-checks every client certificate per request), so revoking a node's
SPIFFE ID or serial stops every SVID it would sign. Every signing and every
refusal is audited.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import sqlite3
from collections.abc import Mapping
from datetime import timedelta
from typing import Final

from . import ca, entries
from ._ca_runtime import CaRuntime, IssuedSvid
from ._gen import entries as m
from ._handler_audit import AuditedHandlers
from ._identity_api import _Answer, _in_order, is_reserved_path
from ._rpc import Handler, RequestContext, ServiceContext
from ._svid_message import svid_message
from .authz import TupleKey
from .errors import ApiError
from .policy import ENTRY_ID_PATTERN, ENTRY_TYPE, NODE_RELATION, WORKLOAD_TYPE
from .storage import InTransaction, from_ms, to_ms
from .storage import entry_tables as tables
from .storage.authz_tables import apply_tuple_changes

log = logging.getLogger("secinfra.entries")

DEFAULT_PAGE_SIZE: Final = 100
MAX_PAGE_SIZE: Final = 1000
#: The most entries ListNodeEntries returns; a node with more is misconfigured.
MAX_NODE_ENTRIES: Final = 10_000
_PAGE_TOKEN: Final = re.compile(r"([0-9]{1,15})\.([0-9a-f]{32})")


def _entry(row: tables.StoredEntry) -> m.Entry:
    return m.Entry(
        id=row.id,
        spiffe_id=row.spiffe_id,
        parent_id=row.parent_id,
        selectors=[m.Selector(type=t, value=v) for t, v in row.selectors],
        ttl_seconds=row.ttl_seconds,
        dns_names=list(row.dns_names),
        created_at=row.created_at,
    )


def _node_tuple(entry_id: str, parent_id: str) -> TupleKey:
    return TupleKey(f"{WORKLOAD_TYPE}:{parent_id}", NODE_RELATION, f"{ENTRY_TYPE}:{entry_id}")


def _invalid(field: str, message: str) -> ApiError:
    return ApiError("invalid_argument", f"secinfra: entries: {message}", details={"field": field})


class EntriesApi(AuditedHandlers):
    """The EntriesService RPCs."""

    audit_prefix = "entries"

    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx
        self._ca: CaRuntime = ctx.ca_runtime
        self._audit = ctx.audit
        self._clock = ctx.clock
        self._admin = ctx.policy

    def handlers(self) -> Mapping[str, Handler]:
        """Handlers by RPC handler name (snake_case)."""
        return {
            "create_entry": self.create_entry,
            "get_entry": self.get_entry,
            "list_entries": self.list_entries,
            "list_node_entries": self.list_node_entries,
            "sign_workload_svid": self.sign_workload_svid,
            "delete_entry": self.delete_entry,
        }

    # -- validation -----------------------------------------------------------------
    def _workload_id(self, field: str, value: str) -> str:
        """``value`` as a canonical SPIFFE ID in this server's trust domain, with a path."""
        try:
            parsed = ca.SpiffeId.parse(value)
        except ca.InvalidSpiffeId as exc:
            raise _invalid(field, f"{field}: {exc}") from exc
        trust_domain = self._ctx.config.trust_domain
        if parsed.trust_domain != trust_domain or not parsed.path:
            raise _invalid(
                field, f"{field} must be spiffe://{trust_domain}/<path> (this trust domain)"
            )
        return str(parsed)

    def _new_entry(self, req: m.CreateEntryRequest) -> tables.StoredEntry:
        spiffe_id = self._workload_id("spiffe_id", req.spiffe_id)
        if is_reserved_path(ca.SpiffeId.parse(spiffe_id).path):
            raise _invalid("spiffe_id", "spiffe_id paths under /secinfra/ are reserved")
        parent_id = self._workload_id("parent_id", req.parent_id)
        if parent_id == spiffe_id:
            raise _invalid("parent_id", "an entry cannot be its own parent")
        if not req.selectors:
            raise _invalid("selectors", "give at least one selector, e.g. unix uid:1000")
        if len(req.selectors) > entries.MAX_SELECTORS:
            raise _invalid("selectors", f"at most {entries.MAX_SELECTORS} selectors")
        parsed: list[entries.Selector] = []
        for index, selector in enumerate(req.selectors):
            try:
                parsed.append(entries.parse_selector(selector.type, selector.value))
            except entries.InvalidSelector as exc:
                raise _invalid(f"selectors[{index}]", f"selectors[{index}]: {exc}") from exc
        if len(set(parsed)) != len(parsed):
            raise _invalid("selectors", "selectors lists one selector twice")
        try:
            entries.check_ttl(
                req.ttl_seconds,
                leaf_ttl_seconds=self._ctx.config.leaf_ttl_seconds,
                test_mode=self._ctx.config.test_hooks,
            )
            dns_names = entries.check_dns_names(req.dns_names)
        except entries.InvalidEntry as exc:
            raise _invalid(exc.field, str(exc)) from exc
        return tables.StoredEntry(
            id=secrets.token_hex(16),
            spiffe_id=spiffe_id,
            parent_id=parent_id,
            selectors=tuple(sorted((s.type, s.value) for s in parsed)),
            ttl_seconds=req.ttl_seconds,
            dns_names=dns_names,
            # At the storage's precision, so this answer equals every later read.
            created_at=from_ms(to_ms(self._ctx.clock.now())),
        )

    @staticmethod
    def _entry_id(field: str, value: str) -> str:
        if not ENTRY_ID_PATTERN.fullmatch(value):
            raise _invalid(field, f"{field} must be an entry id: 32 lowercase hex digits")
        return value

    # -- admin RPCs -----------------------------------------------------------------
    async def create_entry(self, ctx: RequestContext, req: m.CreateEntryRequest) -> m.Entry:
        await self._require_admin(ctx, "entries")
        entry = self._new_entry(req)
        resource = f"entry:{entry.id}"
        response = _entry(entry)
        answer = _Answer(ctx, lambda _conn: response)
        event = self._event(
            ctx,
            resource,
            spiffe_id=entry.spiffe_id,
            parent_id=entry.parent_id,
            selectors=[f"{t}:{v}" for t, v in entry.selectors],
        )

        def create(conn: sqlite3.Connection) -> None:
            if not tables.insert_entry(conn, entry):
                raise ApiError(
                    "already_exists",
                    "secinfra: entries: an entry with this spiffe_id, parent_id and selectors"
                    " exists; list it with ListEntries, or change the selectors",
                    details={"spiffe_id": entry.spiffe_id, "parent_id": entry.parent_id},
                )
            apply_tuple_changes(conn, [_node_tuple(entry.id, entry.parent_id)], [])
            _in_order(self._with_audit(event), answer)(conn)

        try:
            await self._ctx.storage.write(create)
        except ApiError as exc:
            await self._ctx.audit.record(self._event(ctx, resource, "denied", code=exc.code))
            raise
        log.info(
            "entry created",
            extra={"fields": {"entry_id": entry.id, "spiffe_id": entry.spiffe_id}},
        )
        return answer.value

    async def get_entry(self, ctx: RequestContext, req: m.GetEntryRequest) -> m.Entry:
        entry_id = self._entry_id("id", req.id)
        resource = f"entry:{entry_id}"
        await self._require_admin(ctx, resource)
        await self._ctx.audit.record(self._event(ctx, resource))
        row = await self._ctx.storage.read(lambda conn: tables.read_entry(conn, entry_id))
        if row is None:
            raise _not_found(entry_id)
        return _entry(row)

    async def list_entries(
        self, ctx: RequestContext, req: m.ListEntriesRequest
    ) -> m.ListEntriesResponse:
        await self._require_admin(ctx, "entries")
        where = tables.EntryFilter(
            parent_id=self._workload_id("parent_id", req.parent_id) if req.parent_id else "",
            spiffe_id=self._workload_id("spiffe_id", req.spiffe_id) if req.spiffe_id else "",
        )
        size = req.page_size or DEFAULT_PAGE_SIZE
        if not 0 < size <= MAX_PAGE_SIZE:
            raise _invalid("page_size", f"page_size must be from 1 to {MAX_PAGE_SIZE}")
        after: tuple[int, str] | None = None
        if req.page_token:
            token = _PAGE_TOKEN.fullmatch(req.page_token)
            if token is None:
                raise _invalid("page_token", "page_token is not one ListEntries returned")
            after = (int(token[1]), token[2])
        await self._ctx.audit.record(self._event(ctx, "entries"))
        # One more than a page: whether there is a next page, without a second query.
        rows = await self._ctx.storage.read(
            lambda conn: tables.list_entries(conn, where, after=after, limit=size + 1)
        )
        page = rows[:size]
        more = len(rows) > size
        next_token = "{}.{}".format(*tables.position_of(page[-1])) if more else ""
        return m.ListEntriesResponse(entries=[_entry(r) for r in page], next_page_token=next_token)

    async def delete_entry(self, ctx: RequestContext, req: m.DeleteEntryRequest) -> m.Entry:
        entry_id = self._entry_id("id", req.id)
        resource = f"entry:{entry_id}"
        await self._require_admin(ctx, resource)

        def delete(conn: sqlite3.Connection) -> m.Entry:
            row = tables.delete_entry(conn, entry_id)
            if row is None:
                raise _not_found(entry_id)  # rolls back: nothing was deleted
            apply_tuple_changes(conn, [], [_node_tuple(row.id, row.parent_id)])
            return _entry(row)

        answer = _Answer(ctx, delete)
        try:
            audited = self._with_audit(self._event(ctx, resource))
            await self._ctx.storage.write(_in_order(answer, audited))
        except ApiError as exc:
            await self._ctx.audit.record(self._event(ctx, resource, "error", code=exc.code))
            raise
        return answer.value

    # -- node RPCs ------------------------------------------------------------------
    async def list_node_entries(
        self, ctx: RequestContext, _req: m.ListNodeEntriesRequest
    ) -> m.ListNodeEntriesResponse:
        assert ctx.peer is not None
        where = tables.EntryFilter(parent_id=ctx.peer.spiffe_id)
        rows = await self._ctx.storage.read(
            lambda conn: tables.list_entries(conn, where, after=None, limit=MAX_NODE_ENTRIES)
        )
        return m.ListNodeEntriesResponse(entries=[_entry(r) for r in rows])

    async def sign_workload_svid(
        self, ctx: RequestContext, req: m.SignWorkloadSvidRequest
    ) -> m.SignWorkloadSvidResponse:
        assert ctx.peer is not None
        node = ctx.peer.spiffe_id
        entry_id = self._entry_id("entry_id", req.entry_id)
        resource = f"entry:{entry_id}"
        if not req.csr_pem:
            raise _invalid("csr_pem", "csr_pem is required")
        await asyncio.to_thread(ca.load_csr, req.csr_pem)
        if not await self._ctx.policy.can_sign_for_entry(node, entry_id):
            await self._ctx.audit.record(self._event(ctx, resource, "denied", reason="not_node"))
            raise ApiError(
                "permission_denied",
                f"secinfra: entries: {node} is not the parent of an entry with this id;"
                " only the entry's node may get SVIDs signed for it",
                details={"entry_id": entry_id},
            )
        row = await self._ctx.storage.read(lambda conn: tables.read_entry(conn, entry_id))
        if row is None or row.parent_id != node:
            await self._ctx.audit.record(self._event(ctx, resource, "denied", reason="no_entry"))
            raise _not_found(entry_id)
        if self._ca.is_revoked_id(row.spiffe_id):
            await self._ctx.audit.record(
                self._event(ctx, resource, "denied", reason="revoked_id", spiffe_id=row.spiffe_id)
            )
            raise ApiError(
                "permission_denied",
                f"secinfra: entries: {row.spiffe_id} is revoked; lift the revocation first",
                details={"entry_id": entry_id},
            )
        answer: _Answer[m.SignWorkloadSvidResponse] | None = None

        def with_certificate(issued: IssuedSvid) -> InTransaction:
            nonlocal answer
            response = m.SignWorkloadSvidResponse(
                svid=svid_message(issued.certificate, issued.spiffe_id), entry_id=entry_id
            )
            answer = _Answer(ctx, lambda _conn: response)
            event = self._event(
                ctx,
                resource,
                spiffe_id=issued.spiffe_id,
                serial=f"{issued.certificate.serial_number:x}",
            )
            return _in_order(_still_parented(entry_id, node), self._with_audit(event), answer)

        ttl = timedelta(seconds=row.ttl_seconds) if row.ttl_seconds else None
        await self._ca.sign_workload(
            req.csr_pem,
            row.spiffe_id,
            kind="entry",
            also=with_certificate,
            ttl=ttl,
            dns_names=row.dns_names,
        )
        assert answer is not None
        return answer.value


def _still_parented(entry_id: str, node: str) -> InTransaction:
    """Refuse (rolling the certificate's record back) when the entry was
    deleted, or moved to another parent, since the check."""

    def check(conn: sqlite3.Connection) -> None:
        row = tables.read_entry(conn, entry_id)
        if row is None or row.parent_id != node:
            raise _not_found(entry_id)

    return check


def _not_found(entry_id: str) -> ApiError:
    return ApiError(
        "not_found",
        "secinfra: entries: no entry with this id (for this node)",
        details={"entry_id": entry_id},
    )
