"""The call pipeline: one RPC call from request model to result (spec 2 to 7).

`CallRules` holds the rules, as generators of ``_steps`` steps with no I/O;
`CallPipeline` performs them with threads and implements
``secinfra._rpc.Invoker``, and ``secinfra.aio`` performs the same steps with
asyncio. One call = :meth:`CallPipeline.invoke`: the deadline starts; the request is encoded from
the descriptor (``_request``); a cacheable read is served from the cache when
fresh, revalidated when stale (one request per key, ``_single_flight``) and
served stale within stale-if-error when the server fails; otherwise attempts
go out through the transport with an ``Idempotency-Key`` shared by every
attempt, ``Secinfra-Attempt`` numbering, a per-attempt timeout and the
per-call deadline, retried as ``_retry.decide_retry`` says and as the
client's retry budget allows. Each attempt goes to the endpoint
``_endpoints.EndpointSet`` chooses, and its outcome updates that endpoint's
cooldown, so a retry after an endpoint failure moves to another endpoint
(spec 12). A server whose chain fails verification makes
the identity source refresh its bundle once, and the attempt is repeated. An
answer becomes the result or a typed error (``_answer``); a write
invalidates the cache entries it changed.

A client with observers (spec 14) holds a ``_notify.Notifier``: each call is
announced to them (``call_started`` ... ``call_finished``), with the cache's
answer and every attempt; the trace context they return goes out on that
attempt only. Without observers there is no notifier and nothing is told.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, Protocol, TypeVar

from .._identity._bundle import TrustBundle
from .._identity._snapshot import X509Identity
from .._identity._source import IdentitySource
from .._rpc import Auth, CallOptions, Idempotency, MethodDescriptor, RequestMessage, ResponseMessage
from ..errors import (
    DeadlineExceeded,
    IdentityExpired,
    InternalError,
    SecinfraError,
    TransportError,
)
from ._answer import decode_error, decode_response, error_code, request_id, unexpected_answer
from ._budget import RetryBudget
from ._cache import ResponseCache, request_key
from ._clock import Clock, SystemClock
from ._endpoints import EndpointSet, is_endpoint_failure
from ._headers import (
    ATTEMPT_HEADER,
    IDEMPOTENCY_HEADER,
    IF_NONE_MATCH_HEADER,
    TRACEPARENT_HEADER,
    TRACESTATE_HEADER,
)
from ._meta import ResponseMeta, capturing, report
from ._notify import Notifier
from ._observer import CacheResult, Observer
from ._request import encode_request
from ._retry import (
    DEFAULT_RETRY_POLICY,
    AttemptFailure,
    AttemptResponse,
    RetryDecision,
    RetryPolicy,
    RetryReason,
    decide_retry,
)
from ._single_flight import SingleFlight
from ._steps import (
    AwaitIdentity,
    JoinFlight,
    RefreshBundle,
    SendAttempt,
    Sleep,
    Step,
    Steps,
    run_steps,
)
from ._transport import HttpAnswer, HttpTransport, NoAnswer, ServerRejected

__all__ = ["CallPipeline", "CallRules"]

R = TypeVar("R", bound=ResponseMessage)
T = TypeVar("T")
#: What a transport is to the rules: the sync `HttpTransport` or the asyncio one.
TransportT = TypeVar("TransportT", bound="_HasEndpoints")


class _BundleHolder(Protocol):
    """What the rules read of an identity source (sync or asyncio)."""

    def bundle(self) -> TrustBundle: ...


class _HasEndpoints(Protocol):
    """What the rules read of a transport (sync or asyncio)."""

    @property
    def endpoints(self) -> EndpointSet: ...


SourceT = TypeVar("SourceT", bound=_BundleHolder)

#: The field of a write's response that carries its revision token (read-your-writes).
REVISION_FIELD: Final = "revision"
#: The error code of an attempt that got no answer: a transport failure's (spec 14.2.1).
NO_ANSWER_CODE: Final = TransportError.code


@dataclass(frozen=True, slots=True)
class _Sent:
    """The answer that ended the attempts, and how many attempts it took."""

    answer: HttpAnswer
    attempts: int
    endpoint: str
    """The endpoint the answering attempt went to (spec 12.8.1)."""


class CallRules(Generic[TransportT, SourceT]):
    """The rules of a call, with no I/O: the part both pipelines share.

    Each call is a generator of `_steps` steps (send an attempt, sleep, wait
    for an identity, refresh the bundle, join a single flight); the threaded
    `CallPipeline` and the asyncio one in ``secinfra.aio`` perform them.
    ``transport`` and ``source`` are the driver's (sync or asyncio); the rules
    only read ``source.bundle()`` and the transport's endpoints.
    """

    def __init__(
        self,
        transport: TransportT,
        source: SourceT,
        *,
        policy: RetryPolicy = DEFAULT_RETRY_POLICY,
        budget: RetryBudget | None = None,
        cache: ResponseCache[Any] | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        use_cache: bool = True,
        endpoints: EndpointSet | None = None,
        observers: Sequence[Observer] = (),
    ) -> None:
        """``use_cache`` is the client-wide default; ``CallOptions.use_cache`` wins per call.

        ``source`` is the transport's identity source, asked for a bundle
        refresh when the server's chain fails verification (spec 10.3).
        ``endpoints`` chooses each attempt's endpoint and keeps their cooldowns
        (spec 12); default: the transport's. ``observers`` are told of every
        call, in this order (spec 14).
        """
        self._transport = transport
        self._endpoints = endpoints if endpoints is not None else transport.endpoints
        self._source = source
        self._policy = policy
        self._budget = budget if budget is not None else RetryBudget()
        self._clock = clock if clock is not None else SystemClock()
        self._cache: ResponseCache[Any] = (
            cache if cache is not None else ResponseCache(clock=self._clock)
        )
        self._rng = rng if rng is not None else random.SystemRandom()
        self._use_cache = use_cache
        self._notifier = Notifier(observers) if observers else None
        self._flights = self._new_flights()

    def _new_flights(self) -> Any:
        """The driver's single-flight (threads: `SingleFlight`)."""
        return SingleFlight()

    @property
    def cache(self) -> ResponseCache[Any]:
        """The client's response cache."""
        return self._cache

    @property
    def budget(self) -> RetryBudget:
        """The client's retry budget."""
        return self._budget

    @property
    def endpoints(self) -> EndpointSet:
        """The client's endpoints and their cooldowns."""
        return self._endpoints

    @property
    def use_cache(self) -> bool:
        """Whether cacheable calls use the cache unless their call options say otherwise."""
        return self._use_cache

    # -- the call --------------------------------------------------------------------
    def _fresh_entry(
        self, method: MethodDescriptor, key: Hashable | None, options: CallOptions | None
    ) -> Any:
        """The hot path, for a call with no observer (spec 14): the fresh cache
        entry that answers the call with ``key`` (reported to ``capture()``),
        or None. No allocation on a hit: a hit must cost about a microsecond."""
        if key is not None and (options is None or not options.revalidate):
            entry = self._cache.fresh(key)
            if entry is not None:
                if capturing():
                    report(ResponseMeta(method.full_name, None, 0, True, False))
                return entry
        return None

    def _steps(
        self,
        method: MethodDescriptor,
        request: RequestMessage,
        response_type: type[R],
        options: CallOptions | None,
        key: Hashable | None,
    ) -> Steps[R]:
        """One call that missed the hot path, told to its observers if it has any."""
        notifier = self._notifier
        if notifier is None:
            value, meta = yield from self._call(method, request, response_type, options, 0, key)
            report(meta)
            return value
        name = method.full_name
        call_id = notifier.call_started(name, method.idempotency.value)
        try:
            key = self._cache_key(method, request, options)
            value, meta = yield from self._call(
                method, request, response_type, options, call_id, key
            )
        except BaseException as exc:
            # Exactly once, also when no attempt was made (spec 14.2.2), and
            # also when the call was cancelled (asyncio) or interrupted.
            code = exc.code if isinstance(exc, SecinfraError) else InternalError.code
            notifier.call_finished(call_id, name, _error_meta(name, exc), exc, code)
            raise
        report(meta)
        notifier.call_finished(call_id, name, meta)
        return value

    def _cache_key(
        self, method: MethodDescriptor, request: RequestMessage, options: CallOptions | None
    ) -> Hashable | None:
        """The call's cache key, or None when the call does not use the cache.

        The call options are laid over the policy first, so that options the
        policy refuses are refused on a cache hit too.
        """
        cache = method.cache
        if cache is None or not cache.cacheable:
            return None
        if options is not None:
            self._policy.merged(options)
            if options.use_cache is not None:
                if not options.use_cache:
                    return None
            elif not self._use_cache:
                return None
        elif not self._use_cache:
            return None
        return request_key(method.service, method.name, request)

    def _call(
        self,
        method: MethodDescriptor,
        request: RequestMessage,
        response_type: type[R],
        options: CallOptions | None,
        call_id: int,
        key: Hashable | None,
    ) -> Steps[tuple[R, ResponseMeta]]:
        """The call's value and metadata; ``call_id`` is its observers' (0: none),
        ``key`` its cache key (None: the call does not use the cache)."""
        # The deadline covers the whole call (spec 5.1.2): the clock starts now.
        policy = self._policy.merged(options)
        deadline_at = self._clock.monotonic() + policy.deadline
        request_json = request.to_json()
        if key is not None:
            return (
                yield from self._cached_call(
                    method, key, request_json, response_type, options, policy, deadline_at, call_id
                )
            )
        try:
            sent = yield from self._send(
                method, request_json, options, policy, deadline_at, None, call_id
            )
            value = decode_response(method, sent.answer, response_type, attempts=sent.attempts)
        except SecinfraError as exc:
            if _outcome_unknown(exc):
                # The write may have been applied (spec 7.9.3): drop what it may
                # have changed, as a success would; there is no revision to mark.
                self._after_write(method, request_json, None)
            raise
        self._after_write(method, request_json, value)
        meta = ResponseMeta(
            method=method.full_name,
            request_id=request_id(sent.answer),
            attempts=sent.attempts,
            from_cache=False,
            stale=False,
            status=sent.answer.status,
            endpoint=sent.endpoint,
        )
        return value, meta

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
        key: Hashable,
        request_json: dict[str, Any],
        response_type: type[R],
        options: CallOptions | None,
        policy: RetryPolicy,
        deadline_at: float,
        call_id: int,
    ) -> Steps[tuple[R, ResponseMeta]]:
        assert method.cache is not None
        name = method.full_name
        revalidate = options is not None and bool(options.revalidate)
        hit = self._cache.lookup(key)
        fresh_hit = hit is not None and hit.fresh and not revalidate
        if self._notifier is not None:
            if fresh_hit:
                result = CacheResult.HIT
            else:
                result = CacheResult.MISS if hit is None else CacheResult.REVALIDATE
            self._notifier.cache(call_id, name, result)
        if fresh_hit:
            assert hit is not None
            value: R = hit.entry.value
            return value, ResponseMeta(name, None, 0, True, False)

        def fetch() -> Steps[tuple[R, ResponseMeta]]:
            current = self._cache.lookup(key)
            if current is not None and current.fresh and not revalidate:
                return current.entry.value, ResponseMeta(name, None, 0, True, False)
            etag = None
            if current is not None:
                etag = current.entry.etag if revalidate else current.if_none_match
            generation = self._cache.generation
            try:
                sent = yield from self._send(
                    method, request_json, options, policy, deadline_at, etag, call_id
                )
            except SecinfraError as exc:
                # A revalidation reports the failure: it asked what the server says now.
                if (
                    current is not None
                    and current.usable_on_error
                    and not revalidate
                    and _server_failure(exc)
                ):
                    meta = ResponseMeta(
                        name, exc.request_id, exc.attempts, True, True, exc.status, exc.endpoint
                    )
                    return current.entry.value, meta
                raise
            answer = sent.answer
            if answer.status == 304 and current is not None:
                self._cache.refresh(key, answer.headers)
                meta = ResponseMeta(
                    name, request_id(answer), sent.attempts, True, False, 304, sent.endpoint
                )
                return current.entry.value, meta
            value = decode_response(method, answer, response_type, attempts=sent.attempts)
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
                name, request_id(answer), sent.attempts, False, False, answer.status, sent.endpoint
            )
            return value, meta

        if revalidate:
            # Never joins another caller's request, which may be answered from
            # the cache: a revalidation must reach the server.
            return (yield from fetch())
        try:
            # A caller that joins another caller's request waits no longer than
            # its own deadline (spec 7.8.3).
            value, meta = yield JoinFlight(
                key, fetch, max(0.0, deadline_at - self._clock.monotonic())
            )
        except TimeoutError:
            expired = DeadlineExceeded(
                f"secinfra: transport: {name}: deadline of {policy.deadline:g} s"
                " passed while waiting for another caller's request for the same key"
            )
            expired.attempts = 0
            raise expired from None
        return value, meta

    # -- attempts --------------------------------------------------------------------
    def _send(
        self,
        method: MethodDescriptor,
        request_json: dict[str, Any],
        options: CallOptions | None,
        policy: RetryPolicy,
        deadline: float,
        if_none_match: str | None,
        call_id: int,
    ) -> Steps[_Sent]:
        """Attempt the request until it succeeds or the retry rules end the call.

        ``deadline`` is the monotonic time the whole call ends (set in `invoke`);
        ``call_id`` is the call's to its observers.
        """
        request = encode_request(method, request_json)
        headers = dict(request.headers)
        if method.idempotency is not Idempotency.READ_ONLY:
            key = options.idempotency_key if options and options.idempotency_key else None
            headers[IDEMPOTENCY_HEADER] = key or str(uuid.uuid4())
        if if_none_match:
            headers[IF_NONE_MATCH_HEADER] = if_none_match
        mtls = method.auth is not Auth.NONE
        name = method.full_name
        bundle_refreshed = False
        attempt = 1
        endpoint: str | None = None  # of the last attempt
        last_answer: HttpAnswer | None = None  # of the last attempt that got one (spec 11.5)
        repeat_at: str | None = None  # the endpoint a bundle refresh repeats at
        notifier = self._notifier
        while True:
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                raise self._deadline_passed(name, policy, attempt - 1, endpoint, last_answer)
            identity: X509Identity | None = None
            if mtls:
                # Waiting for an identity (a re-enrolment) is bounded by the
                # deadline, and no attempt starts after it (spec 5.1.2, 5.1.3).
                identity = yield from self._identity_for(
                    name, policy, attempt, endpoint, last_answer, remaining
                )
                remaining = deadline - self._clock.monotonic()
                if remaining <= 0:
                    raise self._deadline_passed(name, policy, attempt - 1, endpoint, last_answer)
            # Each attempt goes to the first endpoint not cooling down (spec
            # 12.3); the repeat after a bundle refresh goes where the
            # verification failed (12.6.2).
            endpoint = repeat_at if repeat_at is not None else self._endpoints.choose()
            repeat_at = None
            headers[ATTEMPT_HEADER] = str(attempt)
            if notifier is not None:
                # This attempt's trace context only (spec 14.3.1).
                trace = notifier.attempt_started(
                    call_id, name, attempt, endpoint, request.http_method
                )
                headers.pop(TRACEPARENT_HEADER, None)
                headers.pop(TRACESTATE_HEADER, None)
                if trace is not None:
                    headers[TRACEPARENT_HEADER] = trace.traceparent
                    if trace.tracestate:
                        headers[TRACESTATE_HEADER] = trace.tracestate
            answer: HttpAnswer | None = None
            failure: NoAnswer | None = None
            outcome: AttemptResponse | AttemptFailure
            try:
                answer = yield SendAttempt(
                    request.http_method,
                    request.target,
                    headers,
                    request.body,
                    mtls,
                    min(policy.attempt_timeout, remaining),
                    endpoint,
                    identity,
                )
            except ServerRejected as rejected:
                if notifier is not None:
                    notifier.attempt_finished(
                        call_id, name, attempt, endpoint, None, NO_ANSWER_CODE
                    )
                # The server is not who it must be: retrying cannot help, but a
                # CA rotation we have not seen yet can explain a chain failure,
                # so refresh the bundle once and repeat the attempt (spec 10.3)
                # if the bundle now held is not the one the attempt verified
                # with (this refresh, or the rotation's own meanwhile, got it).
                if rejected.chain and not bundle_refreshed:
                    bundle_refreshed = True
                    changed = yield RefreshBundle()
                    if changed or self._source.bundle().pem != rejected.bundle_pem:
                        repeat_at = endpoint
                        continue
                # Never an endpoint failure, never a move (spec 12.6.1).
                refused = TransportError(
                    f"secinfra: transport: {name}: {endpoint}: {rejected.description}"
                )
                refused.attempts = attempt
                refused.endpoint = endpoint
                refused.request_id = _request_id_of(last_answer)
                raise refused from rejected
            except NoAnswer as exc:
                if notifier is not None:
                    notifier.attempt_finished(
                        call_id, name, attempt, endpoint, None, NO_ANSWER_CODE
                    )
                self._endpoints.record(endpoint, failed=True)
                failure = exc
                outcome = AttemptFailure(sent=exc.sent, timeout=exc.timeout)
            else:
                if notifier is not None:
                    notifier.attempt_finished(
                        call_id,
                        name,
                        attempt,
                        endpoint,
                        answer.status,
                        _attempt_code(answer, if_none_match),
                    )
                last_answer = answer
                self._endpoints.record(endpoint, failed=is_endpoint_failure(answer.status))
                if 200 <= answer.status < 300 or (answer.status == 304 and if_none_match):
                    self._budget.record_success()
                    return _Sent(answer, attempt, endpoint)
                if answer.status < 400:
                    unexpected = unexpected_answer(method, answer)
                    unexpected.attempts = attempt
                    unexpected.endpoint = endpoint
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
                error = _final_error(method, policy, failure, decision, answer, endpoint)
                error.attempts = attempt
                error.endpoint = endpoint
                if answer is None:
                    # No answer to this attempt: the id is the last answered one's (11.5).
                    error.request_id = _request_id_of(last_answer)
                raise error
            yield Sleep(decision.delay)
            attempt += 1

    def _identity_for(
        self,
        name: str,
        policy: RetryPolicy,
        attempt: int,
        endpoint: str | None,
        last_answer: HttpAnswer | None,
        remaining: float,
    ) -> Steps[X509Identity]:
        """The identity attempt ``attempt`` presents, waited for at most ``remaining`` s.

        The deadline passing while a re-enrolment is still in flight is
        `DeadlineExceeded` (spec 5.4.1); `IdentityExpired` comes only from
        the source, when it cannot or could not re-enrol (9.7.3, 11.3.4).
        """
        try:
            identity: X509Identity = yield AwaitIdentity(remaining)
        except TimeoutError as exc:
            raise self._deadline_passed(
                name,
                policy,
                attempt - 1,
                endpoint,
                last_answer,
                f" waiting for an identity ({exc})",
            ) from exc
        except IdentityExpired as exc:
            exc.attempts = attempt - 1
            exc.endpoint = endpoint
            raise
        return identity

    @staticmethod
    def _deadline_passed(
        name: str,
        policy: RetryPolicy,
        attempts: int,
        endpoint: str | None,
        last_answer: HttpAnswer | None,
        why: str = "",
    ) -> DeadlineExceeded:
        """The error of a call whose deadline left no time for its next attempt."""
        where = f" (the last to {endpoint})" if endpoint is not None else ""
        expired = DeadlineExceeded(
            f"secinfra: transport: {name}: deadline of {policy.deadline:g} s"
            f" passed after {attempts} attempts{where}{why}",
            retryable=True,
        )
        expired.attempts = attempts
        expired.endpoint = endpoint
        expired.request_id = _request_id_of(last_answer)
        return expired


