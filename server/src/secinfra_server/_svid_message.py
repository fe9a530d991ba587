"""The API's X509Svid message for a certificate the CA signed (IssueCertificate,
RenewCertificate and people's login answer with it)."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ._gen import identity as m


def svid_message(cert: x509.Certificate, spiffe_id: str) -> m.X509Svid:
    """The API's X509Svid for a signed certificate."""
    return m.X509Svid(
        spiffe_id=spiffe_id,
        cert_chain_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        serial=f"{cert.serial_number:x}",
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )
