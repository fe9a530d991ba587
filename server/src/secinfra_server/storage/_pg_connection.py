"""A psycopg connection that speaks the part of ``sqlite3.Connection`` we use.

The table modules (:mod:`.secret_tables`, :mod:`.authz_tables`,
:mod:`.sealed_tables`) and the domain stores above them are synchronous
functions of one connection, written against ``sqlite3.Connection``:
``execute`` and ``executemany`` with ``?`` placeholders, and cursors read with
``fetchone``, ``fetchall``, ``rowcount`` or iteration. Their SQL is the subset
SQLite and PostgreSQL share, so PostgreSQL needs no second copy of it, only
this adapter: placeholders become psycopg's ``%s``, and a constraint violation
is raised as ``sqlite3.IntegrityError`` (the class callers know), chained to
psycopg's error and naming only the constraint, never a value.

The adapter never opens, commits or ends a transaction: the storage's
:meth:`~secinfra_server.storage.PostgresStorage.read` and ``write`` do that
around the function they run.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import psycopg


@functools.lru_cache(maxsize=512)
def to_psycopg(sql: str) -> str:
    """SQLite-style SQL with ``?`` placeholders as psycopg SQL with ``%s``.

    A literal ``%`` is doubled, as psycopg requires. The statements this
    package runs have no ``?`` inside string literals, the one case a plain
    replacement would get wrong; ``?`` there is refused rather than guessed at.
    """
    if "'" in sql and "?" in "".join(sql.split("'")[1::2]):
        raise ValueError("secinfra: storage: '?' inside a string literal is not supported")
    return sql.replace("%", "%%").replace("?", "%s")


class PgCursor:
    """The result of one statement: ``sqlite3.Cursor``'s reading methods."""

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        """Rows the statement changed (or -1 when PostgreSQL does not say)."""
        return self._cursor.rowcount

    def fetchone(self) -> Any:
        """The next row as a tuple, or None."""
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        """Every remaining row."""
        return self._cursor.fetchall()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cursor)


class PgConnection:
    """One psycopg connection inside a transaction the storage opened."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> PgCursor:
        """Run one statement; see :func:`to_psycopg` for the placeholders."""
        cursor = self._conn.cursor()
        with _integrity_errors():
            cursor.execute(to_psycopg(sql), tuple(parameters))
        return PgCursor(cursor)

    def executemany(self, sql: str, seq_of_parameters: Iterable[Sequence[Any]]) -> PgCursor:
        """Run one statement once per parameter tuple."""
        cursor = self._conn.cursor()
        with _integrity_errors():
            cursor.executemany(to_psycopg(sql), [tuple(p) for p in seq_of_parameters])
        return PgCursor(cursor)


@contextlib.contextmanager
def _integrity_errors() -> Iterator[None]:
    """Re-raise psycopg's IntegrityError as sqlite3's, so callers written
    against either see one class. The message names the constraint only
    (PostgreSQL's DETAIL line quotes the conflicting key's values)."""
    try:
        yield
    except psycopg.IntegrityError as exc:
        constraint = exc.diag.constraint_name or "a constraint"
        raise sqlite3.IntegrityError(
            f"secinfra: storage: {type(exc).__name__}: the change violates {constraint}"
        ) from exc
