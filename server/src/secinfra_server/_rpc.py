"""The RPC contract between the HTTP dispatcher and the handlers.

Handlers import only this (and the layers below it): what a handler receives
(:class:`RequestContext`, the decoded request), what it may answer
(:class:`Reply` or a response model), its shape (:data:`Handler`), and the
long-lived parts it is built from (:class:`ServiceContext`). The dispatcher
(``_http``) implements the other side; neither knows the other's internals.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web

from . import ca
from ._ca_runtime import CaRuntime
from ._clock import Clock
from ._gen.routes import Route
from ._idempotency import REPLAYED_HEADERS, KeyedCall, StoredResponse
from ._metrics import Metrics
from ._tracing import NO_TRACING, Tracing
from .audit import AuditLog
from .config import ServerConfig
from .crypto import Keyring
from .policy import AccessPolicy, AuthzEngine
from .storage import Storage

JSON_CONTENT_TYPE: Final = "application/json"


@dataclass
class RequestContext:
    """What a handler gets besides its decoded request."""

    request_id: str
    route: Route
    http: web.Request
    #: The verified caller; None on an ``auth: NONE`` route.
    peer: ca.Peer | None
    idempotency_key: str | None
    #: The key's claim when the call carries one (the dispatcher sets it).
    keyed: KeyedCall | None = None

    def commit_answer(self, conn: sqlite3.Connection, result: Any) -> None:
        """Inside the effect's write transaction, as its last step: record
        ``result`` (what the handler will return) as this call's answer, so
        that answer and effect commit together (nothing for an unkeyed call).

        Every handler of an RPC that is not read-only calls this in the
        transaction that makes its change. It raises when another request with
        the same key answered first; the transaction then rolls back.
        """
        if self.keyed is not None:
            self.keyed.answer_in(conn, stored_answer(render(result)))


@dataclass
class Reply:
    """A handler's answer when it needs more than a 200 with a JSON body."""

    body: Any | None = None
    #: A pre-rendered JSON body (a cached document), sent as-is.
    raw_json: bytes | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Rendered:
    """A handler's answer as HTTP: status, headers and body (None: no body)."""

    status: int
    headers: dict[str, str]
    body: bytes | None


def render(result: Any) -> Rendered:
    """How a handler's result (a response model or a :class:`Reply`) is sent:
    the one rendering both the response and the stored answer come from."""
    reply = result if isinstance(result, Reply) else Reply(body=result)
    if reply.raw_json is not None:
        body: bytes | None = reply.raw_json
    elif reply.body is not None:
        body = json.dumps(reply.body.to_json(), separators=(",", ":")).encode()
    else:
        return Rendered(reply.status, dict(reply.headers), None)
    return Rendered(reply.status, {**reply.headers, "Content-Type": JSON_CONTENT_TYPE}, body)


def stored_answer(rendered: Rendered) -> StoredResponse:
    """The part of a rendered answer an idempotent replay sends again."""
    return StoredResponse(
        status=rendered.status,
        headers={h: rendered.headers[h] for h in REPLAYED_HEADERS if h in rendered.headers},
        body=rendered.body or b"",
    )


#: A handler: the request context and the decoded request model in; a response
#: model or a :class:`Reply` out. Raises ApiError (or a domain error) to refuse.
Handler = Callable[[RequestContext, Any], Awaitable[Any]]


@dataclass(frozen=True)
class ServiceContext:
    """Everything a service needs, built once when the server starts."""

    config: ServerConfig
    storage: Storage
    keyring: Keyring
    clock: Clock
    metrics: Metrics
    ca_runtime: CaRuntime
    audit: AuditLog
    #: Who may do what; the services ask it, never the engine, about access.
    policy: AccessPolicy
    #: The authorization engine the AuthzService answers with.
    engine: AuthzEngine
    #: Spans of the request's work (none unless the ``tracing`` setting is on).
    tracing: Tracing = NO_TRACING


def none_match(header_values: Sequence[str], etag: str) -> bool:
    """Whether If-None-Match (every occurrence, comma lists, ``*``) matches ``etag``.

    If-None-Match uses the weak comparison (RFC 9110 13.1.2), so ``W/"x"``
    matches ``"x"``.
    """
    for header in header_values:
        for item in header.split(","):
            tag = item.strip()
            if tag == "*":
                return True
            if tag.startswith("W/"):
                tag = tag[2:]
            if tag == etag:
                return True
    return False
