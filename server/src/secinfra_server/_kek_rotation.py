"""Loading the server's KEK, and rotating it: ``secinfra-server kek ...``.

**Where the KEK comes from** (:func:`load_keyring`):

- If the environment variable ``SECINFRA_KEK`` is set, it holds the current KEK
  (base64 text); ``SECINFRA_KEK_PREVIOUS`` may hold older ones (comma-separated)
  that still unwrap rows not yet re-wrapped. No file is read.
- Otherwise the KEK file (``kek_file``, default ``<data dir>/kek``). If a rotation
  is unfinished, ``<kek file>.new`` exists too and is loaded as well, so every row
  opens whichever KEK wraps it.

**Rotation** (``secinfra-server kek rotate``, server stopped):

1. Take an exclusive lock on the database (SQLite ``locking_mode=EXCLUSIVE``);
   if a server (or anything else) has it open, stop with a clear error. The
   lock is held until the command ends, so no server can start meanwhile.
2. Create the new KEK in ``<kek file>.new`` (0600, atomic, fsynced), or load it
   if a previous run already made it.
3. Re-wrap, with ``Keyring(new, previous=[old])``, the data key of every row
   whose ``kek_id`` is not the new KEK's: secret versions, CA private keys and
   stored idempotent responses; one transaction per batch of rows. A crash loses
   at most the batch in flight; re-running resumes.
4. Swap the files: hard-link the old KEK to ``<kek file>.retired-<old id>`` (a
   backup for restoring database backups taken before the rotation), then
   atomically rename ``<kek file>.new`` over ``<kek file>``; fsync the directory.

Every step is safe to repeat, so after a crash the command is simply run again.
Each batch's audit entry (``kek.rewrap``, actor :data:`KEK_ACTOR`) commits in the
batch's transaction, and ``kek.rotate`` is written just before the files are
swapped; no row changes without its entry.
With the KEK in the environment, ``kek rewrap`` does step 3 for the keyring the
environment describes (see docs/operations/kek.md).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sqlite3
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ._clock import Clock
from .audit import AuditChain, AuditEvent, load_audit_key_for
from .config import ConfigError, ServerConfig, load_config
from .crypto import (
    KEK_ENV_VAR,
    AuditKeyError,
    DecryptionError,
    Kek,
    KekError,
    Keyring,
    fsync_dir,
    generate_kek_file,
    load_kek,
    load_kek_from_env,
    rewrap,
)
from .storage import migrate
from .storage import sealed_tables as sealed
from .storage.sealed_tables import SEALED_TABLES

#: Older KEKs (comma-separated base64) when the current one is in SECINFRA_KEK.
KEK_PREVIOUS_ENV_VAR: Final = "SECINFRA_KEK_PREVIOUS"
#: Rows re-wrapped per transaction.
DEFAULT_BATCH_ROWS: Final = 500
#: How long to wait for the database lock before saying the server is running.
LOCK_TIMEOUT_SECONDS: Final = 2.0
#: The actor of the audit entries the kek commands write.
KEK_ACTOR: Final = "secinfra-server/kek"


class KekRotationError(RuntimeError):
    """Rotation cannot proceed; the message says why and what to do."""


def pending_kek_path(kek_path: Path) -> Path:
    """Where a rotation keeps the new KEK until it is done."""
    return kek_path.with_name(kek_path.name + ".new")


def retired_kek_path(kek_path: Path, kek_id: str) -> Path:
    """Where a rotation leaves the old KEK (a backup, for restoring old backups)."""
    return kek_path.with_name(f"{kek_path.name}.retired-{kek_id}")


def kek_from_env(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the KEK comes from the environment rather than a file."""
    env = os.environ if environ is None else environ
    return bool(env.get(KEK_ENV_VAR, "").strip())


