"""A py-spiffe ``X509Source`` look-alike fed by a secinfra identity source.

py-spiffe's TLS helpers (``spiffetls``) read ``svid``, ``bundles`` and
``subscribe_for_updates`` from a Workload API ``X509Source``; this class
offers the same, with every value parsed by py-spiffe from our PEM (so
py-spiffe's own X509-SVID rules run on our certificates).
"""

from __future__ import annotations

from collections.abc import Callable

from spiffe import SpiffeId, TrustDomain, X509Bundle, X509Svid

from secinfra import IdentitySource, RotationEvent


class PySpiffeSource:
    """``svid`` and ``bundles`` of a secinfra source, as py-spiffe types."""

    def __init__(self, source: IdentitySource) -> None:
        self._source = source
        self._trust_domain = SpiffeId(source.server_id).trust_domain

    @property
    def svid(self) -> X509Svid:
        identity = self._source.ensure_identity()
        return X509Svid.parse(identity.chain_pem, identity.key_pem)

    @property
    def bundles(self) -> frozenset[X509Bundle]:
        return frozenset([self.bundle()])

    def bundle(self) -> X509Bundle:
        return X509Bundle.parse(self._trust_domain, self._source.bundle().pem.encode())

    def get_bundle_for_trust_domain(self, trust_domain: TrustDomain) -> X509Bundle | None:
        return self.bundle() if trust_domain == self._trust_domain else None

    def subscribe_for_updates(self, callback: Callable[[], None]) -> None:
        def relay(_event: RotationEvent) -> None:
            callback()

        self._source.subscribe(relay)
