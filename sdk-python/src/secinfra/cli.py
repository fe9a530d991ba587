"""``secinfra``: the command line for a secinfra server (docs/sdk/python-cli.md).

::

    secinfra whoami
    secinfra secrets get payments/db/password > password.txt
    printf %s "$VALUE" | secinfra secrets put payments/db/password
    secinfra authz check workload:spiffe://secinfra.local/api reader secret:payments/db
    secinfra agent --out /run/secinfra --join-token "$TOKEN" --exec nginx -s reload

Connection settings come from flags or the environment: ``--server``
(``SECINFRA_SERVER``), ``--bundle`` (``SECINFRA_BUNDLE``), and an identity:
``--cert``/``--key`` (``SECINFRA_CERT``/``SECINFRA_KEY``) or the directory an
agent keeps, ``--identity-dir`` (``SECINFRA_IDENTITY_DIR``).

Output is for people by default; ``--json`` prints one JSON document for
scripts. Exit status: 0 success, 1 an API or transport error, 2 a usage or
configuration error, 3 ``authz check`` denied. Errors are one line on stderr:
``secinfra: <message>``. Secret values are printed only by ``secrets get``,
tokens only by ``join-token create``, private keys never.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, Final, NoReturn
from urllib.parse import urlsplit

from . import __version__
from ._agent import DEFAULT_EXEC_TIMEOUT_SECONDS, Agent
from ._client import Client
from ._gen.authz import Consistency, TupleKey
from ._gen.secrets import SecretMetadata
from ._identity._bundle import load_bundle
from ._identity._file_sink import FileSink, SinkError, read_identity_dir
from ._identity._snapshot import parse_identity
from ._identity._static import StaticIdentity
from .errors import SecinfraError

EXIT_OK: Final = 0
#: The server answered with an error, or could not be reached.
EXIT_API_ERROR: Final = 1
#: Bad flags, missing settings, unreadable files.
EXIT_USAGE: Final = 2
#: ``authz check``: the answer is "denied".
EXIT_DENIED: Final = 3
#: Interrupted (Ctrl-C) outside the agent.
EXIT_INTERRUPTED: Final = 130

ENV_SERVER: Final = "SECINFRA_SERVER"
ENV_BUNDLE: Final = "SECINFRA_BUNDLE"
ENV_CERT: Final = "SECINFRA_CERT"
ENV_KEY: Final = "SECINFRA_KEY"
ENV_IDENTITY_DIR: Final = "SECINFRA_IDENTITY_DIR"
ENV_JOIN_TOKEN: Final = "SECINFRA_JOIN_TOKEN"

PROG: Final = "secinfra"


class UsageError(Exception):
    """A usage or configuration error: exit 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line (``secinfra: ...``) and exit 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


# -- connection settings --------------------------------------------------------------------
@dataclass(frozen=True)
class _Settings:
    server: str | None
    bundle: str | None
    cert: str | None
    key: str | None
    identity_dir: str | None


def _settings(args: argparse.Namespace) -> _Settings:
    """Each setting from its flag, else its environment variable.

    The identity comes in one of two forms, a certificate and key (``--cert``,
    ``--key``) or an identity directory (``--identity-dir``). A flag of one form
    sets the form: the environment's variables of the other form are then
    ignored, and those of the same form fill in what the flags left out (so
    ``SECINFRA_CERT`` with ``--key`` works)."""

    def flag(name: str) -> str | None:
        value = getattr(args, name, None)
        return str(value) if value else None

    def env(name: str) -> str | None:
        return os.environ.get(name) or None

    cert, key, identity_dir = flag("cert"), flag("key"), flag("identity_dir")
    if not (cert or key or identity_dir):  # no identity flag: the environment's, whole
        cert, key, identity_dir = env(ENV_CERT), env(ENV_KEY), env(ENV_IDENTITY_DIR)
    elif not identity_dir:  # --cert and/or --key: the environment fills in the other
        cert, key = cert or env(ENV_CERT), key or env(ENV_KEY)
    return _Settings(
        server=flag("server") or env(ENV_SERVER),
        bundle=flag("bundle") or env(ENV_BUNDLE),
        cert=cert,
        key=key,
        identity_dir=identity_dir,
    )


