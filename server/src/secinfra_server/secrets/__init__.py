"""Secrets: the naming rules for secret names and list prefixes.

Names are validated exactly as DESIGN.md gives them, never normalised; see
:func:`validate_secret_name`, :func:`validate_prefix` and :func:`folders_of`.
Errors: :class:`InvalidSecretName` (a ``ValueError``) with ``code ==
"invalid_argument"`` and ``field`` naming the request field at fault.
"""

from ._names import (
    MAX_NAME_LENGTH,
    NAME_PATTERN,
    InvalidSecretName,
    folders_of,
    validate_prefix,
    validate_secret_name,
)

__all__ = [
    "MAX_NAME_LENGTH",
    "NAME_PATTERN",
    "InvalidSecretName",
    "folders_of",
    "validate_prefix",
    "validate_secret_name",
]