def load_keyring(config: ServerConfig, environ: Mapping[str, str] | None = None) -> Keyring:
    """The server's keyring: see the module docstring for the sources."""
    env = os.environ if environ is None else environ
    if kek_from_env(env):
        current = load_kek_from_env(KEK_ENV_VAR, environ=env)
        previous: list[Kek] = []
        for index, part in enumerate(env.get(KEK_PREVIOUS_ENV_VAR, "").split(",")):
            if not part.strip():
                continue
            try:
                previous.append(Kek.from_base64(part))
            except KekError as exc:
                raise KekError(
                    f"entry {index + 1} of {KEK_PREVIOUS_ENV_VAR} is not a KEK: it must be"
                    " standard base64 text encoding 32 bytes"
                ) from exc
        return Keyring(current, previous)
    current = load_kek(config.kek_path)
    pending = pending_kek_path(config.kek_path)
    if os.path.lexists(pending):
        return Keyring(current, [load_kek(pending)])
    return Keyring(current)


@dataclass
class RewrapResult:
    """What a re-wrap pass did."""

    kek_id: str
    rewrapped: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.rewrapped.values())


@dataclass(frozen=True)
class KekAudit:
    """The audit entries of one kek command run: one request id, the OS user."""

    chain: AuditChain
    request_id: str = field(default_factory=lambda: f"kek-{uuid.uuid4()}")
    os_user: str = field(default_factory=getpass.getuser)
    clock: Clock = field(default_factory=Clock)

    @classmethod
    def for_config(cls, config: ServerConfig, environ: Mapping[str, str] | None) -> KekAudit:
        """Entries keyed with the server's audit key (env, else its file)."""
        return cls(AuditChain(load_audit_key_for(config, environ)))

    def append(self, conn: sqlite3.Connection, action: str, **details: Any) -> None:
        """Append one entry inside ``conn``'s open transaction."""
        event = AuditEvent(
            actor=KEK_ACTOR,
            action=action,
            resource="kek",
            outcome="allowed",
            request_id=self.request_id,
            details={**details, "os_user": self.os_user},
        )
        self.chain.append(conn, event, self.clock.now())


@dataclass(frozen=True)
class RotationResult:
    """What ``kek rotate`` did."""

    old_kek_id: str
    new_kek_id: str
    rewrap: RewrapResult
    retired_path: Path
    resumed: bool


@contextmanager
def exclusive_database(path: Path) -> Iterator[sqlite3.Connection]:
    """The database, locked against every other connection until the block ends.

    Raises KekRotationError if the file is missing or another process (a running
    server) holds it open.
    """
    if not path.exists():
        raise KekRotationError(
            f"secinfra: kek: no database at {str(path)!r}; run `secinfra-server init` first"
        )
    conn = sqlite3.connect(path, isolation_level=None, timeout=LOCK_TIMEOUT_SECONDS)
    try:
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("BEGIN EXCLUSIVE")
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            raise KekRotationError(
                f"secinfra: kek: the database {str(path)!r} is in use; stop the server"
                " first (a running server keeps using the KEK it loaded, and SQLite has"
                " one owner)"
            ) from exc
        migrate(conn)
        yield conn
    finally:
        conn.close()


@contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """One IMMEDIATE transaction on the exclusive connection: commit, or roll back."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def rewrap_rows(
    conn: sqlite3.Connection,
    keyring: Keyring,
    audit: KekAudit,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: Callable[[str, int], None] | None = None,
) -> RewrapResult:
    """Re-wrap, under ``keyring.current``, every data key another KEK wraps.

    One IMMEDIATE transaction per batch, with its ``kek.rewrap`` audit entry
    (table, rows, KEK id). A row whose data key cannot be
    unwrapped (tampered, or wrapped by a KEK the keyring lacks) stops the pass
    with KekRotationError naming the row; rows done so far stay done.
    """
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    target = keyring.current.id
    result = RewrapResult(kek_id=target)
    for spec in SEALED_TABLES:
        done = 0
        while True:
            with _immediate(conn):
                rows = sealed.rows_not_under(conn, spec, target, batch_rows)
                for row in rows:
                    box = row.box()
                    if box is None:
                        raise KekRotationError(
                            f"secinfra: kek: {spec.table} row {_show(row.key)} names KEK"
                            f" {row.kek_id} but has no sealed value"
                        )
                    try:
                        new = rewrap(keyring, box, spec.aad(*row.key))
                    except DecryptionError as exc:
                        raise KekRotationError(
                            f"secinfra: kek: cannot re-wrap {spec.table} row {_show(row.key)}:"
                            f" {exc}. Nothing in this batch was changed; fix or destroy"
                            " that row, then run the command again"
                        ) from exc
                    sealed.set_wrapped_key(conn, spec, row, new)
                if rows:
                    audit.append(
                        conn, "kek.rewrap", table=spec.table, rows=len(rows), kek_id=target
                    )
            done += len(rows)
            if rows and progress is not None:
                progress(spec.table, done)
            if len(rows) < batch_rows:
                break
        result.rewrapped[spec.table] = done
    return result


def rotate_kek(
    config: ServerConfig,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    environ: Mapping[str, str] | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> RotationResult:
    """Rotate the file KEK: see the module docstring. Safe to run again after a crash."""
    if kek_from_env(environ):
        raise KekRotationError(
            f"secinfra: kek: the KEK comes from {KEK_ENV_VAR}, not a file; put the new KEK in"
            f" {KEK_ENV_VAR}, the old one in {KEK_PREVIOUS_ENV_VAR}, and run"
            " `secinfra-server kek rewrap`"
        )
    kek_path = config.kek_path
    pending = pending_kek_path(kek_path)
    audit = KekAudit.for_config(config, environ)
    with exclusive_database(config.database_path) as conn:
        old = load_kek(kek_path)
        resumed = os.path.lexists(pending)
        new = load_kek(pending) if resumed else generate_kek_file(pending)
        if new == old:
            raise KekRotationError(
                f"secinfra: kek: {str(pending)!r} holds the current KEK; remove it and run"
                " the command again"
            )
        result = rewrap_rows(
            conn, Keyring(new, [old]), audit, batch_rows=batch_rows, progress=progress
        )
        leftover = {
            table: {k: n for k, n in by_kek.items() if k != new.id}
            for table, by_kek in sealed.count_by_kek(conn).items()
        }
        if any(leftover.values()):  # cannot happen: rewrap_rows covers every table
            raise KekRotationError(f"secinfra: kek: rows still under other KEKs: {leftover}")
        retired = retired_kek_path(kek_path, old.id)
        # Written before the swap: a crash between the two leaves an entry for
        # a rotation that the next run (resumed) completes and records again.
        with _immediate(conn):
            audit.append(
                conn,
                "kek.rotate",
                old_kek_id=old.id,
                new_kek_id=new.id,
                rewrapped=result.total,
                resumed=resumed,
            )
        if not os.path.lexists(retired):
            os.link(kek_path, retired, follow_symlinks=False)
        fsync_dir(kek_path.parent)
        os.replace(pending, kek_path)
        fsync_dir(kek_path.parent)
    return RotationResult(old.id, new.id, result, retired, resumed)


def rewrap_database(
    config: ServerConfig,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    environ: Mapping[str, str] | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> RewrapResult:
    """Re-wrap every row under the current KEK of :func:`load_keyring` (server stopped)."""
    keyring = load_keyring(config, environ)
    audit = KekAudit.for_config(config, environ)
    with exclusive_database(config.database_path) as conn:
        return rewrap_rows(conn, keyring, audit, batch_rows=batch_rows, progress=progress)


def _show(key: tuple[Any, ...]) -> str:
    return "(" + ", ".join(repr(part) for part in key) + ")"


# -- the `secinfra-server kek` command ---------------------------------------------------


def add_kek_commands(commands: Any) -> None:
    """Add ``kek rotate|rewrap|status`` to the CLI's subcommands."""
    kek = commands.add_parser("kek", help="rotate or inspect the key encryption key")
    actions = kek.add_subparsers(dest="kek_command", required=True)
    for name, help_text in (
        ("rotate", "new KEK file, re-wrap every data key, swap the files (server stopped)"),
        ("rewrap", "re-wrap every data key under the current KEK (server stopped)"),
        ("status", "how many rows each KEK wraps"),
    ):
        sub = actions.add_parser(name, help=help_text)
        sub.add_argument(
            "--data-dir", dest="data_dir", required=True, help="the server's data directory"
        )
        sub.add_argument("--config", type=Path, help="TOML configuration file")
        sub.add_argument(
            "--kek-file",
            dest="kek_file",
            metavar="KEK_FILE",
            help="the KEK file (default: <data-dir>/kek); not read when SECINFRA_KEK is set",
        )
        if name != "status":
            sub.add_argument(
                "--batch-rows", type=int, default=DEFAULT_BATCH_ROWS, help="rows per transaction"
            )


