"""``secinfra-server``: init the data directory and serve.

    secinfra-server init  --data-dir DIR [settings...]
    secinfra-server serve --data-dir DIR [--dev] [--migrate] [settings...]
    secinfra-server migrate --data-dir DIR [settings...]   (see docs/operations/postgresql.md)
    secinfra-server kek rotate|rewrap|status --data-dir DIR   (see docs/operations/kek.md)

Every setting of :mod:`secinfra_server.config` is also a flag
(``--leaf-ttl-seconds 600``), an environment variable
(``SECINFRA_LEAF_TTL_SECONDS``) and a key of the ``--config`` TOML file.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sqlite3
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from . import __version__, attest, ca
from ._ca_runtime import CaRuntime
from ._clock import Clock
from ._kek_rotation import add_kek_commands, kek_from_env, load_keyring, run_kek_command
from ._logging import configure as configure_logging
from ._metrics import Metrics
from .audit import VerifyResult
from .audit import verify as audit_verify
from .config import (
    ENV_PREFIX,
    SETTING_HELP,
    ConfigError,
    ServerConfig,
    admin_files,
    load_config,
)
from .crypto import generate_kek_file
from .server import Server, open_storage
from .storage import SCHEMA_VERSION, SchemaTooNew, SqliteStorage, StoredJoinToken
from .storage.postgres import (
    PostgresStorage,
    SchemaNotCurrent,
    StorageUnavailable,
    apply_migrations,
)

ADMIN_CERT_TTL: Final = timedelta(days=7)
DEV_DATA_DIR: Final = Path(".dev/data")
DEV_PORT: Final = 8443
DEV_WORKLOAD_ID_PATH: Final = "/workload/demo"


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


async def initialise(config: ServerConfig, *, quiet: bool = False) -> None:
    """Create (or complete) the data dir: KEK, database, CA, admin identity."""
    config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(config.data_dir, 0o700)
    if not kek_from_env() and not config.kek_path.exists():
        generate_kek_file(config.kek_path)
    storage = await open_storage(config)
    try:
        ca_runtime = CaRuntime(
            config=config,
            storage=storage,
            keyring=load_keyring(config),
            clock=Clock(),
            metrics=Metrics(),
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
                ttl=ADMIN_CERT_TTL,
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
        ("init", "create the data directory, KEK, CA and admin identity"),
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
            if field.name in ("jwt", "extra"):
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
        "verify", help="check the audit log's hash chain; print the head hash to anchor"
    )
    verify.add_argument("--data-dir", required=True, type=Path, help="the server's data directory")
    verify.add_argument(
        "--config", type=Path, help="TOML configuration file (to verify a PostgreSQL database)"
    )
    add_kek_commands(commands)
    return parser


def _names_postgres(config_file: Path | None) -> bool:
    """Whether ``audit verify`` was pointed at PostgreSQL: a config file, or a
    DSN in the environment. Otherwise it reads the data dir's SQLite file
    without loading any settings, as it always has."""
    return config_file is not None or any(
        os.environ.get(ENV_PREFIX + name) for name in ("DATABASE_DSN", "DATABASE_DSN_FILE")
    )


async def _verify_postgres(dsn: str) -> VerifyResult:
    storage = await PostgresStorage.open(dsn)
    try:
        return await storage.read(audit_verify)
    finally:
        await storage.close()


def verify_audit(data_dir: Path, config_file: Path | None = None) -> int:
    """``audit verify``: 0 if the chain is intact, 1 (naming the entry) if not.

    The SQLite file is opened read-only; on PostgreSQL (a DSN in the config
    file or the environment) the chain is read in one read-only snapshot.
    """
    dsn = None
    if _names_postgres(config_file):
        try:
            dsn = load_config(
                config_file=config_file, flags={"data_dir": str(data_dir)}
            ).postgres_dsn()
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 2
    if dsn is not None:
        try:
            result = asyncio.run(_verify_postgres(dsn))
        except (StorageUnavailable, SchemaNotCurrent, SchemaTooNew) as exc:
            print(f"secinfra-server: {exc}", file=sys.stderr)
            return 2
    else:
        database = data_dir / "secinfra.db"
        if not database.exists():
            print(f"secinfra-server: no database at {database}", file=sys.stderr)
            return 2
        conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
        try:
            result = audit_verify(conn)
        finally:
            conn.close()
    if result.ok:
        print(f"audit log intact: {result.entries} entries, head {result.head_hash}")
        return 0
    print(
        f"audit log BROKEN at entry {result.first_bad_seq}: {result.reason}"
        f" ({result.entries} entries verified before it)",
        file=sys.stderr,
    )
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``secinfra-server`` console script."""
    args = _parser().parse_args(argv)
    if args.command == "audit":
        return verify_audit(args.data_dir, args.config)
    if args.command == "kek":
        return run_kek_command(args)
    flags: dict[str, Any] = {
        f.name: getattr(args, f.name, None)
        for f in dataclasses.fields(ServerConfig)
        if f.name not in ("jwt", "extra")
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
