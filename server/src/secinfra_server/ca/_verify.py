"""Per-request verification of client X509-SVIDs, and the revocation deny-list.

Build an :class:`SvidVerifier` once from the trusted CA certificates (the bundle's
CAs) and call :meth:`SvidVerifier.verify` on every request: it indexes the CAs by
subject key identifier so a request costs one dictionary lookup and one signature
check. Chains are exactly ``leaf -> root``: this CA issues no intermediates.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from ._authority import trust_domain_of_ca
from ._errors import (
    CertificateExpired,
    CertificateNotYetValid,
    CertificateRevoked,
    InvalidArgument,
    InvalidBundle,
    NotAnSvid,
    UntrustedCertificate,
)
from ._spiffeid import SpiffeId
from ._time import require_aware


def describe(certificate: x509.Certificate) -> str:
    """``serial 0x...``: how error messages name a certificate."""
    return f"serial {certificate.serial_number:#x}"


@dataclass(frozen=True)
class RevocationList:
    """The deny-list: revoked serial numbers and revoked SPIFFE IDs."""

    serials: frozenset[int] = frozenset()
    spiffe_ids: frozenset[SpiffeId] = frozenset()

    @classmethod
    def of(
        cls,
        serials: Iterable[int] = (),
        spiffe_ids: Iterable[SpiffeId | str] = (),
    ) -> RevocationList:
        return cls(
            frozenset(serials),
            frozenset(s if isinstance(s, SpiffeId) else SpiffeId.parse(s) for s in spiffe_ids),
        )

    def is_revoked(self, certificate: x509.Certificate, spiffe_id: SpiffeId | None = None) -> bool:
        """True if the certificate's serial, or its SPIFFE ID, is on the list."""
        if certificate.serial_number in self.serials:
            return True
        if not self.spiffe_ids:
            return False
        if spiffe_id is None:
            try:
                spiffe_id = svid_spiffe_id(certificate)
            except NotAnSvid:
                return False
        return spiffe_id in self.spiffe_ids

    def check(self, certificate: x509.Certificate, spiffe_id: SpiffeId | None = None) -> None:
        """Raise CertificateRevoked if :meth:`is_revoked`."""
        if self.is_revoked(certificate, spiffe_id):
            raise CertificateRevoked(f"certificate {describe(certificate)} is revoked")


def svid_spiffe_id(certificate: x509.Certificate) -> SpiffeId:
    """The SPIFFE ID of a leaf X509-SVID; NotAnSvid if it is not one.

    A leaf SVID has basicConstraints cA=false, keyUsage with digitalSignature and
    without keyCertSign/cRLSign, and exactly one URI SAN holding a SPIFFE ID with
    a path.
    """
    name = describe(certificate)
    extensions = certificate.extensions
    try:
        basic = extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        raise NotAnSvid(f"certificate {name} has no basicConstraints") from None
    if basic.ca:
        raise NotAnSvid(f"certificate {name} is a CA certificate, not a leaf")
    try:
        usage = extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise NotAnSvid(f"certificate {name} has no keyUsage") from None
    if not usage.digital_signature or usage.key_cert_sign or usage.crl_sign:
        raise NotAnSvid(
            f"certificate {name} key usage must be digitalSignature without keyCertSign or cRLSign"
        )
    try:
        san = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise NotAnSvid(f"certificate {name} has no URI SAN") from None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1:
        raise NotAnSvid(f"certificate {name} must have exactly one URI SAN, has {len(uris)}")
    try:
        spiffe_id = SpiffeId.parse(uris[0])
    except InvalidArgument as exc:
        raise NotAnSvid(f"certificate {name} URI SAN is not a SPIFFE ID") from exc
    if spiffe_id.is_trust_domain_id:
        raise NotAnSvid(f"certificate {name} SPIFFE ID has no path")
    return spiffe_id


@dataclass(frozen=True)
class _Anchor:
    certificate: x509.Certificate
    trust_domain: str


#: Verified chains a verifier remembers (cleared when full; cheap to rebuild).
MAX_CACHED_CHAINS = 4096


