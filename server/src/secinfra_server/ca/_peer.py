"""The verified caller of an mTLS request: what a checked client SVID says.

Like go-spiffe's ``x509svid.Verify``, verification yields an identity rather
than a certificate: the SPIFFE ID, plus the serial and expiry the request log,
the deny-list and ``GetCallerIdentity`` need.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Peer:
    """A client certificate that passed verification just now."""

    spiffe_id: str
    #: The certificate's serial number, lower-case hex without leading zeros.
    serial: str
    not_after: datetime
