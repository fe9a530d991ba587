"""What the transport needs from an identity: the small interface every
identity implementation provides (static files, enrolment with rotation, tests)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class X509Identity:
    """One X509-SVID and its private key, always taken together (a snapshot)."""

    spiffe_id: str
    chain_pem: bytes
    key_pem: bytes = field(repr=False)
    serial: str
    not_before: datetime
    not_after: datetime
    issued_at: datetime
    """Start of the lifetime for renewal (NotBefore is backdated 60 s)."""


@dataclass(frozen=True)
class TrustBundle:
    """The CAs the client trusts, from the server's SPIFFE bundle."""

    pem: str
    sequence: int
    refresh_hint: float
    etag: str | None = None


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

    def ensure_identity(self) -> X509Identity:
        """A currently valid identity: re-enrol if possible, else IdentityExpired."""
        ...

    def refresh_bundle(self) -> bool:
        """Fetch the trust bundle now (after a TLS verification failure);
        True if it changed."""
        ...

    def subscribe(self, callback: Subscriber) -> None:
        """Call ``callback`` after every rotation event."""
        ...
