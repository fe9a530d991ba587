"""Plain records the storage layer reads and writes. No behaviour, no SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class StoredCa:
    """A CA as stored: certificate, sealed private key and rotation state."""

    id: str
    state: str  # prepared | active | retiring | retired
    cert_pem: str
    key_kek_id: str
    key_wrapped: bytes
    key_ciphertext: bytes
    not_before: datetime
    not_after: datetime
    prepared_at: datetime
    activated_at: datetime | None = None
    retiring_at: datetime | None = None
    retired_at: datetime | None = None
    #: Latest notAfter of any leaf this CA signed (kept by record_issued).
    leaves_expire_by: datetime | None = None


@dataclass(frozen=True)
class StoredJoinToken:
    """A join token's record: only the hash of its secret is ever stored."""

    id: str
    secret_hash: bytes
    spiffe_id: str
    expires_at: datetime
    created_at: datetime
    used_at: datetime | None = None
    revoked: bool = False

    def __repr__(self) -> str:
        return (
            f"StoredJoinToken(id={self.id!r}, spiffe_id={self.spiffe_id!r}, secret_hash=<hidden>)"
        )


@dataclass(frozen=True)
class StoredRevocation:
    """One deny-list entry, by serial (lowercase hex) or by SPIFFE ID."""

    serial: str
    spiffe_id: str
    reason: str
    revoked_at: datetime


@dataclass(frozen=True)
class LiftedRevocation:
    """A SPIFFE ID's revocation, lifted: the entry removed, and the serials of
    the certificates it held then (still unexpired), now listed by serial."""

    lifted: StoredRevocation
    serials_kept_revoked: tuple[str, ...]


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate the CA signed (for retire safety, audit and the CRL)."""

    serial: str
    spiffe_id: str
    ca_id: str
    not_after: datetime
    issued_at: datetime
