"""The storage backends the parametrized tests run on (see conftest.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

import pytest

from secinfra_server.storage import SqlStorage

#: The storage backends, by the name tests are parametrized with.
BACKENDS: Final = ("sqlite", "postgres")

#: Runs a test that uses the integration ``server`` fixture once per backend.
ON_EACH_BACKEND: Final = pytest.mark.parametrize("server", BACKENDS, indirect=True)


@dataclass(frozen=True)
class Backend:
    """One storage backend under test, with a way to open (and re-open) it."""

    name: str
    opener: Callable[[], Awaitable[SqlStorage]]
    #: The DSN for PostgreSQL ('' for SQLite).
    dsn: str = ""

    async def open(self) -> SqlStorage:
        """Open the storage on this test's database (migrated)."""
        return await self.opener()
