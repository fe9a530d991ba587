"""Who may do what on the server: the contract between services and policy.

The server's own access control runs through the authorization engine
(dogfooding). Services depend only on this protocol; the implementation over
the engine and the built-in model lives in ``_policy.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class AccessPolicy(Protocol):
    """Decisions about one caller (a SPIFFE ID). Default deny."""

    async def is_admin(self, spiffe_id: str) -> bool:
        """Whether the caller holds the admin relation on the system."""
        ...

    async def can_read_secret(self, spiffe_id: str, name: str) -> bool:
        """Whether the caller may read the secret ``name`` (via folder inheritance too)."""
        ...

    async def can_write_secret(self, spiffe_id: str, name: str) -> bool:
        """Whether the caller may write, delete or destroy the secret ``name``."""
        ...

    async def readable_secrets(self, spiffe_id: str, names: Sequence[str]) -> list[str]:
        """The subset of ``names`` the caller may see, in the given order."""
        ...
