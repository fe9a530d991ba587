"""An identity snapshot: one X509-SVID chain and its private key, never apart.

Chain and key are read and replaced only together (spec 9.5): a connection,
the file sink or a subscriber sees the old pair or the new pair, never one
with the other. `parse_identity` is the one way a snapshot is made from PEM,
and it refuses a certificate that is not an X509-SVID or a key that is not
the certificate's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .._runtime._rotation import issued_at
from ..errors import SecinfraError

__all__ = ["X509Identity", "parse_identity"]


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


def parse_identity(chain_pem: bytes, key_pem: bytes, *, received_at: datetime) -> X509Identity:
    """An identity snapshot from a PEM chain (leaf first) and its PEM key."""
    certs = x509.load_pem_x509_certificates(chain_pem)
    leaf = certs[0]
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    if len(uris) != 1 or not uris[0].startswith("spiffe://"):
        raise SecinfraError("secinfra: identity: the certificate is not an X509-SVID")
    key = serialization.load_pem_private_key(key_pem, password=None)
    if key.public_key() != leaf.public_key():
        raise SecinfraError("secinfra: identity: the key does not match the certificate")
    return X509Identity(
        spiffe_id=uris[0],
        chain_pem=chain_pem,
        key_pem=key_pem,
        serial=f"{leaf.serial_number:x}",
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        issued_at=issued_at(leaf.not_valid_before_utc, received_at),
    )