def run_kek_command(args: argparse.Namespace) -> int:
    """Run ``kek <action>``; 0 on success, 1 on failure, 2 on bad settings."""
    try:
        config = load_config(
            config_file=args.config, flags={"data_dir": args.data_dir, "kek_file": args.kek_file}
        )
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if config.database_dsn or config.database_dsn_file is not None:
        # Rotation works on the SQLite file; on PostgreSQL it would re-wrap
        # nothing and then swap the KEK files, orphaning every sealed row.
        # With replicas it also needs every replica to hold the new KEK
        # before the first row is re-wrapped: not built yet (decisions.md).
        print(
            "secinfra-server: kek commands support only SQLite so far; this configuration"
            " uses PostgreSQL, where every replica reads the KEK from its own file and"
            " rotation would have to reach all of them first. Nothing was changed; keep"
            " the current KEK (see docs/operations/postgresql.md)",
            file=sys.stderr,
        )
        return 2

    def progress(table: str, done: int) -> None:
        print(f"  {table}: {done} rows re-wrapped", flush=True)

    try:
        if args.kek_command == "rotate":
            rotated = rotate_kek(config, batch_rows=args.batch_rows, progress=progress)
            print(
                f"secinfra-server: KEK rotated{' (resumed)' if rotated.resumed else ''}:"
                f" {rotated.old_kek_id} -> {rotated.new_kek_id};"
                f" {rotated.rewrap.total} data keys re-wrapped"
            )
            print(
                f"  the old KEK is kept in {rotated.retired_path}: it opens only database"
                " backups taken before this rotation; delete it once none are needed"
            )
        elif args.kek_command == "rewrap":
            result = rewrap_database(config, batch_rows=args.batch_rows, progress=progress)
            print(
                f"secinfra-server: every data key is now wrapped by KEK {result.kek_id};"
                f" {result.total} re-wrapped"
            )
        else:
            keyring = load_keyring(config)
            if not config.database_path.exists():
                print(f"secinfra-server: no database at {config.database_path}", file=sys.stderr)
                return 1
            conn = sqlite3.connect(config.database_path)
            try:
                counts = sealed.count_by_kek(conn)
            finally:
                conn.close()
            print(f"current KEK: {keyring.current.id}")
            for table, by_kek in counts.items():
                for kek_id, n in sorted(by_kek.items()):
                    held = (
                        "current"
                        if kek_id == keyring.current.id
                        else ("previous" if kek_id in keyring else "NOT LOADED")
                    )
                    print(f"  {table}: {n} rows under {kek_id} ({held})")
    except (KekRotationError, KekError, AuditKeyError) as exc:
        print(f"secinfra-server: {exc}", file=sys.stderr)
        return 1
    return 0
