"""Work that runs only once a write transaction has committed.

Neither Python's ``sqlite3`` nor psycopg has a commit hook, so each backend's
:meth:`~secinfra_server.storage.SqlStorage.write` collects callbacks while
``fn`` runs (on the storage thread, hence thread-local) and runs them after
``COMMIT`` returned; a transaction that rolls back discards them. The audit
chain counts its in-transaction entries this way, so a change that rolls back
takes its count with it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator

log = logging.getLogger("secinfra.storage")

_local = threading.local()


def after_commit(callback: Callable[[], None]) -> None:
    """Run ``callback`` once the write transaction running now has committed.

    Raises:
        RuntimeError: not inside a storage write transaction (a programming
            error: nothing would ever run the callback).
    """
    pending: list[Callable[[], None]] | None = getattr(_local, "pending", None)
    if pending is None:
        raise RuntimeError("after_commit called outside a storage write transaction")
    pending.append(callback)


@contextlib.contextmanager
def collecting() -> Iterator[list[Callable[[], None]]]:
    """Collect :func:`after_commit` callbacks for one transaction on this thread.

    The caller runs them with :func:`run_committed` after its commit returned,
    and drops them if the transaction rolled back.
    """
    if getattr(_local, "pending", None) is not None:
        raise RuntimeError("storage write transactions do not nest")
    pending: list[Callable[[], None]] = []
    _local.pending = pending
    try:
        yield pending
    finally:
        _local.pending = None


def run_committed(callbacks: list[Callable[[], None]]) -> None:
    """Run the callbacks of a committed transaction. The commit stands whatever
    they do, so a failing callback is logged, not raised."""
    for callback in callbacks:
        try:
            callback()
        except Exception:
            log.exception("an after-commit callback failed; the transaction is committed")
