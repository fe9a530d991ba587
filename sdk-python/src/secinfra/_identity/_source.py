"""What the transport needs from an identity: the small interface every
identity implementation provides (static files, enrolment with rotation, tests)."""

from __future__ import annotations

from typing import Protocol

from ._bundle import TrustBundle
from ._events import Subscriber
from ._snapshot import X509Identity

__all__ = ["IdentitySource"]


class IdentitySource(Protocol):
    """Where the transport gets its identity and trust, asked on every connection."""

    @property
    def server_id(self) -> str:
        """The SPIFFE ID the server must present."""
        ...

    def identity(self) -> X509Identity | None:
        """The current snapshot, or None for an anonymous client."""
        ...

    def bundle(self) -> TrustBundle:
        """The current trust bundle."""
        ...

    def ensure_identity(self, timeout: float | None = None) -> X509Identity:
        """A currently valid identity: re-enrol if possible, else IdentityExpired.

        Waits at most ``timeout`` seconds (None: as long as it takes) for a
        re-enrolment, then raises `TimeoutError` (spec 5.1.2, 9.7.2).
        """
        ...

    def refresh_bundle(self) -> bool:
        """Fetch the trust bundle now (after a TLS verification failure);
        True if it changed."""
        ...

    def subscribe(self, callback: Subscriber) -> None:
        """Call ``callback`` after every rotation event."""
        ...
