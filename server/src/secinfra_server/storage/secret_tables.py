"""SQL for the secrets store: synchronous functions over one open connection.

Every function here runs inside a transaction its caller opened through
:meth:`SqliteStorage.read` or :meth:`SqliteStorage.write`, so a handler can
compose several of them (and its audit entry) into one atomic unit. No
function commits, sleeps or does any I/O besides the database.

Tables (migration 2): ``secrets`` holds one row per secret (current version
and policy); ``secret_versions`` one row per version. A version's sealed
value is three columns (``kek_id``, ``wrapped_key``, ``ciphertext``), all
NULL once the version is destroyed.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

from ..crypto import SealedBox

ENABLED: Final = "enabled"
DELETED: Final = "deleted"
DESTROYED: Final = "destroyed"

_SECRET_COLUMNS: Final = (
    "name, current_version, max_versions, cache_max_age_s, stale_if_error_s, created_ms, updated_ms"
)
_VERSION_COLUMNS: Final = "version, state, created_ms, deleted_ms"


@dataclass(frozen=True)
class SecretRow:
    """One row of ``secrets``."""

    name: str
    current_version: int
    max_versions: int
    cache_max_age_s: int
    stale_if_error_s: int
    created_ms: int
    updated_ms: int


@dataclass(frozen=True)
class VersionRow:
    """One row of ``secret_versions`` without its sealed value."""

    version: int
    state: str
    created_ms: int
    deleted_ms: int | None


def _secret(row: Any) -> SecretRow:
    name, current, max_versions, max_age, stale, created, updated = row
    return SecretRow(
        str(name), int(current), int(max_versions), int(max_age), int(stale), created, updated
    )


def _version(row: Any) -> VersionRow:
    version, state, created, deleted = row
    return VersionRow(int(version), str(state), int(created), deleted)


def get_secret(conn: sqlite3.Connection, name: str) -> SecretRow | None:
    """The secret's row, or None if it does not exist."""
    row = conn.execute(f"SELECT {_SECRET_COLUMNS} FROM secrets WHERE name = ?", (name,)).fetchone()
    return None if row is None else _secret(row)


def insert_secret(conn: sqlite3.Connection, row: SecretRow) -> None:
    """Create the row of a new secret."""
    conn.execute(
        f"INSERT INTO secrets ({_SECRET_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            row.name,
            row.current_version,
            row.max_versions,
            row.cache_max_age_s,
            row.stale_if_error_s,
            row.created_ms,
            row.updated_ms,
        ),
    )


def update_secret(conn: sqlite3.Connection, row: SecretRow) -> None:
    """Store a secret's current version, policy and update time."""
    conn.execute(
        "UPDATE secrets SET current_version = ?, max_versions = ?, cache_max_age_s = ?,"
        " stale_if_error_s = ?, updated_ms = ? WHERE name = ?",
        (
            row.current_version,
            row.max_versions,
            row.cache_max_age_s,
            row.stale_if_error_s,
            row.updated_ms,
            row.name,
        ),
    )


def touch_secret(conn: sqlite3.Connection, name: str, now_ms: int) -> None:
    """Set the secret's update time."""
    conn.execute("UPDATE secrets SET updated_ms = ? WHERE name = ?", (now_ms, name))


def insert_version(
    conn: sqlite3.Connection, name: str, version: int, box: SealedBox, created_ms: int
) -> None:
    """Store a new, enabled version with its sealed value."""
    conn.execute(
        "INSERT INTO secret_versions (name, version, state, kek_id, wrapped_key, ciphertext,"
        " created_ms) VALUES (?, ?, 'enabled', ?, ?, ?, ?)",
        (name, version, box.kek_id, box.wrapped_key, box.ciphertext, created_ms),
    )


def get_version(conn: sqlite3.Connection, name: str, version: int) -> VersionRow | None:
    """One version's metadata, or None if it does not exist."""
    row = conn.execute(
        f"SELECT {_VERSION_COLUMNS} FROM secret_versions WHERE name = ? AND version = ?",
        (name, version),
    ).fetchone()
    return None if row is None else _version(row)


def latest_enabled_version(conn: sqlite3.Connection, name: str) -> VersionRow | None:
    """The newest readable version, or None if every version is deleted or destroyed."""
    row = conn.execute(
        f"SELECT {_VERSION_COLUMNS} FROM secret_versions WHERE name = ? AND state = 'enabled'"
        " ORDER BY version DESC LIMIT 1",
        (name,),
    ).fetchone()
    return None if row is None else _version(row)


