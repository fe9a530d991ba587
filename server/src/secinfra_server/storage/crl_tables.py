"""SQL for the published CRLs, one row per signing CA, shared by every replica.

Storing the signed CRLs (not only signing them in memory) is what lets several
replicas publish the same CRLs: the same bytes from whichever replica a
relying party asks, and CRL numbers that only grow across all of them (the
next number is one past the largest stored, or the time in milliseconds if
that is larger). Functions run inside the caller's transaction.
"""

from __future__ import annotations

import hashlib
import json
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
    """A version of the deny-list: 62 bits of a SHA-256 over its entries.
    (Once a count, when the list only grew; since revocations of SPIFFE IDs
    can be lifted, a count can come back to an earlier value.)"""
    rows = conn.execute(
        "SELECT serial, spiffe_id, revoked_ms FROM revocations ORDER BY serial, spiffe_id"
    ).fetchall()
    digest = hashlib.sha256(
        json.dumps([[str(s), str(i), int(t)] for s, i, t in rows]).encode()
    ).digest()
    return int.from_bytes(digest[:8], "big") >> 2


def stored_crls(conn: sqlite3.Connection) -> dict[str, StoredCrl]:
    """The published CRLs by CA id."""
    rows = conn.execute(
        "SELECT ca_id, crl_number, der, revocations, this_update_ms FROM crls"
    ).fetchall()
    return {
        str(ca_id): StoredCrl(str(ca_id), int(number), bytes(der), int(size), from_ms(int(at)))
        for ca_id, number, der, size, at in rows
    }


def revoked_serials(
    conn: sqlite3.Connection, now: datetime
) -> list[tuple[str, datetime, str | None]]:
    """(serial, revoked at, id of the issuing CA if this database recorded it)
    of every revoked certificate, oldest first: each revocation by serial, and
    every certificate a revoked SPIFFE ID held when it was revoked (issued by
    then, still unexpired), so a relying party that reads only the CRL refuses
    those too."""
    by_serial = conn.execute(
        "SELECT r.serial, r.revoked_ms, i.ca_id FROM revocations r"
        " LEFT JOIN issued_certificates i ON i.serial = r.serial"
        " WHERE r.serial <> ''"
    ).fetchall()
    by_id = conn.execute(
        "SELECT i.serial, r.revoked_ms, i.ca_id FROM revocations r"
        " JOIN issued_certificates i ON i.spiffe_id = r.spiffe_id"
        " WHERE r.spiffe_id <> '' AND i.issued_ms <= r.revoked_ms"
        " AND i.not_after_ms > ?",
        (to_ms(now),),
    ).fetchall()
    earliest: dict[str, tuple[int, str | None]] = {}
    for serial, at, ca_id in [*by_serial, *by_id]:
        known = earliest.get(str(serial))
        if known is None or int(at) < known[0]:
            earliest[str(serial)] = (int(at), None if ca_id is None else str(ca_id))
    return [
        (serial, from_ms(at), ca_id)
        for serial, (at, ca_id) in sorted(earliest.items(), key=lambda kv: (kv[1][0], kv[0]))
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
