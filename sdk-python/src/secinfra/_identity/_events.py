"""Rotation events, and the dispatcher that delivers them to subscribers.

Spec 9.8: an event is delivered after the change it reports is installed, to
every subscriber in the order of subscription; a subscriber that raises is
logged and does not stop delivery to the others, nor rotation itself.
Sources emit outside their own locks, so a subscriber may call the client.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from ._bundle import TrustBundle
from ._snapshot import X509Identity

__all__ = ["EventDispatcher", "RotationEvent", "RotationKind", "Subscriber"]

log = logging.getLogger("secinfra.identity")


class RotationKind(enum.StrEnum):
    """What changed."""

    ENROLLED = "enrolled"
    RENEWED = "renewed"
    BUNDLE_UPDATED = "bundle_updated"
    RENEWAL_FAILED = "renewal_failed"
    EXPIRED = "expired"


@dataclass(frozen=True)
class RotationEvent:
    """Passed to rotation subscribers."""

    kind: RotationKind
    identity: X509Identity | None
    bundle: TrustBundle
    error: Exception | None = None


Subscriber = Callable[[RotationEvent], None]


class EventDispatcher:
    """The subscribers of one identity source. Thread-safe."""

    def __init__(self) -> None:
        self._callbacks: list[Subscriber] = []
        self._lock = threading.Lock()

    def add(self, callback: Subscriber) -> None:
        """Deliver every later event to ``callback`` too."""
        with self._lock:
            self._callbacks.append(callback)

    def emit(self, event: RotationEvent) -> None:
        """Deliver ``event`` to every subscriber, in the calling thread."""
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback(event)
            except Exception:
                log.exception("secinfra: identity: a rotation subscriber failed")
