"""Durable state: the :class:`Storage` interface and its SQLite implementation."""

from ._base import InTransaction, Storage
from ._records import IssuedCertificate, StoredCa, StoredJoinToken, StoredRevocation
from ._sqlite import SCHEMA_VERSION, SqliteStorage

__all__ = [
    "SCHEMA_VERSION",
    "InTransaction",
    "IssuedCertificate",
    "SqliteStorage",
    "Storage",
    "StoredCa",
    "StoredJoinToken",
    "StoredRevocation",
]
