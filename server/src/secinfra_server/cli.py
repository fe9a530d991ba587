"""``secinfra-server``: init the data directory and serve.

    secinfra-server init  --data-dir DIR [settings...]
    secinfra-server serve --data-dir DIR [--dev] [--migrate] [settings...]
    secinfra-server migrate --data-dir DIR [settings...]   (see docs/operations/postgresql.md)
    secinfra-server kek rotate|rewrap|status --data-dir DIR   (see docs/operations/kek.md)
    secinfra-server audit verify|checkpoint --data-dir DIR   (see docs/operations/audit.md)

Every setting of :mod:`secinfra_server.config` is also a flag
(``--leaf-ttl-seconds 600``), an environment variable
(``SECINFRA_LEAF_TTL_SECONDS``) and a key of the ``--config`` TOML file.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import getpass
import os
import sqlite3
import sys
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, Final, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from . import __version__, attest, ca
from ._ca_runtime import CaRuntime
from ._clock import Clock
from ._kek_rotation import add_kek_commands, kek_from_env, load_keyring, run_kek_command
from ._logging import configure as configure_logging
from ._metrics import Metrics
from .audit import (
    AuditChain,
    AuditEvent,
    Checkpoint,
    append_checkpoint_file,
    load_audit_key_for,
    make_checkpoint,
    read_checkpoints,
)
from .audit import verify as audit_verify
from .config import (
    ENV_PREFIX,
    SETTING_HELP,
    TABLE_SETTINGS,
    ConfigError,
    ServerConfig,
    admin_files,
    load_config,
)
from .crypto import (
    AuditKey,
    CryptoError,
    generate_audit_key_file,
    generate_kek_file,
    load_audit_key_from_env,
)
from .server import Server, open_storage
from .storage import (
    SCHEMA_VERSION,
    InTransaction,
    SchemaTooNew,
    SqliteStorage,
    StoredJoinToken,
)
from .storage.postgres import (
    PostgresStorage,
    SchemaNotCurrent,
    StorageUnavailable,
    apply_migrations,
)

#: The actor of the audit entry ``init`` writes when it issues the admin identity.
INIT_ACTOR: Final = "secinfra-server/init"
DEV_DATA_DIR: Final = Path(".dev/data")
DEV_PORT: Final = 8443
DEV_WORKLOAD_ID_PATH: Final = "/workload/demo"

T = TypeVar("T")


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600, atomically (temp file + rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _needs_admin_identity(cert_path: Path, ca_runtime: CaRuntime) -> bool:
    if not cert_path.exists():
        return True
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    halfway = cert.not_valid_before_utc + lifetime / 2
    trusted = ca_runtime.trusted_pem.encode()
    issuer_trusted = any(c.subject == cert.issuer for c in x509.load_pem_x509_certificates(trusted))
    return Clock().now() >= halfway or not issuer_trusted


def _audit_admin_issued(
    chain: AuditChain, config: ServerConfig, cert: x509.Certificate
) -> InTransaction:
    """The admin identity's issuance entry, committed with its record: who ran
    ``init`` on this host (the break-glass path, docs/operations/hardening.md)."""
    event = AuditEvent(
        actor=INIT_ACTOR,
        action="identity.issue_admin_certificate",
        resource=config.admin_spiffe_id,
        outcome="allowed",
        request_id=f"init-{uuid.uuid4()}",
        details={
            "serial": f"{cert.serial_number:x}",
            "not_after": cert.not_valid_after_utc.isoformat(),
            "os_user": getpass.getuser(),
        },
    )

    def append(conn: sqlite3.Connection) -> None:
        chain.append(conn, event, Clock().now())

    return append


async def initialise(config: ServerConfig, *, quiet: bool = False) -> None:
    """Create (or complete) the data dir: KEK, database, CA, admin identity."""
    config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(config.data_dir, 0o700)
    if not kek_from_env() and not config.kek_path.exists():
        generate_kek_file(config.kek_path)
    if load_audit_key_from_env() is None and not config.audit_key_path.exists():
        generate_audit_key_file(config.audit_key_path)
    storage = await open_storage(config)
    try:
        chain = AuditChain(load_audit_key_for(config))
        ca_runtime = CaRuntime(
            config=config,
            storage=storage,
            keyring=load_keyring(config),
            clock=Clock(),
            metrics=Metrics(),
            chain=chain,
        )
        await ca_runtime.load()
        cert_path, key_path, bundle_path = admin_files(config.data_dir)
        cert_path.parent.mkdir(exist_ok=True, mode=0o700)
        os.chmod(cert_path.parent, 0o700)
        if _needs_admin_identity(cert_path, ca_runtime):
            key = ec.generate_private_key(ec.SECP256R1())
            cert = await ca_runtime.sign(
                ca.build_csr(key),
                config.admin_spiffe_id,
                kind="admin",
                ttl=timedelta(seconds=config.admin_cert_ttl_seconds),
                also=lambda issued: _audit_admin_issued(chain, config, issued),
            )
            key_pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            _write_private(key_path, key_pem)
            _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        _write_private(bundle_path, ca_runtime.trusted_pem.encode())
        if not quiet:
            print(f"secinfra-server: data dir ready: {config.data_dir}")
            print(f"  admin certificate: {cert_path}")
            print(f"  admin key:         {key_path}")
            print(f"  trust bundle:      {bundle_path}")
    finally:
        await storage.close()


async def migrate(config: ServerConfig) -> str:
    """``migrate``: bring the configured database's schema up to date, under
    PostgreSQL's advisory lock (any number of replicas may run it at once).
    Returns the line to print."""
    dsn = config.postgres_dsn()
    if dsn is None:
        # SQLite migrates itself whenever it is opened.
        storage = await SqliteStorage.open(config.database_path)
        await storage.close()
        return f"secinfra-server: SQLite schema at version {SCHEMA_VERSION}"
    report = await apply_migrations(dsn)
    if report.before == report.after:
        return f"secinfra-server: PostgreSQL schema at version {report.after}; nothing to apply"
    return (
        "secinfra-server: PostgreSQL schema migrated from version"
        f" {report.before} to {report.after}"
    )


async def _dev_join_token(server: Server) -> str:
    """Create a join token for the demo workload (dev mode's welcome)."""
    assert server.storage is not None
    token, record = attest.generate_join_token(
        f"spiffe://{server.config.trust_domain}{DEV_WORKLOAD_ID_PATH}",
        now=server.clock.now(),
        ttl=timedelta(hours=24),
    )
    await server.storage.insert_join_token(
        StoredJoinToken(
            id=record.id,
            secret_hash=record.secret_sha256,
            spiffe_id=str(record.spiffe_id),
            expires_at=record.expires_at,
            created_at=record.created_at,
        )
    )
    return token


async def serve(config: ServerConfig, *, dev: bool) -> None:
    """Run the server until SIGTERM/SIGINT."""
    # init is idempotent: it also refreshes the admin identity past half-life
    # and rewrites the bundle file, so every start leaves them current.
    await initialise(config, quiet=not dev)
    server = Server(config)
    await server.start()
    if dev:
        cert, key, bundle = admin_files(config.data_dir)
        token = await _dev_join_token(server)
        print(
            "\n".join(
                [
                    f"secinfra-server {__version__} (dev mode) serving on {server.url}",
                    f"  trust domain:     {config.trust_domain}",
                    f"  server SPIFFE ID: spiffe://{config.trust_domain}{ca.SERVER_SPIFFE_PATH}",
                    f"  admin identity:   {cert} (key {key})",
                    f"  trust bundle:     {bundle}",
                    f"  join token for spiffe://{config.trust_domain}{DEV_WORKLOAD_ID_PATH}"
                    " (one use, 24 h):",
                    f"    {token}",
                    "  try:",
                    f"    curl --cacert {bundle} --cert {cert} --key {key}"
                    f" {server.url}/v1/identity:whoami",
                ]
            ),
            flush=True,
        )
    await server.run_until_signalled()


def _setting_help(field: dataclasses.Field[Any]) -> str:
    """The flag's one-line help with its default (none for a required setting)."""
    text = SETTING_HELP[field.name]
    if field.default is not dataclasses.MISSING:
        default = field.default
    elif field.default_factory is not dataclasses.MISSING:
        default = field.default_factory()
    else:
        return text
    if field.name == "database_dsn" or default is None or default == "":
        return text
    if isinstance(default, tuple):
        default = ",".join(str(item) for item in default)
    elif isinstance(default, bool):
        default = "on" if default else "off"
    return f"{text} (default: {default})".replace("%", "%%")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="secinfra-server",
        description="The secinfra reference server: create its data directory, serve, migrate,"
        " verify the audit log, rotate the KEK.",
        epilog="Every setting is also an environment variable (SECINFRA_<NAME>, e.g."
        " SECINFRA_LEAF_TTL_SECONDS) and a key of the --config TOML file; flags win over"
        " the environment, which wins over the file. Settings: docs/operations/configuration.md.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("init", "create the data directory, KEK, audit key, CA and admin identity"),
        ("serve", "run the server"),
        ("migrate", "apply pending database schema migrations (PostgreSQL) and exit"),
    ):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--config", type=Path, help="TOML configuration file")
        if name == "serve":
            sub.add_argument(
                "--dev",
                action="store_true",
                help=f"init if needed, serve on 127.0.0.1:{DEV_PORT} with data in"
                f" {DEV_DATA_DIR}, print a join token",
            )
        for field in dataclasses.fields(ServerConfig):
            if field.name in TABLE_SETTINGS:
                continue
            flag = "--" + field.name.replace("_", "-")
            help_text = _setting_help(field)
            if field.type == "bool":
                sub.add_argument(
                    flag, dest=field.name, action=argparse.BooleanOptionalAction, help=help_text
                )
            else:
                sub.add_argument(flag, dest=field.name, metavar=field.name.upper(), help=help_text)
    audit = commands.add_parser("audit", help="audit log tools")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_commands.add_parser(
        "verify",
        help="check the audit log's keyed chain (and signed checkpoints); print the head",
        description="Exit 0 if the chain is intact and every checkpoint given holds, 1 (naming"
        " the first bad entry) if not, 2 if it cannot be read. The audit key comes from"
        " SECINFRA_AUDIT_KEY, else --audit-key-file, else <data dir>/audit.key.",
    )
    checkpoint = audit_commands.add_parser(
        "checkpoint",
        help="sign the chain's head (Ed25519); print the checkpoint, append it to --out",
        description="Print one signed checkpoint line (JSON) of the audit chain's head, for"
        " a file or log sink off this host; `audit verify --checkpoints` checks it later.",
    )
    for sub in (verify, checkpoint):
        sub.add_argument("--data-dir", required=True, type=Path, help="the server's data directory")
        sub.add_argument(
            "--config", type=Path, help="TOML configuration file (to read a PostgreSQL database)"
        )
        sub.add_argument(
            "--audit-key-file", type=Path, help="the audit key (default <data dir>/audit.key)"
        )
    verify.add_argument(
        "--checkpoints",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="signed checkpoints to hold the chain to (detects truncation); repeatable",
    )
    verify.add_argument(
        "--public-key",
        metavar="BASE64",
        help="pin the checkpoint key (base64 Ed25519, as `audit checkpoint` prints);"
        " default: derived from the audit key",
    )
    checkpoint.add_argument("--out", type=Path, help="append the checkpoint to this file")
    add_kek_commands(commands)
    return parser


