"""Retry policy: DESIGN.md "Client behaviour" -> Retries, rule by rule."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from secinfra._runtime._budget import RetryBudget
from secinfra._runtime._retry import (
    BASE_BACKOFF,
    DEFAULT_ATTEMPT_TIMEOUT,
    DEFAULT_DEADLINE,
    MAX_ATTEMPTS,
    MAX_BACKOFF,
    MAX_RETRY_AFTER,
    AttemptFailure,
    AttemptOutcome,
    AttemptResponse,
    Idempotency,
    RetryDecision,
    RetryPolicy,
    RetryReason,
    backoff_ceiling,
    decide_retry,
    full_jitter,
    parse_retry_after,
)

NOW = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)

READ_ONLY = Idempotency.READ_ONLY
IDEMPOTENT = Idempotency.IDEMPOTENT
NON_IDEMPOTENT = Idempotency.NON_IDEMPOTENT


class CeilingRng(random.Random):
    """Always draws the top of the range, so a jittered delay equals its ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


def decide(
    outcome: AttemptOutcome,
    idempotency: Idempotency | str = READ_ONLY,
    *,
    key: bool = False,
    attempt: int = 1,
    remaining: float = DEFAULT_DEADLINE,
    policy: RetryPolicy | None = None,
    rng: random.Random | None = None,
    budget: RetryBudget | None = None,
) -> RetryDecision:
    return decide_retry(
        outcome,
        idempotency=idempotency,
        has_idempotency_key=key,
        attempt=attempt,
        remaining=remaining,
        now=NOW,
        rng=rng or CeilingRng(),
        policy=policy,
        budget=budget,
    )


def status(code: int, **headers: str) -> AttemptResponse:
    return AttemptResponse(code, {k.replace("_", "-"): v for k, v in headers.items()})


# --- defaults ---------------------------------------------------------------------


def test_defaults_match_design() -> None:
    assert (MAX_ATTEMPTS, BASE_BACKOFF, MAX_BACKOFF) == (4, 0.1, 5.0)
    assert (MAX_RETRY_AFTER, DEFAULT_DEADLINE, DEFAULT_ATTEMPT_TIMEOUT) == (60.0, 30.0, 10.0)
    policy = RetryPolicy()
    assert policy.max_attempts == MAX_ATTEMPTS
    assert policy.deadline == DEFAULT_DEADLINE
    assert policy.attempt_timeout == DEFAULT_ATTEMPT_TIMEOUT


# --- statuses x idempotency -------------------------------------------------------

# status: (read_only, idempotent, non_idempotent) -> retried?
STATUS_TABLE = {
    400: (False, False, False),
    401: (False, False, False),
    403: (False, False, False),
    404: (False, False, False),
    405: (False, False, False),
    408: (True, True, True),
    409: (False, False, False),
    412: (False, False, False),
    413: (False, False, False),
    422: (False, False, False),
    429: (True, True, True),
    500: (True, True, False),
    501: (False, False, False),
    502: (True, True, True),
    503: (True, True, True),
    504: (True, True, True),
    505: (False, False, False),
}


@pytest.mark.parametrize(
    ("code", "idempotency", "want"),
    [
        pytest.param(code, kind, want, id=f"{code}-{kind}")
        for code, wants in STATUS_TABLE.items()
        for kind, want in zip((READ_ONLY, IDEMPOTENT, NON_IDEMPOTENT), wants, strict=True)
    ],
)
def test_status_retryability(code: int, idempotency: Idempotency, want: bool) -> None:
    decision = decide(status(code), idempotency, key=idempotency is NON_IDEMPOTENT)
    assert decision.retry is want
    if want:
        assert decision.reason is RetryReason.RETRYABLE
        assert decision.delay == backoff_ceiling(1)
    else:
        assert decision.reason is RetryReason.NOT_RETRYABLE
        assert decision.delay == 0.0
        assert decision.code is None


def test_idempotency_key_does_not_make_500_retryable() -> None:
    decision = decide(status(500), NON_IDEMPOTENT, key=True)
    assert not decision.retry
    assert "read-only and idempotent" in decision.message


@pytest.mark.parametrize("code", [200, 201, 204, 304])
def test_non_error_status_is_never_retried(code: int) -> None:
    decision = decide(status(code, Secinfra_Should_Retry="true"))
    assert (decision.retry, decision.reason) == (False, RetryReason.NO_ERROR)


