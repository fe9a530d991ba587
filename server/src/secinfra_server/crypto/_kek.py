"""The key encryption key (KEK) and the keyring that holds it.

A KEK is 32 random bytes: an AES-256 key that only ever wraps data keys (see
``_envelope``); it never encrypts a secret value directly.

Sources:

- **A file** (default ``<data dir>/kek``) holding the key as **standard base64
  text**: 44 characters, optionally followed by a newline (leading and trailing
  ASCII whitespace is ignored). :func:`generate_kek_file` writes it; raw binary
  files are refused. The file must be a regular file with no permission bits for
  group or others (``0600`` or ``0400``); :func:`load_kek` refuses anything else.
  The base64 form means ``cat kek`` gives exactly the value the environment
  variable takes.
- **An environment variable** (default ``SECINFRA_KEK``) holding the same base64
  text, for deployments that inject secrets that way (:func:`load_kek_from_env`).

Each KEK has an **id**: the first 8 bytes of
``SHA-256(b"secinfra/kek-id/v1|" + key)`` as 16 lowercase hex digits. Every
wrapped data key records the id of the KEK that wrapped it, so a :class:`Keyring`
holding the current KEK plus older ones can unwrap rows written before a rotation.
The id reveals nothing useful about the key (a truncated, domain-separated hash of
256 random bits) and is safe to log and store.
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
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Final

from ._errors import InsecureKekFile, KekError

#: Length of a KEK in bytes (AES-256).
KEK_SIZE: Final = 32
#: The environment variable :func:`load_kek_from_env` reads by default.
KEK_ENV_VAR: Final = "SECINFRA_KEK"
#: Permission bits a KEK file must not have: any access for group or others.
_FORBIDDEN_MODE_BITS: Final = 0o077
#: A KEK file is 44 base64 characters plus whitespace; anything far larger is wrong.
_MAX_FILE_BYTES: Final = 1024
_ID_LABEL: Final = b"secinfra/kek-id/v1|"
_ID_BYTES: Final = 8


class Kek:
    """One key encryption key: 32 secret bytes and their public id.

    ``repr`` and ``str`` show the id only, never the key.
    """

    __slots__ = ("_id", "_key")

    def __init__(self, key: bytes) -> None:
        """Wrap raw key bytes; :class:`KekError` unless exactly 32 bytes."""
        if not isinstance(key, bytes):
            raise TypeError(f"a KEK is bytes, not {type(key).__name__}")
        if len(key) != KEK_SIZE:
            raise KekError(f"a KEK is exactly {KEK_SIZE} bytes (AES-256); got {len(key)}")
        self._key = key
        self._id = hashlib.sha256(_ID_LABEL + key).digest()[:_ID_BYTES].hex()

    @classmethod
    def generate(cls) -> Kek:
        """A fresh random KEK from the operating system's CSPRNG."""
        return cls(secrets.token_bytes(KEK_SIZE))

    @classmethod
    def from_base64(cls, text: str | bytes) -> Kek:
        """Parse the base64 text form (surrounding whitespace ignored)."""
        raw = text.encode("ascii", "replace") if isinstance(text, str) else text
        try:
            key = base64.b64decode(raw.strip(), validate=True)
        except binascii.Error as exc:
            raise KekError(
                "a KEK must be standard base64 text encoding 32 bytes; the value is not base64"
            ) from exc
        if len(key) != KEK_SIZE:
            raise KekError(
                f"a KEK must be standard base64 text encoding {KEK_SIZE} bytes (AES-256); "
                f"the value decodes to {len(key)} bytes"
            )
        return cls(key)

    @property
    def id(self) -> str:
        """The KEK's id: 16 lowercase hex digits, safe to store and log."""
        return self._id

    @property
    def key(self) -> bytes:
        """The raw 32 key bytes. Handle with care: never log or store them."""
        return self._key

    def to_base64(self) -> str:
        """The base64 text form, as written to KEK files and env variables."""
        return base64.b64encode(self._key).decode("ascii")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Kek):
            return NotImplemented
        return hmac.compare_digest(self._key, other._key)

    def __hash__(self) -> int:
        return hash(self._id)

    def __repr__(self) -> str:
        return f"Kek(id={self._id!r})"


class Keyring:
    """The current KEK, which wraps every new data key, plus older KEKs kept
    only to unwrap data keys written before a rotation.

    ``Keyring(current)`` for normal operation; ``Keyring(new, previous=[old])``
    while a rotation re-wraps rows (see ``rewrap``).
    """

    __slots__ = ("_by_id", "_current")

    def __init__(self, current: Kek, previous: Iterable[Kek] = ()) -> None:
        self._current = current
        self._by_id: dict[str, Kek] = {current.id: current}
        for kek in previous:
            known = self._by_id.setdefault(kek.id, kek)
            if known != kek:  # two different keys with one id: never in practice
                raise KekError(f"two different KEKs share the id {kek.id}")

    @property
    def current(self) -> Kek:
        """The KEK that wraps new data keys."""
        return self._current

    @property
    def ids(self) -> tuple[str, ...]:
        """Ids of every KEK held, current first."""
        return tuple(self._by_id)

    def get(self, kek_id: str) -> Kek | None:
        """The KEK with this id, or None if the keyring does not hold it."""
        return self._by_id.get(kek_id)

    def __contains__(self, kek_id: object) -> bool:
        return kek_id in self._by_id

    def __iter__(self) -> Iterator[Kek]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def __repr__(self) -> str:
        older = [i for i in self._by_id if i != self._current.id]
        return f"Keyring(current={self._current.id!r}, previous={older!r})"


