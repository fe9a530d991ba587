"""Name conversions shared by the front end and the targets."""

from __future__ import annotations

import re

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def upper_snake(name: str) -> str:
    """``ErrorCode`` -> ``ERROR_CODE``, ``HTTPMethod`` -> ``HTTP_METHOD``."""
    return _CAMEL_BOUNDARY.sub("_", name).upper()


def snake(name: str) -> str:
    """``GetSecretMetadata`` -> ``get_secret_metadata``."""
    return _CAMEL_BOUNDARY.sub("_", name).lower()


def enum_short_name(enum_name: str, value_name: str) -> str:
    """Strip the enum's UPPER_SNAKE prefix: (``ErrorCode``,
    ``ERROR_CODE_NOT_FOUND``) -> ``NOT_FOUND``. A value without the prefix
    keeps its name."""
    prefix = upper_snake(enum_name) + "_"
    if value_name.startswith(prefix) and len(value_name) > len(prefix):
        return value_name[len(prefix) :]
    return value_name


def enum_wire_name(enum_name: str, value_name: str) -> str:
    """The JSON string of an enum value: prefix stripped, lowercased."""
    return enum_short_name(enum_name, value_name).lower()