class CallPipeline(CallRules[HttpTransport, IdentitySource]):
    """The runtime behind every generated client (an ``Invoker``). Thread-safe.

    Performs `CallRules`' steps with threads: the requests transport,
    the clock's ``sleep`` and a thread-safe single-flight.
    """

    def close(self) -> None:
        """Drop every cache entry and close every pooled connection (spec 7.11.3)."""
        self._cache.clear()
        self._transport.close()

    def invoke(
        self,
        method: MethodDescriptor,
        request: RequestMessage,
        response_type: type[R],
        options: CallOptions | None,
    ) -> R:
        """Make one RPC call (see the module docstring)."""
        key = None
        if self._notifier is None:
            # _fresh_entry inlined: the sync hot path is measured against a
            # ~2 us target (benchmarks/sdk_python_calls.py), and a call costs.
            key = self._cache_key(method, request, options)
            if key is not None and (options is None or not options.revalidate):
                entry = self._cache.fresh(key)
                if entry is not None:
                    if capturing():
                        report(ResponseMeta(method.full_name, None, 0, True, False))
                    hit: R = entry.value
                    return hit
        return run_steps(self._steps(method, request, response_type, options, key), self._perform)

    def _perform(self, step: Step) -> Any:
        if isinstance(step, SendAttempt):
            return self._transport.send(
                step.http_method,
                step.target,
                step.headers,
                step.body,
                mtls=step.mtls,
                timeout=step.timeout,
                endpoint=step.endpoint,
                identity=step.identity,
            )
        if isinstance(step, Sleep):
            self._clock.sleep(step.seconds)
            return None
        if isinstance(step, AwaitIdentity):
            return self._source.ensure_identity(timeout=step.timeout)
        if isinstance(step, RefreshBundle):
            return self._source.refresh_bundle()
        fetch = step.fetch
        return self._flights.do(
            step.key, lambda: run_steps(fetch(), self._perform), timeout=step.timeout
        )