@pytest.mark.parametrize("idempotency", ["read_only", "idempotent", "non_idempotent"])
def test_idempotency_may_be_given_as_its_string_value(idempotency: str) -> None:
    assert decide(status(500), idempotency).retry is (idempotency != "non_idempotent")


# --- Secinfra-Should-Retry --------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "idempotency", "want_retry", "want_reason"),
    [
        pytest.param(
            status(400, Secinfra_Should_Retry="true"),
            NON_IDEMPOTENT,
            True,
            RetryReason.RETRYABLE,
            id="true-makes-400-retryable",
        ),
        pytest.param(
            status(501, Secinfra_Should_Retry="true"),
            READ_ONLY,
            True,
            RetryReason.RETRYABLE,
            id="true-makes-501-retryable",
        ),
        pytest.param(
            status(500, Secinfra_Should_Retry="true"),
            NON_IDEMPOTENT,
            True,
            RetryReason.RETRYABLE,
            id="true-makes-500-retryable-for-non-idempotent",
        ),
        pytest.param(
            status(503, Secinfra_Should_Retry="false"),
            READ_ONLY,
            False,
            RetryReason.SERVER_SAID_NO,
            id="false-stops-503",
        ),
        pytest.param(
            status(429, Secinfra_Should_Retry="false", Retry_After="1"),
            READ_ONLY,
            False,
            RetryReason.SERVER_SAID_NO,
            id="false-stops-429-with-retry-after",
        ),
        pytest.param(
            AttemptResponse(503, {"secinfra-should-retry": " FALSE "}),
            READ_ONLY,
            False,
            RetryReason.SERVER_SAID_NO,
            id="header-name-and-value-case-insensitive",
        ),
        pytest.param(
            status(404, Secinfra_Should_Retry="maybe"),
            READ_ONLY,
            False,
            RetryReason.NOT_RETRYABLE,
            id="other-value-ignored-404",
        ),
        pytest.param(
            status(503, Secinfra_Should_Retry="1"),
            READ_ONLY,
            True,
            RetryReason.RETRYABLE,
            id="other-value-ignored-503",
        ),
    ],
)
def test_should_retry_header_overrides_status_decision(
    outcome: AttemptResponse,
    idempotency: Idempotency,
    want_retry: bool,
    want_reason: RetryReason,
) -> None:
    decision = decide(outcome, idempotency)
    assert (decision.retry, decision.reason) == (want_retry, want_reason)


def test_should_retry_true_does_not_lift_attempt_limit() -> None:
    decision = decide(status(400, Secinfra_Should_Retry="true"), attempt=MAX_ATTEMPTS)
    assert decision.reason is RetryReason.ATTEMPTS_EXHAUSTED


# --- Retry-After ------------------------------------------------------------------


def http_date(seconds_from_now: float) -> str:
    return format_datetime(NOW + timedelta(seconds=seconds_from_now), usegmt=True)


@pytest.mark.parametrize(
    ("value", "want"),
    [
        pytest.param("0", 0.0, id="zero"),
        pytest.param("120", 120.0, id="delta-seconds"),
        pytest.param("  7 ", 7.0, id="whitespace"),
        pytest.param(http_date(3), 3.0, id="imf-fixdate"),
        pytest.param(http_date(-30), 0.0, id="date-in-the-past-means-now"),
        pytest.param("Tuesday, 01-Jan-30 12:00:09 GMT", 9.0, id="rfc850-date"),
        pytest.param("Tue Jan  1 12:00:04 2030", 4.0, id="asctime-date"),
        pytest.param("9" * 400, float("inf"), id="absurdly-long-is-infinite"),
        pytest.param("-5", None, id="negative"),
        pytest.param("1.5", None, id="fraction"),
        pytest.param("+5", None, id="sign"),
        pytest.param("", None, id="empty"),
        pytest.param("soon", None, id="garbage"),
        pytest.param("5 seconds", None, id="trailing-garbage"),
        pytest.param("Xyz, 99 Foo 2030 99:99:99 GMT", None, id="garbage-date"),
    ],
)
def test_parse_retry_after(value: str, want: float | None) -> None:
    assert parse_retry_after(value, NOW) == want


@pytest.mark.parametrize(
    ("outcome", "remaining", "want"),
    [
        pytest.param(
            status(503, Retry_After="2"),
            30.0,
            (True, RetryReason.RETRYABLE, 2.0, None, 2.0),
            id="delta-replaces-jitter",
        ),
        pytest.param(
            status(429, Retry_After=http_date(3)),
            30.0,
            (True, RetryReason.RETRYABLE, 3.0, None, 3.0),
            id="http-date-replaces-jitter",
        ),
        pytest.param(
            status(429, Retry_After="60"),
            100.0,
            (True, RetryReason.RETRYABLE, 60.0, None, 60.0),
            id="at-cap-waits",
        ),
        pytest.param(
            status(429, Retry_After="61"),
            100.0,
            (False, RetryReason.RETRY_AFTER_TOO_LONG, 0.0, "rate_limited", 61.0),
            id="429-over-cap-rate-limited",
        ),
        pytest.param(
            status(503, Retry_After="61"),
            100.0,
            (False, RetryReason.RETRY_AFTER_TOO_LONG, 0.0, "unavailable", 61.0),
            id="503-over-cap-unavailable",
        ),
        pytest.param(
            status(502, Retry_After=http_date(3600)),
            100.0,
            (False, RetryReason.RETRY_AFTER_TOO_LONG, 0.0, "unavailable", 3600.0),
            id="502-date-over-cap-unavailable",
        ),
        pytest.param(
            status(429, Retry_After="20"),
            10.0,
            (False, RetryReason.RETRY_AFTER_PAST_DEADLINE, 0.0, "rate_limited", 20.0),
            id="429-past-deadline-rate-limited",
        ),
        pytest.param(
            status(503, Retry_After="10"),
            10.0,
            (False, RetryReason.RETRY_AFTER_PAST_DEADLINE, 0.0, "unavailable", 10.0),
            id="503-exactly-at-deadline-unavailable",
        ),
        pytest.param(
            status(503, Retry_After="soon"),
            30.0,
            (True, RetryReason.RETRYABLE, backoff_ceiling(1), None, None),
            id="invalid-falls-back-to-jitter",
        ),
        pytest.param(
            status(404, Retry_After="1"),
            30.0,
            (False, RetryReason.NOT_RETRYABLE, 0.0, None, 1.0),
            id="not-retried-on-non-retryable-status-but-exposed",
        ),
        pytest.param(
            status(503, Retry_After="2", Secinfra_Should_Retry="false"),
            30.0,
            (False, RetryReason.SERVER_SAID_NO, 0.0, None, 2.0),
            id="not-retried-when-server-says-no-but-exposed",
        ),
        pytest.param(
            status(400, Retry_After="1", Secinfra_Should_Retry="true"),
            30.0,
            (True, RetryReason.RETRYABLE, 1.0, None, 1.0),
            id="honoured-when-server-asks-for-retry",
        ),
        pytest.param(
            AttemptResponse(503, {"retry-after": "4"}),
            30.0,
            (True, RetryReason.RETRYABLE, 4.0, None, 4.0),
            id="header-name-case-insensitive",
        ),
    ],
)
def test_retry_after(
    outcome: AttemptResponse,
    remaining: float,
    want: tuple[bool, RetryReason, float, str | None, float | None],
) -> None:
    d = decide(outcome, remaining=remaining)
    assert (d.retry, d.reason, d.delay, d.code, d.retry_after) == want


def test_retry_after_cap_is_configurable() -> None:
    policy = RetryPolicy(max_retry_after=120.0, deadline=200.0)
    decision = decide(status(503, Retry_After="90"), remaining=150.0, policy=policy)
    assert (decision.retry, decision.delay) == (True, 90.0)


def test_retry_after_is_exposed_when_attempts_are_exhausted() -> None:
    decision = decide(status(429, Retry_After="5"), attempt=MAX_ATTEMPTS)
    assert (decision.reason, decision.retry_after) == (RetryReason.ATTEMPTS_EXHAUSTED, 5.0)


