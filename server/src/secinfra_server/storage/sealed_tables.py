"""SQL over every column triple that holds a sealed value, for KEK rotation.

Three tables store values sealed by the KEK (:func:`secinfra_server.crypto.seal`):
secret versions, CA private keys and stored idempotent responses. Each is
described once here (key columns, the ``kek_id`` / wrapped key / ciphertext
columns, and how to rebuild the row's AAD), so rotation covers all of them and
a new sealed table is one more entry. Functions run inside the caller's
transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from ..crypto import (
    SealedBox,
    aad_for_ca_key,
    aad_for_idempotent_response,
    aad_for_secret,
)


@dataclass(frozen=True)
class SealedTable:
    """A table with sealed values: key columns, the three sealed columns, the AAD."""

    table: str
    key_columns: tuple[str, ...]
    kek_column: str
    wrapped_column: str
    ciphertext_column: str
    #: Builds the row's AAD from its key column values, in order.
    aad: Callable[..., bytes]


SEALED_TABLES: Final = (
    SealedTable(
        "secret_versions",
        ("name", "version"),
        "kek_id",
        "wrapped_key",
        "ciphertext",
        aad_for_secret,
    ),
    SealedTable("cas", ("id",), "key_kek_id", "key_wrapped", "key_ciphertext", aad_for_ca_key),
    SealedTable(
        "idempotency",
        ("caller", "key"),
        "kek_id",
        "wrapped_key",
        "ciphertext",
        aad_for_idempotent_response,
    ),
)


@dataclass(frozen=True)
class SealedRow:
    """One row's key and sealed value (wrapped key or ciphertext may be missing)."""

    key: tuple[Any, ...]
    kek_id: str
    wrapped_key: bytes | None
    ciphertext: bytes | None

    def box(self) -> SealedBox | None:
        """The sealed value, or None if a column is missing."""
        if self.wrapped_key is None or self.ciphertext is None:
            return None
        return SealedBox(self.kek_id, self.wrapped_key, self.ciphertext)


def rows_not_under(
    conn: sqlite3.Connection, spec: SealedTable, kek_id: str, limit: int
) -> list[SealedRow]:
    """Up to ``limit`` rows whose value is wrapped by a KEK other than ``kek_id``."""
    keys = ", ".join(spec.key_columns)
    rows = conn.execute(
        f"SELECT {keys}, {spec.kek_column}, {spec.wrapped_column}, {spec.ciphertext_column}"
        f" FROM {spec.table} WHERE {spec.kek_column} IS NOT NULL"
        f" AND {spec.kek_column} != ? ORDER BY {keys} LIMIT ?",
        (kek_id, limit),
    ).fetchall()
    width = len(spec.key_columns)
    return [
        SealedRow(
            key=tuple(row[:width]),
            kek_id=str(row[width]),
            wrapped_key=None if row[width + 1] is None else bytes(row[width + 1]),
            ciphertext=None if row[width + 2] is None else bytes(row[width + 2]),
        )
        for row in rows
    ]


def set_wrapped_key(
    conn: sqlite3.Connection, spec: SealedTable, row: SealedRow, box: SealedBox
) -> None:
    """Store a re-wrapped data key, if the row still names the KEK it was read with."""
    where = " AND ".join(f"{column} = ?" for column in spec.key_columns)
    conn.execute(
        f"UPDATE {spec.table} SET {spec.kek_column} = ?, {spec.wrapped_column} = ?"
        f" WHERE {where} AND {spec.kek_column} = ?",
        (box.kek_id, box.wrapped_key, *row.key, row.kek_id),
    )


def count_by_kek(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
    """Rows with a sealed value, per table and KEK id."""
    counts: dict[str, dict[str, int]] = {}
    for spec in SEALED_TABLES:
        rows = conn.execute(
            f"SELECT {spec.kek_column}, COUNT(*) FROM {spec.table}"
            f" WHERE {spec.kek_column} IS NOT NULL GROUP BY {spec.kek_column}"
        ).fetchall()
        counts[spec.table] = {str(kek_id): int(n) for kek_id, n in rows}
    return counts
