"""The audit key: the secret that keys the audit chain and signs its checkpoints.

An audit key is 32 random bytes kept **apart from the database**, as the KEK is:

- **A file** (default ``<data dir>/audit.key``), standard base64 text, mode
  ``0600`` or ``0400`` (anything readable by group or others is refused), made
  by :func:`generate_audit_key_file` (atomic, never overwrites);
- **or an environment variable** (default ``SECINFRA_AUDIT_KEY``), same text.

Two keys are derived from it with HKDF-SHA256 under distinct labels, so one
secret serves both jobs and neither derived key reveals the other:

- the **chain MAC key** (HMAC-SHA256 over every audit entry), and
- the **checkpoint signing key** (an Ed25519 seed). Its public key is what a
  verifier off the host pins; publishing it reveals nothing about the MAC key.

The key's **id** (16 hex digits of a domain-separated SHA-256) is stored in each
keyed audit row, so a later key rotation can tell which key made which entry.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ._errors import CryptoError
from ._kek import _link_no_replace, _read_up_to, _write_new_file, fsync_dir

AUDIT_KEY_SIZE: Final = 32
AUDIT_KEY_ENV_VAR: Final = "SECINFRA_AUDIT_KEY"
_MAX_FILE_BYTES: Final = 1024
_ID_LABEL: Final = b"secinfra/audit-key-id/v1|"
_MAC_INFO: Final = b"secinfra/audit/chain-mac/v1"
_SIGN_INFO: Final = b"secinfra/audit/checkpoint-ed25519/v1"


class AuditKeyError(CryptoError):
    """The audit key cannot be loaded or created (failed_precondition)."""

    code = "failed_precondition"


def _derive(key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key)


class AuditKey:
    """The audit key; ``repr`` shows the id only, never key bytes."""

    __slots__ = ("_id", "_mac_key", "_signing_key")

    def __init__(self, key: bytes) -> None:
        if len(key) != AUDIT_KEY_SIZE:
            raise AuditKeyError(f"an audit key is exactly {AUDIT_KEY_SIZE} bytes; got {len(key)}")
        self._id = hashlib.sha256(_ID_LABEL + key).digest()[:8].hex()
        self._mac_key = _derive(key, _MAC_INFO)
        self._signing_key = Ed25519PrivateKey.from_private_bytes(_derive(key, _SIGN_INFO))

    @classmethod
    def generate(cls) -> AuditKey:
        """A fresh random audit key."""
        return cls(secrets.token_bytes(AUDIT_KEY_SIZE))

    @classmethod
    def from_base64(cls, text: str | bytes) -> AuditKey:
        """Parse the base64 text form (surrounding whitespace ignored)."""
        raw = text.encode("ascii", "replace") if isinstance(text, str) else text
        try:
            key = base64.b64decode(raw.strip(), validate=True)
        except binascii.Error as exc:
            raise AuditKeyError(
                f"an audit key must be standard base64 text encoding {AUDIT_KEY_SIZE} bytes"
            ) from exc
        if len(key) != AUDIT_KEY_SIZE:
            raise AuditKeyError(
                f"an audit key must be standard base64 text encoding {AUDIT_KEY_SIZE} bytes;"
                f" the value decodes to {len(key)} bytes"
            )
        return cls(key)

    @property
    def id(self) -> str:
        """16 lowercase hex digits, safe to store and log."""
        return self._id

    def mac(self, message: bytes) -> str:
        """HMAC-SHA256 of ``message`` under the chain MAC key, as hex."""
        return hmac.new(self._mac_key, message, hashlib.sha256).hexdigest()

    def sign(self, message: bytes) -> bytes:
        """An Ed25519 signature of ``message`` (a checkpoint)."""
        return self._signing_key.sign(message)

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The checkpoint verification key."""
        return self._signing_key.public_key()

    def public_key_b64(self) -> str:
        """The checkpoint verification key as base64 of its 32 raw bytes."""
        raw = self.public_key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return base64.b64encode(raw).decode("ascii")

    def __repr__(self) -> str:
        return f"AuditKey(id={self._id!r})"


def load_audit_key(path: str | os.PathLike[str]) -> AuditKey:
    """Load the audit key from a file (see the module docstring). Errors name
    the path and mode, never the content."""
    file = Path(path)
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise AuditKeyError(
            f"audit key file {str(file)!r} does not exist (run `secinfra-server init`, or set"
            f" audit_key_file or {AUDIT_KEY_ENV_VAR})"
        ) from exc
    except OSError as exc:
        raise AuditKeyError(f"cannot open audit key file {str(file)!r}: {exc.strerror}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise AuditKeyError(f"audit key file {str(file)!r} is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise AuditKeyError(
                f"audit key file {str(file)!r} has mode {mode:04o}; it must not be readable or"
                f" writable by group or others (run: chmod 600 {str(file)!r})"
            )
        data = _read_up_to(fd, _MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise AuditKeyError(f"cannot read audit key file {str(file)!r}: {exc.strerror}") from exc
    finally:
        os.close(fd)
    try:
        return AuditKey.from_base64(data[:_MAX_FILE_BYTES])
    except AuditKeyError as exc:
        raise AuditKeyError(
            f"audit key file {str(file)!r} must hold standard base64 text encoding"
            f" {AUDIT_KEY_SIZE} bytes"
        ) from exc


def load_audit_key_from_env(
    name: str = AUDIT_KEY_ENV_VAR, *, environ: Mapping[str, str] | None = None
) -> AuditKey | None:
    """The audit key from an environment variable, or None if it is unset."""
    env = os.environ if environ is None else environ
    value = env.get(name, "")
    if not value.strip():
        return None
    try:
        return AuditKey.from_base64(value)
    except AuditKeyError as exc:
        raise AuditKeyError(
            f"environment variable {name} must hold standard base64 text encoding"
            f" {AUDIT_KEY_SIZE} bytes"
        ) from exc


def generate_audit_key_file(path: str | os.PathLike[str]) -> AuditKey:
    """Create a new audit key file (mode 0600, atomic, never overwriting)."""
    file = Path(path)
    key = secrets.token_bytes(AUDIT_KEY_SIZE)
    tmp = file.with_name(f".{file.name}.{secrets.token_hex(8)}.tmp")
    try:
        try:
            _write_new_file(tmp, base64.b64encode(key) + b"\n")
            _link_no_replace(tmp, file)
            fsync_dir(file.parent)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    except FileExistsError as exc:
        raise AuditKeyError(
            f"audit key file {str(file)!r} already exists; refusing to overwrite it"
        ) from exc
    except OSError as exc:
        raise AuditKeyError(
            f"cannot create audit key file {str(file)!r}: {exc.strerror or exc}"
        ) from exc
    return AuditKey(key)