# --- attempts ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "max_attempts", "want_retry"),
    [
        pytest.param(1, 4, True, id="first-of-4"),
        pytest.param(3, 4, True, id="third-of-4"),
        pytest.param(4, 4, False, id="fourth-of-4"),
        pytest.param(9, 4, False, id="past-the-limit"),
        pytest.param(1, 1, False, id="retries-off"),
        pytest.param(9, 10, True, id="raised-limit"),
    ],
)
def test_attempt_limit(attempt: int, max_attempts: int, want_retry: bool) -> None:
    policy = RetryPolicy(max_attempts=max_attempts, deadline=1000.0)
    decision = decide(status(503), attempt=attempt, remaining=1000.0, policy=policy)
    assert decision.retry is want_retry
    if not want_retry:
        assert decision.reason is RetryReason.ATTEMPTS_EXHAUSTED
        assert f"{attempt} of {max_attempts}" in decision.message


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        decide(status(503), attempt=0)


@pytest.mark.parametrize(("attempt", "ceiling"), [(1, 0.1), (2, 0.2), (3, 0.4)])
def test_delay_before_each_retry_is_its_backoff_ceiling_at_most(
    attempt: int, ceiling: float
) -> None:
    assert decide(status(503), attempt=attempt).delay == pytest.approx(ceiling)


# --- connection failures and timeouts --------------------------------------------


@pytest.mark.parametrize(
    ("failure", "idempotency", "key", "want_retry"),
    [
        pytest.param(AttemptFailure(sent=False), NON_IDEMPOTENT, False, True, id="unsent-always"),
        pytest.param(AttemptFailure(sent=False), READ_ONLY, False, True, id="unsent-read-only"),
        pytest.param(AttemptFailure(sent=True), READ_ONLY, False, True, id="sent-read-only"),
        pytest.param(AttemptFailure(sent=True), IDEMPOTENT, False, True, id="sent-idempotent"),
        pytest.param(AttemptFailure(sent=True), NON_IDEMPOTENT, True, True, id="sent-with-key"),
        pytest.param(AttemptFailure(sent=True), NON_IDEMPOTENT, False, False, id="sent-unsafe"),
        pytest.param(
            AttemptFailure(sent=False, timeout=True),
            NON_IDEMPOTENT,
            False,
            True,
            id="connect-timeout-always",
        ),
        pytest.param(
            AttemptFailure(sent=True, timeout=True), IDEMPOTENT, False, True, id="read-timeout"
        ),
        pytest.param(
            AttemptFailure(sent=True, timeout=True),
            NON_IDEMPOTENT,
            True,
            True,
            id="read-timeout-with-key",
        ),
        pytest.param(
            AttemptFailure(sent=True, timeout=True),
            NON_IDEMPOTENT,
            False,
            False,
            id="read-timeout-unsafe",
        ),
    ],
)
def test_connection_failures(
    failure: AttemptFailure, idempotency: Idempotency, key: bool, want_retry: bool
) -> None:
    decision = decide(failure, idempotency, key=key)
    assert decision.retry is want_retry
    if want_retry:
        assert decision.delay == backoff_ceiling(1)
    else:
        assert decision.reason is RetryReason.UNSAFE_TO_RESEND
        assert "Idempotency-Key" in decision.message


def test_connection_failures_obey_the_attempt_limit() -> None:
    decision = decide(AttemptFailure(sent=False), attempt=MAX_ATTEMPTS)
    assert decision.reason is RetryReason.ATTEMPTS_EXHAUSTED
    assert "connection failure before sending" in decision.message


# --- deadline ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("remaining", "attempt", "want_retry"),
    [
        pytest.param(0.0, 1, False, id="no-time-left"),
        pytest.param(-1.0, 1, False, id="past-the-deadline"),
        pytest.param(0.1, 1, False, id="delay-equals-time-left"),
        pytest.param(0.3, 3, False, id="delay-0.4-exceeds-0.3-left"),
        pytest.param(0.41, 3, True, id="delay-0.4-fits-0.41-left"),
    ],
)
def test_never_sleeps_past_the_deadline(remaining: float, attempt: int, want_retry: bool) -> None:
    decision = decide(status(503), attempt=attempt, remaining=remaining)
    assert decision.retry is want_retry
    if not want_retry:
        assert decision.reason is RetryReason.DEADLINE_EXCEEDED
        assert decision.code is None
        assert "deadline" in decision.message


def test_deadline_beats_a_zero_retry_after() -> None:
    decision = decide(status(503, Retry_After="0"), remaining=0.0)
    assert decision.reason is RetryReason.DEADLINE_EXCEEDED