def _require_server(settings: _Settings) -> str:
    """The server URL, checked here so that a mistyped one is a usage error (exit 2)."""
    url = settings.server
    where = f"the server URL (--server or {ENV_SERVER})"
    if not url:
        raise UsageError(f"no server: give --server URL or set {ENV_SERVER}")
    if "@" in url:
        # Never echo it: the user-info may hold a password.
        raise UsageError(
            f"{where} must not carry user-info (user:password@):"
            " the CLI authenticates by its certificate"
        )
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is not a number raises ValueError
    except ValueError:
        raise UsageError(
            f"{where} is not a valid URL, got {url!r}: give https://host:port"
        ) from None
    if parts.scheme != "https" or not parts.hostname:
        raise UsageError(
            f"{where} must be https://host:port (secinfra speaks only mTLS), got {url!r}"
        )
    return url


def _require_bundle(settings: _Settings) -> str:
    if not settings.bundle:
        raise UsageError(f"no trust bundle: give --bundle FILE or set {ENV_BUNDLE}")
    return settings.bundle


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the {what} {path}: {exc.strerror}") from exc


def _client(settings: _Settings) -> Client:
    """A client with the configured identity (files are read once, then kept in memory)."""
    url = _require_server(settings)
    if settings.identity_dir and (settings.cert or settings.key):
        raise UsageError("give either --identity-dir or --cert/--key, not both")
    if settings.identity_dir:
        try:
            chain, key, dir_bundle = read_identity_dir(settings.identity_dir)
        except OSError as exc:
            raise UsageError(
                f"cannot read the identity in {settings.identity_dir}: {exc.strerror}"
                f" ({exc.filename})"
            ) from exc
        bundle = _read(settings.bundle, "trust bundle") if settings.bundle else dir_bundle
    elif settings.cert or settings.key:
        if not (settings.cert and settings.key):
            raise UsageError("give both --cert and --key (or --identity-dir)")
        chain = _read(settings.cert, "certificate")
        key = _read(settings.key, "key")
        bundle = _read(_require_bundle(settings), "trust bundle")
    else:
        raise UsageError(
            f"no identity: give --cert FILE --key FILE ({ENV_CERT}/{ENV_KEY})"
            f" or --identity-dir DIR ({ENV_IDENTITY_DIR})"
        )
    try:
        identity = parse_identity(chain, key, received_at=datetime.now(UTC))
        source = StaticIdentity(load_bundle(bundle), identity)
    except (ValueError, SecinfraError) as exc:
        raise UsageError(str(exc).removeprefix("secinfra: ")) from exc
    return Client(url, source)


# -- output -----------------------------------------------------------------------------------
def _print_json(doc: Any) -> None:
    print(json.dumps(doc, indent=2, sort_keys=True))


