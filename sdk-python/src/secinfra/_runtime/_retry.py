"""Retry policy: whether to try a call again, and how long to wait first.

Pure and deterministic: nothing here sends, sleeps or reads a clock. The
transport reports how one attempt ended and gets back a `RetryDecision`:

.. code-block:: python

    policy = client_policy.merged(call_options)
    deadline_at = clock.monotonic() + policy.deadline
    for attempt in itertools.count(1):
        left = deadline_at - clock.monotonic()
        outcome = send_once(attempt, timeout=min(policy.attempt_timeout, left))
        if outcome is a 2xx/304 response:
            budget.record_success()
            return ...
        decision = decide_retry(
            outcome, policy=policy, idempotency=method.idempotency,
            has_idempotency_key=key is not None, attempt=attempt,
            remaining=deadline_at - clock.monotonic(), now=clock.now(),
            rng=rng, budget=budget,
        )
        if not decision.retry:
            raise error_for(outcome, decision)
        clock.sleep(decision.delay)

The rules (DESIGN.md "Client behaviour", in the order they are applied):

1. Is the failure retryable at all?

   - A connection failure before the request was sent: always.
   - A connection failure (or timeout) after the request was, or may have
     been, sent: only for read-only or idempotent calls, or calls carrying an
     ``Idempotency-Key`` the server deduplicates on.
   - Statuses 408, 429, 502, 503, 504: always. 500: only for read-only or
     idempotent calls (an ``Idempotency-Key`` does not make a 500 safe: the
     server may have done part of the work). Any other status, including 501
     and every other 4xx: never.
   - ``Secinfra-Should-Retry: true`` makes any error status retryable and
     ``false`` makes any status not retryable: the server knows better.

2. Attempts: never more than ``max_attempts`` in all.
3. Deadline: with no time left the call ends.
4. ``Retry-After`` (delta-seconds or HTTP-date), when the status is retried,
   replaces the jittered backoff. One longer than ``max_retry_after``, or one
   that would use up the time left, ends the call with ``rate_limited`` (429)
   or ``unavailable`` (any other status), exposing ``retry_after``.
5. Otherwise wait `full_jitter` of `backoff_ceiling`; a wait that would use up
   the time left ends the call.
6. Budget: a retry must be paid for from the client's `RetryBudget`.
"""

from __future__ import annotations

import enum
import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol, TypeAlias, TypeVar

from .._rpc import Idempotency
from ._budget import RetryBudget
from ._headers import header

__all__ = [
    "ALWAYS_RETRYABLE_STATUSES",
    "BASE_BACKOFF",
    "DEFAULT_ATTEMPT_TIMEOUT",
    "DEFAULT_DEADLINE",
    "DEFAULT_RETRY_POLICY",
    "IDEMPOTENT_RETRYABLE_STATUSES",
    "MAX_ATTEMPTS",
    "MAX_BACKOFF",
    "MAX_RETRY_AFTER",
    "RETRY_AFTER_HEADER",
    "SHOULD_RETRY_HEADER",
    "AttemptFailure",
    "AttemptOutcome",
    "AttemptResponse",
    "Idempotency",
    "RetryDecision",
    "RetryOverrides",
    "RetryPolicy",
    "RetryReason",
    "backoff_ceiling",
    "decide_retry",
    "full_jitter",
    "parse_retry_after",
]

MAX_ATTEMPTS = 4
"""Attempts in all, the first included (1 + 3 retries)."""

BASE_BACKOFF = 0.1
"""Seconds: the backoff ceiling before the first retry; it doubles per retry."""

MAX_BACKOFF = 5.0
"""Seconds: the backoff ceiling never grows past this."""

MAX_RETRY_AFTER = 60.0
"""Seconds: a longer ``Retry-After`` ends the call instead of waiting."""

DEFAULT_DEADLINE = 30.0
"""Seconds for a whole call, every attempt and wait included."""

DEFAULT_ATTEMPT_TIMEOUT = 10.0
"""Seconds for one attempt."""

ALWAYS_RETRYABLE_STATUSES = frozenset({408, 429, 502, 503, 504})
"""Statuses retried whatever the call's idempotency."""

IDEMPOTENT_RETRYABLE_STATUSES = frozenset({500})
"""Statuses retried only for read-only and idempotent calls."""

RETRY_AFTER_HEADER = "Retry-After"
SHOULD_RETRY_HEADER = "Secinfra-Should-Retry"

