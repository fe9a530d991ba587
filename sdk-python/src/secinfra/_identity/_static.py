"""An identity from fixed files or values, never renewed."""

from __future__ import annotations

from pathlib import Path

from .._runtime._clock import Clock, SystemClock
from ..errors import IdentityExpired
from ._bundle import TrustBundle, load_bundle, server_id_for
from ._events import EventDispatcher, Subscriber
from ._snapshot import X509Identity, parse_identity

__all__ = ["StaticIdentity"]


class StaticIdentity:
    """A fixed identity and bundle (files written by ``secinfra agent``, the admin
    identity, tests). It is never renewed: once it expires, calls fail with
    :class:`~secinfra.errors.IdentityExpired`."""

    def __init__(
        self,
        bundle: TrustBundle,
        identity: X509Identity | None = None,
        *,
        server_id: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._bundle = bundle
        self._identity = identity
        self._server_id = server_id or server_id_for(bundle)
        self._clock = clock or SystemClock()
        self._events = EventDispatcher()

    @classmethod
    def from_files(
        cls,
        *,
        bundle_file: str | Path,
        cert_file: str | Path | None = None,
        key_file: str | Path | None = None,
        server_id: str | None = None,
    ) -> StaticIdentity:
        """Load PEM files (the key stays in memory once read)."""
        bundle = load_bundle(Path(bundle_file).read_bytes())
        identity = None
        if cert_file is not None and key_file is not None:
            identity = parse_identity(
                Path(cert_file).read_bytes(),
                Path(key_file).read_bytes(),
                received_at=SystemClock().now(),
            )
        return cls(bundle, identity, server_id=server_id)

    @property
    def server_id(self) -> str:
        return self._server_id

    def identity(self) -> X509Identity | None:
        return self._identity

    def bundle(self) -> TrustBundle:
        return self._bundle

    def ensure_identity(self, timeout: float | None = None) -> X509Identity:
        identity = self._identity  # never waits: a static identity cannot re-enrol
        if identity is None:
            raise IdentityExpired("secinfra: identity: this client has no identity; enrol first")
        if self._clock.now() >= identity.not_after:
            raise IdentityExpired(
                f"secinfra: identity: the certificate for {identity.spiffe_id} expired at"
                f" {identity.not_after.isoformat()} and a static identity cannot renew"
            )
        return identity

    def refresh_bundle(self) -> bool:
        return False

    def subscribe(self, callback: Subscriber) -> None:
        self._events.add(callback)