def _time(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _until(value: datetime | None) -> str:
    if value is None:
        return ""
    seconds = int((value - datetime.now(UTC)).total_seconds())
    if seconds <= 0:
        return " (expired)"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f" (in {seconds // size}{unit})"
    return f" (in {seconds}s)"


def _table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _fields(pairs: Sequence[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        print(f"{key.ljust(width)}  {value}")


# -- commands ---------------------------------------------------------------------------------
Handler = Callable[[argparse.Namespace, _Settings], int]


def _cmd_whoami(args: argparse.Namespace, settings: _Settings) -> int:
    with _client(settings) as client:
        me = client.identity.get_caller_identity()
    if args.json:
        _print_json(me.to_json())
    else:
        _fields(
            [
                ("spiffe id", me.spiffe_id),
                ("serial", me.serial),
                ("expires", _time(me.not_after) + _until(me.not_after)),
                ("admin", "yes" if me.admin else "no"),
            ]
        )
    return EXIT_OK


def _cmd_enrol(args: argparse.Namespace, settings: _Settings) -> int:
    url = _require_server(settings)
    bundle = _require_bundle(settings)
    token = args.join_token or os.environ.get(ENV_JOIN_TOKEN)
    if not token and not args.jwt_file:
        raise UsageError(f"give --join-token T ({ENV_JOIN_TOKEN}) or --jwt-file FILE")
    if token and args.jwt_file:
        raise UsageError("give either --join-token or --jwt-file, not both")
    jwt = _read(args.jwt_file, "JWT file").decode().strip() if args.jwt_file else None
    _read(bundle, "trust bundle")
    # Take the directory first: a directory we cannot use must not cost the token.
    with (
        FileSink(args.out) as sink,
        Client.enrol(url, join_token=token or None, jwt=jwt, bundle_file=bundle) as client,
    ):
        identity = client.source.identity()
        assert identity is not None  # enrol() returns only once enrolled
        sink.write(identity, client.source.bundle())
    out = Path(args.out)
    if args.json:
        _print_json(
            {
                "spiffe_id": identity.spiffe_id,
                "serial": identity.serial,
                "not_after": _time(identity.not_after),
                "cert_file": str(out / "cert.pem"),
                "key_file": str(out / "key.pem"),
                "bundle_file": str(out / "bundle.pem"),
            }
        )
    else:
        print(f"enrolled {identity.spiffe_id} (serial {identity.serial})")
        print(f"wrote {out}/cert.pem, key.pem, bundle.pem")
        print(f"expires {_time(identity.not_after)}{_until(identity.not_after)}; not renewed")
    return EXIT_OK


def _cmd_secrets_get(args: argparse.Namespace, settings: _Settings) -> int:
    with _client(settings) as client:
        secret = client.secrets.get_secret(name=args.name, version=args.version)
    if args.json:
        _print_json(secret.to_json())
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(secret.value)  # the raw bytes, no newline added
        sys.stdout.buffer.flush()
    return EXIT_OK


def _secret_value(args: argparse.Namespace) -> bytes:
    if args.value is not None:
        return str(args.value).encode()
    if args.from_file is not None:
        return _read(args.from_file, "value file")
    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError("give the value with --value V, --from-file F or on stdin (a pipe)")
    return sys.stdin.buffer.read()


def _cmd_secrets_put(args: argparse.Namespace, settings: _Settings) -> int:
    value = _secret_value(args)
    with _client(settings) as client:
        info = client.secrets.put_secret(name=args.name, value=value, if_version=args.if_version)
    if args.json:
        _print_json(info.to_json())
    else:
        print(f"wrote {info.name} version {info.version}")
    return EXIT_OK


def _cmd_secrets_list(args: argparse.Namespace, settings: _Settings) -> int:
    found: list[SecretMetadata] = []
    with _client(settings) as client:
        page = ""
        while True:
            answer = client.secrets.list_secrets(prefix=args.prefix, page_token=page)
            found.extend(answer.secrets)
            page = answer.next_page_token
            if not page:
                break
    if args.json:
        _print_json({"secrets": [s.to_json() for s in found]})
    elif found:
        _table(
            [(s.name, str(s.current_version), _time(s.update_time)) for s in found],
            ("NAME", "VERSION", "UPDATED"),
        )
    return EXIT_OK


def _print_metadata(meta: Any, as_json: bool) -> None:
    if as_json:
        _print_json(meta.to_json())
        return
    pairs = [
        ("name", meta.name),
        ("current version", str(meta.current_version)),
        ("created", _time(meta.create_time)),
        ("updated", _time(meta.update_time)),
    ]
    if meta.policy is not None:
        pairs += [
            ("max versions", str(meta.policy.max_versions)),
            ("cache max age", f"{meta.policy.cache_max_age_seconds}s"),
            ("stale if error", f"{meta.policy.stale_if_error_seconds}s"),
        ]
    _fields(pairs)
    if meta.versions:
        print()
        _table(
            [
                (str(v.version), str(v.state), _time(v.create_time), _time(v.delete_time))
                for v in meta.versions
            ],
            ("VERSION", "STATE", "CREATED", "DELETED"),
        )


def _cmd_secrets_metadata(args: argparse.Namespace, settings: _Settings) -> int:
    with _client(settings) as client:
        meta = client.secrets.get_secret_metadata(name=args.name)
    _print_metadata(meta, args.json)
    return EXIT_OK


def _cmd_secrets_delete(args: argparse.Namespace, settings: _Settings) -> int:
    with _client(settings) as client:
        meta = client.secrets.delete_secret(name=args.name, versions=args.versions or ())
    if args.json:
        _print_json(meta.to_json())
    else:
        which = ", ".join(map(str, args.versions)) if args.versions else "the current version"
        print(f"deleted {meta.name}: {which} (soft delete; undelete is possible)")
    return EXIT_OK


def _cmd_authz_check(args: argparse.Namespace, settings: _Settings) -> int:
    fresh = args.at_least_as_fresh
    with _client(settings) as client:
        answer = client.authz.check(
            tuple_key=TupleKey(user=args.user, relation=args.relation, object=args.object),
            consistency=Consistency.AT_LEAST_AS_FRESH if fresh else Consistency.UNSPECIFIED,
            revision=fresh or "",
        )
    if args.json:
        _print_json(answer.to_json())
    else:
        print("allowed" if answer.allowed else "denied")
    return EXIT_OK if answer.allowed else EXIT_DENIED


def _cmd_authz_write(args: argparse.Namespace, settings: _Settings) -> int:
    writes = [TupleKey(user=u, relation=r, object=o) for u, r, o in args.tuple or ()]
    deletes = [TupleKey(user=u, relation=r, object=o) for u, r, o in args.delete or ()]
    if not writes and not deletes:
        raise UsageError("give at least one --tuple USER RELATION OBJECT or --delete ...")
    with _client(settings) as client:
        answer = client.authz.write_tuples(writes=writes, deletes=deletes)
    if args.json:
        _print_json(answer.to_json())
    else:
        print(f"wrote {len(writes)}, deleted {len(deletes)}; revision {answer.revision}")
    return EXIT_OK


def _cmd_authz_model_get(args: argparse.Namespace, settings: _Settings) -> int:
    with _client(settings) as client:
        model = client.authz.read_authorization_model(id=args.id or "")
    if args.json:
        _print_json(model.to_json())
    elif model.dsl:
        print(f"# model {model.id}")
        print(model.dsl.rstrip("\n"))
    else:
        print(f"# model {model.id}")
        _print_json(model.model)
    return EXIT_OK


def _read_text(path: str, what: str) -> str:
    data = sys.stdin.buffer.read() if path == "-" else _read(path, what)
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        raise UsageError(f"the {what} {path} is not UTF-8 text") from exc


def _cmd_authz_model_put(args: argparse.Namespace, settings: _Settings) -> int:
    if args.dsl is not None:
        dsl: str | None = _read_text(args.dsl, "DSL file")
        model = None
    else:
        dsl = None
        try:
            model = json.loads(_read_text(args.json_file, "JSON model file"))
        except ValueError as exc:
            raise UsageError(f"the JSON model file {args.json_file} is not JSON: {exc}") from exc
        if not isinstance(model, dict):
            raise UsageError(f"the JSON model file {args.json_file} must hold a JSON object")
    with _client(settings) as client:
        written = client.authz.write_authorization_model(model=model, dsl=dsl)
    if args.json:
        _print_json({"id": written.id})
    else:
        print(f"wrote model {written.id}")
    return EXIT_OK


def _cmd_join_token_create(args: argparse.Namespace, settings: _Settings) -> int:
    with _client(settings) as client:
        answer = client.identity.create_join_token(spiffe_id=args.spiffe_id, ttl_seconds=args.ttl)
    if args.json:
        _print_json(answer.to_json())
        return EXIT_OK
    # The token alone on stdout (TOKEN=$(secinfra join-token create ...)); the rest on stderr.
    print(answer.token)
    meta = answer.join_token
    if meta is not None:
        print(
            f"join token {meta.id} for {meta.spiffe_id}, single use,"
            f" expires {_time(meta.expires_at)}{_until(meta.expires_at)}",
            file=sys.stderr,
        )
    return EXIT_OK


def _cmd_join_token_list(args: argparse.Namespace, settings: _Settings) -> int:
    with _client(settings) as client:
        tokens = client.identity.list_join_tokens().join_tokens
    if args.json:
        _print_json({"join_tokens": [t.to_json() for t in tokens]})
    elif tokens:
        _table(
            [
                (
                    t.id,
                    t.spiffe_id,
                    _time(t.expires_at),
                    _time(t.used_at),
                    "revoked" if t.revoked else "",
                )
                for t in tokens
            ],
            ("ID", "SPIFFE ID", "EXPIRES", "USED", "REVOKED"),
        )
    return EXIT_OK


def _cmd_join_token_revoke(args: argparse.Namespace, settings: _Settings) -> int:
    with _client(settings) as client:
        token = client.identity.revoke_join_token(id=args.id)
    if args.json:
        _print_json(token.to_json())
    else:
        print(f"revoked join token {token.id} ({token.spiffe_id})")
    return EXIT_OK


def _cmd_ca(args: argparse.Namespace, settings: _Settings) -> int:
    with _client(settings) as client:
        if args.ca_command == "status":
            status = client.identity.get_ca_status()
        elif args.ca_command == "prepare":
            status = client.identity.prepare_ca_rotation()
        elif args.ca_command == "activate":
            status = client.identity.activate_ca()
        else:
            status = client.identity.retire_ca(ca_id=args.ca_id, force=args.force)
    if args.json:
        _print_json(status.to_json())
        return EXIT_OK
    _table(
        [
            (ca.id, str(ca.state), _time(ca.not_after), _time(ca.leaves_expire_by))
            for ca in status.authorities
        ],
        ("CA", "STATE", "NOT AFTER", "LEAVES EXPIRE BY"),
    )
    print(f"bundle sequence {status.bundle_sequence}")
    return EXIT_OK


def _cmd_revoke(args: argparse.Namespace, settings: _Settings) -> int:
    with _client(settings) as client:
        entry = client.identity.revoke(
            serial=args.serial, spiffe_id=args.spiffe_id, reason=args.reason
        )
    if args.json:
        _print_json(entry.to_json())
    else:
        what = f"serial {entry.serial}" if entry.serial else entry.spiffe_id
        print(f"revoked {what} at {_time(entry.revoked_at)}")
    return EXIT_OK


def _cmd_lift_revocation(args: argparse.Namespace, settings: _Settings) -> int:
    with _client(settings) as client:
        result = client.identity.lift_revocation(spiffe_id=args.spiffe_id, reason=args.reason)
    if args.json:
        _print_json(result.to_json())
    else:
        print(f"lifted the revocation of {result.lifted.spiffe_id if result.lifted else ''}")
        for serial in result.serials_kept_revoked:
            print(f"  still revoked: serial {serial}")
    return EXIT_OK


# -- the agent --------------------------------------------------------------------------------
@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop`` (main thread only; elsewhere, nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    saved = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, previous in saved.items():
            signal.signal(sig, previous)


def _cmd_agent(args: argparse.Namespace, settings: _Settings) -> int:
    url = _require_server(settings)
    bundle = _require_bundle(settings)
    _read(bundle, "trust bundle")
    token = args.join_token or os.environ.get(ENV_JOIN_TOKEN)
    if bool(token) == bool(args.jwt_file):
        raise UsageError(
            f"give exactly one of --join-token T ({ENV_JOIN_TOKEN}) or --jwt-file FILE"
        )
    exec_argv = list(args.exec or ())
    if args.exec is not None and not exec_argv:
        raise UsageError("--exec needs a command (everything after --exec)")
    if args.exec_timeout <= 0:
        raise UsageError("--exec-timeout must be positive")
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    agent = Agent(
        url,
        out=args.out,
        bundle_file=bundle,
        join_token=token or None,
        jwt_file=args.jwt_file,
        exec_argv=exec_argv,
        exec_timeout=args.exec_timeout,
    )
    stop = threading.Event()
    with _stop_on_signals(stop):
        return agent.run(stop)


# -- the parser -------------------------------------------------------------------------------
def _connection_flags(
    parser: argparse.ArgumentParser, *, top: bool, json_flag: bool = True
) -> None:
    """The shared flags, on the top parser and again on every command, so that both
    ``secinfra --json whoami`` and ``secinfra whoami --json`` work."""
    default: Any = None if top else argparse.SUPPRESS
    group = parser.add_argument_group("connection")
    group.add_argument("--server", metavar="URL", default=default, help=f"[{ENV_SERVER}]")
    group.add_argument(
        "--bundle", metavar="FILE", default=default, help=f"trust bundle PEM [{ENV_BUNDLE}]"
    )
    group.add_argument("--cert", metavar="FILE", default=default, help=f"[{ENV_CERT}]")
    group.add_argument("--key", metavar="FILE", default=default, help=f"[{ENV_KEY}]")
    group.add_argument(
        "--identity-dir",
        metavar="DIR",
        default=default,
        help=f"a directory kept by 'secinfra agent' [{ENV_IDENTITY_DIR}]",
    )
    if not json_flag:
        return
    parser.add_argument(
        "--json",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="print JSON for scripts",
    )


def _command(
    subparsers: Any, name: str, handler: Handler, help_text: str, *, json_flag: bool = True
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help_text, description=help_text
    )
    _connection_flags(parser, top=False, json_flag=json_flag)
    parser.set_defaults(handler=handler)
    return parser


def _group(subparsers: Any, name: str, help_text: str) -> Any:
    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    return parser.add_subparsers(dest=f"{name.replace('-', '_')}_command", required=True)


def _tuple_flag(parser: argparse.ArgumentParser, flag: str, help_text: str) -> None:
    parser.add_argument(
        flag,
        nargs=3,
        action="append",
        metavar=("USER", "RELATION", "OBJECT"),
        help=help_text,
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``secinfra`` argument parser."""
    parser = _Parser(
        prog=PROG,
        description="Command line for a secinfra server. See docs/sdk/python-cli.md.",
        epilog="exit status: 0 ok, 1 API or transport error, 2 usage or configuration,"
        " 3 authz check denied",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _connection_flags(parser, top=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    enrol = _command(
        commands, "enrol", _cmd_enrol, "enrol once and write cert.pem, key.pem, bundle.pem"
    )
    enrol.add_argument("--out", required=True, metavar="DIR", help="output directory")
    enrol.add_argument("--join-token", metavar="T", help=f"one-time token [{ENV_JOIN_TOKEN}]")
    enrol.add_argument("--jwt-file", metavar="FILE", help="a JWT attestation, read from FILE")

    _command(commands, "whoami", _cmd_whoami, "show the identity the server sees")

    secrets = _group(commands, "secrets", "read and write secrets")
    get = _command(secrets, "get", _cmd_secrets_get, "print a secret's value (raw bytes)")
    get.add_argument("name")
    get.add_argument("--version", type=int, default=0, help="a version (default: latest)")
    put = _command(secrets, "put", _cmd_secrets_put, "write a new version of a secret")
    put.add_argument("name")
    source = put.add_mutually_exclusive_group()
    source.add_argument("--value", metavar="V", help="the value (visible in ps: prefer stdin)")
    source.add_argument("--from-file", metavar="F", help="read the value from a file")
    put.add_argument(
        "--if-version", type=int, metavar="N", help="check-and-set (0: must not exist)"
    )
    listing = _command(secrets, "list", _cmd_secrets_list, "list secrets (names, metadata)")
    listing.add_argument("prefix", nargs="?", default="")
    delete = _command(secrets, "delete", _cmd_secrets_delete, "soft-delete versions")
    delete.add_argument("name")
    delete.add_argument(
        "--versions", type=int, nargs="+", metavar="N", help="default: the current version"
    )
    metadata = _command(secrets, "metadata", _cmd_secrets_metadata, "a secret's metadata")
    metadata.add_argument("name")

    authz = _group(commands, "authz", "authorization checks, tuples and the model")
    check = _command(authz, "check", _cmd_authz_check, "check; exit 0 allowed, 3 denied")
    check.add_argument("user")
    check.add_argument("relation")
    check.add_argument("object")
    check.add_argument(
        "--at-least-as-fresh", metavar="REVISION", help="a revision from 'authz write'"
    )
    write = _command(authz, "write", _cmd_authz_write, "write and delete relationship tuples")
    _tuple_flag(write, "--tuple", "a tuple to write (repeatable)")
    _tuple_flag(write, "--delete", "a tuple to delete (repeatable)")
    model_parser = authz.add_parser(
        "model", help="the authorization model", description="the authorization model"
    )
    model = model_parser.add_subparsers(dest="model_command", required=True)
    model_get = _command(model, "get", _cmd_authz_model_get, "print the current model")
    model_get.add_argument("--id", help="a model id (default: current)")
    # Here --json FILE is the model; JSON output is the top-level flag (secinfra --json ...).
    model_put = _command(model, "put", _cmd_authz_model_put, "write a new model", json_flag=False)
    model_source = model_put.add_mutually_exclusive_group(required=True)
    model_source.add_argument("--dsl", metavar="FILE", help="OpenFGA DSL ('-': stdin)")
    model_source.add_argument(
        "--json", dest="json_file", metavar="FILE", help="OpenFGA JSON model ('-': stdin)"
    )

    tokens = _group(commands, "join-token", "join tokens (admin)")
    create = _command(tokens, "create", _cmd_join_token_create, "create a one-time join token")
    create.add_argument("spiffe_id", metavar="SPIFFE_ID")
    create.add_argument("--ttl", type=int, default=0, metavar="S", help="seconds (server default)")
    _command(tokens, "list", _cmd_join_token_list, "list join tokens (never the tokens)")
    revoke_token = _command(tokens, "revoke", _cmd_join_token_revoke, "revoke an unused token")
    revoke_token.add_argument("id", metavar="ID")

    ca = _group(commands, "ca", "CA status and rotation (admin)")
    _command(ca, "status", _cmd_ca, "the CAs and their states")
    _command(ca, "prepare", _cmd_ca, "step 1: a new CA, published in the bundle")
    _command(ca, "activate", _cmd_ca, "step 2: the prepared CA signs new certificates")
    retire = _command(ca, "retire", _cmd_ca, "step 3: remove a superseded CA from the bundle")
    retire.add_argument("ca_id", metavar="CA_ID")
    retire.add_argument("--force", action="store_true", help="even if leaves still chain to it")

    revoke = _command(commands, "revoke", _cmd_revoke, "deny-list a serial or SPIFFE ID (admin)")
    target = revoke.add_mutually_exclusive_group(required=True)
    target.add_argument("--serial", metavar="S", help="certificate serial, hex")
    target.add_argument("--spiffe-id", metavar="ID")
    revoke.add_argument("--reason", default="", metavar="R")
    lift = _command(
        commands,
        "lift-revocation",
        _cmd_lift_revocation,
        "let a revoked SPIFFE ID enrol again; its old certificates stay revoked (admin)",
    )
    lift.add_argument("--spiffe-id", required=True, metavar="ID")
    lift.add_argument("--reason", default="", metavar="R")

    agent = _command(
        commands,
        "agent",
        _cmd_agent,
        "enrol, then keep DIR/cert.pem, key.pem and bundle.pem current",
    )
    agent.add_argument("--out", required=True, metavar="DIR", help="output directory")
    agent.add_argument("--join-token", metavar="T", help=f"one-time token [{ENV_JOIN_TOKEN}]")
    agent.add_argument(
        "--jwt-file", metavar="FILE", help="a JWT attestation, read again for each enrolment"
    )
    agent.add_argument(
        "--exec-timeout",
        type=float,
        default=DEFAULT_EXEC_TIMEOUT_SECONDS,
        metavar="S",
        help="seconds the --exec command may run (default %(default)g)",
    )
    agent.add_argument(
        "--exec",
        nargs=argparse.REMAINDER,
        metavar="CMD",
        help="run CMD (no shell) after every change; must come last",
    )
    return parser


# -- main ---------------------------------------------------------------------------------------
def _fail(message: str, status: int) -> int:
    text = " ".join(message.split())  # one line, whatever the message held
    print(f"{PROG}: {text.removeprefix('secinfra: ')}", file=sys.stderr)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``secinfra`` with ``argv`` (default ``sys.argv[1:]``); the exit status."""
    try:
        args = build_parser().parse_args(argv)
        handler: Handler = args.handler
        return handler(args, _settings(args))
    except UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except SinkError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except SecinfraError as exc:
        return _fail(str(exc), EXIT_API_ERROR)
    except BrokenPipeError:
        return EXIT_OK  # secinfra secrets list | head
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        return _fail(f"{exc.strerror or exc}{where}", EXIT_USAGE)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