# --- budget -----------------------------------------------------------------------


def test_retry_is_paid_from_the_budget() -> None:
    budget = RetryBudget(capacity=100)
    decision = decide(status(503), budget=budget)
    assert (decision.retry, decision.cost, budget.tokens) == (True, 5, 95)


def test_retry_after_a_timeout_costs_double() -> None:
    budget = RetryBudget(capacity=100)
    decision = decide(AttemptFailure(sent=True, timeout=True), budget=budget)
    assert (decision.retry, decision.cost, budget.tokens) == (True, 10, 90)


def test_empty_budget_stops_retries_without_spending() -> None:
    budget = RetryBudget(capacity=9)
    assert decide(AttemptFailure(sent=False, timeout=True), budget=budget).reason is (
        RetryReason.BUDGET_EXHAUSTED
    )
    assert budget.tokens == 9
    assert decide(status(503), budget=budget).retry
    assert budget.tokens == 4


@pytest.mark.parametrize(
    "outcome",
    [status(404), status(503, Retry_After="120"), AttemptFailure(sent=True)],
    ids=["not-retryable", "retry-after-too-long", "unsafe"],
)
def test_give_ups_spend_nothing(outcome: AttemptOutcome) -> None:
    budget = RetryBudget(capacity=100)
    decision = decide(outcome, NON_IDEMPOTENT, budget=budget)
    assert (decision.retry, decision.cost, budget.tokens) == (False, 0, 100)


# --- backoff and jitter -----------------------------------------------------------


@pytest.mark.parametrize(
    ("retry", "ceiling"),
    [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.6), (6, 3.2), (7, 5.0), (8, 5.0), (10_000, 5.0)],
)
def test_backoff_ceiling(retry: int, ceiling: float) -> None:
    assert backoff_ceiling(retry) == pytest.approx(ceiling)


def test_backoff_ceiling_takes_base_and_cap() -> None:
    assert backoff_ceiling(3, base=1.0, cap=60.0) == 4.0
    assert backoff_ceiling(8, base=1.0, cap=60.0) == 60.0


def test_backoff_ceiling_counts_retries_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        backoff_ceiling(0)


@pytest.mark.parametrize("ceiling", [0.0, 0.1, 0.8, 5.0])
def test_full_jitter_stays_within_zero_and_ceiling(ceiling: float) -> None:
    rng = random.Random(20300101)
    draws = [full_jitter(ceiling, rng) for _ in range(5000)]
    assert all(0.0 <= d <= ceiling for d in draws)
    if ceiling:  # and uses the whole range, not a fixed fraction of it
        assert min(draws) < 0.01 * ceiling
        assert max(draws) > 0.99 * ceiling


def test_jittered_delays_are_reproducible_with_a_seed() -> None:
    delays = [
        decide(status(503), attempt=n, rng=random.Random(42)).delay for n in range(1, MAX_ATTEMPTS)
    ]
    expected = [full_jitter(backoff_ceiling(n), random.Random(42)) for n in range(1, MAX_ATTEMPTS)]
    assert delays == expected
    assert all(0.0 <= d <= backoff_ceiling(n) for n, d in enumerate(delays, start=1))


# --- policy -----------------------------------------------------------------------


@dataclass(frozen=True)
class Overrides:
    """The shape of CallOptions as far as retries are concerned."""

    max_attempts: int | None = None
    deadline: float | None = None
    attempt_timeout: float | None = None
    base_backoff: float | None = None
    max_backoff: float | None = None
    max_retry_after: float | None = None


@pytest.mark.parametrize(
    ("overrides", "want"),
    [
        pytest.param(None, RetryPolicy(max_attempts=6, deadline=12.0), id="none-keeps-all"),
        pytest.param(Overrides(), RetryPolicy(max_attempts=6, deadline=12.0), id="all-none"),
        pytest.param(
            Overrides(deadline=3.0),
            RetryPolicy(max_attempts=6, deadline=3.0),
            id="per-call-deadline-wins",
        ),
        pytest.param(
            Overrides(max_attempts=1, attempt_timeout=0.5),
            RetryPolicy(max_attempts=1, deadline=12.0, attempt_timeout=0.5),
            id="per-call-attempts-and-timeout-win",
        ),
    ],
)
def test_per_call_options_are_laid_over_client_defaults(
    overrides: Overrides | None, want: RetryPolicy
) -> None:
    client = RetryPolicy(max_attempts=6, deadline=12.0)
    assert client.merged(overrides) == want


