"""The storage backends the parametrized tests run on (see conftest.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from secinfra_server.storage import SqlStorage


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
