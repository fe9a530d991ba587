"""The file sink: keep a certificate, its key and the trust bundle in files.

For software that reads PEM files (nginx, Envoy, a JVM, a sidecar) rather than
using the SDK. The private key is written to disk only here, only when asked
(``secinfra agent``, ``secinfra enrol --out``, or a :class:`FileSink` an
application subscribes itself), with mode 0600.

Layout of the output directory::

    DIR/cert.pem   -> current/cert.pem      the leaf first, then intermediates (0600)
    DIR/key.pem    -> current/key.pem       PKCS#8 private key (0600)
    DIR/bundle.pem -> current/bundle.pem    trusted CAs (0644)
    DIR/current    -> .snapshots/<id>       swapped with one rename(2)
    DIR/.snapshots/<id>/                    one complete, fsynced set per change

Why a snapshot directory and a symlink swap: two files cannot both change in
one atomic step. Whatever order two renames go in, a reader that opens
``cert.pem`` and then ``key.pem`` can fall between them and pair a new
certificate with an old key (or the reverse). So every change is written as
a complete new snapshot directory (each file created 0600 in a fresh private
directory, written, fsynced; the directory fsynced), and one ``rename`` of a
new ``current`` symlink over the old one switches certificate, key and bundle
together, then the parent directory is fsynced. This is the Kubernetes
AtomicWriter design (the ``..data`` symlink behind mounted Secrets).

What readers get:

- Resolve ``DIR/current`` once (``os.path.realpath``) and read the files from
  the directory it names: always a matching set. :func:`read_identity_dir`
  does this. The previous snapshot is kept until the next change, so a reader
  has one whole rotation interval to finish.
- Open ``DIR/cert.pem`` then ``DIR/key.pem`` (most TLS libraries): each file
  is always complete, never half written; only a swap that lands exactly
  between the two opens gives a mismatched pair, which every TLS library
  refuses to load ("key values mismatch"). Read again.
- Watch ``DIR`` (not the files) for changes, as for Kubernetes Secrets
  (Envoy: ``watched_directory``), or use ``secinfra agent --exec``.

One sink owns a directory at a time: it holds an exclusive ``flock`` on it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ._bundle import TrustBundle
from ._events import RotationEvent, RotationKind
from ._snapshot import X509Identity

__all__ = ["FileSink", "SinkError", "read_identity_dir", "replace_file"]

log = logging.getLogger("secinfra.agent")

CERT_FILE: Final = "cert.pem"
KEY_FILE: Final = "key.pem"
BUNDLE_FILE: Final = "bundle.pem"
#: The symlink that names the current snapshot.
CURRENT_LINK: Final = "current"
#: Where the snapshots live, inside the output directory.
SNAPSHOTS_DIR: Final = ".snapshots"
#: Every temporary name this module creates starts with this.
TEMP_PREFIX: Final = ".tmp-"

CERT_MODE: Final = 0o600
KEY_MODE: Final = 0o600
BUNDLE_MODE: Final = 0o644
#: Snapshot directories: traversable, so DIR's own mode decides who sees the bundle.
SNAPSHOT_DIR_MODE: Final = 0o755
#: An output directory the sink creates.
OUTPUT_DIR_MODE: Final = 0o700

#: A reader that finds a mismatched pair reads again this many times.
READ_ATTEMPTS: Final = 5
READ_RETRY_SECONDS: Final = 0.05

_FILE_MODES: Final = {CERT_FILE: CERT_MODE, KEY_FILE: KEY_MODE, BUNDLE_FILE: BUNDLE_MODE}


class SinkError(Exception):
    """The output directory cannot be used (owned by another sink, not a directory)."""


class _Snapshots(Protocol):
    """What the sink reads: an IdentitySource (only these two methods)."""

    def identity(self) -> X509Identity | None: ...

    def bundle(self) -> TrustBundle: ...


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` (it must not exist) with exactly ``mode``, write, fsync."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, mode)  # exact, whatever the umask
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_file(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` in one rename (a new file beside it, written
    and fsynced first): a reader sees the old file or the new one, never half."""
    tmp = path.parent / f"{TEMP_PREFIX}{path.name}-{os.urandom(6).hex()}"
    _write_new(tmp, data, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _swap_symlink(directory: Path, name: str, target: str) -> None:
    """Point ``directory/name`` at ``target`` with one rename (no moment without it)."""
    tmp = directory / f"{TEMP_PREFIX}{name}-{os.urandom(6).hex()}"
    os.symlink(target, tmp)
    try:
        os.replace(tmp, directory / name)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class FileSink:
    """Writes the identity and trust bundle of ``source`` into ``directory``.

    Subscribe it to a client; it writes whenever the certificate, key or
    bundle changed::

        sink = FileSink("/run/secinfra", client.source)
        client.on_rotation(sink)
        sink.sync()  # the identity the client already has

    Every write reads the source's *current* snapshot (not the event's
    payload), under a lock, so events that arrive out of order from different
    threads can never leave an older identity on disk. ``on_write`` is called
    (in the writing thread) after each change reached the disk.
    """

    def __init__(
        self,
        directory: str | Path,
        source: _Snapshots | None = None,
        *,
        on_write: Callable[[X509Identity], None] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self._source = source
        self._on_write = on_write
        self._lock = threading.Lock()
        self._written: tuple[bytes, bytes, str] | None = None
        self._previous: str | None = None
        self.directory.mkdir(parents=True, exist_ok=True, mode=OUTPUT_DIR_MODE)
        self._dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(self._dir_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._dir_fd)
            raise SinkError(
                f"secinfra: agent: {self.directory} is being written by another"
                " secinfra agent (one writer per directory)"
            ) from None
        self._snapshots = self.directory / SNAPSHOTS_DIR
        self._snapshots.mkdir(exist_ok=True, mode=SNAPSHOT_DIR_MODE)
        self._previous = self._current_name()
        self._sweep_temporaries()

    # -- public ----------------------------------------------------------------------
    def attach(self, source: _Snapshots) -> None:
        """The source :meth:`sync` reads (when it was not known at construction)."""
        self._source = source

    def __call__(self, event: RotationEvent) -> None:
        """A rotation subscriber: write after enrolment, renewal and bundle changes."""
        if event.kind in (RotationKind.ENROLLED, RotationKind.RENEWED, RotationKind.BUNDLE_UPDATED):
            self.sync()

    def sync(self) -> bool:
        """Write the source's current identity and bundle if they changed; True if written."""
        if self._source is None:
            raise SinkError("secinfra: agent: this FileSink has no source; call write()")
        with self._lock:
            identity = self._source.identity()
            if identity is None:
                return False
            return self._write_locked(identity, self._source.bundle())

    def write(self, identity: X509Identity, bundle: TrustBundle) -> bool:
        """Write this identity and bundle as the new snapshot (if they differ from
        the last one written); True if written."""
        with self._lock:
            return self._write_locked(identity, bundle)

    def close(self) -> None:
        """Release the directory (the files stay: they are valid until they expire)."""
        with self._lock:
            if self._dir_fd >= 0:
                os.close(self._dir_fd)  # drops the flock
                self._dir_fd = -1

    def __enter__(self) -> FileSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the write -------------------------------------------------------------------
    def _write_locked(self, identity: X509Identity, bundle: TrustBundle) -> bool:
        if self._dir_fd < 0:
            raise SinkError("secinfra: agent: this FileSink is closed")
        content = (identity.chain_pem, identity.key_pem, bundle.pem)
        if content == self._written:
            return False
        name = self._write_snapshot(
            {CERT_FILE: identity.chain_pem, KEY_FILE: identity.key_pem, BUNDLE_FILE: bundle.pem}
        )
        _swap_symlink(self.directory, CURRENT_LINK, f"{SNAPSHOTS_DIR}/{name}")
        for file in _FILE_MODES:
            target = f"{CURRENT_LINK}/{file}"
            link = self.directory / file
            if not link.is_symlink() or os.readlink(link) != target:
                _swap_symlink(self.directory, file, target)
        _fsync_dir(self.directory)
        self._written = content
        previous, self._previous = self._previous, name
        self._prune(keep={name, previous})
        log.info(
            "secinfra: agent: wrote %s (serial %s, expires %s)",
            self.directory,
            identity.serial,
            identity.not_after.isoformat(),
        )
        if self._on_write is not None:
            self._on_write(identity)
        return True

    def _write_snapshot(self, files: dict[str, bytes | str]) -> str:
        """A complete, fsynced snapshot directory; returns its name under .snapshots."""
        tmp = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=self._snapshots))  # 0700
        try:
            for file, data in files.items():
                raw = data.encode() if isinstance(data, str) else data
                _write_new(tmp / file, raw, _FILE_MODES[file])
            os.chmod(tmp, SNAPSHOT_DIR_MODE)
            _fsync_dir(tmp)
            name = f"{time.time_ns():020d}-{os.urandom(4).hex()}"
            os.rename(tmp, self._snapshots / name)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_dir(self._snapshots)
        return name

    def _current_name(self) -> str | None:
        link = self.directory / CURRENT_LINK
        if not link.is_symlink():
            return None
        return Path(os.readlink(link)).name

    def _prune(self, keep: set[str | None]) -> None:
        """Remove snapshots other than the current and the previous one."""
        for entry in self._snapshots.iterdir():
            if entry.name in keep or entry.name.startswith(TEMP_PREFIX):
                continue
            shutil.rmtree(entry, ignore_errors=True)

    def _sweep_temporaries(self) -> None:
        """Remove what a crashed writer left (we hold the lock: nobody else writes)."""
        for parent in (self.directory, self._snapshots):
            for entry in parent.iterdir():
                if not entry.name.startswith(TEMP_PREFIX):
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        entry.unlink()


