"""Tuple storage: the :class:`TupleReader` protocol and an in-memory store.

The engine only reads, through two index-friendly lookups. A store backed by a
database needs two indexes: ``(object_type, object_id, relation)`` for
:meth:`TupleReader.read` and ``(object_type, relation, user)`` for
:meth:`TupleReader.read_objects`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Protocol

from ._tuples import TupleKey


class TupleReader(Protocol):
    """Read access to relationship tuples, as the engine needs it.

    Implementations must be safe to call from several threads at once, and each
    call should see one consistent snapshot. Strings are compared exactly: no
    wildcard or userset expansion happens in the store; the engine does that.
    """

    def read(self, object_type: str, object_id: str, relation: str) -> Iterable[TupleKey]:
        """Return every tuple whose object is ``object_type:object_id`` and whose
        relation is ``relation``.

        Users of all three kinds are included: objects (``user:anne``), usersets
        (``group:eng#member``) and wildcards (``user:*``). Order does not matter;
        each tuple appears once. An unknown object or relation yields nothing.
        """
        ...

    def read_objects(self, object_type: str, relation: str, user: str) -> Iterable[str]:
        """Return the ids of the objects of type ``object_type`` that have a tuple
        ``object_type:<id>#relation@user``, with ``user`` matched exactly.

        ``user`` is a user string as written in tuples (``user:anne``,
        ``group:eng#member`` or ``user:*``); ``user:anne`` does not match a stored
        ``user:*``. Ids are returned without the type prefix, each once, in any
        order. This is the reverse lookup ``list_objects`` is built on.
        """
        ...


class InMemoryTupleStore:
    """A thread-safe, in-memory :class:`TupleReader` with ``write`` and ``delete``.

    Meant for tests and small embedded uses. Reads return copies, so callers may
    iterate while others write.
    """

    def __init__(self, tuples: Iterable[TupleKey] = ()) -> None:
        self._lock = threading.Lock()
        self._by_object: dict[tuple[str, str, str], dict[str, TupleKey]] = {}
        self._by_user: dict[tuple[str, str, str], set[str]] = {}
        self.write(tuples)

    def write(self, tuples: Iterable[TupleKey]) -> None:
        """Add tuples; writing a tuple that is already stored is a no-op."""
        with self._lock:
            for key in tuples:
                self._by_object.setdefault(_object_index(key), {})[key.user] = key
                self._by_user.setdefault(_user_index(key), set()).add(key.object_id)

    def delete(self, tuples: Iterable[TupleKey]) -> None:
        """Remove tuples; deleting a tuple that is not stored is a no-op."""
        with self._lock:
            for key in tuples:
                by_user = self._by_object.get(_object_index(key), {})
                by_user.pop(key.user, None)
                self._by_user.get(_user_index(key), set()).discard(key.object_id)

    def read(self, object_type: str, object_id: str, relation: str) -> list[TupleKey]:
        """See :meth:`TupleReader.read`."""
        with self._lock:
            return list(self._by_object.get((object_type, object_id, relation), {}).values())

    def read_objects(self, object_type: str, relation: str, user: str) -> list[str]:
        """See :meth:`TupleReader.read_objects`."""
        with self._lock:
            return sorted(self._by_user.get((object_type, relation, user), ()))

    def __len__(self) -> int:
        with self._lock:
            return sum(len(users) for users in self._by_object.values())


class ContextualReader:
    """A :class:`TupleReader` that sees ``base`` plus contextual tuples: tuples
    that hold for one request only, as if written, and are never stored
    (OpenFGA's contextual tuples). Reads are the union; a tuple in both is
    returned once."""

    def __init__(self, base: TupleReader, contextual: Iterable[TupleKey]) -> None:
        self._base = base
        self._extra = InMemoryTupleStore(contextual)

    def read(self, object_type: str, object_id: str, relation: str) -> list[TupleKey]:
        """See :meth:`TupleReader.read`."""
        found = {key.user: key for key in self._base.read(object_type, object_id, relation)}
        for key in self._extra.read(object_type, object_id, relation):
            found.setdefault(key.user, key)
        return list(found.values())

    def read_objects(self, object_type: str, relation: str, user: str) -> list[str]:
        """See :meth:`TupleReader.read_objects`."""
        ids = set(self._base.read_objects(object_type, relation, user))
        ids.update(self._extra.read_objects(object_type, relation, user))
        return sorted(ids)


def _object_index(key: TupleKey) -> tuple[str, str, str]:
    return (key.object_type, key.object_id, key.relation)


def _user_index(key: TupleKey) -> tuple[str, str, str]:
    return (key.object_type, key.relation, key.user)
