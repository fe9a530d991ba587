"""Errors raised by :mod:`secinfra_server.crypto`.

Every error carries a wire ``code`` (mapped to an HTTP status by
:func:`secinfra_server.errors.from_domain_error`) and a message that starts with
``secinfra: crypto: ``::

    CryptoError                 base; code set per subclass
    ├── DecryptionError         internal: a sealed value did not decrypt (tampered
    │                           store, wrong row, unknown KEK): a server fault
    └── KekError                failed_precondition: the KEK cannot be loaded or created
        └── InsecureKekFile     the KEK file is readable or writable by group/others

Messages never contain key bytes or plaintext. They may name a KEK by its id
(a truncated, domain-separated hash that reveals nothing about the key) and a KEK
file by its path and mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Final, Literal

ErrorCode = Literal["internal", "failed_precondition"]

_PREFIX: Final = "secinfra: crypto: "


class CryptoError(Exception):
    """Base of every error this package raises.

    Attributes:
        code: the wire error code.
        message: the full message, starting with ``secinfra: crypto: ``.
    """

    code: ClassVar[ErrorCode] = "internal"

    def __init__(self, message: str) -> None:
        self.message = _PREFIX + message
        super().__init__(self.message)


class DecryptionError(CryptoError):
    """A sealed value could not be decrypted and authenticated.

    Raised for every failure of :func:`open_` and :func:`rewrap`: tampered
    ciphertext or wrapped key, the wrong AAD (a row read under another name or
    version), truncated data, an unknown format, or a KEK id missing from the
    keyring. Never returns wrong plaintext instead.
    """

    code = "internal"


class KekError(CryptoError):
    """The key encryption key cannot be loaded or created.

    Attributes:
        path: the KEK file at fault, if the KEK came from a file.
    """

    code = "failed_precondition"

    def __init__(self, message: str, *, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


class InsecureKekFile(KekError):
    """The KEK file's permissions let group or others read or write it.

    Attributes:
        path: the KEK file.
        mode: its permission bits (e.g. ``0o644``).
    """

    def __init__(self, path: Path, mode: int) -> None:
        super().__init__(
            f"KEK file {str(path)!r} has mode {mode:04o}; it must not be readable or "
            f"writable by group or others (run: chmod 600 {str(path)!r})",
            path=path,
        )
        self.mode = mode
