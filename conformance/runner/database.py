"""The throwaway PostgreSQL cluster that replica cases share (``setup.replicas``).

One cluster per run, started on the first case that asks for replicas and
stopped when the run ends; each such case gets a database of its own, so its
replicas share a CA, secrets, tuples and idempotency records and nothing else.

The cluster itself (initdb in a temp dir, a free loopback port, an
unprivileged system user when run as root, scram-sha-256 passwords) is the
server tests' ``server/tests/postgres_cluster.py``, loaded from its file: the
runner is no part of the server package, and one copy of that code is enough.
``scripts/ensure-postgresql.sh`` (run by the nox ``conformance`` session)
installs PostgreSQL's programs when they are missing.
"""

from __future__ import annotations

import contextlib
import importlib.util
import threading
from types import ModuleType
from typing import Any, Final

from .sdks import ROOT

CLUSTER_MODULE: Final = ROOT / "server" / "tests" / "postgres_cluster.py"


def _load_cluster_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_secinfra_postgres_cluster", CLUSTER_MODULE)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {CLUSTER_MODULE}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class DatabaseUnavailable(RuntimeError):
    """PostgreSQL is missing or its cluster did not start."""


class SharedCluster:
    """A cluster started on first use; thread-safe; :meth:`close` stops it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cluster: Any = None
        self._stack: contextlib.ExitStack | None = None
        self._failed: str | None = None
        self._closed = False

    def new_database(self) -> str:
        """The DSN (with its password) of a new, empty database."""
        with self._lock:
            if self._closed:
                raise DatabaseUnavailable("the run is over: no new databases")
            if self._failed is not None:
                raise DatabaseUnavailable(self._failed)
            if self._cluster is None:
                self._start()
            return str(self._cluster.new_database())

    def _start(self) -> None:
        module = _load_cluster_module()
        stack = contextlib.ExitStack()
        try:
            self._cluster = stack.enter_context(module.running_cluster())
        except module.ClusterUnavailable as exc:
            stack.close()
            self._failed = f"PostgreSQL for replica cases: {exc}"
            raise DatabaseUnavailable(self._failed) from exc
        self._stack = stack

    def close(self) -> None:
        """Stop the cluster (if one started) and remove its files."""
        with self._lock:
            self._closed = True
            stack, self._stack, self._cluster = self._stack, None, None
        if stack is not None:
            stack.close()
