"""When to renew the client certificate and refresh the trust bundle.

Pure timing, no I/O: the identity source asks these functions when to act
and schedules itself on a `Clock`. Randomness comes from an injected
`random.Random`, so a seeded one makes every schedule reproducible. Every
setting is a field of `RotationPolicy` (one per client, spec 1.7), with the
spec's default as a named constant.

- **Renewal** starts when ``renewal_fraction`` (half) of the certificate's
  lifetime has passed, minus a random jitter of up to ``renewal_jitter``
  (10 %) of the lifetime, so that a fleet of workloads issued at the same
  moment does not renew at the same moment (spec 9.2).
- **Failed renewals** are retried with exponential backoff and full jitter,
  never later than ``renewal_expiry_margin`` before the certificate expires
  (renewal is authenticated by the current certificate, so it must still be
  valid; 9.4).
- **Re-enrolment** after expiry, with a reusable attestation, is retried
  every ``reenrol_retry`` (9.7.5).
- **The trust bundle** is refetched after its ``spiffe_refresh_hint``,
  clamped to [``bundle_refresh_min``, ``bundle_refresh_max``]; a failed fetch
  is retried after ``min(refresh, bundle_retry)`` (10.2).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from ._retry import backoff_ceiling, full_jitter

__all__ = [
    "BUNDLE_RETRY",
    "DEFAULT_BUNDLE_REFRESH",
    "DEFAULT_ROTATION_POLICY",
    "MAX_BUNDLE_REFRESH",
    "MIN_BUNDLE_REFRESH",
    "NOT_BEFORE_BACKDATE",
    "REENROL_RETRY",
    "RENEWAL_EXPIRY_MARGIN",
    "RENEWAL_FRACTION",
    "RENEWAL_JITTER",
    "RENEWAL_RETRY_BASE",
    "RENEWAL_RETRY_MAX",
    "RotationPolicy",
    "bundle_refresh_time",
    "bundle_retry_time",
    "issued_at",
    "reenrol_retry_time",
    "renewal_retry_delay",
    "renewal_time",
]

RENEWAL_FRACTION = 0.5
"""Renew once this fraction of the lifetime has passed (before jitter)."""

RENEWAL_JITTER = 0.10
"""Renew up to this fraction of the lifetime earlier, at random."""

#: How far the server backdates NotBefore for clock skew (DESIGN.md).
NOT_BEFORE_BACKDATE = timedelta(seconds=60)

RENEWAL_RETRY_BASE = 1.0
"""Seconds: backoff ceiling after the first failed renewal; doubles per failure."""

RENEWAL_RETRY_MAX = 60.0
"""Seconds: the backoff ceiling between renewal attempts never grows past this."""

RENEWAL_EXPIRY_MARGIN = 1.0
"""Seconds: the last renewal attempt starts at least this long before expiry."""

REENROL_RETRY = 30.0
"""Seconds between re-enrolment attempts after expiry (reusable attestations only)."""

BUNDLE_RETRY = 30.0
"""Seconds before a failed bundle fetch is tried again (or the refresh, if shorter)."""

DEFAULT_BUNDLE_REFRESH = 300.0
"""Seconds between bundle fetches when the bundle gives no usable refresh hint."""

MIN_BUNDLE_REFRESH = 1.0
"""Seconds: a smaller refresh hint is raised to this (a hint of 0 must not spin)."""

MAX_BUNDLE_REFRESH = 86_400.0
"""Seconds: a larger refresh hint is lowered to this (a day)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RotationPolicy:
    """A client's rotation settings (spec 9 and 10), per client only. Times in seconds.

    Every field defaults to the spec's value; an invalid one is refused here,
    when the policy is made, with an error naming it (spec 1.4.4)::

        policy = secinfra.RotationPolicy(renewal_fraction=0.6, bundle_retry=10)
        client = secinfra.Client.enrol(url, join_token=token, bundle_file=path,
                                       rotation_policy=policy)
    """

    renewal_fraction: float = RENEWAL_FRACTION
    """Renew at this fraction of the lifetime, before jitter (0 < f < 1)."""
    renewal_jitter: float = RENEWAL_JITTER
    """Minus up to this fraction of the lifetime, drawn uniformly (0 <= j < f)."""
    renewal_retry_base: float = RENEWAL_RETRY_BASE
    """The backoff ceiling after the first failed renewal; it doubles per failure."""
    renewal_retry_max: float = RENEWAL_RETRY_MAX
    """The backoff ceiling after failed renewals never grows past this."""
    renewal_expiry_margin: float = RENEWAL_EXPIRY_MARGIN
    """The next renewal attempt is scheduled no later than this before NotAfter."""
    reenrol_retry: float = REENROL_RETRY
    """After expiry, re-enrolment is tried again this often (reusable attestations)."""
    bundle_retry: float = BUNDLE_RETRY
    """A failed bundle fetch is tried again after this (or the refresh, if shorter)."""
    bundle_refresh_default: float = DEFAULT_BUNDLE_REFRESH
    """The refresh interval when the bundle has no usable refresh hint."""
    bundle_refresh_min: float = MIN_BUNDLE_REFRESH
    """The smallest refresh interval (a smaller hint is raised to it)."""
    bundle_refresh_max: float = MAX_BUNDLE_REFRESH
    """The largest refresh interval (a larger hint is lowered to it)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.renewal_fraction < 1.0:
            raise ValueError("secinfra: rotation: renewal_fraction must be a number in (0, 1)")
        if not 0.0 <= self.renewal_jitter < self.renewal_fraction:
            raise ValueError(
                "secinfra: rotation: renewal_jitter must be a number in [0, renewal_fraction)"
            )
        for name in ("renewal_retry_base", "renewal_retry_max", "renewal_expiry_margin"):
            if not 0.0 <= getattr(self, name) < math.inf:
                raise ValueError(f"secinfra: rotation: {name} must be a finite number >= 0")
        for name in (
            "reenrol_retry",
            "bundle_retry",
            "bundle_refresh_default",
            "bundle_refresh_min",
            "bundle_refresh_max",
        ):
            if not 0.0 < getattr(self, name) < math.inf:
                raise ValueError(f"secinfra: rotation: {name} must be a finite number > 0")
        if self.bundle_refresh_min > self.bundle_refresh_max:
            raise ValueError(
                "secinfra: rotation: bundle_refresh_min must not be more than bundle_refresh_max"
            )


DEFAULT_ROTATION_POLICY = RotationPolicy()
"""The policy of every default above."""


def issued_at(not_before: datetime, received_at: datetime) -> datetime:
    """When a certificate was issued: the start of its lifetime for renewal.

    The server backdates NotBefore by `NOT_BEFORE_BACKDATE` for clock skew, so
    NotBefore itself is too early: measured from it, a certificate of a few
    seconds would be past half-life the moment it arrives. A certificate just
    received was issued about when it arrived; one loaded later (from a file)
    was issued at NotBefore plus the backdating.
    """
    return min(received_at, not_before + NOT_BEFORE_BACKDATE)


def renewal_time(
    issued: datetime,
    not_after: datetime,
    rng: random.Random,
    policy: RotationPolicy = DEFAULT_ROTATION_POLICY,
) -> datetime:
    """When to renew a certificate issued at ``issued`` (see `issued_at`) that
    expires at ``not_after``.

    ``issued + renewal_fraction * lifetime - jitter``, ``jitter`` drawn
    uniformly from ``[0, renewal_jitter * lifetime]``: by default always
    between 40 % and 50 % of the lifetime. Both times must be timezone-aware,
    ``not_after`` after ``issued``.
    """
    lifetime = _lifetime(issued, not_after)
    jitter = rng.uniform(0.0, policy.renewal_jitter * lifetime)
    return issued + timedelta(seconds=policy.renewal_fraction * lifetime - jitter)


def renewal_retry_delay(
    failures: int,
    rng: random.Random,
    *,
    now: datetime,
    not_after: datetime,
    policy: RotationPolicy = DEFAULT_ROTATION_POLICY,
) -> float:
    """Seconds to wait before retrying a renewal that failed ``failures`` times in a row.

    Full jitter over ``min(renewal_retry_max, renewal_retry_base * 2**(failures-1))``,
    but never so long that the next attempt would start later than
    ``renewal_expiry_margin`` before ``not_after``. Returns 0.0 when that point
    has passed: the caller then tries once more or, past ``not_after``,
    re-enrols or reports the identity as expired.
    """
    if failures < 1:
        raise ValueError("secinfra: identity: renewal failures are counted from 1")
    ceiling = backoff_ceiling(
        failures, base=policy.renewal_retry_base, cap=policy.renewal_retry_max
    )
    delay = full_jitter(ceiling, rng)
    latest = (not_after - now).total_seconds() - policy.renewal_expiry_margin
    return max(0.0, min(delay, latest))


def reenrol_retry_time(
    failed_at: datetime, policy: RotationPolicy = DEFAULT_ROTATION_POLICY
) -> datetime:
    """When to try re-enrolling again after an attempt that failed at ``failed_at``."""
    return failed_at + timedelta(seconds=policy.reenrol_retry)


def bundle_refresh_time(
    fetched_at: datetime,
    refresh_hint_seconds: float | None,
    policy: RotationPolicy = DEFAULT_ROTATION_POLICY,
) -> datetime:
    """When to refetch a trust bundle fetched at ``fetched_at``.

    After ``refresh_hint_seconds`` (the bundle's ``spiffe_refresh_hint``),
    clamped to [``bundle_refresh_min``, ``bundle_refresh_max``];
    ``bundle_refresh_default`` when the hint is missing, not positive or not a
    finite number.
    """
    return fetched_at + timedelta(seconds=_refresh_seconds(refresh_hint_seconds, policy))


def bundle_retry_time(
    failed_at: datetime,
    refresh_hint_seconds: float | None,
    policy: RotationPolicy = DEFAULT_ROTATION_POLICY,
) -> datetime:
    """When to try again after a bundle fetch that failed at ``failed_at``, while
    holding a bundle with ``refresh_hint_seconds``: ``min(refresh, bundle_retry)``,
    ``refresh`` being what `bundle_refresh_time` would wait (spec 10.2.3)."""
    seconds = min(_refresh_seconds(refresh_hint_seconds, policy), policy.bundle_retry)
    return failed_at + timedelta(seconds=seconds)


def _refresh_seconds(hint: float | None, policy: RotationPolicy) -> float:
    if hint is None or not 0.0 < hint < math.inf:
        return policy.bundle_refresh_default
    return min(max(hint, policy.bundle_refresh_min), policy.bundle_refresh_max)


def _lifetime(not_before: datetime, not_after: datetime) -> float:
    for name, moment in (("not_before", not_before), ("not_after", not_after)):
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"secinfra: identity: {name} must be timezone-aware")
    lifetime = (not_after - not_before).total_seconds()
    if lifetime <= 0:
        raise ValueError("secinfra: identity: certificate not_after must be after not_before")
    return lifetime
