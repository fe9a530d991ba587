"""SQL for registration entries inside a caller's transaction.

``registration_entries(id, spiffe_id, parent_id, selectors, ttl_seconds,
dns_names, created_ms)``: selectors and DNS names are stored as canonical JSON
text (selectors sorted, so one set is one string), and ``UNIQUE (parent_id,
spiffe_id, selectors)`` refuses a second entry that would match the same
workloads on the same node for the same ID. Entries are listed oldest first,
by ``(created_ms, id)``; a page continues after the last one it returned.

The EntriesService runs these inside the transaction that also writes (or
deletes) the entry's ``node`` tuple and its audit entry, so an entry, the
node's right to sign for it and its record are never apart. The SQL is the
subset SQLite and PostgreSQL share.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from ._time import from_ms, to_ms

_SELECT: Final = (
    "SELECT id, spiffe_id, parent_id, selectors, ttl_seconds, dns_names, created_ms"
    " FROM registration_entries"
)


@dataclass(frozen=True)
class StoredEntry:
    """One registration entry. ``selectors`` are ``(type, value)`` pairs, sorted."""

    id: str
    spiffe_id: str
    parent_id: str
    selectors: tuple[tuple[str, str], ...]
    ttl_seconds: int
    dns_names: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True)
class EntryFilter:
    """Which entries :func:`list_entries` returns; empty fields match any."""

    parent_id: str = ""
    spiffe_id: str = ""


def _canonical(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _from_row(row: Any) -> StoredEntry:
    (eid, spiffe_id, parent_id, selectors, ttl, dns_names, created) = row
    return StoredEntry(
        id=str(eid),
        spiffe_id=str(spiffe_id),
        parent_id=str(parent_id),
        selectors=tuple((str(t), str(v)) for t, v in json.loads(selectors)),
        ttl_seconds=int(ttl),
        dns_names=tuple(str(n) for n in json.loads(dns_names)),
        created_at=from_ms(int(created)),
    )


def insert_entry(conn: sqlite3.Connection, entry: StoredEntry) -> bool:
    """Insert ``entry``; False (nothing written) if an entry with the same
    parent, SPIFFE ID and selectors exists."""
    cursor = conn.execute(
        "INSERT INTO registration_entries (id, spiffe_id, parent_id, selectors, ttl_seconds,"
        " dns_names, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (
            entry.id,
            entry.spiffe_id,
            entry.parent_id,
            _canonical(sorted(entry.selectors)),
            entry.ttl_seconds,
            _canonical(list(entry.dns_names)),
            to_ms(entry.created_at),
        ),
    )
    return cursor.rowcount == 1


def read_entry(conn: sqlite3.Connection, entry_id: str) -> StoredEntry | None:
    """The entry with ``entry_id``, or None."""
    row = conn.execute(_SELECT + " WHERE id = ?", (entry_id,)).fetchone()
    return None if row is None else _from_row(row)


def delete_entry(conn: sqlite3.Connection, entry_id: str) -> StoredEntry | None:
    """Delete the entry with ``entry_id``; the deleted entry, or None."""
    entry = read_entry(conn, entry_id)
    if entry is not None:
        conn.execute("DELETE FROM registration_entries WHERE id = ?", (entry_id,))
    return entry


def list_entries(
    conn: sqlite3.Connection,
    where: EntryFilter,
    *,
    after: tuple[int, str] | None,
    limit: int,
) -> list[StoredEntry]:
    """Up to ``limit`` entries matching ``where``, oldest first, after the
    ``(created_ms, id)`` position ``after`` (None: from the first)."""
    clauses: list[str] = []
    params: list[object] = []
    if where.parent_id:
        clauses.append("parent_id = ?")
        params.append(where.parent_id)
    if where.spiffe_id:
        clauses.append("spiffe_id = ?")
        params.append(where.spiffe_id)
    if after is not None:
        clauses.append("(created_ms > ? OR (created_ms = ? AND id > ?))")
        params += [after[0], after[0], after[1]]
    sql = _SELECT + (" WHERE " + " AND ".join(clauses) if clauses else "")
    rows = conn.execute(sql + " ORDER BY created_ms, id LIMIT ?", (*params, limit)).fetchall()
    return [_from_row(row) for row in rows]


def position_of(entry: StoredEntry) -> tuple[int, str]:
    """Where ``entry`` sits in the listing order (what a page token holds)."""
    return to_ms(entry.created_at), entry.id
