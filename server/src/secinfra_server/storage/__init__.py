"""Durable state: the :class:`Storage` interface, its SQLite implementation
(the embedded default) and, in :mod:`.postgres`, its PostgreSQL implementation
for replicas that share one database.

The package's surface: the storage classes and records here, the millisecond
timestamps and schema migration every table helper uses, :func:`after_commit`
(work that runs only once the current write transaction committed), and five
modules of SQL that runs inside a caller's transaction, one per group of tables:
:mod:`.secret_tables`, :mod:`.authz_tables`, :mod:`.identity_tables` (CAs,
join tokens, revocations), :mod:`.crl_tables` (the published CRLs) and
:mod:`.sealed_tables` (the values sealed by the KEK, for KEK rotation).
"""

from ._base import InTransaction, SchemaTooNew, Storage
from ._commit_hooks import after_commit
from ._records import (
    IssuedCertificate,
    LiftedRevocation,
    StoredCa,
    StoredJoinToken,
    StoredRevocation,
)
from ._sql_storage import SqlStorage, from_ms, to_ms
from ._sqlite import SCHEMA_VERSION, SqliteStorage, migrate

__all__ = [
    "SCHEMA_VERSION",
    "InTransaction",
    "IssuedCertificate",
    "LiftedRevocation",
    "SchemaTooNew",
    "SqlStorage",
    "SqliteStorage",
    "Storage",
    "StoredCa",
    "StoredJoinToken",
    "StoredRevocation",
    "after_commit",
    "from_ms",
    "migrate",
    "to_ms",
]