def _attempt_code(answer: HttpAnswer, if_none_match: str | None) -> str | None:
    """The error code of an answered attempt (spec 14.2.1); None for a success."""
    if 200 <= answer.status < 300 or (answer.status == 304 and if_none_match):
        return None
    if answer.status < 400:
        return InternalError.code  # an answer the API never gives (unexpected_answer)
    return error_code(answer)


def _error_meta(name: str, exc: BaseException) -> ResponseMeta:
    """The metadata of a call that ended with ``exc``: what the error says."""
    if not isinstance(exc, SecinfraError):
        return ResponseMeta(name, None, 0, False, False)
    return ResponseMeta(
        name, exc.request_id, exc.attempts or 0, False, False, exc.status, exc.endpoint
    )


def _request_id_of(answer: HttpAnswer | None) -> str | None:
    """The Request-Id of ``answer``, if there is one."""
    return request_id(answer) if answer is not None else None


def _final_error(
    method: MethodDescriptor,
    policy: RetryPolicy,
    failure: NoAnswer | None,
    decision: RetryDecision,
    answer: HttpAnswer | None,
    endpoint: str,
) -> SecinfraError:
    """The error a call ends with when the retry rules stop it."""
    if answer is not None:
        return decode_error(method, answer, code=decision.code, retry_after=decision.retry_after)
    name = method.full_name
    what = failure.description if failure is not None else "no answer"
    error: SecinfraError
    if decision.reason is RetryReason.DEADLINE_EXCEEDED:
        error = DeadlineExceeded(
            f"secinfra: transport: {name}: deadline of {policy.deadline:g} s passed:"
            f" {endpoint}: {what}",
            retryable=True,
        )
    else:
        error = TransportError(
            f"secinfra: transport: {name}: {endpoint}: {what} ({decision.message})",
            retryable=True,
        )
    error.__cause__ = failure
    return error


def _server_failure(exc: SecinfraError) -> bool:
    """Whether ``exc`` means the server could not answer (stale-if-error applies).

    Not when no request was made: a deadline that passed while the call
    waited for an identity reached no server (spec 7.6.3).
    """
    if exc.attempts == 0:
        return False
    return isinstance(exc, TransportError) or (exc.status is not None and exc.status >= 500)


def _outcome_unknown(error: SecinfraError) -> bool:
    """Whether a failed call may have changed the server: a request went out and
    got no answer, a 5xx, or a 2xx the client could not decode (spec 7.9.3)."""
    if error.attempts <= 0:
        return False
    status = error.status
    return status is None or status >= 500 or 200 <= status < 300
