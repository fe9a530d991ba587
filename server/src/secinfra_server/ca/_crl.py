"""X.509 CRLs for relying parties that check revocation by CRL.

A CRL lists serials revoked by one CA and is signed by that CA: build one per CA
still in the bundle (leaves of a retiring CA are revoked on the retiring CA's CRL).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509

from ._authority import CAState, CertificateAuthority, signature_hash_for
from ._errors import CAUnavailable, InvalidArgument
from ._time import require_aware

DEFAULT_CRL_VALIDITY = timedelta(hours=1)
"""Default gap between thisUpdate and nextUpdate."""


@dataclass(frozen=True)
class RevokedSerial:
    """One CRL entry: a serial number and when it was revoked."""

    serial_number: int
    revoked_at: datetime


def build_crl(
    ca: CertificateAuthority,
    revoked: Iterable[RevokedSerial | tuple[int, datetime]],
    *,
    now: datetime,
    crl_number: int,
    next_update: timedelta = DEFAULT_CRL_VALIDITY,
) -> x509.CertificateRevocationList:
    """Sign a CRL for ``ca`` listing ``revoked``; thisUpdate is ``now``.

    ``crl_number`` must increase with every CRL the CA issues (the caller keeps it,
    e.g. the bundle sequence). Serialize with ``crl.public_bytes(Encoding.DER|PEM)``.
    """
    now = require_aware(now)
    if ca.state is CAState.RETIRED:
        raise CAUnavailable(f"CA {ca.id} is retired and no longer signs CRLs")
    if next_update <= timedelta(0):
        raise InvalidArgument("CRL next_update must be positive")
    if crl_number < 0:
        raise InvalidArgument("CRL number must not be negative")
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now)
        .next_update(now + next_update)
        .add_extension(x509.CRLNumber(crl_number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                x509.SubjectKeyIdentifier(ca.subject_key_identifier)
            ),
            critical=False,
        )
    )
    seen: set[int] = set()
    for entry in revoked:
        serial, revoked_at = (
            (entry.serial_number, entry.revoked_at) if isinstance(entry, RevokedSerial) else entry
        )
        if serial in seen:
            continue
        seen.add(serial)
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(require_aware(revoked_at, "revoked_at"))
            .build()
        )
    return builder.sign(ca.private_key, signature_hash_for(ca.private_key))
