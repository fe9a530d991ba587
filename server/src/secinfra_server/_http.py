"""The HTTP layer: one dispatcher over the generated route table.

For every request, in order: assign a request id; refuse with 503 if too many
requests are in flight; match the route (404 / 405 as envelopes); for mTLS
routes re-verify the client certificate *now* (expiry, revocation, chain to a
currently trusted CA), so a keep-alive connection never outlives its
certificate; read the body within the size and time limits; refuse it if it
nests deeper than :data:`MAX_JSON_DEPTH`; decode it strictly into the request
model; call the handler; encode the response. Every response carries
``Request-Id``; every error is the JSON envelope, also those aiohttp answers
itself (a request its parser refuses, a path its router cannot match): see
:class:`EnvelopeAppRunner` and :func:`envelope_http_errors`, which the server
is assembled with.

The dispatcher knows handlers only through the contract in ``_rpc`` (a table
of :data:`~secinfra_server._rpc.Handler` by name) and whatever watches requests
only through :class:`RequestObserver`, which it defines: test mode plugs in from
above, and production code never imports it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time
import typing
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, Protocol
from urllib.parse import unquote

from aiohttp import http_exceptions, web
from aiohttp.typedefs import Middleware

from . import ca
from ._gen._wire import DecodeError
from ._gen.routes import ROUTES, Route
from ._idempotency import (
    AFTER_CLAIM,
    AFTER_COMMIT,
    REPLAYED_HEADERS,
    AnsweredElsewhere,
    IdempotencyStore,
    StoredResponse,
    fingerprint,
    validate_key,
)
from ._listener import Admission, GuardedRequestHandler, track_requests
from ._metrics import Metrics
from ._rpc import JSON_CONTENT_TYPE, Handler, RequestContext, render
from ._tracing import NO_SPAN, NoSpan, Tracing
from .errors import STATUS_BY_CODE, ApiError, from_domain_error

log = logging.getLogger("secinfra.http")

REQUEST_ID_HEADER: Final = "Request-Id"
#: Set on a response replayed for a repeated Idempotency-Key.
REPLAYED_HEADER: Final = "Idempotent-Replayed"
#: The idempotency scope of calls made without a client certificate (enrolment).
ANONYMOUS_CALLER: Final = "anonymous"
#: Seconds a shed request is told to wait before retrying.
SHED_RETRY_AFTER_SECONDS: Final = 1
BODY_CHUNK_BYTES: Final = 64 * 1024
#: Methods whose request fields travel in a JSON body (the rest use the query).
BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
#: The verified caller's SPIFFE ID, for the access log.
SPIFFE_ID_KEY: Final = web.RequestKey("spiffe_id", str)
#: The request's span, when :func:`trace_requests` traces it.
REQUEST_SPAN_KEY: Final = web.RequestKey("span", NoSpan)
#: The path pattern the dispatcher is registered under (every API path), and
#: how aiohttp spells it as a resource's canonical path.
API_PATHS: Final = "/{tail:.*}"
_API_PATHS_CANONICAL: Final = "/{tail}"
#: The deepest nesting of arrays and objects a request body may have. Real
#: requests nest a dozen levels at most (an authorization model's rewrites);
#: the bound keeps hostile bodies away from every recursive decoder (``json``
#: itself fails near 1,000 levels).
MAX_JSON_DEPTH: Final = 64
#: What a body's nesting depth is read from: whole strings (skipped, so brackets
#: inside them do not count), an unterminated string (the scan stops: the
#: decoder rejects the body), or one bracket.
_NESTING_TOKEN: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|"|[\[\]{}]')
#: A body that may hold a surrogate escape (checked further only then).
_LONE_SURROGATE_HINT: Final = re.compile(rb"\\u[dD][89a-fA-F]")
#: The Content-Encodings aiohttp undoes before the body reaches the dispatcher
#: (brotli and zstd only when their libraries are installed; else aiohttp
#: refuses them).
DECODED_CONTENT_ENCODINGS: Final = frozenset({"identity", "gzip", "deflate", "br", "zstd"})


class RequestTrace(Protocol):
    """One routed API request as a :class:`RequestObserver` follows it."""

    def caller_verified(self, peer: ca.Peer) -> None:
        """The client certificate checked out as ``peer`` (mTLS routes only)."""
        ...

    async def substitute(self, request: web.Request) -> web.StreamResponse | None:
        """A response to send instead of the handler's, or None to go on.

        May abort the connection and raise (a scripted reset)."""
        ...

    def body_received(self, raw: bytes) -> None:
        """The request body, as read off the connection (POST, PUT and PATCH routes)."""
        ...

    def finished(self, status: int) -> None:
        """The status of the response the request got."""
        ...


class RequestObserver(Protocol):
    """Watches every routed API request, and may answer one in the handler's place.

    The dispatcher defines this so that whatever observes it (test mode's
    request log and scripted answers) plugs in from above, and the production
    path never depends on it. Called after the route matched, before the
    client certificate is verified, so a refused request is observed too.
    """

    def request_started(self, request: web.Request, route: Route) -> RequestTrace:
        """Start following one request."""
        ...


class PeerVerifier(Protocol):
    """Verifies the client certificate of one request (DER bytes, or None)."""

    def __call__(self, der: bytes | None) -> ca.Peer:
        """Return the verified peer or raise ApiError(unauthenticated)."""
        ...


def _path_value(name: str, raw: str) -> str:
    """A path variable as sent (percent-encoded UTF-8), decoded."""
    try:
        return unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise ApiError(
            "invalid_argument",
            f"secinfra: request: path variable {name!r} is not percent-encoded UTF-8",
            details={"field": name},
        ) from None


def new_request_id() -> str:
    """A random, URL-safe request id."""
    return secrets.token_hex(12)


def peer_der(request: web.Request) -> bytes | None:
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return bytes(der) if der else None


def _query_value(annotation: str, values: list[str], name: str) -> Any:
    """Convert query-string values to the JSON shape of the field's type."""

    def one(text: str, kind: str) -> Any:
        if kind == "int":
            try:
                return int(text)
            except ValueError:
                raise ApiError(
                    "invalid_argument",
                    f"secinfra: request: query parameter {name!r} must be an integer",
                    details={"field": name},
                ) from None
        if kind == "bool":
            if text in ("true", "false"):
                return text == "true"
            raise ApiError(
                "invalid_argument",
                f"secinfra: request: query parameter {name!r} must be true or false",
                details={"field": name},
            )
        return text

    kind = annotation.replace(" ", "").removesuffix("|None")
    if kind.startswith("list["):
        inner = kind[5:-1]
        return [one(v, inner) for v in values]
    if len(values) > 1:
        raise ApiError(
            "invalid_argument",
            f"secinfra: request: query parameter {name!r} given more than once",
            details={"field": name},
        )
    return one(values[0], kind)