# -- readers ------------------------------------------------------------------------------
def _pair_matches(cert_pem: bytes, key_pem: bytes) -> bool:
    try:
        leaf = x509.load_pem_x509_certificates(cert_pem)[0]
        key = serialization.load_pem_private_key(key_pem, password=None)
    except ValueError:
        return False
    return key.public_key() == leaf.public_key()


def read_identity_dir(directory: str | Path) -> tuple[bytes, bytes, bytes]:
    """(cert chain, key, bundle) PEM from a sink's directory, always a matching set.

    Resolves ``current`` once and reads from that snapshot (read again if a
    writer pruned it meanwhile); a directory of plain files (written by
    something else) is read again if the pair read does not match. Raises
    ``OSError`` if files are missing and ``ValueError`` if the key never
    matched the certificate.
    """
    base = Path(directory)
    for attempt in range(READ_ATTEMPTS):
        current = base / CURRENT_LINK
        snapshot = Path(os.path.realpath(current)) if current.is_symlink() else base
        try:
            cert = (snapshot / CERT_FILE).read_bytes()
            key = (snapshot / KEY_FILE).read_bytes()
            bundle = (snapshot / BUNDLE_FILE).read_bytes()
        except FileNotFoundError:
            if snapshot == base or attempt == READ_ATTEMPTS - 1:
                raise
            continue  # the snapshot was pruned under us: resolve current again
        if _pair_matches(cert, key):
            return cert, key, bundle
        time.sleep(READ_RETRY_SECONDS)
    raise ValueError(f"secinfra: the key in {base} does not match its certificate")