def _names_postgres(config_file: Path | None) -> bool:
    """Whether ``audit verify`` was pointed at PostgreSQL: a config file, or a
    DSN in the environment. Otherwise it reads the data dir's SQLite file
    without loading any settings, as it always has."""
    return config_file is not None or any(
        os.environ.get(ENV_PREFIX + name) for name in ("DATABASE_DSN", "DATABASE_DSN_FILE")
    )


async def _read_postgres(dsn: str, fn: Callable[[sqlite3.Connection], T]) -> T:
    storage = await PostgresStorage.open(dsn)
    try:
        return await storage.read(fn)
    finally:
        await storage.close()


class _CannotRead(Exception):
    """The audit log cannot be read (exit 2); the message says why."""


def _read_audit(
    data_dir: Path, config_file: Path | None, fn: Callable[[sqlite3.Connection], T]
) -> T:
    """Run ``fn`` on the audit log: the data dir's SQLite file opened read-only,
    or (a DSN in the config file or the environment) one read-only PostgreSQL
    snapshot."""
    dsn = None
    if _names_postgres(config_file):
        try:
            dsn = load_config(
                config_file=config_file, flags={"data_dir": str(data_dir)}
            ).postgres_dsn()
        except ConfigError as exc:
            raise _CannotRead(str(exc)) from exc
    if dsn is not None:
        try:
            return asyncio.run(_read_postgres(dsn, fn))
        except (StorageUnavailable, SchemaNotCurrent, SchemaTooNew) as exc:
            raise _CannotRead(f"secinfra-server: {exc}") from exc
    database = data_dir / "secinfra.db"
    if not database.exists():
        raise _CannotRead(f"secinfra-server: no database at {database}")
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return fn(conn)
    finally:
        conn.close()