class Dispatcher:
    """Routes requests to handlers registered by RPC handler name."""

    def __init__(
        self,
        *,
        handlers: Mapping[str, Handler],
        verify_peer: PeerVerifier,
        metrics: Metrics,
        max_body_bytes: int,
        body_timeout: float,
        max_in_flight: int,
        idempotency: IdempotencyStore | None = None,
        observer: RequestObserver | None = None,
    ) -> None:
        self._handlers = dict(handlers)
        self._observer = observer
        self._idempotency = idempotency
        self._verify_peer = verify_peer
        self._metrics = metrics
        self._max_body = max_body_bytes
        self._body_timeout = body_timeout
        self._max_in_flight = max_in_flight
        self._in_flight = 0
        self._query_types = {
            route.handler: _query_types(route.request_type, route.query_params) for route in ROUTES
        }

    @property
    def in_flight(self) -> int:
        """Requests being served now."""
        return self._in_flight

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Serve one API request (the aiohttp handler for every API path)."""
        request_id = new_request_id()
        started = time.perf_counter()
        route_label = "unmatched"
        code = "ok"
        response: web.StreamResponse
        if self._in_flight >= self._max_in_flight:
            self._metrics.shed.inc()
            response = self.error_response(
                ApiError(
                    "unavailable",
                    "secinfra: server: too many requests in flight; retry after the delay",
                    headers={
                        "Retry-After": str(SHED_RETRY_AFTER_SECONDS),
                        "Secinfra-Should-Retry": "true",
                    },
                ),
                request_id,
            )
            response.headers[REQUEST_ID_HEADER] = request_id
            request.get(REQUEST_SPAN_KEY, NO_SPAN).failed("unavailable")
            self._log(request, request_id, route_label, response.status, "unavailable", started)
            return response
        self._in_flight += 1
        self._metrics.in_flight.inc()
        trace: RequestTrace | None = None
        span = request.get(REQUEST_SPAN_KEY, NO_SPAN)
        try:
            route, match = self._match(request)
            route_label = route.path
            span.rpc(route.service, route.rpc, route.path)
            if self._observer is not None:
                trace = self._observer.request_started(request, route)
            response, code = await self._serve(request, request_id, route, match, trace)
        except ApiError as exc:
            code = exc.code
            response = self.error_response(exc, request_id)
        except Exception as exc:
            mapped = from_domain_error(exc)
            if mapped is None:
                log.exception(
                    "unhandled error",
                    extra={"fields": {"request_id": request_id, "route": route_label}},
                )
                mapped = ApiError(
                    "internal", f"secinfra: server: internal error (request id {request_id})"
                )
            code = mapped.code
            response = self.error_response(mapped, request_id)
        finally:
            self._in_flight -= 1
            self._metrics.in_flight.dec()
        response.headers[REQUEST_ID_HEADER] = request_id
        if response.status >= 400:
            span.failed(code)
        if trace is not None:
            trace.finished(response.status)
        self._metrics.requests.labels(route_label, code).inc()
        self._metrics.latency.labels(route_label).observe(time.perf_counter() - started)
        self._log(request, request_id, route_label, response.status, code, started)
        return response

    def _log(
        self,
        request: web.Request,
        request_id: str,
        route: str,
        status: int,
        code: str,
        started: float,
    ) -> None:
        log.info(
            "request",
            extra={
                "fields": {
                    "request_id": request_id,
                    "method": request.method,
                    "route": route,
                    "status": status,
                    "code": code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    "spiffe_id": request.get(SPIFFE_ID_KEY),
                }
            },
        )

    def _match(self, request: web.Request) -> tuple[Route, dict[str, str]]:
        # Matched on the path as sent, then each variable decoded (spec 2.2.1):
        # so a '/' sent as %2F stays inside its one path segment
        # (RevokeJoinToken id "a/b" is /v1/join-tokens/a%2Fb) and a ':' sent as
        # %3A inside a name is never taken for a ":verb" suffix.
        path = request.rel_url.raw_path
        allowed: list[str] = []
        for route in ROUTES:
            match = route.pattern.fullmatch(path)
            if match is None:
                continue
            if route.http_method != request.method:
                allowed.append(route.http_method)
                continue
            return route, {name: _path_value(name, raw) for name, raw in match.groupdict().items()}
        if allowed:
            raise ApiError(
                "method_not_allowed",
                f"secinfra: request: {request.method} is not allowed on this path;"
                f" use {', '.join(sorted(set(allowed)))}",
                headers={"Allow": ", ".join(sorted(set(allowed)))},
            )
        raise ApiError("not_found", "secinfra: request: no API route matches this path")

    async def _serve(
        self,
        request: web.Request,
        request_id: str,
        route: Route,
        match: dict[str, str],
        trace: RequestTrace | None,
    ) -> tuple[web.StreamResponse, str]:
        peer: ca.Peer | None = None
        if route.auth != "none":
            peer = self._verify_peer(peer_der(request))
            request[SPIFFE_ID_KEY] = peer.spiffe_id
            request.get(REQUEST_SPAN_KEY, NO_SPAN).caller(peer.spiffe_id)
        if trace is not None:
            if peer is not None:
                trace.caller_verified(peer)
            substitute = await trace.substitute(request)
            if substitute is not None:
                return substitute, "scripted"
        payload = await self._payload(request, route, match, trace)
        try:
            decoded = route.request_type.from_json(payload, strict=True)
        except DecodeError as exc:
            raise ApiError(
                "invalid_argument",
                f"secinfra: request: {exc}",
                details={"field": exc.path} if getattr(exc, "path", None) else None,
            ) from exc
        handler = self._handlers.get(route.handler)
        if handler is None:
            raise ApiError(
                "unimplemented",
                f"secinfra: server: {route.service}.{route.rpc} is not implemented yet",
            )
        context = RequestContext(
            request_id=request_id,
            route=route,
            http=request,
            peer=peer,
            idempotency_key=request.headers.get("Idempotency-Key"),
        )
        key = context.idempotency_key
        if key is None or route.idempotency == "read_only" or self._idempotency is None:
            return await self._invoke(handler, context, decoded)
        caller = peer.spiffe_id if peer is not None else ANONYMOUS_CALLER
        claim = await self._idempotency.begin(
            caller, validate_key(key), fingerprint(route.rpc, decoded.to_json()), route.rpc
        )
        if isinstance(claim, StoredResponse):
            return self._replay(claim)
        # The handler writes its answer in its effect's transaction
        # (RequestContext.commit_answer); see _idempotency.
        context.keyed = claim
        try:
            self._idempotency.reached(AFTER_CLAIM, claim)
            try:
                response, code = await self._invoke(handler, context, decoded)
            except AnsweredElsewhere as exc:
                return self._replay(exc.answer)
            if not claim.answered:
                # Nothing committed an answer, so nothing changed: store the
                # client error (if it is one to replay) on its own.
                await self._idempotency.remember(claim, _stored(response))
            self._idempotency.reached(AFTER_COMMIT, claim)
            return response, code
        finally:
            self._idempotency.release(claim)

    @staticmethod
    def _replay(stored: StoredResponse) -> tuple[web.StreamResponse, str]:
        replay = web.Response(status=stored.status, body=stored.body, headers=stored.headers)
        replay.headers[REPLAYED_HEADER] = "true"
        return replay, "ok" if stored.status < 400 else "replayed_error"

    async def _invoke(
        self, handler: Handler, context: RequestContext, decoded: Any
    ) -> tuple[web.StreamResponse, str]:
        """Run the handler; client errors become envelopes here (so they can be
        stored for idempotent replay), anything unexpected propagates."""
        try:
            result = await handler(context, decoded)
        except ApiError as exc:
            return self.error_response(exc, context.request_id), exc.code
        except AnsweredElsewhere:
            raise
        except Exception as exc:
            mapped = from_domain_error(exc)
            if mapped is None:
                raise
            return self.error_response(mapped, context.request_id), mapped.code
        rendered = render(result)
        return web.Response(
            status=rendered.status, body=rendered.body, headers=rendered.headers
        ), "ok"

    async def _payload(
        self,
        request: web.Request,
        route: Route,
        match: dict[str, str],
        trace: RequestTrace | None = None,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {}
        if route.http_method in BODY_METHODS:
            payload = await self._read_json(request, trace)
            for name in route.path_params:
                if name in payload:
                    raise ApiError(
                        "invalid_argument",
                        f"secinfra: request: {name!r} is taken from the path;"
                        " do not repeat it in the body",
                        details={"field": name},
                    )
        elif request.can_read_body and (request.content_length or 0) > 0:
            raise ApiError(
                "invalid_argument", f"secinfra: request: {route.http_method} takes no body"
            )
        kinds = self._query_types[route.handler]
        for name in set(request.query):
            if name not in kinds:
                raise ApiError(
                    "invalid_argument",
                    f"secinfra: request: unknown query parameter {name!r}",
                    details={"field": name},
                )
            payload[name] = _query_value(kinds[name], request.query.getall(name), name)
        payload.update(match)
        return payload

    async def _read_json(
        self, request: web.Request, trace: RequestTrace | None = None
    ) -> dict[str, Any]:
        check_content_encoding(request.headers.getall("Content-Encoding", []))
        if request.content_length is not None and request.content_length > self._max_body:
            raise ApiError(
                "payload_too_large",
                f"secinfra: request: body of {request.content_length} bytes exceeds the"
                f" limit of {self._max_body} bytes",
            )
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self._body_timeout):
                while chunk := await request.content.read(BODY_CHUNK_BYTES):
                    size += len(chunk)
                    if size > self._max_body:
                        raise ApiError(
                            "payload_too_large",
                            f"secinfra: request: body exceeds the limit of {self._max_body} bytes",
                        )
                    chunks.append(chunk)
        except TimeoutError:
            raise ApiError(
                "invalid_argument",
                f"secinfra: request: body not received within {self._body_timeout:g} s",
            ) from None
        except web.RequestPayloadError as exc:
            # aiohttp could not undo the body's Content-Encoding or chunking.
            raise ApiError(
                "invalid_argument",
                "secinfra: request: body could not be read: its Content-Encoding or"
                " chunked framing is invalid",
            ) from exc
        except ConnectionError as exc:
            # The client went away mid-body (or aiohttp dropped a connection
            # whose framing broke): nobody will read the answer, but the request
            # is the client's fault, not an internal error.
            raise ApiError(
                "invalid_argument",
                "secinfra: request: the connection closed before the body was complete",
            ) from exc
        raw = b"".join(chunks)
        if trace is not None:
            trace.body_received(raw)
        if not raw:
            return {}
        check_json_depth(raw)
        try:
            # RFC 8259 8.1: JSON between systems is UTF-8 (json.loads would
            # also take UTF-16 and UTF-32); a leading byte-order mark is ignored.
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ApiError(
                "invalid_argument",
                "secinfra: request: body is not valid JSON: JSON is UTF-8, and this body"
                f" has an invalid byte at position {exc.start}",
            ) from None
        try:
            value = json.loads(text, parse_constant=_refuse_constant)
        except json.JSONDecodeError as exc:
            raise ApiError(
                "invalid_argument",
                "secinfra: request: body is not valid JSON (JSONDecodeError at position"
                f" {exc.pos})",
            ) from None
        except ValueError as exc:
            raise ApiError("invalid_argument", f"secinfra: request: {exc}") from None
        if _LONE_SURROGATE_HINT.search(raw) is not None:
            check_no_lone_surrogates(value)
        if not isinstance(value, dict):
            raise ApiError("invalid_argument", "secinfra: request: body must be a JSON object")
        return value

    @staticmethod
    def error_response(error: ApiError, request_id: str) -> web.Response:
        """The envelope response for ``error``, with its ``Request-Id``."""
        headers = {**error.headers, REQUEST_ID_HEADER: request_id}
        if error.code == "unauthenticated":
            # The connection's certificate is no good any more: do not keep it alive.
            headers["Connection"] = "close"
        return web.Response(
            status=error.status,
            body=json.dumps(error.envelope(request_id), separators=(",", ":")).encode(),
            content_type=JSON_CONTENT_TYPE,
            headers=headers,
        )


def _stored(response: web.StreamResponse) -> StoredResponse:
    """The replayable part of a response the dispatcher built."""
    body = response.body if isinstance(response, web.Response) else None
    return StoredResponse(
        status=response.status,
        headers={h: response.headers[h] for h in REPLAYED_HEADERS if h in response.headers},
        body=bytes(body) if isinstance(body, bytes | bytearray) else b"",
    )


def check_content_encoding(values: Sequence[str]) -> None:
    """Refuse a body whose Content-Encoding aiohttp would not undo: it would
    hand over the bytes as they came, so the server would read what the client
    says is encoded as if it were not."""
    if len(values) > 1 or any(v.strip().lower() not in DECODED_CONTENT_ENCODINGS for v in values):
        codings = ", ".join(sorted(DECODED_CONTENT_ENCODINGS - {"identity"}))
        raise ApiError(
            "invalid_argument",
            "secinfra: request: unsupported Content-Encoding; send the body as it is"
            f" (identity) or in one of {codings}",
            details={"field": "Content-Encoding"},
        )


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"body holds {name}, which is not JSON (RFC 8259 has no NaN or Infinity)")


def check_no_lone_surrogates(value: Any) -> None:
    """Refuse a decoded body with a string that is not Unicode text: a
    ``\\ud800``-``\\udfff`` escape without its pair, which no UTF-8 encoder
    (the database's, the audit log's, the response's) can write."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(
            "invalid_argument",
            "secinfra: request: body holds a \\u escape of an unpaired UTF-16 surrogate"
            " (\\ud800-\\udfff), which is not a character",
        ) from None