_MAX_BACKOFF_DOUBLINGS = 62
"""Past this many doublings any base is over any sane cap; stops float overflow."""

_DELTA_SECONDS = re.compile(r"[0-9]+")
"""RFC 9110 delay-seconds: digits only (a sign or a fraction is not valid)."""

_T = TypeVar("_T")

_RATE_LIMITED = "rate_limited"
_UNAVAILABLE = "unavailable"
_TOO_MANY_REQUESTS = 429


class RetryOverrides(Protocol):
    """Per-call settings that override a `RetryPolicy`; None keeps the policy's.

    ``secinfra._rpc.CallOptions`` has this shape, so the call pipeline passes
    its call options straight to `RetryPolicy.merged`.
    """

    @property
    def max_attempts(self) -> int | None: ...

    @property
    def deadline(self) -> float | None: ...

    @property
    def attempt_timeout(self) -> float | None: ...

    @property
    def base_backoff(self) -> float | None: ...

    @property
    def max_backoff(self) -> float | None: ...

    @property
    def max_retry_after(self) -> float | None: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """Retry settings of a client or of one call. Times are in seconds."""

    max_attempts: int = MAX_ATTEMPTS
    """Attempts in all; 1 turns retries off."""
    base_backoff: float = BASE_BACKOFF
    max_backoff: float = MAX_BACKOFF
    max_retry_after: float = MAX_RETRY_AFTER
    deadline: float = DEFAULT_DEADLINE
    attempt_timeout: float = DEFAULT_ATTEMPT_TIMEOUT

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("secinfra: retry: max_attempts must be at least 1")
        for name in ("base_backoff", "max_backoff", "max_retry_after"):
            if not 0.0 <= getattr(self, name) < math.inf:
                raise ValueError(f"secinfra: retry: {name} must be a finite number >= 0")
        for name in ("deadline", "attempt_timeout"):
            if not 0.0 < getattr(self, name) < math.inf:
                raise ValueError(f"secinfra: retry: {name} must be a finite number > 0")

    def merged(self, overrides: RetryOverrides | None) -> RetryPolicy:
        """This policy with every non-None value of ``overrides`` laid over it.

        The per-call value wins; ``None`` (or no overrides at all) keeps this
        policy's value.
        """
        if overrides is None:
            return self
        # getattr: overrides written against the older three-field shape still work.
        return RetryPolicy(
            max_attempts=_pick(overrides.max_attempts, self.max_attempts),
            base_backoff=_pick(getattr(overrides, "base_backoff", None), self.base_backoff),
            max_backoff=_pick(getattr(overrides, "max_backoff", None), self.max_backoff),
            max_retry_after=_pick(
                getattr(overrides, "max_retry_after", None), self.max_retry_after
            ),
            deadline=_pick(overrides.deadline, self.deadline),
            attempt_timeout=_pick(overrides.attempt_timeout, self.attempt_timeout),
        )


DEFAULT_RETRY_POLICY = RetryPolicy()
"""The policy of every default above."""


def _pick(override: _T | None, default: _T) -> _T:
    return default if override is None else override


@dataclass(frozen=True, slots=True)
class AttemptResponse:
    """An attempt that got an HTTP response (of any status)."""

    status: int
    headers: Mapping[str, str]
    """Response headers; looked up case-insensitively."""


@dataclass(frozen=True, kw_only=True, slots=True)
class AttemptFailure:
    """An attempt that got no HTTP response: connect error, reset, timeout."""

    sent: bool
    """The request was, or may have been, sent. When in doubt say True."""
    timeout: bool = False
    """The attempt ran out of time (connect or read timeout)."""


AttemptOutcome: TypeAlias = AttemptResponse | AttemptFailure
"""How one attempt ended."""


