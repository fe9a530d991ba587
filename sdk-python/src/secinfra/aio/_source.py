"""What the asyncio transport needs from an identity: the async `IdentitySource`.

The same interface as ``secinfra.IdentitySource`` except that waiting for an
identity and refreshing the bundle are coroutines (they may send a request).
`StaticIdentity` adapts the sync static identity (files kept by someone
else); `snapshot_source` gives any async source the sync view that
``secinfra.mtls`` contexts ask on every handshake.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from .._identity._bundle import TrustBundle
from .._identity._events import Subscriber
from .._identity._snapshot import X509Identity
from .._identity._source import IdentitySource as SyncIdentitySource
from .._identity._static import StaticIdentity as SyncStaticIdentity
from ..errors import IdentityExpired

__all__ = ["AsyncIdentitySource", "StaticIdentity", "snapshot_source"]


class AsyncIdentitySource(Protocol):
    """Where the asyncio transport gets its identity and trust."""

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

    async def ensure_identity(self, timeout: float | None = None) -> X509Identity:
        """A currently valid identity: re-enrol if possible, else IdentityExpired.

        Waits at most ``timeout`` seconds (None: as long as it takes) for a
        re-enrolment, then raises `TimeoutError` (spec 5.1.2, 9.7.2).
        """
        ...

    async def refresh_bundle(self) -> bool:
        """Fetch the trust bundle now (after a TLS verification failure);
        True if it changed."""
        ...

    def subscribe(self, callback: Subscriber) -> None:
        """Call ``callback`` after every rotation event."""
        ...


class _Delegate:
    """The snapshot, bundle and events of the source it wraps."""

    _inner: SyncIdentitySource | AsyncIdentitySource

    @property
    def server_id(self) -> str:
        return self._inner.server_id

    def identity(self) -> X509Identity | None:
        return self._inner.identity()

    def bundle(self) -> TrustBundle:
        return self._inner.bundle()

    def subscribe(self, callback: Subscriber) -> None:
        self._inner.subscribe(callback)


class StaticIdentity(_Delegate):
    """A fixed identity and bundle for the asyncio client: never renewed.

    ``secinfra.StaticIdentity`` behind the async interface (it never waits
    and has no bundle to refetch).
    """

    def __init__(self, static: SyncStaticIdentity) -> None:
        self._static = self._inner = static

    @classmethod
    def from_files(
        cls,
        *,
        bundle_file: str | Path,
        cert_file: str | Path,
        key_file: str | Path,
        server_id: str | None = None,
    ) -> StaticIdentity:
        """As ``secinfra.StaticIdentity.from_files``."""
        return cls(
            SyncStaticIdentity.from_files(
                bundle_file=bundle_file, cert_file=cert_file, key_file=key_file, server_id=server_id
            )
        )

    async def ensure_identity(self, timeout: float | None = None) -> X509Identity:
        return self._static.ensure_identity(timeout)

    async def refresh_bundle(self) -> bool:
        return self._static.refresh_bundle()


class _SnapshotView(_Delegate):
    """An async source seen synchronously: its current snapshot, never a wait."""

    def __init__(self, source: AsyncIdentitySource) -> None:
        self._source = self._inner = source

    def ensure_identity(self, timeout: float | None = None) -> X509Identity:
        identity = self._source.identity()
        if identity is None:
            raise IdentityExpired("secinfra: identity: this client has no identity; enrol first")
        # The async source renews (and re-enrols) in its own task; a handshake
        # cannot wait for it, so an expired snapshot is refused here.
        if datetime.now(UTC) >= identity.not_after:
            raise IdentityExpired(
                f"secinfra: identity: the certificate for {identity.spiffe_id} expired at"
                f" {identity.not_after.isoformat()}; the client has not re-enrolled yet"
            )
        return identity

    def refresh_bundle(self) -> bool:
        return False  # the async source refreshes on its own schedule


def snapshot_source(source: AsyncIdentitySource) -> SyncIdentitySource:
    """A sync view of ``source`` for ``secinfra.mtls`` contexts: each handshake
    gets the current snapshot and bundle, so rotation still needs no reload."""
    return _SnapshotView(source)