def sealed_value(conn: sqlite3.Connection, name: str, version: int) -> SealedBox | None:
    """The sealed value of a version, or None if it has none (destroyed)."""
    row = conn.execute(
        "SELECT kek_id, wrapped_key, ciphertext FROM secret_versions"
        " WHERE name = ? AND version = ?",
        (name, version),
    ).fetchone()
    if row is None or row[0] is None or row[1] is None or row[2] is None:
        return None
    return SealedBox(str(row[0]), bytes(row[1]), bytes(row[2]))


def list_versions(conn: sqlite3.Connection, name: str) -> list[VersionRow]:
    """Every version's metadata, newest first."""
    rows = conn.execute(
        f"SELECT {_VERSION_COLUMNS} FROM secret_versions WHERE name = ? ORDER BY version DESC",
        (name,),
    ).fetchall()
    return [_version(row) for row in rows]


def versions_by_number(
    conn: sqlite3.Connection, name: str, versions: Sequence[int]
) -> dict[int, VersionRow]:
    """The rows of the given versions that exist, by version number."""
    found: dict[int, VersionRow] = {}
    for number in sorted(set(versions)):
        row = get_version(conn, name, number)
        if row is not None:
            found[number] = row
    return found


def set_deleted(conn: sqlite3.Connection, name: str, version: int, now_ms: int) -> None:
    """Soft-delete an enabled version."""
    conn.execute(
        "UPDATE secret_versions SET state = 'deleted', deleted_ms = ?"
        " WHERE name = ? AND version = ? AND state = 'enabled'",
        (now_ms, name, version),
    )


def set_enabled(conn: sqlite3.Connection, name: str, version: int) -> None:
    """Restore a soft-deleted version."""
    conn.execute(
        "UPDATE secret_versions SET state = 'enabled', deleted_ms = NULL"
        " WHERE name = ? AND version = ? AND state = 'deleted'",
        (name, version),
    )


def destroy_versions(
    conn: sqlite3.Connection, name: str, versions: Sequence[int], now_ms: int
) -> None:
    """Erase the sealed value of each version (not already destroyed) and mark it so.

    On SQLite ``secure_delete`` is on for these updates, so SQLite zeroes the
    freed bytes in the database pages it rewrites (older copies can remain in
    the WAL until it is checkpointed and overwritten; see
    docs/concepts/secrets.md). PostgreSQL has no such setting: the old row
    version stays in the table file until VACUUM reclaims and reuses its space
    (docs/operations/postgresql.md).
    """
    with _secure_delete(conn):
        conn.executemany(
            "UPDATE secret_versions SET state = 'destroyed', kek_id = NULL, wrapped_key = NULL,"
            " ciphertext = NULL, deleted_ms = ? WHERE name = ? AND version = ?"
            " AND state != 'destroyed'",
            [(now_ms, name, version) for version in versions],
        )


def prune_versions(conn: sqlite3.Connection, name: str, keep_from: int, now_ms: int) -> list[int]:
    """Destroy every version numbered below ``keep_from``; return those it destroyed."""
    rows = conn.execute(
        "SELECT version FROM secret_versions WHERE name = ? AND version < ?"
        " AND state != 'destroyed' ORDER BY version",
        (name, keep_from),
    ).fetchall()
    doomed = [int(row[0]) for row in rows]
    if doomed:
        destroy_versions(conn, name, doomed, now_ms)
    return doomed


def list_secrets(conn: sqlite3.Connection, prefix: str, after: str, limit: int) -> list[SecretRow]:
    """Up to ``limit`` secrets whose name starts with ``prefix`` and sorts after
    ``after``, by name (byte order; names are ASCII)."""
    # Names are ASCII below 0x7f, so [prefix, prefix + 0x7f) is exactly the
    # names that start with prefix, and the primary key index serves the range.
    rows = conn.execute(
        f"SELECT {_SECRET_COLUMNS} FROM secrets WHERE name >= ? AND name > ? AND name < ?"
        " ORDER BY name LIMIT ?",
        (prefix, after, prefix + "\x7f", limit),
    ).fetchall()
    return [_secret(row) for row in rows]


@contextlib.contextmanager
def _secure_delete(conn: sqlite3.Connection) -> Iterator[None]:
    # The cast keeps mypy from assuming every connection is SQLite's: on
    # PostgreSQL this is its facade, with no equivalent to switch on (see above).
    if not isinstance(cast(object, conn), sqlite3.Connection):
        yield
        return
    (before,) = conn.execute("PRAGMA secure_delete").fetchone()
    conn.execute("PRAGMA secure_delete = ON")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA secure_delete = {int(before):d}")
