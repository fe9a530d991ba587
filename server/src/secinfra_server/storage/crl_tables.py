"""SQL for the published CRLs, one row per signing CA, shared by every replica.

Storing the signed CRLs (not only signing them in memory) is what lets several
replicas publish the same CRLs: the same bytes from whichever replica a
relying party asks, and CRL numbers that only grow across all of them (the
next number is one past the largest stored, or the time in milliseconds if
that is larger). Functions run inside the caller's transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ._sql_storage import from_ms, to_ms


@dataclass(frozen=True)
class StoredCrl:
    """One signed CRL and what it was made from."""

    ca_id: str
    number: int
    der: bytes
    #: The deny-list's size when it was signed (the list only grows, so the
    #: size says whether a CRL is behind it).
    revocations: int
    this_update: datetime


def deny_list_size(conn: sqlite3.Connection) -> int:
    """How many entries the revocation deny-list holds."""
    (count,) = conn.execute("SELECT COUNT(*) FROM revocations").fetchone()
    return int(count)


def stored_crls(conn: sqlite3.Connection) -> dict[str, StoredCrl]:
    """The published CRLs by CA id."""
    rows = conn.execute(
        "SELECT ca_id, crl_number, der, revocations, this_update_ms FROM crls"
    ).fetchall()
    return {
        str(ca_id): StoredCrl(str(ca_id), int(number), bytes(der), int(size), from_ms(int(at)))
        for ca_id, number, der, size, at in rows
    }


def revoked_serials(conn: sqlite3.Connection) -> list[tuple[str, datetime, str | None]]:
    """(serial, revoked at, id of the issuing CA if this database recorded it)
    of every revocation by serial, oldest first."""
    rows = conn.execute(
        "SELECT r.serial, r.revoked_ms, i.ca_id FROM revocations r"
        " LEFT JOIN issued_certificates i ON i.serial = r.serial"
        " WHERE r.serial <> '' ORDER BY r.revoked_ms, r.serial"
    ).fetchall()
    return [
        (str(serial), from_ms(int(at)), None if ca_id is None else str(ca_id))
        for serial, at, ca_id in rows
    ]


def next_crl_number(conn: sqlite3.Connection, now: datetime) -> int:
    """A CRL number larger than any published: the larger of the stored
    maximum plus one and ``now`` in milliseconds."""
    (largest,) = conn.execute("SELECT COALESCE(MAX(crl_number), 0) FROM crls").fetchone()
    return max(int(largest) + 1, to_ms(now))


def replace_crls(conn: sqlite3.Connection, crls: Sequence[StoredCrl]) -> None:
    """Publish ``crls`` in place of every stored one."""
    conn.execute("DELETE FROM crls")
    conn.executemany(
        "INSERT INTO crls (ca_id, crl_number, der, revocations, this_update_ms)"
        " VALUES (?, ?, ?, ?, ?)",
        [(c.ca_id, c.number, c.der, c.revocations, to_ms(c.this_update)) for c in crls],
    )