class SvidVerifier:
    """Verifies client X509-SVIDs against a fixed set of trusted CA certificates.

    Its trusted set is fixed; build a new one when it changes (CA rotation).
    """

    def __init__(self, trusted_cas: Iterable[x509.Certificate]) -> None:
        # Leaves whose shape and signature already checked out against this
        # trusted set. Immutable set => the cache can never outlive a trust
        # change (a new verifier is built); validity and revocation are still
        # checked on every call. Only successes are cached.
        self._chains: dict[x509.Certificate, tuple[SpiffeId, _Anchor]] = {}
        self._by_key_id: dict[bytes, list[_Anchor]] = {}
        self._by_subject: dict[x509.Name, list[_Anchor]] = {}
        count = 0
        for certificate in trusted_cas:
            anchor = _anchor(certificate)
            try:
                key_id = certificate.extensions.get_extension_for_class(
                    x509.SubjectKeyIdentifier
                ).value.digest
                self._by_key_id.setdefault(key_id, []).append(anchor)
            except x509.ExtensionNotFound:
                pass
            self._by_subject.setdefault(certificate.subject, []).append(anchor)
            count += 1
        if not count:
            raise InvalidBundle("no trusted CA certificates given")

    def verify(
        self,
        leaf: x509.Certificate,
        *,
        now: datetime,
        revoked: RevocationList | None = None,
    ) -> SpiffeId:
        """Return the leaf's SPIFFE ID, or raise a CertificateRejected subclass.

        Checks, in order: the leaf is an X509-SVID (NotAnSvid); it is signed by a
        trusted CA whose trust domain matches (UntrustedCertificate); leaf and CA
        are valid at ``now`` (CertificateNotYetValid / CertificateExpired); and, if
        ``revoked`` is given, neither serial nor SPIFFE ID is on it
        (CertificateRevoked).
        """
        now = require_aware(now)
        chained = self._chains.get(leaf)
        if chained is None:
            spiffe_id = svid_spiffe_id(leaf)
            anchor = self._issuer_of(leaf)
            if anchor.trust_domain != spiffe_id.trust_domain:
                raise UntrustedCertificate(
                    f"certificate {describe(leaf)} names trust domain "
                    f"{spiffe_id.trust_domain}, its CA is for {anchor.trust_domain}"
                )
            if len(self._chains) >= MAX_CACHED_CHAINS:
                self._chains.clear()
            self._chains[leaf] = (spiffe_id, anchor)
        else:
            spiffe_id, anchor = chained
        _check_validity(leaf, now, "certificate")
        _check_validity(anchor.certificate, now, "issuing CA")
        if revoked is not None:
            revoked.check(leaf, spiffe_id)
        return spiffe_id

    def _issuer_of(self, leaf: x509.Certificate) -> _Anchor:
        candidates: list[_Anchor] | None = None
        try:
            aki = leaf.extensions.get_extension_for_class(
                x509.AuthorityKeyIdentifier
            ).value.key_identifier
        except x509.ExtensionNotFound:
            aki = None
        if aki is not None:
            candidates = self._by_key_id.get(aki)
        if candidates is None:
            candidates = self._by_subject.get(leaf.issuer, [])
        for anchor in candidates:
            try:
                leaf.verify_directly_issued_by(anchor.certificate)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return anchor
        raise UntrustedCertificate(f"certificate {describe(leaf)} does not chain to a trusted CA")


def verify_svid_chain(
    leaf: x509.Certificate,
    trusted_cas: SvidVerifier | Iterable[x509.Certificate],
    now: datetime,
) -> SpiffeId:
    """Verify ``leaf`` against ``trusted_cas`` at ``now``; return its SPIFFE ID.

    Pass a prebuilt :class:`SvidVerifier` on hot paths; a plain iterable of CA
    certificates builds one per call. Revocation is the caller's job (see
    :class:`RevocationList` and ``SvidVerifier.verify(revoked=...)``).
    """
    verifier = trusted_cas if isinstance(trusted_cas, SvidVerifier) else SvidVerifier(trusted_cas)
    return verifier.verify(leaf, now=now)


def _anchor(certificate: x509.Certificate) -> _Anchor:
    try:
        basic = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        basic = None
    if basic is None or not basic.ca:
        raise InvalidBundle(f"trusted certificate {describe(certificate)} is not a CA")
    trust_domain = trust_domain_of_ca(certificate)
    if trust_domain is None:
        raise InvalidBundle(f"trusted CA {describe(certificate)} has no spiffe://<td> URI SAN")
    return _Anchor(certificate, trust_domain)


def _check_validity(certificate: x509.Certificate, now: datetime, what: str) -> None:
    if now < certificate.not_valid_before_utc:
        raise CertificateNotYetValid(
            f"{what} {describe(certificate)} is not valid before "
            f"{certificate.not_valid_before_utc.isoformat()}"
        )
    if now > certificate.not_valid_after_utc:
        raise CertificateExpired(
            f"{what} {describe(certificate)} expired at "
            f"{certificate.not_valid_after_utc.isoformat()}"
        )