def load_kek(path: str | os.PathLike[str]) -> Kek:
    """Load a KEK from a file holding its base64 text form.

    Raises:
        InsecureKekFile: the file has any permission bit for group or others.
        KekError: the file is missing, not a regular file, unreadable, or does not
            hold base64 text for exactly 32 bytes. Messages name the path, never
            the content.
    """
    file = Path(path)
    try:
        # O_NONBLOCK: a FIFO put in the key's place must not hang the server.
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise KekError(
            f"KEK file {str(file)!r} does not exist (run `secinfra-server init`, or set "
            "kek_file to the key's path)",
            path=file,
        ) from exc
    except OSError as exc:
        raise KekError(f"cannot open KEK file {str(file)!r}: {exc.strerror}", path=file) from exc
    try:
        # Check the file we opened, not the path: no window to swap it in between.
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KekError(f"KEK file {str(file)!r} is not a regular file", path=file)
        mode = stat.S_IMODE(info.st_mode)
        if mode & _FORBIDDEN_MODE_BITS:
            raise InsecureKekFile(file, mode)
        data = _read_up_to(fd, _MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise KekError(f"cannot read KEK file {str(file)!r}: {exc.strerror}", path=file) from exc
    finally:
        os.close(fd)
    if len(data) > _MAX_FILE_BYTES:
        raise KekError(
            f"KEK file {str(file)!r} is too large to be a KEK; it must hold 44 characters "
            "of base64 text",
            path=file,
        )
    try:
        return Kek.from_base64(data)
    except KekError as exc:
        raise KekError(
            f"KEK file {str(file)!r} must hold standard base64 text encoding {KEK_SIZE} "
            f"bytes ({_describe(data)})",
            path=file,
        ) from exc


def _read_up_to(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(fd, limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _describe(data: bytes) -> str:
    """Say what is wrong with a KEK file's content without showing any of it."""
    try:
        decoded = base64.b64decode(data.strip(), validate=True)
    except binascii.Error:
        if len(data) == KEK_SIZE:
            return f"it holds {KEK_SIZE} bytes that are not base64: encode a raw key with base64"
        return "its content is not base64"
    return f"it decodes to {len(decoded)} bytes"


def load_kek_from_env(name: str = KEK_ENV_VAR, *, environ: Mapping[str, str] | None = None) -> Kek:
    """Load a KEK from an environment variable holding its base64 text form.

    Raises:
        KekError: the variable is unset, empty, or not base64 for exactly 32 bytes.
            Messages name the variable, never its value.
    """
    env = os.environ if environ is None else environ
    value = env.get(name, "")
    if not value.strip():
        raise KekError(f"environment variable {name} is not set; it must hold the KEK as base64")
    try:
        return Kek.from_base64(value)
    except KekError as exc:
        raise KekError(
            f"environment variable {name} must hold standard base64 text encoding "
            f"{KEK_SIZE} bytes ({_describe(value.encode('ascii', 'replace'))})"
        ) from exc


def generate_kek_file(path: str | os.PathLike[str]) -> Kek:
    """Create a new random KEK in a file with mode 0600, atomically; return it.

    The key is written to a temporary file in the same directory (created with
    ``O_CREAT | O_EXCL`` and mode 0600), fsynced, then moved into place and the
    directory fsynced, so a crash leaves either no KEK file or a complete one.
    The move is a hard link, which fails if ``path`` exists, so an existing KEK is
    never overwritten, even by a concurrent call. On file systems without hard
    links it falls back to checking for ``path`` and renaming.

    Raises:
        KekError: ``path`` already exists, or the file cannot be written.
    """
    file = Path(path)
    if os.path.lexists(file):
        raise _exists(file)
    kek = Kek.generate()
    tmp = file.with_name(f".{file.name}.{secrets.token_hex(8)}.tmp")
    try:
        try:
            _write_new_file(tmp, kek.to_base64().encode("ascii") + b"\n")
            _link_no_replace(tmp, file)
            fsync_dir(file.parent)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    except FileExistsError as exc:
        raise _exists(file) from exc
    except OSError as exc:
        raise KekError(
            f"cannot create KEK file {str(file)!r}: {exc.strerror or exc}", path=file
        ) from exc
    return kek


def _exists(file: Path) -> KekError:
    return KekError(
        f"KEK file {str(file)!r} already exists; refusing to overwrite it (losing a KEK "
        "makes every secret it wraps unreadable)",
        path=file,
    )


def _write_new_file(path: Path, data: bytes) -> None:
    """Create ``path`` (which must not exist) with mode 0600, write ``data``, fsync."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)  # exact mode whatever the umask
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _link_no_replace(src: Path, dst: Path) -> None:
    """Give ``src`` the name ``dst``, failing with FileExistsError if ``dst`` exists."""
    try:
        os.link(src, dst, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError:
        # No hard links here (some FUSE/network file systems): check, then rename.
        if os.path.lexists(dst):
            raise FileExistsError(dst) from None
        os.rename(src, dst)


def fsync_dir(directory: Path) -> None:
    """Make a new directory entry durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
