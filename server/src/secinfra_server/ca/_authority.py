"""CA records and self-signed root creation."""

from __future__ import annotations

import enum
import functools
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ._errors import InvalidArgument, InvalidKey
from ._keys import (
    DEFAULT_KEY_ALGORITHM,
    KeyAlgorithm,
    generate_private_key,
    private_key_from_pkcs8_der,
    private_key_to_pkcs8_der,
)
from ._spiffeid import SpiffeId, validate_trust_domain
from ._time import require_aware

DEFAULT_CA_VALIDITY = timedelta(days=365)
"""Lifetime of a new root CA."""

BACKDATE = timedelta(seconds=60)
"""NotBefore of every certificate we issue is ``now - BACKDATE`` (clock skew)."""

SUBJECT_ORGANIZATION = "secinfra"
"""``O=`` of every certificate subject; identity lives only in the URI SAN."""

_CA_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,48}")


class CAState(enum.StrEnum):
    """Rotation states. Only ``active`` signs; all but ``retired`` are in the bundle."""

    PREPARED = "prepared"
    ACTIVE = "active"
    RETIRING = "retiring"
    RETIRED = "retired"


def random_serial_number() -> int:
    """A random, positive, non-zero 128-bit serial number (RFC 5280: <= 20 octets)."""
    while True:
        serial = secrets.randbits(128)
        if serial:
            return serial


def new_ca_id() -> str:
    """A fresh CA id: 16 lowercase hex characters."""
    return secrets.token_hex(8)


def ca_subject(ca_id: str) -> x509.Name:
    """``O=secinfra, CN=secinfra CA <id>``: unique per CA so chain building by name
    never confuses two generations of the same trust domain."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, SUBJECT_ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, f"secinfra CA {ca_id}"),
        ]
    )


def trust_domain_of_ca(certificate: x509.Certificate) -> str | None:
    """The trust domain named by the CA certificate's ``spiffe://<td>`` URI SAN."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1:
        return None
    try:
        spiffe_id = SpiffeId.parse(uris[0])
    except InvalidArgument:
        return None
    return spiffe_id.trust_domain if spiffe_id.is_trust_domain_id else None


@dataclass(frozen=True)
class CertificateAuthority:
    """One CA generation: certificate, private key and rotation state.

    Immutable: rotation functions return updated copies. The ``*_at`` fields record
    when the CA entered each state (``prepared_at`` is when it was first published
    in the trust bundle).
    """

    id: str
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    state: CAState
    prepared_at: datetime
    activated_at: datetime | None = None
    retiring_at: datetime | None = None
    retired_at: datetime | None = None

    @property
    def not_before(self) -> datetime:
        return self.certificate.not_valid_before_utc

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc

    @functools.cached_property
    def trust_domain(self) -> str:
        trust_domain = trust_domain_of_ca(self.certificate)
        if trust_domain is None:  # pragma: no cover - guarded at construction
            raise InvalidKey("CA certificate has no spiffe://<td> URI SAN")
        return trust_domain

    @functools.cached_property
    def subject_key_identifier(self) -> bytes:
        return self.certificate.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier
        ).value.digest

    @property
    def certificate_der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    def private_key_pkcs8_der(self) -> bytes:
        """The private key as unencrypted PKCS#8 DER, for the caller to encrypt."""
        return private_key_to_pkcs8_der(self.private_key)

    @classmethod
    def restore(
        cls,
        *,
        id: str,
        certificate_der: bytes,
        private_key_pkcs8_der: bytes,
        state: CAState | str,
        prepared_at: datetime,
        activated_at: datetime | None = None,
        retiring_at: datetime | None = None,
        retired_at: datetime | None = None,
    ) -> CertificateAuthority:
        """Rebuild a record from stored bytes; checks that key and certificate match."""
        try:
            certificate = x509.load_der_x509_certificate(certificate_der)
        except ValueError as exc:
            raise InvalidKey("CA certificate is not valid DER") from exc
        key = private_key_from_pkcs8_der(private_key_pkcs8_der)
        if key.public_key() != certificate.public_key():
            raise InvalidKey(f"CA {id}: private key does not match its certificate")
        if trust_domain_of_ca(certificate) is None:
            raise InvalidKey(f"CA {id}: certificate has no spiffe://<td> URI SAN")
        return cls(
            id=id,
            certificate=certificate,
            private_key=key,
            state=CAState(state),
            prepared_at=prepared_at,
            activated_at=activated_at,
            retiring_at=retiring_at,
            retired_at=retired_at,
        )


def create_root_ca(
    trust_domain: str,
    *,
    now: datetime,
    validity: timedelta = DEFAULT_CA_VALIDITY,
    key_algorithm: KeyAlgorithm = DEFAULT_KEY_ALGORITHM,
    ca_id: str | None = None,
    state: CAState | str = CAState.PREPARED,
) -> CertificateAuthority:
    """Create a self-signed root CA for ``trust_domain``.

    basicConstraints cA=true (critical, no path length: leaves only are issued),
    keyUsage keyCertSign+cRLSign (critical), URI SAN ``spiffe://<td>``, subject and
    authority key identifiers; valid from ``now - 60 s`` to ``now + validity``.
    """
    now = require_aware(now)
    validate_trust_domain(trust_domain)
    if validity <= timedelta(0):
        raise InvalidArgument("CA validity must be positive")
    ca_id = new_ca_id() if ca_id is None else ca_id
    if _CA_ID_RE.fullmatch(ca_id) is None:
        raise InvalidArgument("CA id must be 1-48 characters of [A-Za-z0-9_-]")
    if state not in (CAState.PREPARED, CAState.ACTIVE):
        raise InvalidArgument("a new CA starts prepared or active")
    state = CAState(state)

    key = generate_private_key(key_algorithm)
    public_key = key.public_key()
    ski = x509.SubjectKeyIdentifier.from_public_key(public_key)
    subject = ca_subject(ca_id)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public_key)
        .serial_number(random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(str(SpiffeId.for_trust_domain(trust_domain)))]
            ),
            critical=False,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
            critical=False,
        )
        .sign(key, signature_hash_for(key))
    )
    return CertificateAuthority(
        id=ca_id,
        certificate=certificate,
        private_key=key,
        state=state,
        prepared_at=now,
        activated_at=now if state is CAState.ACTIVE else None,
    )


def signature_hash_for(key: ec.EllipticCurvePrivateKey) -> hashes.SHA256 | hashes.SHA384:
    """SHA-384 for P-384 keys, SHA-256 otherwise (match hash strength to curve)."""
    if isinstance(key.curve, ec.SECP384R1):
        return hashes.SHA384()
    return hashes.SHA256()
