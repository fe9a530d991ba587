"""Envelope encryption: AES-256-GCM with a fresh data key per sealed value.

:func:`seal` draws a fresh 256-bit **data key** (DEK) per call, encrypts the
plaintext with it, then **wraps** (encrypts) the DEK with the keyring's current
KEK. The result, a :class:`SealedBox`, is three DB columns: the KEK id, the
wrapped DEK and the ciphertext. Both blobs start with a format version byte, so a
row is self-describing even where no version column is stored.

Layout, format version 1 (all lengths in bytes)::

    ciphertext  = 0x01 | nonce (12) | AES-256-GCM(DEK, plaintext) (len(plaintext)) | tag (16)
    wrapped_key = 0x01 | nonce (12) | AES-256-GCM(KEK, DEK) (32)                   | tag (16)

so ``len(ciphertext) == len(plaintext) + 29`` and ``len(wrapped_key) == 61``.
Nonces are 96 random bits from the OS CSPRNG; each DEK encrypts exactly one
message, so nonce reuse under one DEK cannot happen, and KEK nonces stay far
below the birthday bound (2**32 wraps per KEK would still leave a collision
chance under 2**-32).

**AAD.** The caller passes the context the value belongs to (built by
:func:`aad_for_secret` or :func:`aad_for_ca_key`). The content is encrypted with
AAD ``b"secinfra/data/v1|" + aad`` and the DEK is wrapped with AAD
``b"secinfra/dek/v1|" + aad``; the two labels keep the two uses apart. A box
moved to another row (another secret name or version, another CA) therefore
fails to open instead of returning the other row's plaintext.

**Failures.** :func:`open_` and :func:`rewrap` raise :class:`DecryptionError` for
every failure, with a message that says which part failed in general terms and
never holds key or plaintext bytes; they never return wrong plaintext.

**KEK rotation.** :func:`rewrap` unwraps the DEK with whichever KEK the box names
and wraps it again under the keyring's current KEK; the ciphertext is not touched,
so rotation costs one 32-byte AES-GCM operation per stored version, whatever the
value sizes. The server's rotation command is meant to work like this:

1. The operator creates a new KEK file and starts the server (or the command)
   with ``Keyring(new, previous=[old])``: new writes use the new KEK, old rows
   still open.
2. The command selects the rows whose ``kek_id`` is not the current id (secret
   versions and CA keys), in batches (e.g. 500 rows): for each row it rebuilds
   the row's AAD, calls ``rewrap`` and updates only ``kek_id`` and
   ``wrapped_key``, committing once per batch. A crash loses at most one batch
   of work; re-running resumes, since re-wrapped rows no longer match.
3. When no row names the old KEK id, the command reports done; only then may the
   old KEK file be removed (keep a backup until a restore has been tested).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ._errors import DecryptionError
from ._kek import Kek, Keyring

#: The format version written by :func:`seal`; the only one :func:`open_` accepts.
FORMAT_VERSION: Final = 1
DATA_KEY_SIZE: Final = 32
NONCE_SIZE: Final = 12
TAG_SIZE: Final = 16
_HEADER: Final = bytes([FORMAT_VERSION])
#: Version byte + nonce + tag: what a sealed empty plaintext takes.
CIPHERTEXT_OVERHEAD: Final = 1 + NONCE_SIZE + TAG_SIZE
WRAPPED_KEY_SIZE: Final = 1 + NONCE_SIZE + DATA_KEY_SIZE + TAG_SIZE

_DATA_AAD_LABEL: Final = b"secinfra/data/v1|"
_DEK_AAD_LABEL: Final = b"secinfra/dek/v1|"
_SECRET_AAD_LABEL: Final = b"secinfra/aad/secret/v1"
_CA_KEY_AAD_LABEL: Final = b"secinfra/aad/ca-key/v1"
_IDEMPOTENCY_AAD_LABEL: Final = b"secinfra/aad/idempotency/v1"
_MAX_VERSION: Final = 2**63 - 1  # fits SQLite's signed 64-bit INTEGER


@dataclass(frozen=True)
class SealedBox:
    """An encrypted value as stored: one field per DB column.

    Attributes:
        kek_id: id of the KEK that wrapped the data key (16 hex digits).
        wrapped_key: the data key, wrapped; layout in the module docstring.
        ciphertext: the value, encrypted; layout in the module docstring.
    """

    kek_id: str
    wrapped_key: bytes
    ciphertext: bytes

    @property
    def version(self) -> int:
        """The format version, read from the ciphertext's first byte (0 if empty)."""
        return self.ciphertext[0] if self.ciphertext else 0

    def __repr__(self) -> str:
        return (
            f"SealedBox(kek_id={self.kek_id!r}, version={self.version}, "
            f"wrapped_key=<{len(self.wrapped_key)} bytes>, "
            f"ciphertext=<{len(self.ciphertext)} bytes>)"
        )


def seal(keyring: Keyring, plaintext: bytes, aad: bytes) -> SealedBox:
    """Encrypt ``plaintext`` under a fresh data key, wrapped by the current KEK.

    ``aad`` binds the box to its place (see :func:`aad_for_secret`); the same
    ``aad`` must be passed to :func:`open_`.
    """
    data_key = AESGCM.generate_key(bit_length=DATA_KEY_SIZE * 8)
    nonce = os.urandom(NONCE_SIZE)
    body = AESGCM(data_key).encrypt(nonce, plaintext, _DATA_AAD_LABEL + aad)
    kek = keyring.current
    return SealedBox(
        kek_id=kek.id,
        wrapped_key=_wrap(kek, data_key, aad),
        ciphertext=_HEADER + nonce + body,
    )


