"""SQL for the identity tables (CAs, join tokens, revocations) inside a
caller's transaction.

The :class:`~secinfra_server.storage.Storage` methods run these in their own
transactions; a handler runs them inside another write's transaction, through
that write's ``also`` hook, when they must commit with it (spending a join
token with the certificate it pays for, reading back the state a write left
to answer with). No function commits, sleeps or does any I/O besides the
database; the SQL is the subset SQLite and PostgreSQL share.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any, Final

from ._records import LiftedRevocation, StoredCa, StoredJoinToken, StoredRevocation
from ._time import from_ms, to_ms

_CA_SELECT: Final = (
    "SELECT id, state, cert_pem, key_kek_id, key_wrapped, key_ciphertext,"
    " not_before_ms, not_after_ms, prepared_ms, activated_ms, retiring_ms,"
    " retired_ms, leaves_expire_by_ms FROM cas"
)
_TOKEN_SELECT: Final = (
    "SELECT id, secret_hash, spiffe_id, expires_ms, created_ms, used_ms, revoked FROM join_tokens"
)


def _opt_from_ms(value: int | None) -> datetime | None:
    return None if value is None else from_ms(value)


def ca_from_row(row: Any) -> StoredCa:
    """A ``cas`` row (the columns of the CA select) as a record."""
    (cid, state, pem, kek_id, wrapped, ciphertext, nb, na, prep, act, ring, ret, leaves) = row
    return StoredCa(
        id=str(cid),
        state=str(state),
        cert_pem=str(pem),
        key_kek_id=str(kek_id),
        key_wrapped=bytes(wrapped),
        key_ciphertext=bytes(ciphertext),
        not_before=from_ms(int(nb)),
        not_after=from_ms(int(na)),
        prepared_at=from_ms(int(prep)),
        activated_at=_opt_from_ms(act),
        retiring_at=_opt_from_ms(ring),
        retired_at=_opt_from_ms(ret),
        leaves_expire_by=_opt_from_ms(leaves),
    )


def read_cas(conn: sqlite3.Connection) -> list[StoredCa]:
    """Every CA, newest first."""
    rows = conn.execute(_CA_SELECT + " ORDER BY prepared_ms DESC, id").fetchall()
    return [ca_from_row(row) for row in rows]


def read_bundle_sequence(conn: sqlite3.Connection) -> int:
    """The trust bundle's sequence number as this transaction sees it."""
    (seq,) = conn.execute(
        "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'bundle_sequence'"
    ).fetchone()
    return int(seq)


def token_from_row(row: Any) -> StoredJoinToken:
    """A ``join_tokens`` row (the columns of the token select) as a record."""
    (tid, secret_hash, spiffe_id, expires, created, used, revoked) = row
    return StoredJoinToken(
        id=str(tid),
        secret_hash=bytes(secret_hash),
        spiffe_id=str(spiffe_id),
        expires_at=from_ms(int(expires)),
        created_at=from_ms(int(created)),
        used_at=_opt_from_ms(used),
        revoked=bool(revoked),
    )


def read_join_token(conn: sqlite3.Connection, token_id: str) -> StoredJoinToken | None:
    """A join token by id, or None."""
    row = conn.execute(_TOKEN_SELECT + " WHERE id = ?", (token_id,)).fetchone()
    return None if row is None else token_from_row(row)


def read_join_tokens(conn: sqlite3.Connection) -> list[StoredJoinToken]:
    """Every join token, newest first."""
    rows = conn.execute(_TOKEN_SELECT + " ORDER BY created_ms DESC, id").fetchall()
    return [token_from_row(row) for row in rows]


def spend_join_token(conn: sqlite3.Connection, token_id: str, now: datetime) -> bool:
    """Mark an unused, unrevoked, unexpired token used; False if it is not
    (any more). Writes are serialised, so of two spenders exactly one wins."""
    cursor = conn.execute(
        "UPDATE join_tokens SET used_ms = ? WHERE id = ? AND used_ms IS NULL"
        " AND revoked = 0 AND expires_ms > ?",
        (to_ms(now), token_id, to_ms(now)),
    )
    return cursor.rowcount == 1


def lift_id_revocation(
    conn: sqlite3.Connection, spiffe_id: str, now: datetime
) -> LiftedRevocation | None:
    """Lift ``spiffe_id``'s revocation inside the caller's transaction: list the
    certificates it held when revoked (issued by then, unexpired now) by serial,
    with the revocation's time, then remove the entry by ID. None if not revoked."""
    entry = read_revocation(conn, "", spiffe_id)
    if entry is None:
        return None
    rows = conn.execute(
        "SELECT serial FROM issued_certificates WHERE spiffe_id = ? AND issued_ms <= ?"
        " AND not_after_ms > ? ORDER BY serial",
        (spiffe_id, to_ms(entry.revoked_at), to_ms(now)),
    ).fetchall()
    serials = tuple(str(serial) for (serial,) in rows)
    if serials:
        conn.executemany(
            "INSERT INTO revocations (serial, spiffe_id, reason, revoked_ms)"
            " VALUES (?, '', ?, ?) ON CONFLICT (serial, spiffe_id) DO NOTHING",
            [
                (
                    serial,
                    f"held by {spiffe_id} when it was revoked: {entry.reason}",
                    to_ms(entry.revoked_at),
                )
                for serial in serials
            ],
        )
    conn.execute("DELETE FROM revocations WHERE serial = '' AND spiffe_id = ?", (spiffe_id,))
    return LiftedRevocation(entry, serials)


def read_revocation(
    conn: sqlite3.Connection, serial: str, spiffe_id: str
) -> StoredRevocation | None:
    """The deny-list entry for exactly this target, or None."""
    row = conn.execute(
        "SELECT serial, spiffe_id, reason, revoked_ms FROM revocations"
        " WHERE serial = ? AND spiffe_id = ?",
        (serial, spiffe_id),
    ).fetchone()
    if row is None:
        return None
    found_serial, found_id, reason, revoked = row
    return StoredRevocation(str(found_serial), str(found_id), str(reason), from_ms(int(revoked)))
