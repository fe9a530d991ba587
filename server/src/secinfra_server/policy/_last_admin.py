"""Whether a revocation would lock every admin out.

A revoked certificate or SPIFFE ID stays revoked (there is no route to lift a
revocation), and only an admin can revoke, enrol or grant. So a revocation
that leaves no admin holding a valid certificate locks the server's API out
for good. RevokeCertificate refuses such a revocation; this module answers
the question.

The caller is an admin whose certificate was verified for this very request,
so a revocation that spares the caller's certificate always leaves an admin.
Only one that hits it (an admin revoking its own certificate or SPIFFE ID)
needs another witness: a certificate that is unexpired, not revoked, not hit
by this revocation, and whose SPIFFE ID holds admin now.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from .. import ca
from ..storage import Storage


@dataclass(frozen=True)
class RevocationTarget:
    """What a revocation names: a serial (lower-case hex) or a SPIFFE ID."""

    serial: str = ""
    spiffe_id: str = ""

    def hits(self, serial: str, spiffe_id: str) -> bool:
        """Whether this revocation makes the certificate ``serial`` of ``spiffe_id`` invalid."""
        if self.serial:
            return serial == self.serial
        return spiffe_id == self.spiffe_id


@dataclass(frozen=True)
class IssuedLeaf:
    """A certificate the CA issued that has not expired."""

    serial: str
    spiffe_id: str


async def unexpired_leaves(storage: Storage, now: datetime) -> list[IssuedLeaf]:
    """Every issued certificate not yet expired, the longest-lived first (read
    only when an admin revokes its own certificate or identity)."""
    return [
        IssuedLeaf(serial, spiffe_id)
        for serial, spiffe_id in await storage.unexpired_certificates(now)
    ]


async def leaves_an_admin(
    is_admin: Callable[[str], Awaitable[bool]],
    *,
    caller: ca.Peer,
    target: RevocationTarget,
    load_others: Callable[[], Awaitable[list[IssuedLeaf]]],
    revoked_serials: frozenset[str],
    revoked_ids: frozenset[str],
) -> bool:
    """Whether some admin still holds a valid certificate once ``target`` is revoked.

    ``load_others`` (the unexpired certificates) is called only when the
    revocation hits the caller's own certificate; each distinct SPIFFE ID
    among the certificates left valid is asked at most once.
    """
    if not target.hits(caller.serial, caller.spiffe_id):
        return True
    asked: set[str] = set()
    for leaf in await load_others():
        if (
            target.hits(leaf.serial, leaf.spiffe_id)
            or leaf.serial in revoked_serials
            or leaf.spiffe_id in revoked_ids
            or leaf.spiffe_id in asked
        ):
            continue
        asked.add(leaf.spiffe_id)
        if await is_admin(leaf.spiffe_id):
            return True
    return False