def _audit_key(data_dir: Path, key_file: Path | None, *, required: bool) -> AuditKey | None:
    """The audit key for the CLI: env, else ``key_file``, else the data dir's."""
    from_env = load_audit_key_from_env()
    if from_env is not None:
        return from_env
    path = key_file if key_file is not None else data_dir / "audit.key"
    if not required and not path.exists():
        return None
    return load_audit_key_for(ServerConfig(data_dir=data_dir, audit_key_file=path), environ={})


def verify_audit(
    data_dir: Path,
    config_file: Path | None = None,
    *,
    key_file: Path | None = None,
    checkpoint_files: Sequence[Path] = (),
    public_key: str | None = None,
) -> int:
    """``audit verify``: 0 if the chain is intact (and holds every checkpoint
    given), 1 (naming the entry) if not, 2 if it cannot be checked."""
    try:
        key = _audit_key(data_dir, key_file, required=False)
        checkpoints = [c for f in checkpoint_files for c in read_checkpoints(f)]
        pinned = None
        if public_key is not None:
            pinned = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key, validate=True))
        result = _read_audit(
            data_dir,
            config_file,
            lambda conn: audit_verify(conn, key, checkpoints, public_key=pinned),
        )
    except _CannotRead as exc:
        print(exc, file=sys.stderr)
        return 2
    except (CryptoError, OSError, ValueError) as exc:
        print(f"secinfra-server: audit verify: {exc}", file=sys.stderr)
        return 2
    if result.ok:
        legacy = (
            f" ({result.legacy_entries} before the keyed chain)" if result.legacy_entries else ""
        )
        held = f", {result.checkpoints} checkpoints hold" if result.checkpoints else ""
        print(f"audit log intact: {result.entries} entries{legacy}{held}, head {result.head_hash}")
        return 0
    print(
        f"audit log BROKEN at entry {result.first_bad_seq}: {result.reason}"
        f" ({result.entries} entries verified before it)",
        file=sys.stderr,
    )
    return 1


