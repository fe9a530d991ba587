"""Authorization state in SQLite: tuples, models, the revision counter.

Everything here is synchronous and takes an open connection: callers run it
inside :meth:`SqliteStorage.read` (one snapshot) or :meth:`SqliteStorage.write`
(one IMMEDIATE transaction), so an engine call and the tuples it reads, or a
tuple write and its audit entry, are one unit.

Tables (migration 2): ``authz_tuples(object_type, object_id, relation, user,
revision, condition_json)`` keyed by the whole tuple (``condition_json``,
migration 5, is the condition a tuple was written with: canonical JSON, '' for
none; not part of the key), with a second index ``(object_type,
relation, user)``, which are exactly the two lookups of
:class:`~secinfra_server.authz.TupleReader`; ``authz_models(id, model_json,
created_ms)``; meta keys ``authz_revision`` (the counter behind revision
tokens) and ``authz_model_id`` (the current model; empty: the built-in one).
The SQL runs on SQLite and PostgreSQL alike; ``user`` is a reserved word in
PostgreSQL (``SELECT user`` is the session's role), so the column is always
written quoted, ``"user"``, which SQLite reads as the same column.

**Structural links.** The built-in model (``policy/_builtin_model.py``) relates every
``secret`` and ``folder`` to the folders that contain it (``parent``) and to
``system:root`` (``system``). Those links follow from names alone, so
:class:`SqliteTupleReader` derives them instead of storing them: nobody has to
write them and they can never drift. ``secret:payments/db/password`` has the
parents ``folder:payments/`` and ``folder:payments/db/``: every enclosing folder,
not only the nearest, so resolving a check takes the same few steps however
deeply a secret is nested (the engine bounds the depth of a resolution).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ..authz import TupleCondition, TupleKey

#: Meta key of the revision counter.
REVISION_KEY: Final = "authz_revision"
#: Meta key of the current model id ('' until a model is written).
MODEL_ID_KEY: Final = "authz_model_id"
#: Meta key set once the init-time admin has been granted (value: the revision).
BOOTSTRAP_KEY: Final = "authz_bootstrapped"

# The built-in types with structural relations (see the module docstring).
SECRET_TYPE: Final = "secret"
FOLDER_TYPE: Final = "folder"
SYSTEM_TYPE: Final = "system"
SYSTEM_ROOT_ID: Final = "root"
SYSTEM_ROOT: Final = f"{SYSTEM_TYPE}:{SYSTEM_ROOT_ID}"
PARENT_RELATION: Final = "parent"
SYSTEM_RELATION: Final = "system"
STRUCTURAL_RELATIONS: Final = frozenset(
    {
        (SECRET_TYPE, PARENT_RELATION),
        (SECRET_TYPE, SYSTEM_RELATION),
        (FOLDER_TYPE, PARENT_RELATION),
        (FOLDER_TYPE, SYSTEM_RELATION),
    }
)
_FOLDER_PREFIX: Final = f"{FOLDER_TYPE}:"


def condition_json(key: TupleKey) -> str:
    """The stored form of ``key``'s condition: canonical JSON, '' for none."""
    if key.condition is None:
        return ""
    return json.dumps(
        key.condition.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def _condition(text: str) -> TupleCondition | None:
    if not text:
        return None
    data: dict[str, Any] = json.loads(text)
    return TupleCondition(str(data["name"]), dict(data.get("context") or {}))


def _stored(user: str, relation: str, obj: str, cond: str) -> TupleKey:
    return TupleKey(user, relation, obj, _condition(cond))


def is_structural(object_type: str, relation: str) -> bool:
    """Whether ``object_type#relation`` is derived from names, never stored."""
    return (object_type, relation) in STRUCTURAL_RELATIONS


def enclosing_folders(object_id: str) -> list[str]:
    """The folders (ids ending in ``/``) that contain ``object_id``, outermost first.

    ``payments/db/password`` -> ``payments/``, ``payments/db/``; the folder
    ``payments/db/`` -> ``payments/``; ``token`` -> nothing. The id itself is never
    included. No validation: a malformed id simply yields what its slashes say.
    """
    folders: list[str] = []
    end = object_id.find("/")
    while end != -1 and end + 1 < len(object_id):
        folders.append(object_id[: end + 1])
        end = object_id.find("/", end + 1)
    return folders


def _prefix_range(prefix: str) -> tuple[str, str]:
    """``(low, high)`` with ``low <= s < high`` exactly for strings starting with
    ``prefix`` (``prefix`` ends in ``/``, and ``'0'`` is the character after ``/``)."""
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


class SqliteTupleReader:
    """A :class:`~secinfra_server.authz.TupleReader` over ``authz_tuples`` on one
    connection, plus the structural links of the built-in model.

    Use it inside one :meth:`SqliteStorage.read` function, so every lookup of
    an engine call sees the same snapshot. The connection belongs to the
    calling thread; so does the reader.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def read(self, object_type: str, object_id: str, relation: str) -> list[TupleKey]:
        """See :meth:`~secinfra_server.authz.TupleReader.read`."""
        obj = f"{object_type}:{object_id}"
        if is_structural(object_type, relation):
            if relation == SYSTEM_RELATION:
                return [TupleKey(SYSTEM_ROOT, relation, obj)]
            return [
                TupleKey(f"{_FOLDER_PREFIX}{folder}", relation, obj)
                for folder in enclosing_folders(object_id)
            ]
        rows = self._conn.execute(
            'SELECT "user", condition_json FROM authz_tuples WHERE object_type = ?'
            " AND object_id = ? AND relation = ?",
            (object_type, object_id, relation),
        )
        return [_stored(str(user), relation, obj, str(cond)) for (user, cond) in rows]

    def read_objects(self, object_type: str, relation: str, user: str) -> list[str]:
        """See :meth:`~secinfra_server.authz.TupleReader.read_objects`.

        For the structural relations the objects are the secrets that exist (the
        ``secrets`` table) and the folders that are known: those enclosing an
        existing secret or named in a stored tuple.
        """
        if is_structural(object_type, relation):
            return self._structural_objects(object_type, relation, user)
        rows = self._conn.execute(
            "SELECT object_id FROM authz_tuples WHERE object_type = ? AND relation = ?"
            ' AND "user" = ?',
            (object_type, relation, user),
        )
        return [str(object_id) for (object_id,) in rows]

    def _structural_objects(self, object_type: str, relation: str, user: str) -> list[str]:
        if relation == SYSTEM_RELATION:
            if user != SYSTEM_ROOT:
                return []
            prefix = ""
        else:
            prefix = user.removeprefix(_FOLDER_PREFIX)
            if not user.startswith(_FOLDER_PREFIX) or not prefix.endswith("/"):
                return []
        if object_type == SECRET_TYPE:
            return self._secret_names(prefix)
        return sorted(self._folders(prefix))

    def _secret_names(self, prefix: str) -> list[str]:
        if not prefix:
            rows = self._conn.execute("SELECT name FROM secrets")
        else:
            rows = self._conn.execute(
                "SELECT name FROM secrets WHERE name >= ? AND name < ?", _prefix_range(prefix)
            )
        return [str(name) for (name,) in rows]

    def _folders(self, prefix: str) -> set[str]:
        """Known folders strictly inside ``prefix`` ('' for every known folder)."""
        if not prefix:
            rows: Iterable[tuple[str]] = self._conn.execute(
                "SELECT DISTINCT object_id FROM authz_tuples WHERE object_type = ?",
                (FOLDER_TYPE,),
            )
        else:
            rows = self._conn.execute(
                "SELECT DISTINCT object_id FROM authz_tuples WHERE object_type = ?"
                " AND object_id >= ? AND object_id < ?",
                (FOLDER_TYPE, *_prefix_range(prefix)),
            )
        named = [str(object_id) for (object_id,) in rows]
        found: set[str] = set()
        for object_id in [*named, *self._secret_names(prefix)]:
            candidates = enclosing_folders(object_id)
            if object_id.endswith("/"):
                candidates.append(object_id)
            found.update(f for f in candidates if f.startswith(prefix) and f != prefix)
        return found


# ---------------------------------------------------------------------- revisions


def _meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def _set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def current_revision(conn: sqlite3.Connection) -> int:
    """The revision counter: how many changes authorization state has seen."""
    return int(_meta(conn, REVISION_KEY) or 0)


def bump_revision(conn: sqlite3.Connection) -> int:
    """Advance the revision counter by one (inside a write); return the new value."""
    revision = current_revision(conn) + 1
    _set_meta(conn, REVISION_KEY, str(revision))
    return revision


# -------------------------------------------------------------------------- tuples


@dataclass(frozen=True)
class TupleChange:
    """What :func:`apply_tuple_changes` did."""

    written: int
    deleted: int
    revision: int

    @property
    def changed(self) -> bool:
        """Whether any tuple was added or removed."""
        return bool(self.written or self.deleted)


def apply_tuple_changes(
    conn: sqlite3.Connection, writes: Sequence[TupleKey], deletes: Sequence[TupleKey]
) -> TupleChange:
    """Delete then write tuples with set semantics, inside the caller's transaction.

    Writing a stored tuple (with the same condition) or deleting a missing one
    is a no-op; writing a stored tuple with another condition raises
    :class:`ConditionConflict` (delete it first: a tuple's condition changes
    only by a delete and a write). The revision
    advances by one if anything changed, and every written tuple records it;
    otherwise the revision stays and is returned unchanged. Atomicity is the
    caller's transaction: it commits all of this or none.
    """
    revision = current_revision(conn) + 1
    deleted = 0
    for key in deletes:
        cursor = conn.execute(
            "DELETE FROM authz_tuples WHERE object_type = ? AND object_id = ?"
            ' AND relation = ? AND "user" = ?',
            (key.object_type, key.object_id, key.relation, key.user),
        )
        deleted += cursor.rowcount
    written = 0
    for index, key in enumerate(writes):
        cond = condition_json(key)
        cursor = conn.execute(
            'INSERT INTO authz_tuples (object_type, object_id, relation, "user", revision,'
            " condition_json) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (key.object_type, key.object_id, key.relation, key.user, revision, cond),
        )
        if not cursor.rowcount:
            row = conn.execute(
                "SELECT condition_json FROM authz_tuples WHERE object_type = ?"
                ' AND object_id = ? AND relation = ? AND "user" = ?',
                (key.object_type, key.object_id, key.relation, key.user),
            ).fetchone()
            if row is not None and str(row[0]) != cond:
                raise ConditionConflict(index, key)
        written += cursor.rowcount
    if written or deleted:
        _set_meta(conn, REVISION_KEY, str(revision))
    else:
        revision -= 1
    return TupleChange(written, deleted, revision)


class ConditionConflict(Exception):
    """A write names a stored tuple with a different condition (or none)."""

    def __init__(self, index: int, key: TupleKey) -> None:
        super().__init__(f"tuple {key} is stored with a different condition")
        self.index = index
        self.key = key


@dataclass(frozen=True)
class TupleFilter:
    """Which stored tuples :func:`read_tuples` returns; empty fields match anything."""

    object_type: str = ""
    object_id: str = ""
    relation: str = ""
    user: str = ""


#: A position in the tuple order: the last tuple of a page.
TupleCursor = tuple[str, str, str, str]


def read_tuples(
    conn: sqlite3.Connection, where: TupleFilter, *, after: TupleCursor | None, limit: int
) -> tuple[list[TupleKey], TupleCursor | None]:
    """One page of stored tuples matching ``where``, in key order.

    Returns the tuples and the cursor to pass as ``after`` for the next page
    (None on the last page). Structural links are not stored, so never listed.
    """
    clauses: list[str] = []
    params: list[str | int] = []
    for column, value in (
        ("object_type", where.object_type),
        ("object_id", where.object_id),
        ("relation", where.relation),
        ('"user"', where.user),
    ):
        if value:
            clauses.append(f"{column} = ?")
            params.append(value)
    if after is not None:
        clauses.append('(object_type, object_id, relation, "user") > (?, ?, ?, ?)')
        params.extend(after)
    sql = 'SELECT object_type, object_id, relation, "user", condition_json FROM authz_tuples'
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    sql += ' ORDER BY object_type, object_id, relation, "user" LIMIT ?'
    params.append(limit + 1)
    rows = [tuple(str(v) for v in row) for row in conn.execute(sql, params)]
    page = rows[:limit]
    tuples = [
        _stored(user, relation, f"{otype}:{oid}", cond) for otype, oid, relation, user, cond in page
    ]
    more = len(rows) > limit
    cursor: TupleCursor | None = None
    if more and page:
        otype, oid, relation, user, _ = page[-1]
        cursor = (otype, oid, relation, user)
    return tuples, cursor


# -------------------------------------------------------------------------- models


def current_model_id(conn: sqlite3.Connection) -> str:
    """The current model's id; '' while no model has been written."""
    return _meta(conn, MODEL_ID_KEY) or ""


def load_model_json(conn: sqlite3.Connection, model_id: str) -> str | None:
    """A stored model's canonical JSON, or None."""
    row = conn.execute("SELECT model_json FROM authz_models WHERE id = ?", (model_id,)).fetchone()
    return None if row is None else str(row[0])


#: Where a page of :func:`list_models` ends: the last model's (created_ms, id).
ModelCursor = tuple[int, str]


def list_models(
    conn: sqlite3.Connection, *, after: ModelCursor | None, limit: int
) -> tuple[list[tuple[str, str]], ModelCursor | None]:
    """Stored models as (id, JSON), the newest first (ties by id, descending), at
    most ``limit`` after ``after``; and the cursor of the next page, if any."""
    sql = "SELECT id, model_json, created_ms FROM authz_models"
    params: tuple[object, ...] = ()
    if after is not None:
        sql += " WHERE created_ms < ? OR (created_ms = ? AND id < ?)"
        params = (after[0], after[0], after[1])
    sql += " ORDER BY created_ms DESC, id DESC LIMIT ?"
    rows = conn.execute(sql, (*params, limit + 1)).fetchall()
    page = [(str(row[0]), str(row[1])) for row in rows[:limit]]
    more = len(rows) > limit
    cursor = (int(rows[limit - 1][2]), str(rows[limit - 1][0])) if more else None
    return page, cursor


def store_model(conn: sqlite3.Connection, model_id: str, model_json: str, created_ms: int) -> bool:
    """Store a model (idempotent: ids are content hashes) and make it current.

    Returns whether the current model changed; if it did, the revision advances.
    """
    conn.execute(
        "INSERT INTO authz_models (id, model_json, created_ms) VALUES (?, ?, ?)"
        " ON CONFLICT (id) DO NOTHING",
        (model_id, model_json, created_ms),
    )
    if current_model_id(conn) == model_id:
        return False
    _set_meta(conn, MODEL_ID_KEY, model_id)
    bump_revision(conn)
    return True


# ----------------------------------------------------------------------- bootstrap


def is_bootstrapped(conn: sqlite3.Connection) -> bool:
    """Whether the init-time admin grant has been written (ever)."""
    return _meta(conn, BOOTSTRAP_KEY) is not None


def mark_bootstrapped(conn: sqlite3.Connection, revision: int) -> None:
    """Record that the init-time admin grant was written at ``revision``."""
    _set_meta(conn, BOOTSTRAP_KEY, str(revision))