@pytest.mark.parametrize(
    "settings",
    [
        {"max_attempts": 0},
        {"deadline": 0.0},
        {"attempt_timeout": -1.0},
        {"base_backoff": float("nan")},
        {"max_backoff": float("inf")},
        {"max_retry_after": -1.0},
    ],
    ids=str,
)
def test_policy_rejects_invalid_settings(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="secinfra: retry: "):
        RetryPolicy(**settings)  # type: ignore[arg-type]


def test_merged_validates_overrides() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy().merged(Overrides(max_attempts=0))


def test_every_retry_default_can_be_overridden_per_call() -> None:
    from secinfra._rpc import CallOptions

    client = RetryPolicy(max_attempts=6, base_backoff=0.2, max_backoff=3.0, max_retry_after=30.0)
    options = CallOptions(base_backoff=0.0, max_backoff=0.5, max_retry_after=2.0)
    assert client.merged(options) == RetryPolicy(
        max_attempts=6, base_backoff=0.0, max_backoff=0.5, max_retry_after=2.0
    )
    # Unset per-call values keep the client's.
    assert client.merged(CallOptions()) == client


def test_per_call_max_retry_after_decides_retry_after() -> None:
    from secinfra._rpc import CallOptions

    policy = RetryPolicy().merged(CallOptions(max_retry_after=1.0))
    decision = decide_retry(
        AttemptResponse(503, {"Retry-After": "2"}),
        idempotency=Idempotency.READ_ONLY,
        has_idempotency_key=False,
        attempt=1,
        remaining=20.0,
        now=datetime(2030, 1, 1, tzinfo=UTC),
        rng=random.Random(1),
        policy=policy,
    )
    assert not decision.retry
    assert decision.reason is RetryReason.RETRY_AFTER_TOO_LONG


def test_per_call_backoff_shapes_the_wait() -> None:
    from secinfra._rpc import CallOptions

    policy = RetryPolicy().merged(CallOptions(base_backoff=0.0))
    decision = decide_retry(
        AttemptResponse(503, {}),
        idempotency=Idempotency.READ_ONLY,
        has_idempotency_key=False,
        attempt=1,
        remaining=20.0,
        now=datetime(2030, 1, 1, tzinfo=UTC),
        rng=random.Random(1),
        policy=policy,
    )
    assert decision.retry
    assert decision.delay == 0.0
    capped = RetryPolicy().merged(CallOptions(base_backoff=10.0, max_backoff=0.25))
    for attempt in (1, 2, 3):
        delay = decide_retry(
            AttemptResponse(503, {}),
            idempotency=Idempotency.READ_ONLY,
            has_idempotency_key=False,
            attempt=attempt,
            remaining=20.0,
            now=datetime(2030, 1, 1, tzinfo=UTC),
            rng=random.Random(attempt),
            policy=capped,
        ).delay
        assert 0.0 <= delay <= 0.25


def test_older_three_field_overrides_still_merge() -> None:
    @dataclass(frozen=True)
    class Old:
        max_attempts: int | None = 2
        deadline: float | None = None
        attempt_timeout: float | None = None

    assert RetryPolicy().merged(Old()) == RetryPolicy(max_attempts=2)  # type: ignore[arg-type]


def test_call_options_stay_keyword_only_with_none_defaults() -> None:
    from secinfra._rpc import CallOptions

    options = CallOptions()
    assert all(getattr(options, f) is None for f in options.__slots__)
    with pytest.raises(TypeError):
        CallOptions(1.0)  # type: ignore[misc]


@pytest.mark.parametrize(
    "settings",
    [
        {"max_attempts": 0},
        {"deadline": 0.0},
        {"attempt_timeout": float("inf")},
        {"base_backoff": -0.1},
        {"max_backoff": float("nan")},
        {"max_retry_after": -1.0},
    ],
    ids=str,
)
def test_call_options_reject_invalid_settings_when_given(settings: dict[str, float]) -> None:
    from secinfra._rpc import CallOptions

    name = next(iter(settings))
    with pytest.raises(ValueError, match=f"secinfra: call options: {name}"):
        CallOptions(**settings)  # type: ignore[arg-type]