def checkpoint_audit(
    data_dir: Path, config_file: Path | None, *, key_file: Path | None, out: Path | None
) -> int:
    """``audit checkpoint``: print (and append to ``out``) a signed checkpoint."""
    try:
        key = _audit_key(data_dir, key_file, required=True)
        assert key is not None
        now = Clock().now()
        checkpoint: Checkpoint | None = _read_audit(
            data_dir, config_file, lambda conn: make_checkpoint(conn, key, now)
        )
        if checkpoint is None:
            print("secinfra-server: the audit log is empty; nothing to sign", file=sys.stderr)
            return 1
        if out is not None:
            append_checkpoint_file(out, checkpoint)
    except _CannotRead as exc:
        print(exc, file=sys.stderr)
        return 2
    except (CryptoError, OSError) as exc:
        print(f"secinfra-server: audit checkpoint: {exc}", file=sys.stderr)
        return 2
    print(checkpoint.to_json_line())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``secinfra-server`` console script."""
    args = _parser().parse_args(argv)
    if args.command == "audit" and args.audit_command == "checkpoint":
        return checkpoint_audit(
            args.data_dir, args.config, key_file=args.audit_key_file, out=args.out
        )
    if args.command == "audit":
        return verify_audit(
            args.data_dir,
            args.config,
            key_file=args.audit_key_file,
            checkpoint_files=args.checkpoints,
            public_key=args.public_key,
        )
    if args.command == "kek":
        return run_kek_command(args)
    flags: dict[str, Any] = {
        f.name: getattr(args, f.name, None)
        for f in dataclasses.fields(ServerConfig)
        if f.name not in TABLE_SETTINGS
    }
    dev = bool(getattr(args, "dev", False))
    dev_defaults = (
        {"data_dir": str(DEV_DATA_DIR), "port": DEV_PORT, "host": "127.0.0.1"} if dev else {}
    )
    try:
        config = load_config(config_file=args.config, flags=flags, defaults=dev_defaults)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    configure_logging(config.log_level)
    try:
        if args.command == "init":
            asyncio.run(initialise(config))
        elif args.command == "migrate":
            print(asyncio.run(migrate(config)))
        else:
            asyncio.run(serve(config, dev=dev))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        print(f"secinfra-server: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
