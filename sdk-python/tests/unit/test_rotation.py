"""Rotation timing: DESIGN.md "Client behaviour" -> Identity and rotation."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

import secinfra
from secinfra._runtime._rotation import (
    DEFAULT_BUNDLE_REFRESH,
    DEFAULT_ROTATION_POLICY,
    MAX_BUNDLE_REFRESH,
    MIN_BUNDLE_REFRESH,
    REENROL_RETRY,
    RENEWAL_EXPIRY_MARGIN,
    RENEWAL_FRACTION,
    RENEWAL_JITTER,
    RENEWAL_RETRY_MAX,
    bundle_refresh_time,
    bundle_retry_time,
    issued_at,
    reenrol_retry_time,
    renewal_retry_delay,
    renewal_time,
)

ISSUED = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
NOT_BEFORE = ISSUED - timedelta(seconds=60)  # DESIGN.md: NotBefore backdated 60 s
NOT_AFTER = ISSUED + timedelta(hours=1)  # default leaf TTL
LIFETIME = NOT_AFTER - NOT_BEFORE


class FixedRng(random.Random):
    """Draws the same fraction of every range: 0.0 is the bottom, 1.0 the top."""

    def __init__(self, fraction: float) -> None:
        super().__init__(0)
        self.fraction = fraction

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.fraction


# --- renewal time -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fraction", "at"),
    [
        pytest.param(0.0, 0.5, id="no-jitter-half-life"),
        pytest.param(0.5, 0.45, id="half-jitter"),
        pytest.param(1.0, 0.4, id="full-jitter-40-percent"),
    ],
)
def test_renewal_at_half_life_minus_jitter(fraction: float, at: float) -> None:
    assert renewal_time(NOT_BEFORE, NOT_AFTER, FixedRng(fraction)) == NOT_BEFORE + LIFETIME * at


def test_renewal_time_is_reproducible_with_a_seed() -> None:
    jitter = random.Random(7).uniform(0, RENEWAL_JITTER * LIFETIME.total_seconds())
    want = NOT_BEFORE + LIFETIME / 2 - timedelta(seconds=jitter)
    assert renewal_time(NOT_BEFORE, NOT_AFTER, random.Random(7)) == want


@pytest.mark.parametrize(
    "lifetime",
    [timedelta(seconds=4), timedelta(hours=1), timedelta(days=7)],
    ids=["test-mode-seconds", "default-hour", "admin-week"],
)
def test_renewal_time_always_between_40_and_50_percent(lifetime: timedelta) -> None:
    rng = random.Random(1234)
    for _ in range(2000):
        at = renewal_time(ISSUED, ISSUED + lifetime, rng)
        assert ISSUED + lifetime * 0.4 <= at <= ISSUED + lifetime * 0.5


def test_renewal_jitter_spreads_a_fleet() -> None:
    times = {renewal_time(NOT_BEFORE, NOT_AFTER, random.Random(seed)) for seed in range(100)}
    assert len(times) == 100


@pytest.mark.parametrize(
    ("not_before", "not_after", "match"),
    [
        pytest.param(NOT_AFTER, NOT_BEFORE, "after not_before", id="reversed"),
        pytest.param(NOT_BEFORE, NOT_BEFORE, "after not_before", id="zero-lifetime"),
        pytest.param(
            NOT_BEFORE.replace(tzinfo=None), NOT_AFTER, "timezone-aware", id="naive-not-before"
        ),
        pytest.param(
            NOT_BEFORE, NOT_AFTER.replace(tzinfo=None), "timezone-aware", id="naive-not-after"
        ),
    ],
)
def test_renewal_time_rejects_impossible_validity(
    not_before: datetime, not_after: datetime, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        renewal_time(not_before, not_after, random.Random(0))


# --- renewal retries --------------------------------------------------------------


@pytest.mark.parametrize(
    ("failures", "ceiling"),
    [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0), (50, 60.0)],
)
def test_renewal_retry_backoff_ceiling(failures: int, ceiling: float) -> None:
    now = ISSUED + timedelta(minutes=30)
    assert renewal_retry_delay(failures, FixedRng(1.0), now=now, not_after=NOT_AFTER) == ceiling
    assert renewal_retry_delay(failures, FixedRng(0.0), now=now, not_after=NOT_AFTER) == 0.0


def test_renewal_retry_delay_has_full_jitter() -> None:
    rng = random.Random(99)
    now = ISSUED + timedelta(minutes=30)
    delays = [renewal_retry_delay(7, rng, now=now, not_after=NOT_AFTER) for _ in range(2000)]
    assert all(0.0 <= d <= RENEWAL_RETRY_MAX for d in delays)
    assert min(delays) < 1.0
    assert max(delays) > RENEWAL_RETRY_MAX - 1.0


@pytest.mark.parametrize(
    ("left", "want"),
    [
        pytest.param(10.0, 10.0 - RENEWAL_EXPIRY_MARGIN, id="capped-before-expiry"),
        pytest.param(RENEWAL_EXPIRY_MARGIN, 0.0, id="at-the-margin"),
        pytest.param(0.5, 0.0, id="inside-the-margin"),
        pytest.param(-30.0, 0.0, id="already-expired"),
        pytest.param(3600.0, RENEWAL_RETRY_MAX, id="far-from-expiry"),
    ],
)
def test_renewal_retry_never_waits_past_expiry(left: float, want: float) -> None:
    now = NOT_AFTER - timedelta(seconds=left)
    assert renewal_retry_delay(20, FixedRng(1.0), now=now, not_after=NOT_AFTER) == want


def test_renewal_failures_count_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        renewal_retry_delay(0, random.Random(0), now=ISSUED, not_after=NOT_AFTER)


# --- trust bundle refresh ---------------------------------------------------------


@pytest.mark.parametrize(
    ("hint", "seconds"),
    [
        pytest.param(300, 300.0, id="hint"),
        pytest.param(2.5, 2.5, id="fractional-hint"),
        pytest.param(None, DEFAULT_BUNDLE_REFRESH, id="no-hint"),
        pytest.param(0, DEFAULT_BUNDLE_REFRESH, id="zero"),
        pytest.param(-5, DEFAULT_BUNDLE_REFRESH, id="negative"),
        pytest.param(float("nan"), DEFAULT_BUNDLE_REFRESH, id="nan"),
        pytest.param(float("inf"), DEFAULT_BUNDLE_REFRESH, id="inf"),
        pytest.param(0.01, MIN_BUNDLE_REFRESH, id="too-small"),
        pytest.param(10**9, MAX_BUNDLE_REFRESH, id="too-large"),
    ],
)
def test_bundle_refresh_time(hint: float | None, seconds: float) -> None:
    assert bundle_refresh_time(ISSUED, hint) == ISSUED + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("not_before_offset", "received_offset", "expected_offset"),
    [
        (-60, 0, 0),  # fresh: backdated 60 s, received now -> issued now
        (-60, 3600, 0),  # loaded from a file an hour later -> still issued at T
        (-10, 0, 0),  # clamped backdating (young CA): received time wins
    ],
)
def test_issued_at_undoes_the_backdating(
    not_before_offset: int, received_offset: int, expected_offset: int
) -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    got = issued_at(
        t + timedelta(seconds=not_before_offset), t + timedelta(seconds=received_offset)
    )
    assert got == t + timedelta(seconds=expected_offset)


def test_a_short_certificate_is_not_due_on_arrival() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    not_before, not_after = t - timedelta(seconds=60), t + timedelta(seconds=4)
    renew = renewal_time(issued_at(not_before, t), not_after, random.Random(1))
    assert t + timedelta(seconds=1.6) <= renew <= t + timedelta(seconds=2)


# --- the per-client rotation policy -----------------------------------------------


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        pytest.param({"renewal_fraction": 0.0}, "renewal_fraction", id="fraction-zero"),
        pytest.param({"renewal_fraction": 1.0}, "renewal_fraction", id="fraction-one"),
        pytest.param({"renewal_fraction": float("nan")}, "renewal_fraction", id="fraction-nan"),
        pytest.param({"renewal_jitter": -0.1}, "renewal_jitter", id="jitter-negative"),
        pytest.param({"renewal_jitter": 0.5}, "renewal_jitter", id="jitter-not-below-fraction"),
        pytest.param({"renewal_retry_base": -1.0}, "renewal_retry_base", id="base-negative"),
        pytest.param({"renewal_retry_max": float("inf")}, "renewal_retry_max", id="max-inf"),
        pytest.param({"renewal_expiry_margin": -1}, "renewal_expiry_margin", id="margin"),
        pytest.param({"reenrol_retry": 0.0}, "reenrol_retry", id="reenrol-zero"),
        pytest.param({"bundle_retry": -30.0}, "bundle_retry", id="bundle-retry-negative"),
        pytest.param({"bundle_refresh_default": 0}, "bundle_refresh_default", id="default"),
        pytest.param({"bundle_refresh_min": float("nan")}, "bundle_refresh_min", id="min-nan"),
        pytest.param({"bundle_refresh_max": float("inf")}, "bundle_refresh_max", id="max"),
        pytest.param(
            {"bundle_refresh_min": 10.0, "bundle_refresh_max": 5.0},
            "bundle_refresh_min",
            id="min-above-max",
        ),
    ],
)
def test_an_invalid_rotation_setting_is_refused_by_name(
    settings: dict[str, float], named: str
) -> None:
    with pytest.raises(ValueError, match=f"secinfra: rotation: {named} must"):
        secinfra.RotationPolicy(**settings)


def test_the_default_policy_is_the_spec_defaults() -> None:
    policy = secinfra.RotationPolicy()
    assert policy == DEFAULT_ROTATION_POLICY
    assert (policy.renewal_fraction, policy.renewal_jitter) == (RENEWAL_FRACTION, RENEWAL_JITTER)
    assert (policy.renewal_retry_base, policy.renewal_retry_max) == (1.0, 60.0)
    assert (policy.renewal_expiry_margin, policy.reenrol_retry, policy.bundle_retry) == (
        1.0,
        30.0,
        30.0,
    )
    assert (policy.bundle_refresh_min, policy.bundle_refresh_max) == (
        MIN_BUNDLE_REFRESH,
        MAX_BUNDLE_REFRESH,
    )
    assert policy.bundle_refresh_default == DEFAULT_BUNDLE_REFRESH


@pytest.mark.parametrize(
    ("fraction", "jitter", "draw", "at"),
    [
        pytest.param(0.8, 0.0, 1.0, 0.8, id="later-no-jitter"),
        pytest.param(0.8, 0.2, 1.0, 0.6, id="later-full-jitter"),
        pytest.param(0.3, 0.1, 0.5, 0.25, id="earlier-half-jitter"),
    ],
)
def test_renewal_time_follows_the_policy(
    fraction: float, jitter: float, draw: float, at: float
) -> None:
    policy = secinfra.RotationPolicy(renewal_fraction=fraction, renewal_jitter=jitter)
    got = renewal_time(NOT_BEFORE, NOT_AFTER, FixedRng(draw), policy)
    assert got == NOT_BEFORE + LIFETIME * at


@pytest.mark.parametrize(
    ("failures", "left", "want"),
    [
        pytest.param(1, 3600.0, 0.5, id="base"),
        pytest.param(3, 3600.0, 2.0, id="doubles"),
        pytest.param(9, 3600.0, 3.0, id="capped-at-max"),
        pytest.param(9, 7.0, 2.0, id="margin-before-expiry"),
    ],
)
def test_renewal_retry_delay_follows_the_policy(failures: int, left: float, want: float) -> None:
    policy = secinfra.RotationPolicy(
        renewal_retry_base=0.5, renewal_retry_max=3.0, renewal_expiry_margin=5.0
    )
    now = NOT_AFTER - timedelta(seconds=left)
    got = renewal_retry_delay(failures, FixedRng(1.0), now=now, not_after=NOT_AFTER, policy=policy)
    assert got == want


@pytest.mark.parametrize(
    ("hint", "seconds"),
    [
        pytest.param(300, 120.0, id="above-max"),
        pytest.param(2, 10.0, id="below-min"),
        pytest.param(60, 60.0, id="within"),
        pytest.param(None, 45.0, id="no-hint-default"),
    ],
)
def test_bundle_refresh_time_follows_the_policy(hint: float | None, seconds: float) -> None:
    policy = secinfra.RotationPolicy(
        bundle_refresh_min=10.0, bundle_refresh_max=120.0, bundle_refresh_default=45.0
    )
    assert bundle_refresh_time(ISSUED, hint, policy) == ISSUED + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("hint", "bundle_retry", "seconds"),
    [
        pytest.param(300, 30.0, 30.0, id="retry-shorter-than-refresh"),
        pytest.param(2, 30.0, 2.0, id="refresh-shorter-than-retry"),
        pytest.param(0.01, 30.0, MIN_BUNDLE_REFRESH, id="tiny-hint-clamped-first"),
        pytest.param(None, 30.0, 30.0, id="no-hint-default-refresh-then-retry"),
        pytest.param(300, 5.0, 5.0, id="configured-retry"),
    ],
)
def test_a_failed_bundle_fetch_is_retried_after_the_shorter_of_refresh_and_retry(
    hint: float | None, bundle_retry: float, seconds: float
) -> None:
    policy = secinfra.RotationPolicy(bundle_retry=bundle_retry)
    assert bundle_retry_time(ISSUED, hint, policy) == ISSUED + timedelta(seconds=seconds)


def test_reenrolment_is_retried_after_reenrol_retry() -> None:
    assert reenrol_retry_time(ISSUED) == ISSUED + timedelta(seconds=REENROL_RETRY)
    policy = secinfra.RotationPolicy(reenrol_retry=2.5)
    assert reenrol_retry_time(ISSUED, policy) == ISSUED + timedelta(seconds=2.5)


# --- the policy on a client -------------------------------------------------------

SERVER_ID = "spiffe://rotation.test/secinfra/server"
NO_CA = secinfra.TrustBundle(pem="", sequence=0, refresh_hint=300.0)


def test_a_client_keeps_the_rotation_policy_it_was_given() -> None:
    policy = secinfra.RotationPolicy(renewal_fraction=0.6)
    source = secinfra.StaticIdentity(NO_CA, server_id=SERVER_ID)
    with secinfra.Client("https://127.0.0.1:9", source, rotation_policy=policy) as client:
        assert client.rotation_policy is policy
    with secinfra.Client("https://127.0.0.1:9", source) as client:
        assert client.rotation_policy == DEFAULT_ROTATION_POLICY


def test_a_client_reports_its_rotating_sources_policy() -> None:
    policy = secinfra.RotationPolicy(bundle_retry=5.0)
    source = secinfra.RotatingIdentity(
        NO_CA, join_token="token", server_id=SERVER_ID, rotation_policy=policy
    )
    assert source.rotation_policy is policy
    with secinfra.Client("https://127.0.0.1:9", source) as client:
        assert client.rotation_policy is policy
    with secinfra.Client("https://127.0.0.1:9", source, rotation_policy=policy) as client:
        assert client.rotation_policy is policy


def test_a_client_refuses_a_policy_its_source_does_not_use() -> None:
    source = secinfra.RotatingIdentity(
        NO_CA,
        join_token="token",
        server_id=SERVER_ID,
        rotation_policy=secinfra.RotationPolicy(bundle_retry=5.0),
    )
    with pytest.raises(ValueError, match="rotation_policy differs"):
        secinfra.Client("https://127.0.0.1:9", source, rotation_policy=secinfra.RotationPolicy())
