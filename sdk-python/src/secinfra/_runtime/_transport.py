"""The HTTP transport every generated client calls: DESIGN.md "Client behaviour".

One call = one :meth:`HttpTransport.call`: build the request from the RPC's
descriptor; serve cacheable reads from the cache when fresh, revalidate them
when stale (single-flight per key), fall back to a stale value within
stale-if-error; otherwise attempt the request with an ``Idempotency-Key``
shared by every attempt, ``Secinfra-Attempt`` numbering, a per-attempt timeout
and a per-call deadline, retrying as :func:`decide_retry` says and as the
client's retry budget allows. Connections are TLS 1.2+, present the current
identity snapshot (mTLS RPCs only) and verify the server by bundle and SPIFFE
ID; a rotation closes the old identity's idle connections.
"""

from __future__ import annotations

import json
import platform
import random
import ssl
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar
from urllib.parse import quote, urlencode, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3 import PoolManager
from urllib3 import Timeout as Urllib3Timeout
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NameResolutionError,
    NewConnectionError,
    ReadTimeoutError,
)

from .. import __version__
from .._rpc import (
    Auth,
    CallOptions,
    Idempotency,
    MethodDescriptor,
    RequestMessage,
    ResponseMessage,
)
from ..errors import (
    ApiError,
    DeadlineExceeded,
    InternalError,
    RateLimited,
    SecinfraError,
    TransportError,
    Unavailable,
    code_for_status,
    error_for_code,
)
from ._budget import RetryBudget
from ._cache import ResponseCache, SingleFlight, cache_key
from ._clock import Clock, SystemClock
from ._meta import ResponseMeta, report
from ._retry import (
    DEFAULT_RETRY_POLICY,
    AttemptFailure,
    AttemptResponse,
    RetryDecision,
    RetryPolicy,
    RetryReason,
    decide_retry,
    status_retryable,
)
from ._source import IdentitySource, RotationEvent
from ._tls import AttemptWatchdog, ServerIdentityMismatch, client_context, pool_class

R = TypeVar("R", bound=ResponseMessage)

ATTEMPT_HEADER: Final = "Secinfra-Attempt"
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
REQUEST_ID_HEADER: Final = "Request-Id"
#: Connections kept per pool (one pool per server).
POOL_SIZE: Final = 16
#: Cache families whose writes return a revision token (read-your-writes).
REVISION_FIELD: Final = "revision"
#: Most bytes read from the socket at once while receiving a response body.
BODY_CHUNK: Final = 64 * 1024


def user_agent() -> str:
    """``secinfra-python/<version> (CPython/<version>)``."""
    return (
        f"secinfra-python/{__version__}"
        f" ({platform.python_implementation()}/{platform.python_version()})"
    )


class _SpiffeAdapter(HTTPAdapter):
    """A requests adapter bound to one TLS context and one expected server ID."""

    def __init__(self, context: ssl.SSLContext, server_id: str) -> None:
        self._context = context
        self._server_id = server_id
        super().__init__(pool_connections=1, pool_maxsize=POOL_SIZE, max_retries=0)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **kwargs: Any
    ) -> None:
        self.poolmanager = PoolManager(
            num_pools=connections,
            maxsize=maxsize,
            block=block,
            ssl_context=self._context,
            assert_hostname=False,  # the SPIFFE ID is verified instead
        )
        # https only: the transport refuses other URLs, and a pool for plain
        # http would talk to the server without TLS.
        self.poolmanager.pool_classes_by_scheme = {"https": pool_class(self._server_id)}

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        # Never load a CA file (requests would add the public roots): the
        # context trusts exactly the SPIFFE bundle.
        conn.cert_reqs = "CERT_REQUIRED"
        conn.ca_certs = None
        conn.ca_cert_dir = None


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes
    attempts: int