def check_json_depth(raw: bytes, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse a body whose arrays and objects nest deeper than ``limit``.

    Runs before the body is decoded, so no recursive decoder (``json``, the
    request model, an authorization model's parser) ever sees such a body. A
    body with no more brackets than the limit cannot be too deep, so normal
    bodies cost two byte counts; others one regex scan that skips strings (on
    a 1 MiB body of brackets it takes about as long as ``json.loads``).
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return
    depth = 0
    for token in _NESTING_TOKEN.finditer(raw):
        char = token[0]
        if char in (b"[", b"{"):
            depth += 1
            if depth > limit:
                raise ApiError(
                    "invalid_argument",
                    f"secinfra: request: body nests arrays and objects deeper than the"
                    f" limit of {limit} levels",
                    details={"max_depth": limit},
                )
        elif char in (b"]", b"}"):
            depth -= 1
        elif char == b'"':
            return  # an unterminated string: the decoder rejects the body


#: What a request aiohttp's parser refused was wrong with, by the parser's
#: exception type (most specific first). The parser's own message quotes the
#: request's bytes, so it is never sent or logged.
_MALFORMED_REQUEST: Final[tuple[tuple[type[Exception], str], ...]] = (
    (http_exceptions.LineTooLong, "the request line or a header is longer than the server accepts"),
    (http_exceptions.BadHttpMethod, "the method is not an HTTP method"),
    (http_exceptions.BadStatusLine, "the request line is malformed"),
    (http_exceptions.InvalidHeader, "a header is malformed"),
    (http_exceptions.InvalidURLError, "the request target is malformed"),
    (
        http_exceptions.BadHttpMessage,
        "the request's framing or headers are invalid (e.g. too many headers, two"
        " Content-Length headers, or Content-Length with Transfer-Encoding)",
    ),
)
#: Wire error code by HTTP status, for the statuses aiohttp answers on its own.
_CODE_BY_STATUS: Final[Mapping[int, str]] = {
    **{status: code for code, status in STATUS_BY_CODE.items() if code != "conflict"},
    400: "invalid_argument",
}


def protocol_error(status: int, exc: BaseException | None, request_id: str) -> ApiError:
    """The envelope for a request that never reached a handler, or whose
    handler failed outside the dispatcher: aiohttp's parser refused it (400),
    or a handler raised (500) or timed out (504)."""
    if status == 400:
        reason = next(
            (text for kind, text in _MALFORMED_REQUEST if isinstance(exc, kind)),
            "the request is not valid HTTP/1.1",
        )
        return ApiError(
            "invalid_argument", f"secinfra: request: {reason}; the connection is closed"
        )
    code = _CODE_BY_STATUS.get(status, "internal")
    if code == "internal":
        return ApiError("internal", f"secinfra: server: internal error (request id {request_id})")
    return ApiError(code, f"secinfra: server: the request failed ({status})")


class EnvelopeRequestHandler(GuardedRequestHandler):
    """aiohttp's connection handler, answering its own errors with the envelope
    (and under the listener's header and idle timeouts, see ``_listener``).

    aiohttp answers a request its parser refuses (and a handler that raised
    past the application) from ``handle_error``, in plain text that quotes the
    request; no middleware sees those. Here they get the JSON envelope and a
    ``Request-Id`` like every other error, and a log line without the request's
    bytes. The connection is closed, as aiohttp does.
    """

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            # Part of a response is out already: all that is left is to drop
            # the connection (aiohttp does the same).
            raise ConnectionError("a response was partly sent; cannot send an error after it")
        request_id = new_request_id()
        error = protocol_error(status, exc, request_id)
        fields = {
            "request_id": request_id,
            "status": error.status,
            "code": error.code,
            "error": type(exc).__name__ if exc is not None else None,
        }
        if error.code == "internal":
            log.error(
                "unhandled error outside the dispatcher", exc_info=exc, extra={"fields": fields}
            )
        else:
            log.info("request refused before routing", extra={"fields": fields})
        response = Dispatcher.error_response(error, request_id)
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """aiohttp's own log of a connection that failed (e.g. a body whose
        encoding breaks after the answer was sent): one line naming the
        exception's type, since aiohttp's exceptions quote the request."""
        exc = kw.get("exc_info")
        log.warning(
            "connection failed in aiohttp",
            extra={
                "fields": {
                    "event": str(args[0]) if args else None,
                    "error": type(exc).__name__ if isinstance(exc, BaseException) else None,
                }
            },
        )


class EnvelopeServer(web.Server):
    """aiohttp's low-level server, with :class:`EnvelopeRequestHandler`
    connections, each admitted by the listener."""

    def connection(self, admission: Admission) -> EnvelopeRequestHandler:
        """The handler of one connection the listener admitted."""
        return EnvelopeRequestHandler(self, admission=admission, loop=self._loop, **self._kwargs)

    def __call__(self) -> web.RequestHandler:
        raise RuntimeError(
            "secinfra: server: connections come through the ConnectionListener"
            " (EnvelopeServer.connection), never straight from asyncio"
        )


class EnvelopeAppRunner(web.AppRunner):
    """An :class:`aiohttp.web.AppRunner` whose connections answer every error
    aiohttp produces itself with the JSON envelope (see
    :class:`EnvelopeRequestHandler`) and are served through a
    :class:`~secinfra_server._listener.ConnectionListener`; otherwise the same
    runner."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return EnvelopeServer(
            server.request_handler,
            request_factory=track_requests(server.request_factory),
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            **server._kwargs,
        )

    def connection(self, admission: Admission) -> EnvelopeRequestHandler:
        """The listener's connection factory (after :meth:`setup`)."""
        server = self.server
        if not isinstance(server, EnvelopeServer):
            raise RuntimeError("secinfra: server: EnvelopeAppRunner.setup() has not run")
        return server.connection(admission)


@web.middleware
async def envelope_http_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Turn aiohttp's own HTTP errors (its router's 404 for a path no route
    pattern can match, such as one with a decoded newline) into the envelope
    with a ``Request-Id``; the dispatcher's responses pass untouched."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        request_id = new_request_id()
        if exc.status == 404:
            error = ApiError("not_found", "secinfra: request: no API route matches this path")
        else:
            error = protocol_error(exc.status, exc, request_id)
        response = Dispatcher.error_response(error, request_id)
        log.info(
            "request refused by the router",
            extra={"fields": {"request_id": request_id, "status": error.status}},
        )
        return response


def trace_requests(tracing: Tracing) -> Middleware:
    """A middleware that makes every request a SERVER span of ``tracing``
    (first in the list, so it sees the status the client gets). The
    dispatcher names the span after the RPC; other endpoints get
    ``<method> <route>``, a path no route matches the method alone."""

    @web.middleware
    async def traced(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        with tracing.request(request.method, request.headers, request.remote) as span:
            request[REQUEST_SPAN_KEY] = span
            response = await handler(request)
            if not span.routed:
                resource = request.match_info.route.resource
                if resource is not None and resource.canonical != _API_PATHS_CANONICAL:
                    span.route(resource.canonical)
            span.finished(response.status, response.headers.get(REQUEST_ID_HEADER))
            return response

    return traced


def _query_types(model: type, names: tuple[str, ...]) -> dict[str, str]:
    hints = typing.get_type_hints(model)
    return {name: _type_text(hints[name]) for name in names if name in hints}


def _type_text(kind: Any) -> str:
    origin = typing.get_origin(kind)
    if origin is list or origin is Sequence:  # repeated fields are Sequence[T]
        (inner,) = typing.get_args(kind)
        return f"list[{_type_text(inner)}]"
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if origin is not None and len(args) == 1:
        return _type_text(args[0])
    if kind is bool:
        return "bool"
    if kind is int:
        return "int"
    return "str"
