"""Secret names and list prefixes: validation and folder ancestry.

A secret name is one or more path **segments** joined by ``/``::

    ^[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*$      at most 256 characters

Each segment starts with a lowercase ASCII letter or digit and continues with
lowercase letters, digits, ``.``, ``_`` or ``-``. So ``.`` and ``..`` can never be a
segment (no path traversal), names neither start nor end with ``/``, and ``//``
(an empty segment) never occurs. Dots inside a segment are allowed
(``backup..old`` is one ordinary segment). Names are never normalised: a name is
valid exactly as given, or rejected with a message that says what to fix.

Folders (for folder inheritance of permissions) are the proper ancestors of a
name, each written with its trailing ``/``: see :func:`folders_of`.

A list prefix is the empty string (everything), a name, or a name followed by
``/``: see :func:`validate_prefix`.
"""

from __future__ import annotations

import re
import unicodedata
from typing import ClassVar, Final, Literal, NoReturn

#: Longest secret name, in characters (all ASCII, so also bytes).
MAX_NAME_LENGTH: Final = 256
NAME_PATTERN: Final = re.compile(r"[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*")

_PREFIX: Final = "secinfra: secrets: "
_SEGMENT_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-")
_SEGMENT_START: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
#: Longest excerpt of an invalid name quoted in a message.
_SHOWN_CHARS: Final = 64


class InvalidSecretName(ValueError):
    """A secret name (or list prefix) breaks the naming rules.

    Attributes:
        code: always ``invalid_argument``.
        field: the request field at fault: ``name`` or ``prefix``.
        reason: what to fix, without the ``secinfra: secrets: <what> '<value>': ``
            lead-in.
        message: the full message.
    """

    code: ClassVar[Literal["invalid_argument"]] = "invalid_argument"

    def __init__(self, message: str, *, field: str = "name", reason: str = "") -> None:
        self.message = message
        self.field = field
        self.reason = reason or message
        super().__init__(message)


def validate_secret_name(name: str) -> str:
    """Return ``name`` unchanged if it is a valid secret name.

    Raises:
        InvalidSecretName: with ``field == "name"`` and a message saying what to fix.
    """
    _check(name, what="secret name", field="name", allow_empty=False, allow_trailing_slash=False)
    return name


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` unchanged if it is a valid list-by-prefix argument.

    Valid: ``""`` (list everything), any valid secret name (``payments/d`` lists
    ``payments/db`` and ``payments/dev/key``), or a valid name plus a trailing
    ``/`` (``payments/`` lists only what is inside the folder ``payments``).
    At most 256 characters.

    Raises:
        InvalidSecretName: with ``field == "prefix"``.
    """
    _check(prefix, what="prefix", field="prefix", allow_empty=True, allow_trailing_slash=True)
    return prefix


def folders_of(name: str) -> list[str]:
    """The folders that contain the secret ``name``, outermost first.

    Each folder is a proper prefix of the name ending in ``/``; the name itself
    is not included, so a top-level name has no folders::

        folders_of("payments/db/password") == ["payments/", "payments/db/"]
        folders_of("token") == []

    Every folder is a valid list prefix, and ``name.startswith(folder)`` holds.

    Raises:
        InvalidSecretName: ``name`` is not a valid secret name.
    """
    validate_secret_name(name)
    folders: list[str] = []
    end = name.find("/")
    while end != -1:
        folders.append(name[: end + 1])
        end = name.find("/", end + 1)
    return folders


def _check(
    value: object,
    *,
    what: str,
    field: str,
    allow_empty: bool,
    allow_trailing_slash: bool,
) -> None:
    if not isinstance(value, str):
        _fail(what, field, None, f"must be a string, not {type(value).__name__}")
    text: str = value
    if not text:
        if allow_empty:
            return
        _fail(what, field, text, "must not be empty")
    if len(text) > MAX_NAME_LENGTH:
        _fail(
            what,
            field,
            text,
            f"is {len(text)} characters long; the limit is {MAX_NAME_LENGTH}",
        )
    for index, char in enumerate(text):
        if unicodedata.category(char) == "Cc":
            _fail(
                what,
                field,
                text,
                f"must not contain control characters (found {char!r} at position {index})",
            )
    if any("A" <= char <= "Z" for char in text):
        lowered = text.lower()
        hint = f" (did you mean {lowered!r}?)" if _is_valid(lowered, allow_trailing_slash) else ""
        _fail(what, field, text, f"must be lowercase{hint}")
    for index, char in enumerate(text):
        if char != "/" and char not in _SEGMENT_CHARS:
            _fail(
                what,
                field,
                text,
                f"must not contain {char!r} (at position {index}); allowed are a-z, 0-9, "
                "'.', '_', '-', and '/' between segments",
            )
    if text.startswith("/"):
        _fail(what, field, text, "must not start with '/'")
    if "//" in text:
        _fail(what, field, text, "must not contain '//' (an empty segment)")
    body = text
    if text.endswith("/"):
        if not allow_trailing_slash:
            _fail(what, field, text, "must not end with '/'")
        body = text[:-1]
    for segment in body.split("/"):
        if segment in (".", ".."):
            _fail(what, field, text, f"must not contain {segment!r} as a path segment")
        if segment[0] not in _SEGMENT_START:
            _fail(
                what,
                field,
                text,
                f"segment {segment[:_SHOWN_CHARS]!r} must start with a lowercase letter "
                f"or digit, not {segment[0]!r}",
            )
    if NAME_PATTERN.fullmatch(body) is None:  # unreachable if the checks above are complete
        _fail(what, field, text, f"must match {NAME_PATTERN.pattern}")


def _is_valid(text: str, allow_trailing_slash: bool) -> bool:
    body = text[:-1] if allow_trailing_slash and text.endswith("/") else text
    return len(text) <= MAX_NAME_LENGTH and NAME_PATTERN.fullmatch(body) is not None


def _show(text: str | None) -> str:
    """Quote a rejected value for a message: repr (control characters escaped),
    cut to a readable length."""
    if text is None:
        return ""
    if len(text) <= _SHOWN_CHARS:
        return f" {text!r}"
    return f" {text[:_SHOWN_CHARS]!r}..."


def _fail(what: str, field: str, text: str | None, reason: str) -> NoReturn:
    raise InvalidSecretName(f"{_PREFIX}{what}{_show(text)}: {reason}", field=field, reason=reason)
