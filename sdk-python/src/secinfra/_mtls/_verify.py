"""The X509-SVID rules on a peer's leaf certificate, then the authorizer.

OpenSSL has already verified the peer's chain to the trust bundle during
the handshake (with the bundle current when the handshake began).
`verify_peer` then applies what OpenSSL does not know about: exactly one
URI SAN holding a valid SPIFFE ID, a leaf that is not a CA (no cA flag, no
keyCertSign or cRLSign), an ID of the bundle's trust domain, validity at
``now``, and the authorizer. A resumed TLS 1.2 session skipped chain
verification, so for one the leaf must also be signed by a CA of the
bundle current *now* (a CA retired since the session began is refused).
"""

from __future__ import annotations

import ssl
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .._identity._bundle import TrustBundle, chains_to_bundle
from ._authorize import Authorizer
from ._spiffe_id import SpiffeId

__all__ = ["PeerRefused", "verify_peer"]


class PeerRefused(ssl.SSLCertVerificationError):
    """The peer's certificate verified, but a SPIFFE rule or the authorizer refused it.

    A subclass of :class:`ssl.SSLCertVerificationError`, so every TLS stack
    (``ssl`` sockets, asyncio, urllib3) treats it as the failed handshake it
    is. ``rule`` names the rule that failed (``x509-svid``, ``expired``,
    ``trust-domain``, ``chain``, ``authorizer``), ``peer_id`` the peer's
    SPIFFE ID when it had a valid one.
    """

    def __init__(self, message: str, *, rule: str, peer_id: SpiffeId | None) -> None:
        super().__init__(message)
        self.rule = rule
        self.peer_id = peer_id
        self.verify_message = message

    def __str__(self) -> str:
        return self.verify_message


def verify_peer(
    der: bytes | None,
    *,
    bundle: TrustBundle,
    trust_domain: str,
    authorizer: Authorizer,
    now: datetime,
    resumed: bool,
) -> SpiffeId:
    """The peer's SPIFFE ID if its leaf ``der`` passes every rule, else PeerRefused."""
    if der is None:
        raise PeerRefused(
            "secinfra: mtls: the peer presented no certificate", rule="x509-svid", peer_id=None
        )
    leaf = x509.load_der_x509_certificate(der)
    peer = _spiffe_id_of(leaf)
    _require_not_a_ca(leaf, peer)
    if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        raise PeerRefused(
            f"secinfra: mtls: refused {peer}: the certificate is not valid now"
            f" (valid {leaf.not_valid_before_utc.isoformat()}"
            f" to {leaf.not_valid_after_utc.isoformat()})",
            rule="expired",
            peer_id=peer,
        )
    if peer.trust_domain != trust_domain:
        raise PeerRefused(
            f"secinfra: mtls: refused {peer}: not of the trust domain {trust_domain}",
            rule="trust-domain",
            peer_id=peer,
        )
    if resumed and not chains_to_bundle(leaf.public_bytes(serialization.Encoding.PEM), bundle, now):
        raise PeerRefused(
            f"secinfra: mtls: refused {peer}: the resumed session's certificate is not signed"
            " by a CA of the current trust bundle",
            rule="chain",
            peer_id=peer,
        )
    try:
        allowed = authorizer.allows(peer)
    except Exception as exc:
        raise PeerRefused(
            f"secinfra: mtls: refused {peer}: the authorizer failed ({type(exc).__name__})",
            rule="authorizer",
            peer_id=peer,
        ) from exc
    if not allowed:
        raise PeerRefused(
            f"secinfra: mtls: refused {peer}: not authorized (expected {authorizer.expects})",
            rule="authorizer",
            peer_id=peer,
        )
    return peer


def _spiffe_id_of(leaf: x509.Certificate) -> SpiffeId:
    """The one SPIFFE ID of an X509-SVID leaf."""
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    if len(uris) != 1:
        raise PeerRefused(
            f"secinfra: mtls: refused the peer: its certificate has {len(uris)} URI SANs,"
            " an X509-SVID has exactly one",
            rule="x509-svid",
            peer_id=None,
        )
    try:
        return SpiffeId.parse(uris[0])
    except ValueError as exc:
        raise PeerRefused(
            f"secinfra: mtls: refused the peer: its URI SAN is not a valid SPIFFE ID ({exc})",
            rule="x509-svid",
            peer_id=None,
        ) from exc


def _require_not_a_ca(leaf: x509.Certificate, peer: SpiffeId) -> None:
    """An X509-SVID leaf has cA=false and may not sign certificates or CRLs."""
    try:
        is_ca = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        signs = usage.key_cert_sign or usage.crl_sign
    except x509.ExtensionNotFound:
        signs = False
    if is_ca or signs:
        raise PeerRefused(
            f"secinfra: mtls: refused {peer}: its leaf certificate is a CA"
            " (an X509-SVID leaf has cA=false, no keyCertSign or cRLSign)",
            rule="x509-svid",
            peer_id=peer,
        )
