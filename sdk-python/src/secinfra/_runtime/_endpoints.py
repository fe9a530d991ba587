"""The client's endpoints: which one an attempt goes to (spec 12).

`EndpointSet` holds the endpoint order (the list rotated to start at the home
endpoint, chosen at random unless ``endpoint_order="listed"``), and per
endpoint its endpoint failures in a row and when its cooldown ends. An
attempt goes to the first endpoint of the order that is not cooling down, or,
when all are, to the one whose last failure is the oldest (12.3). Which
outcomes are endpoint failures is :func:`is_endpoint_failure` (12.4.1).

Whether there is another attempt at all stays the retry rules' decision
(``_retry.decide_retry``): a move to another endpoint is an ordinary retry.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from ._clock import Clock, SystemClock

__all__ = [
    "ENDPOINT_COOLDOWN",
    "ENDPOINT_COOLDOWN_MAX",
    "ENDPOINT_ORDERS",
    "EndpointSet",
    "EndpointState",
    "is_endpoint_failure",
]

#: Cooldown after an endpoint's first endpoint failure in a row, seconds (12.4.2).
ENDPOINT_COOLDOWN: Final = 1.0
#: The longest cooldown, seconds (12.4.2).
ENDPOINT_COOLDOWN_MAX: Final = 30.0
#: The home endpoint is chosen at random (default) or is the first URL (12.2.2).
ORDER_RANDOM: Final = "random"
ORDER_LISTED: Final = "listed"
ENDPOINT_ORDERS: Final = (ORDER_RANDOM, ORDER_LISTED)
#: Statuses that are endpoint failures (12.4.1); a failure without an answer is one too.
FAILURE_STATUSES: Final = frozenset({502, 503, 504})


def is_endpoint_failure(status: int | None) -> bool:
    """Whether an attempt that got ``status`` (None: no answer at all) is an
    endpoint failure. A verification failure is never one (12.6.1): callers
    do not record it."""
    return status is None or status in FAILURE_STATUSES


@dataclass(frozen=True, slots=True)
class EndpointState:
    """One endpoint as the client sees it now (spec 12.8.4)."""

    url: str
    """The URL as configured (a trailing ``/`` removed)."""
    failures: int
    """Endpoint failures in a row (0 after any other outcome)."""
    cooling_until: float | None
    """Monotonic time its cooldown ends, or None when it is not cooling down."""


class _Endpoint:
    __slots__ = ("failed_at", "failures", "until", "url")

    def __init__(self, url: str) -> None:
        self.url = url
        self.failures = 0
        self.until = -math.inf
        self.failed_at = -math.inf


def _validate(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise ValueError(
            f"secinfra: client: endpoints: every URL must be https:// (mTLS), got {url!r}"
        )
    if not parts.hostname:
        raise ValueError(f"secinfra: client: endpoints: {url!r} names no host")
    if parts.username is not None or parts.password is not None:
        # Never echo it: the user-info may hold a password.
        raise ValueError(
            "secinfra: client: endpoints: a URL must not carry user-info (user:password@);"
            " the client authenticates by its certificate"
        )
    return url.rstrip("/")


class EndpointSet:
    """The endpoints of one client and their cooldowns. Thread-safe."""

    def __init__(
        self,
        urls: str | Sequence[str],
        *,
        order: str = ORDER_RANDOM,
        cooldown: float = ENDPOINT_COOLDOWN,
        cooldown_max: float = ENDPOINT_COOLDOWN_MAX,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        given = [urls] if isinstance(urls, str) else list(urls)
        if not given:
            raise ValueError("secinfra: client: endpoints: give at least one URL")
        cleaned = [_validate(url) for url in given]
        if len(set(cleaned)) != len(cleaned):
            repeated = sorted({u for u in cleaned if cleaned.count(u) > 1})
            raise ValueError(f"secinfra: client: endpoints: listed twice: {repeated}")
        if order not in ENDPOINT_ORDERS:
            raise ValueError(
                f"secinfra: client: endpoint_order must be one of {ENDPOINT_ORDERS}, got {order!r}"
            )
        durations = (("endpoint_cooldown", cooldown), ("endpoint_cooldown_max", cooldown_max))
        for name, value in durations:
            if not math.isfinite(value) or value <= 0:
                raise ValueError(
                    f"secinfra: client: {name} must be a finite number of seconds above 0,"
                    f" got {value!r}"
                )
        if cooldown_max < cooldown:
            raise ValueError(
                "secinfra: client: endpoint_cooldown_max must be at least endpoint_cooldown"
                f" ({cooldown_max!r} < {cooldown!r})"
            )
        home = 0
        if order == ORDER_RANDOM and len(cleaned) > 1:
            home = (rng if rng is not None else random.SystemRandom()).randrange(len(cleaned))
        self._endpoints = [_Endpoint(url) for url in cleaned[home:] + cleaned[:home]]
        self._cooldown = cooldown
        self._cooldown_max = cooldown_max
        self._clock = clock if clock is not None else SystemClock()
        self._lock = threading.Lock()

    @property
    def urls(self) -> tuple[str, ...]:
        """The endpoint order: the home endpoint first (12.2.1)."""
        return tuple(e.url for e in self._endpoints)

    @property
    def home(self) -> str:
        """The home endpoint."""
        return self._endpoints[0].url

    def choose(self) -> str:
        """The endpoint of the next attempt (12.3.1, 12.3.2)."""
        now = self._clock.monotonic()
        with self._lock:
            for endpoint in self._endpoints:
                if endpoint.until <= now:
                    return endpoint.url
            # All cooling down: the oldest last failure (min keeps the first on ties).
            return min(self._endpoints, key=lambda e: e.failed_at).url

    def record(self, url: str, *, failed: bool) -> None:
        """Record an attempt's outcome at ``url``: an endpoint failure or not (12.4)."""
        now = self._clock.monotonic()
        with self._lock:
            endpoint = next(e for e in self._endpoints if e.url == url)
            if not failed:
                endpoint.failures = 0
                endpoint.until = -math.inf
                return
            endpoint.failures += 1
            wait = min(self._cooldown_max, self._cooldown * 2.0 ** min(endpoint.failures - 1, 64))
            endpoint.failed_at = now
            endpoint.until = now + wait

    def states(self) -> tuple[EndpointState, ...]:
        """Every endpoint's state now, in endpoint order (12.8.4)."""
        now = self._clock.monotonic()
        with self._lock:
            return tuple(
                EndpointState(e.url, e.failures, e.until if e.until > now else None)
                for e in self._endpoints
            )