class HttpTransport:
    """The runtime behind every generated client. Thread-safe."""

    def __init__(
        self,
        base_url: str,
        source: IdentitySource,
        *,
        policy: RetryPolicy = DEFAULT_RETRY_POLICY,
        budget: RetryBudget | None = None,
        cache: ResponseCache[Any] | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        use_cache: bool = True,
    ) -> None:
        """``use_cache`` is the client-wide default; ``CallOptions.use_cache`` wins per call."""
        if urlsplit(base_url).scheme != "https":
            raise ValueError(
                f"secinfra: transport: the server URL must be https:// (mTLS), got {base_url!r}"
            )
        self._base = base_url.rstrip("/")
        self._source = source
        self._policy = policy
        self._budget = budget if budget is not None else RetryBudget()
        self._clock = clock if clock is not None else SystemClock()
        self._cache: ResponseCache[Any] = (
            cache if cache is not None else ResponseCache(clock=self._clock)
        )
        self._flights = SingleFlight()
        self._rng = rng if rng is not None else random.SystemRandom()
        self._use_cache = use_cache
        self._lock = threading.Lock()
        self._adapters: dict[bool, tuple[tuple[str | None, str], _SpiffeAdapter]] = {}
        self._user_agent = user_agent()
        source.subscribe(self._on_rotation)

    @property
    def cache(self) -> ResponseCache[Any]:
        """The client's response cache."""
        return self._cache

    @property
    def budget(self) -> RetryBudget:
        """The client's retry budget."""
        return self._budget

    @property
    def use_cache(self) -> bool:
        """Whether cacheable calls use the cache unless their call options say otherwise."""
        return self._use_cache

    def close(self) -> None:
        """Close every pooled connection and drop every cache entry (spec 7.11.3)."""
        self._cache.clear()
        with self._lock:
            adapters = [adapter for _, adapter in self._adapters.values()]
            self._adapters.clear()
        for adapter in adapters:
            adapter.close()

    # -- connections -----------------------------------------------------------------
    def _adapter(self, mtls: bool) -> _SpiffeAdapter:
        identity = self._source.ensure_identity() if mtls else None
        bundle = self._source.bundle()
        key = (identity.serial if identity else None, bundle.pem)
        with self._lock:
            held = self._adapters.get(mtls)
            if held is not None and held[0] == key:
                return held[1]
        context = client_context(
            bundle.pem,
            identity.chain_pem if identity else None,
            identity.key_pem if identity else None,
        )
        adapter = _SpiffeAdapter(context, self._source.server_id)
        with self._lock:
            old = self._adapters.get(mtls)
            if old is not None and old[0] == key:
                return old[1]  # another thread built the same one first: share it
            self._adapters[mtls] = (key, adapter)
        if old is not None:
            old[1].close()  # idle connections of the old identity or trust go now
        return adapter

    def _on_rotation(self, event: RotationEvent) -> None:
        """Close the idle connections an identity or bundle change made outdated.

        A renewal outdates only the mTLS connections; the anonymous ones (enrolment,
        bundle) present no identity and stay, which also keeps a verified channel to
        fetch a new bundle over when the server starts presenting a new CA.
        """
        identity = event.identity
        wanted: dict[bool, tuple[str | None, str]] = {
            False: (None, event.bundle.pem),
            True: (identity.serial if identity else None, event.bundle.pem),
        }
        with self._lock:
            outdated = [
                self._adapters.pop(mtls)[1]
                for mtls, (key, _) in list(self._adapters.items())
                if key != wanted[mtls]
            ]
        for adapter in outdated:
            adapter.close()

    # -- the call --------------------------------------------------------------------
    def invoke(
        self,
        method: MethodDescriptor,
        request: RequestMessage,
        response_type: type[R],
        options: CallOptions | None,
    ) -> R:
        """Make one RPC call (see the module docstring)."""
        # The deadline covers the whole call (spec 5.1.2): the clock starts now.
        policy = self._policy.merged(options)
        deadline_at = self._clock.monotonic() + policy.deadline
        request_json = request.to_json()
        use_cache = method.cache is not None and method.cache.cacheable
        if options is not None and options.use_cache is not None:
            use_cache = use_cache and options.use_cache
        else:
            use_cache = use_cache and self._use_cache
        if use_cache:
            return self._cached_call(
                method, request_json, response_type, options, policy, deadline_at
            )
        answer = self._send(method, request_json, options, policy, deadline_at, None)
        value = self._decode(method, answer, response_type)
        self._after_write(method, request_json, value)
        report(
            ResponseMeta(
                method=_rpc_name(method),
                request_id=answer.headers.get(REQUEST_ID_HEADER),
                attempts=answer.attempts,
                from_cache=False,
                stale=False,
                status=answer.status,
            )
        )
        return value

    def _after_write(
        self, method: MethodDescriptor, request_json: dict[str, Any], value: Any
    ) -> None:
        invalidates = method.invalidates
        if invalidates is None:
            return
        if invalidates.key_field:
            self._cache.invalidate(
                invalidates.resource, str(request_json.get(invalidates.key_field, ""))
            )
        else:
            self._cache.invalidate_family(invalidates.resource)
        token = getattr(value, REVISION_FIELD, None)
        if isinstance(token, str) and token:
            self._cache.record_write_revision(invalidates.resource, token)

    def _cached_call(
        self,
        method: MethodDescriptor,
        request_json: dict[str, Any],
        response_type: type[R],
        options: CallOptions | None,
        policy: RetryPolicy,
        deadline_at: float,
    ) -> R:
        assert method.cache is not None
        key = cache_key(_rpc_name(method), request_json)
        hit = self._cache.lookup(key)
        if hit is not None and hit.fresh:
            report(ResponseMeta(_rpc_name(method), None, 0, True, False))
            result: R = hit.entry.value
            return result

        def fetch() -> tuple[R, ResponseMeta]:
            current = self._cache.lookup(key)
            if current is not None and current.fresh:
                return current.entry.value, ResponseMeta(_rpc_name(method), None, 0, True, False)
            generation = self._cache.generation
            try:
                answer = self._send(
                    method,
                    request_json,
                    options,
                    policy,
                    deadline_at,
                    current.if_none_match if current else None,
                )
            except SecinfraError as exc:
                if current is not None and current.usable_on_error and _server_failure(exc):
                    meta = ResponseMeta(
                        _rpc_name(method), exc.request_id, exc.attempts, True, True, exc.status
                    )
                    return current.entry.value, meta
                raise
            if answer.status == 304 and current is not None:
                self._cache.refresh(key, answer.headers)
                meta = ResponseMeta(
                    _rpc_name(method),
                    answer.headers.get(REQUEST_ID_HEADER),
                    answer.attempts,
                    True,
                    False,
                    304,
                )
                return current.entry.value, meta
            value = self._decode(method, answer, response_type)
            assert method.cache is not None
            self._cache.store(
                key,
                value,
                answer.headers,
                resource=method.cache.resource,
                resource_key=str(request_json.get(method.cache.key_field, ""))
                if method.cache.key_field
                else "",
                revision=getattr(value, REVISION_FIELD, None) or None,
                secret=method.cache.resource == "secret",
                generation=generation,
            )
            meta = ResponseMeta(
                _rpc_name(method),
                answer.headers.get(REQUEST_ID_HEADER),
                answer.attempts,
                False,
                False,
                answer.status,
            )
            return value, meta

        try:
            # A caller that joins another caller's request waits no longer than
            # its own deadline (spec 7.8.3).
            value, meta = self._flights.do(
                key, fetch, timeout=max(0.0, deadline_at - self._clock.monotonic())
            )
        except TimeoutError:
            expired = DeadlineExceeded(
                f"secinfra: transport: {_rpc_name(method)}: deadline of {policy.deadline:g} s"
                " passed while waiting for another caller's request for the same key"
            )
            expired.attempts = 0
            raise expired from None
        report(meta)
        return value

    def _decode(self, method: MethodDescriptor, answer: _Answer, response_type: type[R]) -> R:
        try:
            data = json.loads(answer.body) if answer.body else {}
            return response_type.from_json(data)
        except ValueError as exc:
            raise TransportError(
                f"secinfra: transport: {_rpc_name(method)}: the server's answer is not"
                f" a valid {response_type.__name__}: {exc}",
                status=answer.status,
                request_id=answer.headers.get(REQUEST_ID_HEADER),
            ) from exc

    # -- attempts --------------------------------------------------------------------
    def _url_and_body(
        self, method: MethodDescriptor, request_json: dict[str, Any]
    ) -> tuple[str, bytes | None]:
        path = method.path
        for name in method.path_params:
            value = str(request_json.get(name, ""))
            multi = "{" + name + "=**}"
            if multi in path:
                path = path.replace(multi, quote(value, safe="/"))
            else:
                path = path.replace("{" + name + "}", quote(value, safe=""))
        if method.http_method in ("GET", "DELETE"):
            query = [
                (name, item)
                for name in method.query_params
                if name in request_json
                for item in _query_items(request_json[name])
            ]
            url = self._base + path + ("?" + urlencode(query) if query else "")
            return url, None
        body = {k: v for k, v in request_json.items() if k not in method.path_params}
        return self._base + path, json.dumps(body, separators=(",", ":")).encode()

    def _send(
        self,
        method: MethodDescriptor,
        request_json: dict[str, Any],
        options: CallOptions | None,
        policy: RetryPolicy,
        deadline: float,
        if_none_match: str | None,
    ) -> _Answer:
        """Attempt the request until it succeeds or the retry rules end the call.

        ``deadline`` is the monotonic time the whole call ends (set in `call`).
        """
        url, body = self._url_and_body(method, request_json)
        headers = {"User-Agent": self._user_agent, "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if method.idempotency is not Idempotency.READ_ONLY:
            key = options.idempotency_key if options and options.idempotency_key else None
            headers[IDEMPOTENCY_HEADER] = key or str(uuid.uuid4())
        if if_none_match:
            headers["If-None-Match"] = if_none_match
        mtls = method.auth is not Auth.NONE
        name = _rpc_name(method)
        bundle_refreshed = False
        attempt = 1
        while True:
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                expired = DeadlineExceeded(
                    f"secinfra: transport: {name}: deadline of {policy.deadline:g} s"
                    f" passed after {attempt - 1} attempts"
                )
                expired.attempts = attempt - 1
                raise expired
            headers[ATTEMPT_HEADER] = str(attempt)
            timeout = min(policy.attempt_timeout, remaining)
            attempt_end = self._clock.monotonic() + timeout
            answer: _Answer | None = None
            failure: Exception | None = None
            outcome: AttemptResponse | AttemptFailure
            try:
                adapter = self._adapter(mtls)
                prepared = requests.Request(
                    method.http_method, url, headers=headers, data=body
                ).prepare()
                # The timeout is a total for the attempt (spec 5.2.2): connect and
                # the response head share ``timeout`` (urllib3's total), the body
                # is read in chunks against what is left of it, and the watchdog
                # shuts the connection down when the time is up wherever the
                # attempt is (a response head sent a byte at a time included).
                # (requests accepts a urllib3 Timeout as is; its stubs do not say so.)
                with AttemptWatchdog(timeout) as watchdog:
                    try:
                        response = adapter.send(
                            prepared,
                            timeout=Urllib3Timeout(total=timeout),  # type: ignore[arg-type]
                            stream=True,
                        )
                        content = _read_body(response, attempt_end, self._clock)
                    except (requests.exceptions.RequestException, ssl.SSLError) as exc:
                        if watchdog.fired:
                            raise _watchdog_timeout(watchdog.sent) from exc
                        raise
                answer = _Answer(response.status_code, response.headers, content, attempt)
            except (requests.exceptions.RequestException, ssl.SSLError) as exc:
                rejected = _verification_failure(exc)
                if rejected is not None:
                    # The server is not who it must be: retrying cannot help,
                    # but a CA rotation we have not seen yet can explain a
                    # chain failure, so refresh the bundle once and try again.
                    if not isinstance(rejected, ServerIdentityMismatch) and not bundle_refreshed:
                        bundle_refreshed = True
                        if self._source.refresh_bundle():
                            continue
                    refused = TransportError(f"secinfra: transport: {name}: {_describe(rejected)}")
                    refused.attempts = attempt
                    raise refused from exc
                failure = exc
                outcome = _failure_outcome(exc)
            else:
                if 200 <= answer.status < 300 or (answer.status == 304 and if_none_match):
                    self._budget.record_success()
                    return answer
                if answer.status < 400:
                    unexpected = InternalError(
                        f"secinfra: transport: {name}: unexpected HTTP {answer.status}"
                        " (the API answers 2xx, or 304 to a conditional request)",
                        status=answer.status,
                        request_id=answer.headers.get(REQUEST_ID_HEADER),
                    )
                    unexpected.attempts = attempt
                    raise unexpected
                outcome = AttemptResponse(answer.status, answer.headers)
            decision = decide_retry(
                outcome,
                idempotency=method.idempotency,
                has_idempotency_key=IDEMPOTENCY_HEADER in headers,
                attempt=attempt,
                remaining=deadline - self._clock.monotonic(),
                now=self._clock.now(),
                rng=self._rng,
                policy=policy,
                budget=self._budget,
            )
            if not decision.retry:
                error = self._final_error(method, policy, failure, decision, answer)
                error.attempts = attempt
                raise error
            self._clock.sleep(decision.delay)
            attempt += 1

    def _final_error(
        self,
        method: MethodDescriptor,
        policy: RetryPolicy,
        failure: Exception | None,
        decision: RetryDecision,
        answer: _Answer | None,
    ) -> SecinfraError:
        name = _rpc_name(method)
        if answer is None:
            error: SecinfraError
            if decision.reason is RetryReason.DEADLINE_EXCEEDED:
                error = DeadlineExceeded(
                    f"secinfra: transport: {name}: deadline of {policy.deadline:g} s"
                    f" passed: {_describe(failure)}",
                    retryable=True,
                )
            else:
                error = TransportError(
                    f"secinfra: transport: {name}: {_describe(failure)} ({decision.message})",
                    retryable=True,
                )
            error.__cause__ = failure
            return error
        request_id = answer.headers.get(REQUEST_ID_HEADER)
        envelope = _envelope(answer.body)
        # A call ended by a Retry-After too long to wait carries that code.
        code = decision.code or str(envelope.get("code") or code_for_status(answer.status))
        message = str(envelope.get("message") or f"secinfra: {name}: HTTP {answer.status}")
        if decision.code == "rate_limited":
            cls: type[ApiError] = RateLimited
        elif decision.code == "unavailable":
            cls = Unavailable
        else:
            cls = error_for_code(code)
        details = envelope.get("details")
        return cls(
            message,
            code=code,
            status=answer.status,
            request_id=request_id
            or (str(envelope["request_id"]) if envelope.get("request_id") else None),
            retryable=status_retryable(answer.status, answer.headers, method.idempotency),
            retry_after=decision.retry_after,
            details=details if isinstance(details, dict) else None,
        )


def _read_body(response: requests.Response, attempt_end: float, clock: Clock) -> bytes:
    """The whole body of a streamed ``response``, read by ``attempt_end`` (monotonic).

    Each socket read may take only the time left in the attempt, so a server
    sending a byte at a time cannot stretch the attempt. Running out of time
    raises `requests.exceptions.ReadTimeout`, a broken connection
    `requests.exceptions.ConnectionError`; either way the connection is closed,
    never returned to the pool.
    """
    raw = response.raw
    chunks: list[bytes] = []
    try:
        while True:
            left = attempt_end - clock.monotonic()
            if left <= 0:
                raise requests.exceptions.ReadTimeout(
                    "the attempt timed out while receiving the response body"
                )
            _set_read_timeout(raw, left)
            try:
                chunk = raw.read1(BODY_CHUNK, decode_content=True)
            except ReadTimeoutError as exc:
                raise requests.exceptions.ReadTimeout(exc) from exc
            except (HTTPError, OSError) as exc:
                raise requests.exceptions.ConnectionError(exc) from exc
            if not chunk:
                break
            chunks.append(chunk)
    except BaseException:
        response.close()
        raise
    release = getattr(raw, "release_conn", None)
    if callable(release):
        release()  # fully read: the connection may serve the next request
    return b"".join(chunks)


def _watchdog_timeout(sent: bool) -> requests.exceptions.Timeout:
    """The failure of an attempt its watchdog ended (spec 5.2.3)."""
    if sent:
        return requests.exceptions.ReadTimeout(
            "the attempt timed out while waiting for the response"
        )
    return requests.exceptions.ConnectTimeout("the attempt timed out while connecting")


def _set_read_timeout(raw: Any, seconds: float) -> None:
    """Bound the next socket read of a streamed urllib3 response to ``seconds``."""
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    settimeout = getattr(sock, "settimeout", None)
    if callable(settimeout):
        settimeout(seconds)


def _rpc_name(method: MethodDescriptor) -> str:
    return f"{method.service}/{method.name}"


def _query_items(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [("true" if v else "false") if isinstance(v, bool) else str(v) for v in values]


def _envelope(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        return {}
    error = doc.get("error") if isinstance(doc, dict) else None
    return error if isinstance(error, dict) else {}


def _server_failure(exc: SecinfraError) -> bool:
    """Whether ``exc`` means the server could not answer (stale-if-error applies)."""
    return isinstance(exc, TransportError) or (exc.status is not None and exc.status >= 500)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps: requests and urllib3 nest the real error in
    ``args[0]`` and ``reason``; Python chains it in ``__cause__``/``__context__``."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        reason = getattr(current, "reason", None)
        inner = [reason, current.__cause__, current.__context__, *current.args]
        todo.extend(e for e in inner if isinstance(e, BaseException))


def _verification_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification error behind ``exc``, if that is what it is."""
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return cause
    return None


def _failure_outcome(exc: BaseException) -> AttemptFailure:
    """How an attempt that got no response ended, for :func:`decide_retry`."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return AttemptFailure(sent=False, timeout=True)
    if isinstance(exc, requests.exceptions.Timeout):
        return AttemptFailure(sent=True, timeout=True)
    return AttemptFailure(sent=not _before_sending(exc))


def _before_sending(exc: BaseException) -> bool:
    """Whether a connection failure certainly happened before a request byte was sent."""
    for cause in _causes(exc):
        if isinstance(cause, NewConnectionError | ConnectTimeoutError | NameResolutionError):
            return True
        if isinstance(cause, ConnectionRefusedError):
            return True
    return False


def _describe(failure: BaseException | None) -> str:
    if failure is None:
        return "no answer"
    if isinstance(failure, requests.exceptions.Timeout):
        return "the attempt timed out"
    if isinstance(failure, ServerIdentityMismatch):
        return str(failure)
    if isinstance(failure, ssl.SSLCertVerificationError):
        reason = failure.verify_message or failure.reason or str(failure)
        return f"the server's certificate does not chain to the trust bundle ({reason})"
    innermost = list(_causes(failure))[-1]
    return f"connection failed ({type(innermost).__name__}: {innermost})"
