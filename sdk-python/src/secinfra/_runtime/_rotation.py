"""When to renew the client certificate and refresh the trust bundle.

Pure timing, no I/O: the identity source asks these functions when to act
and schedules itself on a `Clock`. Randomness comes from an injected
`random.Random`, so a seeded one makes every schedule reproducible.

- **Renewal** starts when half the certificate's lifetime has passed, minus a
  random jitter of up to 10 % of the lifetime, so that a fleet of workloads
  issued at the same moment does not renew at the same moment.
- **Failed renewals** are retried with exponential backoff and full jitter,
  never later than shortly before the certificate expires (renewal is
  authenticated by the current certificate, so it must still be valid).
- **The trust bundle** is refetched after its ``spiffe_refresh_hint``,
  clamped to a sane range.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta

from ._retry import backoff_ceiling, full_jitter

__all__ = [
    "DEFAULT_BUNDLE_REFRESH",
    "MAX_BUNDLE_REFRESH",
    "MIN_BUNDLE_REFRESH",
    "NOT_BEFORE_BACKDATE",
    "RENEWAL_EXPIRY_MARGIN",
    "RENEWAL_JITTER_FRACTION",
    "RENEWAL_LIFETIME_FRACTION",
    "RENEWAL_RETRY_BASE",
    "RENEWAL_RETRY_MAX",
    "bundle_refresh_time",
    "issued_at",
    "renewal_retry_delay",
    "renewal_time",
]

RENEWAL_LIFETIME_FRACTION = 0.5
"""Renew once this fraction of the lifetime has passed (before jitter)."""

#: How far the server backdates NotBefore for clock skew (DESIGN.md).
NOT_BEFORE_BACKDATE = timedelta(seconds=60)
RENEWAL_JITTER_FRACTION = 0.10
"""Renew up to this fraction of the lifetime earlier, at random."""

RENEWAL_RETRY_BASE = 1.0
"""Seconds: backoff ceiling after the first failed renewal; doubles per failure."""

RENEWAL_RETRY_MAX = 60.0
"""Seconds: the backoff ceiling between renewal attempts never grows past this."""

RENEWAL_EXPIRY_MARGIN = 1.0
"""Seconds: the last renewal attempt starts at least this long before expiry."""

DEFAULT_BUNDLE_REFRESH = 300.0
"""Seconds between bundle fetches when the bundle gives no usable refresh hint."""

MIN_BUNDLE_REFRESH = 1.0
"""Seconds: a smaller refresh hint is raised to this (a hint of 0 must not spin)."""

MAX_BUNDLE_REFRESH = 86_400.0
"""Seconds: a larger refresh hint is lowered to this (a day)."""


def issued_at(not_before: datetime, received_at: datetime) -> datetime:
    """When a certificate was issued: the start of its lifetime for renewal.

    The server backdates NotBefore by `NOT_BEFORE_BACKDATE` for clock skew, so
    NotBefore itself is too early: measured from it, a certificate of a few
    seconds would be past half-life the moment it arrives. A certificate just
    received was issued about when it arrived; one loaded later (from a file)
    was issued at NotBefore plus the backdating.
    """
    return min(received_at, not_before + NOT_BEFORE_BACKDATE)


def renewal_time(issued: datetime, not_after: datetime, rng: random.Random) -> datetime:
    """When to renew a certificate issued at ``issued`` (see `issued_at`) that
    expires at ``not_after``.

    ``issued + lifetime / 2 - jitter``, ``jitter`` drawn uniformly from
    ``[0, 10 % of lifetime]``: always between 40 % and 50 % of the lifetime.
    Both times must be timezone-aware, ``not_after`` after ``issued``.
    """
    lifetime = _lifetime(issued, not_after)
    jitter = rng.uniform(0.0, RENEWAL_JITTER_FRACTION * lifetime)
    return issued + timedelta(seconds=RENEWAL_LIFETIME_FRACTION * lifetime - jitter)


def renewal_retry_delay(
    failures: int, rng: random.Random, *, now: datetime, not_after: datetime
) -> float:
    """Seconds to wait before retrying a renewal that failed ``failures`` times in a row.

    Full jitter over ``min(RENEWAL_RETRY_MAX, RENEWAL_RETRY_BASE * 2**(failures-1))``,
    but never so long that the next attempt would start later than
    `RENEWAL_EXPIRY_MARGIN` before ``not_after``. Returns 0.0 when that point
    has passed: the caller then tries once more or, past ``not_after``,
    re-enrols or reports the identity as expired.
    """
    if failures < 1:
        raise ValueError("secinfra: identity: renewal failures are counted from 1")
    ceiling = backoff_ceiling(failures, base=RENEWAL_RETRY_BASE, cap=RENEWAL_RETRY_MAX)
    delay = full_jitter(ceiling, rng)
    latest = (not_after - now).total_seconds() - RENEWAL_EXPIRY_MARGIN
    return max(0.0, min(delay, latest))


def bundle_refresh_time(fetched_at: datetime, refresh_hint_seconds: float | None) -> datetime:
    """When to refetch a trust bundle fetched at ``fetched_at``.

    After ``refresh_hint_seconds`` (the bundle's ``spiffe_refresh_hint``),
    clamped to [`MIN_BUNDLE_REFRESH`, `MAX_BUNDLE_REFRESH`];
    `DEFAULT_BUNDLE_REFRESH` when the hint is missing, not positive or not a
    finite number.
    """
    hint = refresh_hint_seconds
    if hint is None or not 0.0 < hint < math.inf:
        seconds = DEFAULT_BUNDLE_REFRESH
    else:
        seconds = min(max(hint, MIN_BUNDLE_REFRESH), MAX_BUNDLE_REFRESH)
    return fetched_at + timedelta(seconds=seconds)


def _lifetime(not_before: datetime, not_after: datetime) -> float:
    for name, moment in (("not_before", not_before), ("not_after", not_after)):
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"secinfra: identity: {name} must be timezone-aware")
    lifetime = (not_after - not_before).total_seconds()
    if lifetime <= 0:
        raise ValueError("secinfra: identity: certificate not_after must be after not_before")
    return lifetime