def open_(keyring: Keyring, box: SealedBox, aad: bytes) -> bytes:
    """Decrypt and authenticate a box sealed with the same ``aad``.

    Raises:
        DecryptionError: on any failure; see the module docstring.
    """
    if len(box.ciphertext) < CIPHERTEXT_OVERHEAD:
        raise DecryptionError(
            f"cannot decrypt sealed value: the ciphertext is {len(box.ciphertext)} bytes, "
            f"shorter than the {CIPHERTEXT_OVERHEAD} bytes any sealed value takes (truncated)"
        )
    _check_version(box.ciphertext[0], "sealed value")
    data_key = _unwrap(keyring, box, aad)
    nonce = box.ciphertext[1 : 1 + NONCE_SIZE]
    body = box.ciphertext[1 + NONCE_SIZE :]
    try:
        return AESGCM(data_key).decrypt(nonce, body, _DATA_AAD_LABEL + aad)
    except InvalidTag as exc:
        raise DecryptionError(
            "cannot decrypt sealed value: the ciphertext failed authentication (it was "
            "altered, or it belongs to another row)"
        ) from exc


def rewrap(keyring: Keyring, box: SealedBox, aad: bytes) -> SealedBox:
    """Wrap the box's data key again under the keyring's current KEK.

    The ciphertext is returned unchanged; only ``kek_id`` and ``wrapped_key``
    change. ``aad`` is the box's AAD, as for :func:`open_` (the wrap is bound to
    it). A box already wrapped by the current KEK is checked and returned as is.

    Raises:
        DecryptionError: the data key cannot be unwrapped (unknown KEK id,
            tampered or truncated wrapped key, wrong AAD).
    """
    if not box.ciphertext:
        raise DecryptionError("cannot re-wrap sealed value: the ciphertext is empty")
    _check_version(box.ciphertext[0], "sealed value")
    data_key = _unwrap(keyring, box, aad)
    kek = keyring.current
    if box.kek_id == kek.id:
        return box
    return SealedBox(
        kek_id=kek.id, wrapped_key=_wrap(kek, data_key, aad), ciphertext=box.ciphertext
    )


def aad_for_secret(name: str, version: int) -> bytes:
    """The AAD for version ``version`` of the secret ``name``.

    Length-prefixed fields, so no two (name, version) pairs share an encoding:
    ``("a", 12)`` and ``("a1", 2)`` differ.
    """
    if not isinstance(name, str):
        raise TypeError(f"a secret name is str, not {type(name).__name__}")
    if isinstance(version, bool) or not isinstance(version, int):
        raise TypeError(f"a secret version is int, not {type(version).__name__}")
    if not 0 <= version <= _MAX_VERSION:
        raise ValueError(f"secinfra: crypto: secret version {version} is out of range")
    return _frame(_SECRET_AAD_LABEL, name.encode("utf-8"), version.to_bytes(8, "big"))


def aad_for_ca_key(ca_id: str) -> bytes:
    """The AAD for the private key of the CA with id ``ca_id``."""
    if not isinstance(ca_id, str):
        raise TypeError(f"a CA id is str, not {type(ca_id).__name__}")
    return _frame(_CA_KEY_AAD_LABEL, ca_id.encode("utf-8"))


def aad_for_idempotent_response(caller: str, key: str) -> bytes:
    """The AAD for the stored response of ``caller``'s call with Idempotency-Key ``key``."""
    return _frame(_IDEMPOTENCY_AAD_LABEL, caller.encode("utf-8"), key.encode("utf-8"))


def _frame(*fields: bytes) -> bytes:
    """Each field as a 4-byte big-endian length followed by its bytes."""
    return b"".join(len(field).to_bytes(4, "big") + field for field in fields)


def _check_version(version: int, what: str) -> None:
    if version != FORMAT_VERSION:
        raise DecryptionError(
            f"cannot decrypt {what}: unknown format version {version} "
            f"(this server reads version {FORMAT_VERSION})"
        )


def _wrap(kek: Kek, data_key: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_SIZE)
    return _HEADER + nonce + AESGCM(kek.key).encrypt(nonce, data_key, _DEK_AAD_LABEL + aad)


def _unwrap(keyring: Keyring, box: SealedBox, aad: bytes) -> bytes:
    kek = keyring.get(box.kek_id)
    if kek is None:
        raise DecryptionError(
            f"cannot decrypt data key: it was wrapped by KEK {box.kek_id[:64]!r}, which the "
            f"keyring does not hold (it holds {', '.join(keyring.ids)}); load that KEK "
            "as a previous key"
        )
    wrapped = box.wrapped_key
    if len(wrapped) != WRAPPED_KEY_SIZE:
        raise DecryptionError(
            f"cannot decrypt data key: the wrapped key is {len(wrapped)} bytes, "
            f"not {WRAPPED_KEY_SIZE}"
        )
    _check_version(wrapped[0], "data key")
    nonce = wrapped[1 : 1 + NONCE_SIZE]
    try:
        return AESGCM(kek.key).decrypt(nonce, wrapped[1 + NONCE_SIZE :], _DEK_AAD_LABEL + aad)
    except InvalidTag as exc:
        raise DecryptionError(
            "cannot decrypt data key: the wrapped key failed authentication (it was "
            "altered, or it belongs to another row)"
        ) from exc