class RetryReason(enum.StrEnum):
    """Why a `RetryDecision` came out the way it did (stable, for logs and tests)."""

    NO_ERROR = "no_error"
    """The status is not an error (below 400): nothing to retry."""
    RETRYABLE = "retryable"
    """The failure is retryable and every limit allows another attempt."""
    NOT_RETRYABLE = "not_retryable"
    """The status is never retried for this call."""
    SERVER_SAID_NO = "server_said_no"
    """``Secinfra-Should-Retry: false``."""
    UNSAFE_TO_RESEND = "unsafe_to_resend"
    """The request may have reached the server and repeating it is not safe."""
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"
    """``max_attempts`` attempts were made."""
    RETRY_AFTER_TOO_LONG = "retry_after_too_long"
    """``Retry-After`` is longer than ``max_retry_after``."""
    RETRY_AFTER_PAST_DEADLINE = "retry_after_past_deadline"
    """``Retry-After`` would use up the time left before the deadline."""
    DEADLINE_EXCEEDED = "deadline_exceeded"
    """The backoff would use up the time left before the deadline (or none is left)."""
    BUDGET_EXHAUSTED = "budget_exhausted"
    """The client's retry budget cannot pay for the retry."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryDecision:
    """What to do after a failed attempt."""

    retry: bool
    """Try again after `delay`."""
    delay: float
    """Seconds to wait before the next attempt (0 when giving up)."""
    reason: RetryReason
    message: str
    """One human-readable sentence, for the error or the log."""
    code: str | None = None
    """The error code the call must end with when the retry policy, rather than
    the server's error envelope, decides it: ``rate_limited`` or ``unavailable``
    for a ``Retry-After`` too long to wait. None: end with the error the
    attempt itself produced."""
    retry_after: float | None = None
    """The server's ``Retry-After`` in seconds, when it sent a valid one."""
    cost: int = 0
    """Budget tokens the retry was charged (0 when giving up or without a budget)."""


def backoff_ceiling(retry: int, *, base: float = BASE_BACKOFF, cap: float = MAX_BACKOFF) -> float:
    """The most the ``retry``-th retry (1-based) may wait: ``min(cap, base * 2**(retry-1))``."""
    if retry < 1:
        raise ValueError("secinfra: retry: retries are counted from 1")
    return min(cap, base * 2.0 ** min(retry - 1, _MAX_BACKOFF_DOUBLINGS))


def full_jitter(ceiling: float, rng: random.Random) -> float:
    """A delay drawn uniformly from ``[0, ceiling]`` ("full jitter")."""
    return rng.uniform(0.0, ceiling)


