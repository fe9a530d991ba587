"""Fixtures shared by every server test: the storage backends.

``postgres`` is one throwaway PostgreSQL cluster for the whole session (see
``postgres_cluster.py``). Tests that take ``backend`` run once per storage
backend, SQLite and PostgreSQL, each on a fresh database. When PostgreSQL
cannot start, its tests skip, unless ``SECINFRA_REQUIRE_POSTGRES=1`` (set by
``nox -s tests-server``), when they fail.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from backends import BACKENDS, Backend
from postgres_cluster import ClusterUnavailable, PostgresCluster, running_cluster

from secinfra_server.storage import SqliteStorage, SqlStorage
from secinfra_server.storage.postgres import PostgresStorage

REQUIRE_POSTGRES = os.environ.get("SECINFRA_REQUIRE_POSTGRES") == "1"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """The session's PostgreSQL cluster."""
    try:
        with running_cluster() as cluster:
            yield cluster
    except ClusterUnavailable as exc:
        if REQUIRE_POSTGRES:
            pytest.fail(f"PostgreSQL did not start: {exc}")
        pytest.skip(f"PostgreSQL did not start: {exc}")


@pytest.fixture
def postgres_dsn(postgres: PostgresCluster) -> str:
    """The DSN of a new, empty database on the session's cluster."""
    return postgres.new_database()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Each storage backend in turn, on a database of its own."""
    if request.param == "sqlite":
        path = tmp_path / "db"
        return Backend("sqlite", lambda: SqliteStorage.open(path))
    dsn: str = request.getfixturevalue("postgres_dsn")
    return Backend("postgres", lambda: PostgresStorage.open(dsn, migrate=True), dsn)


@pytest.fixture
async def any_storage(backend: Backend) -> AsyncIterator[SqlStorage]:
    """An open storage of each backend, closed at the end."""
    opened = await backend.open()
    try:
        yield opened
    finally:
        await opened.close()
