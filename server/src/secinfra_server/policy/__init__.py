"""The server's own access control, run through the authorization engine (dogfooding).

The **built-in model** (:data:`BUILTIN_DSL`) has the types the server itself
decides with:

- ``workload``: a caller; ids are SPIFFE IDs (``workload:spiffe://td/app``).
- ``group``: ``member`` holds workloads and other groups' members.
- ``system``: one object, ``system:root``; ``admin`` may do every admin action
  (write tuples and models, create join tokens, rotate the CA) and implies
  ``writer`` on every folder and secret.
- ``folder`` and ``secret``: ``reader`` and ``writer``; ``writer`` implies
  ``reader``; both are inherited from every enclosing folder
  (``secret:payments/db/password`` from ``folder:payments/db/`` and
  ``folder:payments/``). Folder ids are secret-name prefixes ending in ``/``.
- ``registration_entry``: ``node`` is the node agent that may get SVIDs signed
  for the entry. The EntriesService writes it with the entry and deletes it with
  the entry, in the same transaction; WriteTuples refuses to write it.

The ``parent`` and ``system`` links of folders and secrets are **structural**:
the SQLite reader derives them from names (see
:mod:`secinfra_server.storage.authz_tables`), so they are never written and cannot be.
Nothing else is granted by default: no tuple, no access.

**Bootstrap.** The init-time admin (``spiffe://<td>/secinfra/admin``) becomes the
only admin through one stored tuple, ``system:root#admin@workload:<admin id>``,
written (and audited) the first time the server reads or changes authorization
state after its first start, exactly once per database: an operator who later
deletes it (after granting admin to someone else) does not see it come back.

**User models.** WriteAuthorizationModel takes the user's own types; the server
stores the *merged* model (built-in types first, then the user's), so users
may relate their types to ``workload`` and ``group``, and grants on the built-in
types keep working. A user type named like a built-in one is rejected. A model's
id is the SHA-256 of its canonical JSON, so writing the same model twice is a
no-op. Until a user writes a model, the current model is the built-in one.

The package: ``_builtin_model`` (the model and merging), ``_engine`` (the
engine over SQLite that the AuthzService and the policy share),
``_access`` (the questions the services ask, and their answers) and
``_last_admin`` (whether a revocation would leave no admin with a valid
certificate; RevokeCertificate refuses one that would).
"""

from __future__ import annotations

from ._access import AccessPolicy, EnginePolicy
from ._builtin_model import (
    ADMIN_RELATION,
    BUILTIN_DSL,
    BUILTIN_MODEL,
    BUILTIN_MODEL_ID,
    BUILTIN_TYPES,
    ENTRY_ID_PATTERN,
    ENTRY_TYPE,
    GROUP_TYPE,
    NODE_RELATION,
    READER_RELATION,
    WORKLOAD_TYPE,
    WRITER_RELATION,
    canonical_json,
    merge_user_model,
    model_id,
    stored_json,
    validate_builtin_tuple,
    with_current_builtins,
)
from ._engine import AuthzEngine, RevisionTooNew, Snapshot
from ._last_admin import IssuedLeaf, RevocationTarget, leaves_an_admin, unexpired_leaves

__all__ = [
    "ADMIN_RELATION",
    "BUILTIN_DSL",
    "BUILTIN_MODEL",
    "BUILTIN_MODEL_ID",
    "BUILTIN_TYPES",
    "ENTRY_ID_PATTERN",
    "ENTRY_TYPE",
    "GROUP_TYPE",
    "NODE_RELATION",
    "READER_RELATION",
    "WORKLOAD_TYPE",
    "WRITER_RELATION",
    "AccessPolicy",
    "AuthzEngine",
    "EnginePolicy",
    "IssuedLeaf",
    "RevisionTooNew",
    "RevocationTarget",
    "Snapshot",
    "canonical_json",
    "leaves_an_admin",
    "merge_user_model",
    "model_id",
    "stored_json",
    "unexpired_leaves",
    "validate_builtin_tuple",
    "with_current_builtins",
]