def parse_retry_after(value: str, now: datetime) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header value, or None.

    Accepts delta-seconds (``"120"``) and an HTTP-date (``"Wed, 21 Oct 2015
    07:28:00 GMT"``, measured from ``now``, an aware datetime; a date without
    a zone is read as UTC, as HTTP-dates are GMT). A date already past means
    "now" (0.0): the server's clock may run behind ours. Anything else,
    including negative or fractional numbers, is not a valid value: None.
    """
    text = value.strip()
    if _DELTA_SECONDS.fullmatch(text):
        return float(text)  # absurdly long digit strings become inf: too long to wait
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def decide_retry(
    outcome: AttemptOutcome,
    *,
    idempotency: Idempotency | str,
    has_idempotency_key: bool,
    attempt: int,
    remaining: float,
    now: datetime,
    rng: random.Random,
    policy: RetryPolicy | None = None,
    budget: RetryBudget | None = None,
) -> RetryDecision:
    """Decide whether to retry after attempt number ``attempt`` (1-based) ended in ``outcome``.

    ``idempotency`` is an `Idempotency` or its string value (the descriptor's
    enum of the same name passes as is). ``remaining`` is the time in seconds
    left before the call's deadline, ``now`` the wall
    time (for HTTP-date ``Retry-After``), ``rng`` the source of jitter. When a
    ``budget`` is given and every other rule allows the retry, its cost is
    spent here, so a `RetryDecision` with ``retry=True`` is already paid for.
    """
    if attempt < 1:
        raise ValueError("secinfra: retry: attempts are counted from 1")
    if policy is None:
        policy = DEFAULT_RETRY_POLICY
    kind = Idempotency(idempotency)

    retry_after: float | None = None
    code_if_waiting_too_long = _UNAVAILABLE
    if isinstance(outcome, AttemptResponse):
        raw_retry_after = header(outcome.headers, RETRY_AFTER_HEADER)
        if raw_retry_after is not None and outcome.status >= 400:
            retry_after = parse_retry_after(raw_retry_after, now)
        refusal = _refuse_status(outcome, kind)
        if refusal is not None:
            # Not retried whatever Retry-After says, but the error still
            # exposes it (spec 3.6.7).
            return replace(refusal, retry_after=retry_after)
        if outcome.status == _TOO_MANY_REQUESTS:
            code_if_waiting_too_long = _RATE_LIMITED
        what = f"status {outcome.status}"
    else:
        if outcome.sent and not (kind.safe_to_repeat or has_idempotency_key):
            return _give_up(
                RetryReason.UNSAFE_TO_RESEND,
                f"the request may have reached the server and a {kind} call "
                "without an Idempotency-Key is not safe to send again",
            )
        what = "timeout" if outcome.timeout else "connection failure"
        what += " after sending" if outcome.sent else " before sending"

    if attempt >= policy.max_attempts:
        return _give_up(
            RetryReason.ATTEMPTS_EXHAUSTED,
            f"{what}: gave up after {attempt} of {policy.max_attempts} attempts",
            retry_after=retry_after,
        )

    if remaining <= 0.0:
        return _give_up(
            RetryReason.DEADLINE_EXCEEDED,
            f"{what}: the deadline has passed",
            retry_after=retry_after,
        )

    if retry_after is not None:
        if retry_after > policy.max_retry_after:
            return _give_up(
                RetryReason.RETRY_AFTER_TOO_LONG,
                f"{what}: the server asks to retry after {retry_after:g} s, "
                f"more than the {policy.max_retry_after:g} s the client waits",
                code=code_if_waiting_too_long,
                retry_after=retry_after,
            )
        if retry_after >= remaining:
            return _give_up(
                RetryReason.RETRY_AFTER_PAST_DEADLINE,
                f"{what}: the server asks to retry after {retry_after:g} s, "
                f"but only {remaining:.3g} s are left before the deadline",
                code=code_if_waiting_too_long,
                retry_after=retry_after,
            )
        delay = retry_after
    else:
        ceiling = backoff_ceiling(attempt, base=policy.base_backoff, cap=policy.max_backoff)
        delay = full_jitter(ceiling, rng)

    if delay >= remaining:
        return _give_up(
            RetryReason.DEADLINE_EXCEEDED,
            f"{what}: the next attempt in {delay:.3g} s would not start before the "
            f"deadline ({remaining:.3g} s left)",
            retry_after=retry_after,
        )

    cost = 0
    if budget is not None:
        cost = budget.cost(timeout=isinstance(outcome, AttemptFailure) and outcome.timeout)
        if not budget.try_acquire(cost):
            return _give_up(
                RetryReason.BUDGET_EXHAUSTED,
                f"{what}: the client's retry budget is spent (too many recent failures)",
                retry_after=retry_after,
            )

    return RetryDecision(
        retry=True,
        delay=delay,
        reason=RetryReason.RETRYABLE,
        message=f"{what}: retrying in {delay:.3g} s (attempt {attempt + 1} "
        f"of {policy.max_attempts})",
        retry_after=retry_after,
        cost=cost,
    )


def status_retryable(
    status: int, headers: Mapping[str, str], idempotency: Idempotency | str
) -> bool:
    """Whether an answer with this status is one the rules would retry (attempt
    limits, deadline and budget aside): the ``retryable`` flag of errors."""
    return _refuse_status(AttemptResponse(status, headers), Idempotency(idempotency)) is None


def _refuse_status(response: AttemptResponse, idempotency: Idempotency) -> RetryDecision | None:
    """A give-up decision when ``response``'s status must not be retried, else None."""
    status = response.status
    if status < 400:
        return _give_up(RetryReason.NO_ERROR, f"status {status} is not an error")
    should_retry = _should_retry(response.headers)
    if should_retry is False:
        return _give_up(
            RetryReason.SERVER_SAID_NO,
            f"status {status}: the server said not to retry ({SHOULD_RETRY_HEADER}: false)",
        )
    if should_retry is True:
        return None
    if status in ALWAYS_RETRYABLE_STATUSES:
        return None
    if status in IDEMPOTENT_RETRYABLE_STATUSES:
        if idempotency.safe_to_repeat:
            return None
        return _give_up(
            RetryReason.NOT_RETRYABLE,
            f"status {status} is retried only for read-only and idempotent calls",
        )
    return _give_up(RetryReason.NOT_RETRYABLE, f"status {status} is not retryable")


def _should_retry(headers: Mapping[str, str]) -> bool | None:
    value = header(headers, SHOULD_RETRY_HEADER)
    if value is None:
        return None
    return {"true": True, "false": False}.get(value.strip().lower())


def _give_up(
    reason: RetryReason,
    message: str,
    *,
    code: str | None = None,
    retry_after: float | None = None,
) -> RetryDecision:
    return RetryDecision(
        retry=False,
        delay=0.0,
        reason=reason,
        message=message,
        code=code,
        retry_after=retry_after,
    )
