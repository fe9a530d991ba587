"""``secinfra``: the command line for a secinfra server (docs/sdk/python-cli.md).

::

    secinfra login            # or: secinfra login --device
    secinfra whoami
    secinfra secrets get payments/db/password > password.txt
    printf %s "$VALUE" | secinfra secrets put payments/db/password
    secinfra authz check workload:spiffe://secinfra.local/api reader secret:payments/db
    secinfra agent --out /run/secinfra --join-token "$TOKEN" --exec nginx -s reload
    secinfra entry create --spiffe-id spiffe://secinfra.local/billing \\
        --parent-id spiffe://secinfra.local/node/web-1 --selector unix:uid:1000

Connection settings come from flags or the environment: ``--server``
(``SECINFRA_SERVER``), ``--bundle`` (``SECINFRA_BUNDLE``), and an identity:
``--cert``/``--key`` (``SECINFRA_CERT``/``SECINFRA_KEY``) or the directory an
agent keeps, ``--identity-dir`` (``SECINFRA_IDENTITY_DIR``).

Output is for people by default; ``--json`` prints one JSON document for
scripts. Exit status: 0 success, 1 an API or transport error, 2 a usage or
configuration error, 3 ``authz check`` denied. Errors are one line on stderr:
``secinfra: <message>``, or with ``--json`` one JSON object (``code``,
``message``, ``request_id``). Secret values are printed only by ``secrets get``,
tokens only by ``join-token create``, private keys never. After a command, a
trust bundle older than its refresh hint is fetched again and, if it changed,
written back where it was read (see "The trust bundle" in the CLI docs).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, Final, NoReturn, TypeVar
from urllib.parse import urlsplit

from . import __version__
from ._admin_renewal import renew_files, renewal_due
from ._agent import DEFAULT_EXEC_TIMEOUT_SECONDS, LOG_FIELDS, Agent, utc_text
from ._client import Client
from ._gen.authz import BatchCheckItem, Consistency, TupleKey
from ._gen.entries import Entry, Selector
from ._gen.secrets import SecretMetadata
from ._identity._bundle import TrustBundle, bundle_from_wire, load_bundle
from ._identity._file_sink import (
    BUNDLE_FILE,
    CURRENT_LINK,
    FileSink,
    SinkError,
    read_identity_dir,
    replace_file,
)
from ._identity._snapshot import X509Identity, parse_identity
from ._identity._static import StaticIdentity
from ._login import (
    DEFAULT_LOGIN_TIMEOUT_SECONDS,
    LoginError,
    LoginStore,
    Provider,
    Session,
    Workstation,
    default_login_dir,
)
from ._runtime._transport import UNTRUSTED_SERVER
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
ENV_LOGIN_CA: Final = "SECINFRA_LOGIN_CA"
ENV_LOGIN_DIR: Final = "SECINFRA_LOGIN_DIR"

PROG: Final = "secinfra"


class UsageError(Exception):
    """A usage or configuration error: exit 2."""


_USER_INFO: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*@")


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line (``secinfra: ...``) and exit 2."""

    def error(self, message: str) -> NoReturn:
        # argparse echoes what it did not take: never a URL's password with it.
        message = _USER_INFO.sub(r"\1***@", message)
        raise UsageError(f"{message} (see '{self.prog} --help')")


# -- connection settings --------------------------------------------------------------------
@dataclass(frozen=True)
class _Settings:
    server: str | None
    bundle: str | None
    cert: str | None
    key: str | None
    identity_dir: str | None
    #: --json: stderr carries only a JSON error, no notes.
    quiet: bool = False


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
    server, bundle = flag("server") or env(ENV_SERVER), flag("bundle") or env(ENV_BUNDLE)
    login = _login_identity(args)
    if login is not None and not (cert or key or identity_dir):
        # Nothing else configured: the identity `secinfra login` left.
        store, session = login
        cert, key = str(store.cert_file), str(store.key_file)
        server = server or session.server
        bundle = bundle or str(store.bundle_file)
    return _Settings(
        server=server,
        bundle=bundle,
        cert=cert,
        key=key,
        identity_dir=identity_dir,
        quiet=bool(getattr(args, "json", False)),
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


@dataclass(frozen=True)
class _BundleFile:
    """The trust bundle the CLI read, and where from, so that a newer one the
    server publishes can be written back (the CLI's counterpart of the SDKs'
    bundle refresh, spec 10.2: a CLI run is too short to refresh in the background)."""

    path: Path
    identity_dir: str | None
    held: TrustBundle
    spiffe_format: bool


def _load_bundle_file(path: str, identity_dir: str | None) -> tuple[TrustBundle, _BundleFile]:
    data = _read(path, "trust bundle")
    try:
        bundle = load_bundle(data)
    except (ValueError, SecinfraError) as exc:
        message = str(exc).removeprefix("secinfra: ")
        raise UsageError(f"the trust bundle {path} is not usable: {message}") from exc
    spiffe = data.lstrip().startswith(b"{")
    return bundle, _BundleFile(Path(path), identity_dir, bundle, spiffe)


@dataclass(frozen=True)
class _IdentityFiles:
    """The ``--cert``/``--key`` files the identity came from, and what they held,
    so that the admin identity can be renewed in place (see ``_admin_renewal``)."""

    cert: Path
    key: Path
    held: X509Identity


def _open_client(
    settings: _Settings, *, anonymous: bool = False
) -> tuple[Client, _BundleFile, _IdentityFiles | None]:
    """A client with the configured identity (files are read once, then kept in
    memory), the bundle file it trusts and the identity's files (``--cert`` and
    ``--key`` only). ``anonymous``: the identity is used if one is configured,
    but none is needed (GetTrustBundle, GetCrl)."""
    url = _require_server(settings)
    if settings.identity_dir and (settings.cert or settings.key):
        raise UsageError("give either --identity-dir or --cert/--key, not both")
    chain: bytes | None = None
    key: bytes | None = None
    if settings.identity_dir:
        bundle_path = settings.bundle or str(Path(settings.identity_dir) / BUNDLE_FILE)
        try:
            chain, key, _ = read_identity_dir(settings.identity_dir)
        except OSError as exc:
            raise UsageError(
                f"cannot read the identity in {settings.identity_dir}: {exc.strerror}"
                f" ({exc.filename})"
            ) from exc
    elif settings.cert or settings.key:
        if not (settings.cert and settings.key):
            raise UsageError("give both --cert and --key (or --identity-dir)")
        chain = _read(settings.cert, "certificate")
        key = _read(settings.key, "key")
        bundle_path = _require_bundle(settings)
    elif anonymous:
        bundle_path = _require_bundle(settings)
    else:
        raise UsageError(
            f"no identity: give --cert FILE --key FILE ({ENV_CERT}/{ENV_KEY})"
            f" or --identity-dir DIR ({ENV_IDENTITY_DIR})"
        )
    bundle, bundle_file = _load_bundle_file(
        bundle_path, settings.identity_dir if not settings.bundle else None
    )
    try:
        identity = (
            parse_identity(chain, key, received_at=datetime.now(UTC))
            if chain is not None and key is not None
            else None
        )
    except (ValueError, SecinfraError) as exc:
        raise UsageError(str(exc).removeprefix("secinfra: ")) from exc
    files = (
        _IdentityFiles(Path(settings.cert), Path(settings.key), identity)
        if identity is not None and settings.cert and settings.key and not settings.identity_dir
        else None
    )
    return Client(url, StaticIdentity(bundle, identity)), bundle_file, files


@contextmanager
def _client(
    settings: _Settings, *, anonymous: bool = False, refresh_bundle: bool = False
) -> Iterator[Client]:
    """A client for one command. After the command succeeded, the bundle file is
    brought up to date when it is due (older than the bundle's refresh hint) or
    when ``refresh_bundle`` (CA rotation commands): so a CLI that runs between
    ``ca prepare`` and ``ca activate`` learns the new CA before it signs. Then
    the init-time admin identity is renewed in its files past half-life."""
    client, bundle_file, files = _open_client(settings, anonymous=anonymous)
    with client:
        yield client
        if refresh_bundle or _bundle_due(bundle_file):
            _write_back_bundle(client, bundle_file, quiet=settings.quiet)
        if files is not None and renewal_due(files.held, datetime.now(UTC)):
            _renew_admin_identity(client, files, quiet=settings.quiet)


def _renew_admin_identity(client: Client, files: _IdentityFiles, *, quiet: bool) -> None:
    """Renew the admin identity and write it back. Best effort: the command
    itself already succeeded, so a failure is a warning with what to do."""
    try:
        renewed = renew_files(client, files.cert, files.key, datetime.now(UTC))
    except (SecinfraError, OSError) as exc:
        if not quiet:
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            print(
                f"{PROG}: warning: could not renew the admin identity in {files.cert}"
                f" ({str(reason).removeprefix('secinfra: ')}); it expires"
                f" {_time(files.held.not_after)}. After that, run 'secinfra-server init"
                " --data-dir DIR' on the server host to issue a new one",
                file=sys.stderr,
            )
        return
    if not quiet:
        print(
            f"{PROG}: renewed the admin identity in {files.cert} and {files.key}"
            f" (serial {renewed.serial}, expires {_time(renewed.not_after)})",
            file=sys.stderr,
        )


def _bundle_due(bundle_file: _BundleFile) -> bool:
    try:
        age = time.time() - bundle_file.path.stat().st_mtime
    except OSError:
        return False
    return age >= bundle_file.held.refresh_hint


def _write_back_bundle(client: Client, target: _BundleFile, *, quiet: bool) -> None:
    """Fetch the bundle over the verified connection; write it where it was read
    if it changed (never a lower ``spiffe_sequence``, spec 10.4.1). Best effort:
    the command itself already succeeded."""
    try:
        wire = client.identity.get_trust_bundle()
        fresh = bundle_from_wire(wire)
    except SecinfraError:
        return
    if fresh.pem == target.held.pem or fresh.sequence < target.held.sequence:
        with contextlib.suppress(OSError):
            os.utime(target.path)  # checked: not due again for a refresh hint
        return
    try:
        if (
            target.identity_dir is not None
            and (Path(target.identity_dir) / CURRENT_LINK).is_symlink()
        ):
            # A directory kept by a FileSink (secinfra enrol, secinfra agent): a new
            # snapshot, so that readers never see a bundle without its certificate.
            identity = client.source.identity()
            if identity is None:
                return
            with FileSink(target.identity_dir) as sink:
                sink.write(identity, fresh)
        else:
            body = (
                json.dumps(wire.to_json(), indent=2, sort_keys=True) + "\n"
                if target.spiffe_format
                else fresh.pem
            )
            replace_file(target.path, body.encode())
    except SinkError:
        return  # a secinfra agent keeps that directory: it refreshes the bundle itself
    except OSError as exc:
        if not quiet:
            print(
                f"{PROG}: warning: the server publishes a new trust bundle (sequence"
                f" {fresh.sequence}) but {target.path} could not be updated"
                f" ({exc.strerror}); run '{PROG} bundle --out {target.path}'",
                file=sys.stderr,
            )
        return
    if not quiet:
        print(
            f"{PROG}: updated the trust bundle {target.path} (sequence {fresh.sequence})",
            file=sys.stderr,
        )


# -- output -----------------------------------------------------------------------------------
def _print_json(doc: Any) -> None:
    print(json.dumps(doc, indent=2, sort_keys=True))


def _report(args: argparse.Namespace, message: Any, text: str) -> int:
    """A command's answer: its JSON document with ``--json``, else ``text``."""
    if args.json:
        _print_json(_doc(message))
    else:
        print(text)
    return EXIT_OK


def _doc(message: Any) -> dict[str, Any]:
    """``message.to_json()`` with every timestamp in the CLI's one format, the one
    the tables show too: RFC 3339 in UTC, whole seconds (``2026-12-04T18:02:37Z``).
    The wire keeps the server's precision; a script needs one format to parse."""
    doc: dict[str, Any] = message.to_json()
    _retime(message, doc)
    return doc


def _retime(message: Any, doc: dict[str, Any]) -> None:
    for field in dataclasses.fields(message):
        value = getattr(message, field.name)
        if field.name not in doc:
            continue
        if isinstance(value, datetime):
            doc[field.name] = _time(value)
        elif dataclasses.is_dataclass(value):
            _retime(value, doc[field.name])
        elif isinstance(value, list | tuple):
            for item, item_doc in zip(value, doc[field.name], strict=True):
                if dataclasses.is_dataclass(item):
                    _retime(item, item_doc)
        elif isinstance(value, Mapping):
            for key, item in value.items():
                if dataclasses.is_dataclass(item):
                    _retime(item, doc[field.name][key])


def _time(value: datetime | None) -> str:
    return "-" if value is None else utc_text(value)


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
        _print_json(_doc(me))
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
        _print_json(_doc(secret))
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
    return _report(args, info, f"wrote {info.name} version {info.version}")


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
        _print_json({"secrets": [_doc(s) for s in found]})
    elif found:
        _table(
            [(s.name, str(s.current_version), _time(s.update_time)) for s in found],
            ("NAME", "VERSION", "UPDATED"),
        )
    return EXIT_OK


def _print_metadata(meta: Any, as_json: bool) -> None:
    if as_json:
        _print_json(_doc(meta))
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
    which = ", ".join(map(str, args.versions)) if args.versions else "the current version"
    return _report(args, meta, f"deleted {meta.name}: {which} (soft delete; undelete is possible)")


def _cmd_secrets_undelete(args: argparse.Namespace, settings: _Settings) -> int:
    with _client(settings) as client:
        meta = client.secrets.undelete_secret(name=args.name, versions=args.versions)
    return _report(args, meta, f"undeleted {meta.name}: {', '.join(map(str, args.versions))}")


def _cmd_secrets_destroy(args: argparse.Namespace, settings: _Settings) -> int:
    with _client(settings) as client:
        meta = client.secrets.destroy_secret_versions(name=args.name, versions=args.versions)
    which = ", ".join(map(str, args.versions))
    return _report(
        args, meta, f"destroyed {meta.name}: {which} (for good: value and data key erased)"
    )


def _cmd_authz_check(args: argparse.Namespace, settings: _Settings) -> int:
    with _client(settings) as client:
        answer = client.authz.check(
            tuple_key=TupleKey(user=args.user, relation=args.relation, object=args.object),
            **_consistency(args),
        )
    if args.json:
        _print_json(_doc(answer))
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
    return _report(
        args, answer, f"wrote {len(writes)}, deleted {len(deletes)}; revision {answer.revision}"
    )


def _consistency(args: argparse.Namespace) -> dict[str, Any]:
    fresh = args.at_least_as_fresh
    return {
        "consistency": Consistency.AT_LEAST_AS_FRESH if fresh else Consistency.UNSPECIFIED,
        "revision": fresh or "",
    }


def _cmd_authz_batch_check(args: argparse.Namespace, settings: _Settings) -> int:
    keys = [TupleKey(user=u, relation=r, object=o) for u, r, o in args.check or ()]
    if not keys:
        raise UsageError("give at least one --check USER RELATION OBJECT")
    items = [BatchCheckItem(correlation_id=str(n), tuple_key=k) for n, k in enumerate(keys, 1)]
    with _client(settings) as client:
        answer = client.authz.batch_check(checks=items, **_consistency(args))
    results = [answer.results.get(item.correlation_id) for item in items]
    if args.json:
        _print_json(_doc(answer))
    else:
        rows = []
        for key, result in zip(keys, results, strict=True):
            if result is None:
                outcome = "error: no result"
            elif result.error:
                outcome = f"error: {result.error}"
            else:
                outcome = "allowed" if result.allowed else "denied"
            rows.append((key.user, key.relation, key.object, outcome))
        _table(rows, ("USER", "RELATION", "OBJECT", "RESULT"))
    if any(r is None or r.error for r in results):
        return EXIT_API_ERROR
    return EXIT_OK if all(r is not None and r.allowed for r in results) else EXIT_DENIED


def _cmd_authz_read(args: argparse.Namespace, settings: _Settings) -> int:
    with _client(settings) as client:
        found, _ = _every_page(
            lambda page: client.authz.read_tuples(
                user=args.user, relation=args.relation, object=args.object, page_token=page
            ),
            lambda answer: answer.tuples,
        )
    if args.json:
        _print_json({"tuples": [_doc(t) for t in found]})
    elif any(t.condition is not None for t in found):
        rows = [(t.user, t.relation, t.object, _condition_text(t.condition)) for t in found]
        _table(rows, ("USER", "RELATION", "OBJECT", "CONDITION"))
    elif found:
        _table([(t.user, t.relation, t.object) for t in found], ("USER", "RELATION", "OBJECT"))
    return EXIT_OK


def _condition_text(condition: Any) -> str:
    """A tuple's condition for a table cell: ``name`` and its context as JSON."""
    if condition is None:
        return ""
    context = json.dumps(condition.context or {}, sort_keys=True, separators=(",", ":"))
    return f"{condition.name} {context}"


Item = TypeVar("Item")


def _every_page(
    fetch: Callable[[str], Any], items: Callable[[Any], Sequence[Item]]
) -> tuple[list[Item], Any]:
    """Every item of a paged answer, and its last page: ``fetch(page_token)`` gives
    a page (an answer with ``next_page_token``), ``items(page)`` its items; pages
    are fetched until the token is empty."""
    found: list[Item] = []
    page = ""
    while True:
        answer = fetch(page)
        found.extend(items(answer))
        page = answer.next_page_token
        if not page:
            return found, answer


def _print_names(key: str, names: list[str], as_json: bool) -> None:
    if as_json:
        _print_json({key: names})
    else:
        for name in names:
            print(name)


def _cmd_authz_list_objects(args: argparse.Namespace, settings: _Settings) -> int:
    with _client(settings) as client:
        found, _ = _every_page(
            lambda page: client.authz.list_objects(
                type=args.type,
                relation=args.relation,
                user=args.user,
                page_token=page,
                **_consistency(args),
            ),
            lambda answer: answer.objects,
        )
    _print_names("objects", found, args.json)
    return EXIT_OK


def _cmd_authz_list_users(args: argparse.Namespace, settings: _Settings) -> int:
    with _client(settings) as client:
        found, _ = _every_page(
            lambda page: client.authz.list_users(
                object=args.object,
                relation=args.relation,
                user_filter=args.filter,
                page_token=page,
                **_consistency(args),
            ),
            lambda answer: answer.users,
        )
    _print_names("users", found, args.json)
    return EXIT_OK


def _cmd_authz_expand(args: argparse.Namespace, settings: _Settings) -> int:
    with _client(settings) as client:
        answer = client.authz.expand(
            object=args.object, relation=args.relation, **_consistency(args)
        )
    # The userset tree is a nested document: JSON is its one readable form.
    _print_json(_doc(answer) if args.json else answer.tree or {})
    return EXIT_OK


def _cmd_authz_model_get(args: argparse.Namespace, settings: _Settings) -> int:
    with _client(settings) as client:
        model = client.authz.read_authorization_model(id=args.id or "")
    if args.json:
        _print_json(_doc(model))
    elif model.dsl:
        print(f"# model {model.id}")
        print(model.dsl.rstrip("\n"))
    else:
        print(f"# model {model.id}")
        _print_json(model.model)
    return EXIT_OK


def _cmd_authz_model_list(args: argparse.Namespace, settings: _Settings) -> int:
    with _client(settings) as client:
        models, last = _every_page(
            lambda page: client.authz.list_authorization_models(page_token=page),
            lambda answer: answer.models,
        )
    current = last.current_id
    if args.json:
        _print_json({"models": [_doc(found) for found in models], "current_id": current})
    else:
        for found in models:
            print(f"{found.id}{'  (current)' if found.id == current else ''}")
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
        _print_json(_doc(answer))
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
        _print_json({"join_tokens": [_doc(t) for t in tokens]})
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
    return _report(args, token, f"revoked join token {token.id} ({token.spiffe_id})")


def _selector(text: str) -> Selector:
    """``unix:uid:1000`` as the API's selector (type ``unix``, value ``uid:1000``);
    the server checks the value's rule."""
    type_, sep, value = text.partition(":")
    if not sep or not type_ or not value:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not TYPE:KEY:VALUE, for example unix:uid:1000 or k8s:ns:payments"
        )
    return Selector(type=type_, value=value)


def _entry_rows(entries: Sequence[Entry]) -> None:
    _table(
        [
            (
                e.id,
                e.spiffe_id,
                e.parent_id,
                " ".join(f"{s.type}:{s.value}" for s in e.selectors),
                str(e.ttl_seconds or "default"),
                ",".join(e.dns_names) or "-",
            )
            for e in entries
        ],
        ("ID", "SPIFFE ID", "PARENT", "SELECTORS", "TTL", "DNS NAMES"),
    )


def _cmd_entry(args: argparse.Namespace, settings: _Settings) -> int:
    with _client(settings) as client:
        if args.entry_command == "create":
            entry = client.entries.create_entry(
                spiffe_id=args.spiffe_id,
                parent_id=args.parent_id,
                selectors=args.selector,
                ttl_seconds=args.ttl,
                dns_names=args.dns_name or [],
            )
        elif args.entry_command == "show":
            entry = client.entries.get_entry(id=args.id)
        elif args.entry_command == "delete":
            entry = client.entries.delete_entry(id=args.id)
        else:
            found, _ = _every_page(
                lambda page: client.entries.list_entries(
                    parent_id=args.parent_id, spiffe_id=args.spiffe_id, page_token=page
                ),
                lambda answer: answer.entries,
            )
            if args.json:
                _print_json({"entries": [_doc(e) for e in found]})
            elif found:
                _entry_rows(found)
            return EXIT_OK
    if args.json:
        _print_json(_doc(entry))
    elif args.entry_command == "delete":
        print(f"deleted entry {entry.id} ({entry.spiffe_id} on {entry.parent_id})")
    else:
        _entry_rows([entry])
    return EXIT_OK


def _cmd_ca(args: argparse.Namespace, settings: _Settings) -> int:
    with _client(settings, refresh_bundle=args.ca_command != "status") as client:
        if args.ca_command == "status":
            status = client.identity.get_ca_status()
        elif args.ca_command == "prepare":
            status = client.identity.prepare_ca_rotation()
        elif args.ca_command == "activate":
            status = client.identity.activate_ca()
        else:
            status = client.identity.retire_ca(ca_id=args.ca_id, force=args.force)
    if args.json:
        _print_json(_doc(status))
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
    what = f"serial {entry.serial}" if entry.serial else entry.spiffe_id
    return _report(args, entry, f"revoked {what} at {_time(entry.revoked_at)}")


def _cmd_lift_revocation(args: argparse.Namespace, settings: _Settings) -> int:
    with _client(settings) as client:
        result = client.identity.lift_revocation(spiffe_id=args.spiffe_id, reason=args.reason)
    if args.json:
        _print_json(_doc(result))
    else:
        print(f"lifted the revocation of {result.lifted.spiffe_id if result.lifted else ''}")
        for serial in result.serials_kept_revoked:
            print(f"  still revoked: serial {serial}")
    return EXIT_OK


def _cmd_revocations(args: argparse.Namespace, settings: _Settings) -> int:
    with _client(settings) as client:
        entries = client.identity.list_revocations().revocations
    if args.json:
        _print_json({"revocations": [_doc(e) for e in entries]})
    elif entries:
        _table(
            [(e.serial or "-", e.spiffe_id or "-", _time(e.revoked_at), e.reason) for e in entries],
            ("SERIAL", "SPIFFE ID", "REVOKED", "REASON"),
        )
    return EXIT_OK


def _emit(data: bytes, out: str | None, what: str) -> None:
    """``data`` to stdout, or atomically to the file ``out``."""
    if out is None or out == "-":
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    path = Path(out)
    if not path.parent.is_dir():
        raise UsageError(f"cannot write the {what} to {out}: no directory {path.parent}")
    replace_file(path, data)


def _cmd_bundle(args: argparse.Namespace, settings: _Settings) -> int:
    with _client(settings, anonymous=True) as client:
        wire = client.identity.get_trust_bundle()
    bundle = bundle_from_wire(wire)
    if args.json or args.format == "spiffe":
        data = (json.dumps(wire.to_json(), indent=2, sort_keys=True) + "\n").encode()
    else:
        data = bundle.pem.encode()
    _emit(data, args.out, "trust bundle")
    if args.out not in (None, "-") and not settings.quiet:
        print(f"wrote the trust bundle (sequence {bundle.sequence}) to {args.out}", file=sys.stderr)
    return EXIT_OK


def _cmd_crl(args: argparse.Namespace, settings: _Settings) -> int:
    with _client(settings, anonymous=True) as client:
        answer = client.identity.get_crl()
    if args.json:
        _print_json(_doc(answer))
        return EXIT_OK
    _emit(answer.crl_pem.encode(), args.out, "CRL")
    return EXIT_OK


def _cmd_completion(args: argparse.Namespace, settings: _Settings) -> int:
    try:
        import shtab  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise UsageError(
            "shell completion needs the completion extra: pip install 'secinfra[completion]'"
        ) from None
    print(shtab.complete(build_parser(), shell=args.shell), end="")
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


class _JsonLogFormatter(logging.Formatter):
    """``secinfra agent --json``: one JSON object per log line, with the CLI's one
    timestamp format and the record's fields (``_agent.LOG_FIELDS``)."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, tz=UTC)
        doc: dict[str, Any] = {
            "time": _time(moment),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in LOG_FIELDS:
            if name in record.__dict__:
                doc[name] = record.__dict__[name]
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            doc.setdefault("error", f"{type(exc).__name__}: {exc}")
        return json.dumps(doc, ensure_ascii=False)


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
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _JsonLogFormatter()
        if args.json
        else logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    )
    logging.basicConfig(level=logging.INFO, handlers=[handler])
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


# -- people: login, logout (a user certificate from OpenID Connect) ---------------------------
def _login_store(args: argparse.Namespace) -> LoginStore:
    given = getattr(args, "login_dir", None)
    return LoginStore(Path(given).expanduser() if given else default_login_dir())


def _login_identity(args: argparse.Namespace) -> tuple[LoginStore, Session] | None:
    """The identity and session ``secinfra login`` left, if any (not for login itself)."""
    if getattr(args, "handler", None) in (_cmd_login, _cmd_logout):
        return None
    store = _login_store(args)
    session = store.session()
    if session is None or not store.has_identity():
        return None
    return store, session


def _cmd_login(args: argparse.Namespace, settings: _Settings) -> int:
    store = _login_store(args)
    session = store.session()
    if not settings.server and session is not None:
        settings = dataclasses.replace(settings, server=session.server)
    if not settings.bundle and store.bundle_file.exists():
        settings = dataclasses.replace(settings, bundle=str(store.bundle_file))
    url = _require_server(settings)
    bundle_pem = _read(_require_bundle(settings), "trust bundle")
    issuer_ca = args.issuer_ca or os.environ.get(ENV_LOGIN_CA)
    with _client(dataclasses.replace(settings, cert=None, key=None), anonymous=True) as client:
        config = client.identity.get_login_config()
        if not config.enabled:
            raise UsageError(f"the server at {url} does not offer login (no [login] configured)")
        workstation = Workstation.new()
        try:
            provider = Provider(
                config.issuer, config.client_id, list(config.scopes), verify=issuer_ca or True
            )
            if args.device:
                id_token = provider.device_flow(announce=_announce_device, timeout=args.timeout)
            else:
                id_token = provider.code_flow(
                    workstation.nonce,
                    announce=_announce_url,
                    open_browser=args.browser,
                    timeout=args.timeout,
                )
        except LoginError as exc:
            raise UsageError(f"login: {exc}") from exc
        issued = client.identity.issue_certificate(
            csr_pem=workstation.csr_pem, oidc_id_token=id_token
        )
    svid = issued.svid
    assert svid is not None
    not_after = _time(svid.not_after)
    store.save(
        workstation.key_pem(),
        svid.cert_chain_pem,
        bundle_pem,
        Session(server=url, spiffe_id=svid.spiffe_id, not_after=not_after),
    )
    if args.json:
        _print_json(
            {
                "spiffe_id": svid.spiffe_id,
                "serial": svid.serial,
                "not_after": not_after,
                "cert_file": str(store.cert_file),
                "key_file": str(store.key_file),
            }
        )
    else:
        print(f"logged in as {svid.spiffe_id}")
        print(f"expires {not_after}{_until(svid.not_after)}; then run '{PROG} login' again")
    return EXIT_OK


def _announce_url(url: str) -> None:
    print(f"{PROG}: open this URL to sign in:\n  {url}", file=sys.stderr, flush=True)


def _announce_device(uri: str, user_code: str) -> None:
    print(
        f"{PROG}: on any device, open {uri}\n  and confirm the code {user_code}",
        file=sys.stderr,
        flush=True,
    )


def _cmd_logout(args: argparse.Namespace, settings: _Settings) -> int:
    store = _login_store(args)
    removed = store.remove()
    # Nothing to tell the server: no refresh token is held, and the user
    # certificate (short-lived, never renewed) simply expires.
    if args.json:
        _print_json({"removed": [str(path) for path in removed]})
    elif removed:
        print(
            f"logged out: removed {', '.join(path.name for path in removed)} from {store.directory}"
        )
    else:
        print(f"not logged in ({store.directory} holds no login)")
    return EXIT_OK


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
    group.add_argument(
        "--login-dir",
        metavar="DIR",
        default=default,
        help="the identity 'secinfra login' keeps, used when no other is given"
        f" [{ENV_LOGIN_DIR}, default ~/.config/secinfra/login]",
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
    subparsers: Any,
    name: str,
    handler: Handler,
    help_text: str,
    *,
    json_flag: bool = True,
    connects: bool = True,
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help_text, description=help_text
    )
    if connects:
        _connection_flags(parser, top=False, json_flag=json_flag)
    parser.set_defaults(handler=handler)
    return parser


def _fresh_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--at-least-as-fresh",
        metavar="REVISION",
        help="a revision from 'authz write' (default: the server's choice)",
    )


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
    login = _command(
        commands, "login", _cmd_login, "sign in with the OpenID provider; get a user certificate"
    )
    login.add_argument(
        "--device", action="store_true", help="the device grant: approve on another device"
    )
    login.add_argument("--browser", action="store_true", help="open the sign-in URL in a browser")
    login.add_argument(
        "--issuer-ca",
        metavar="FILE",
        help=f"CA certificates for the provider's HTTPS [{ENV_LOGIN_CA}]",
    )
    login.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_LOGIN_TIMEOUT_SECONDS,
        help="seconds to wait for the sign-in",
    )
    # Local only: no connection flags (a --server given to logout is a mistake).
    logout = _command(
        commands,
        "logout",
        _cmd_logout,
        "delete the key and certificate login wrote",
        connects=False,
    )
    logout.add_argument("--login-dir", metavar="DIR", help=f"[{ENV_LOGIN_DIR}]")
    logout.add_argument("--json", action="store_true", help="print JSON for scripts")

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
    undelete = _command(secrets, "undelete", _cmd_secrets_undelete, "restore deleted versions")
    undelete.add_argument("name")
    undelete.add_argument("--versions", type=int, nargs="+", required=True, metavar="N")
    destroy = _command(
        secrets, "destroy", _cmd_secrets_destroy, "erase versions for good (no undelete)"
    )
    destroy.add_argument("name")
    destroy.add_argument(
        "--versions", type=int, nargs="+", required=True, metavar="N", help="never implicit"
    )

    authz = _group(commands, "authz", "authorization checks, tuples and the model")
    check = _command(authz, "check", _cmd_authz_check, "check; exit 0 allowed, 3 denied")
    check.add_argument("user")
    check.add_argument("relation")
    check.add_argument("object")
    _fresh_flag(check)
    batch = _command(
        authz,
        "batch-check",
        _cmd_authz_batch_check,
        "up to 100 checks in one call; exit 0 all allowed, 3 any denied, 1 any failed",
    )
    _tuple_flag(batch, "--check", "a check (repeatable)")
    _fresh_flag(batch)
    read = _command(authz, "read", _cmd_authz_read, "list the tuples that match a filter")
    read.add_argument("--user", default="", help="e.g. workload:spiffe://td/api (default: any)")
    read.add_argument("--relation", default="", help="(default: any)")
    read.add_argument("--object", default="", help="'type:id', or 'type:' for a type")
    objects = _command(
        authz, "list-objects", _cmd_authz_list_objects, "the objects of TYPE USER has RELATION to"
    )
    objects.add_argument("type")
    objects.add_argument("relation")
    objects.add_argument("user")
    _fresh_flag(objects)
    users = _command(
        authz,
        "list-users",
        _cmd_authz_list_users,
        "the users of FILTER ('type' or 'type#relation') that have RELATION on OBJECT",
    )
    users.add_argument("object")
    users.add_argument("relation")
    users.add_argument("filter")
    _fresh_flag(users)
    expand = _command(
        authz, "expand", _cmd_authz_expand, "the userset tree of RELATION on OBJECT (JSON)"
    )
    expand.add_argument("relation")
    expand.add_argument("object")
    _fresh_flag(expand)
    write = _command(authz, "write", _cmd_authz_write, "write and delete relationship tuples")
    _tuple_flag(write, "--tuple", "a tuple to write (repeatable)")
    _tuple_flag(write, "--delete", "a tuple to delete (repeatable)")
    model_parser = authz.add_parser(
        "model", help="the authorization model", description="the authorization model"
    )
    model = model_parser.add_subparsers(dest="model_command", required=True)
    model_get = _command(model, "get", _cmd_authz_model_get, "print the current model")
    model_get.add_argument("--id", help="a model id (default: current)")
    _command(model, "list", _cmd_authz_model_list, "every stored model's id, the newest first")
    model_put = _command(model, "put", _cmd_authz_model_put, "write a new model")
    model_source = model_put.add_mutually_exclusive_group(required=True)
    model_source.add_argument("--dsl", metavar="FILE", help="OpenFGA DSL ('-': stdin)")
    model_source.add_argument("--json-file", metavar="FILE", help="OpenFGA JSON model ('-': stdin)")

    tokens = _group(commands, "join-token", "join tokens (admin)")
    create = _command(tokens, "create", _cmd_join_token_create, "create a one-time join token")
    create.add_argument("spiffe_id", metavar="SPIFFE_ID")
    create.add_argument("--ttl", type=int, default=0, metavar="S", help="seconds (server default)")
    _command(tokens, "list", _cmd_join_token_list, "list join tokens (never the tokens)")
    revoke_token = _command(tokens, "revoke", _cmd_join_token_revoke, "revoke an unused token")
    revoke_token.add_argument("id", metavar="ID")

    entry = _group(commands, "entry", "registration entries for node agents (admin)")
    entry_create = _command(entry, "create", _cmd_entry, "create a registration entry")
    entry_create.add_argument("--spiffe-id", required=True, metavar="ID", help="the workload's ID")
    entry_create.add_argument(
        "--parent-id", required=True, metavar="ID", help="the node agent's SPIFFE ID"
    )
    entry_create.add_argument(
        "--selector",
        required=True,
        action="append",
        type=_selector,
        metavar="TYPE:KEY:VALUE",
        help="unix:uid:N, unix:gid:N, unix:path:/bin/x, unix:sha256:HEX, k8s:ns:NS, k8s:sa:SA;"
        " repeat: a workload must show all",
    )
    entry_create.add_argument(
        "--ttl", type=int, default=0, metavar="S", help="SVID lifetime (server default)"
    )
    entry_create.add_argument(
        "--dns-name", action="append", metavar="NAME", help="a DNS SAN; repeat for more"
    )
    entry_list = _command(entry, "list", _cmd_entry, "list entries, oldest first")
    entry_list.add_argument("--parent-id", default="", metavar="ID", help="only this node's")
    entry_list.add_argument("--spiffe-id", default="", metavar="ID", help="only for this ID")
    entry_show = _command(entry, "show", _cmd_entry, "show one entry")
    entry_show.add_argument("id", metavar="ID")
    entry_delete = _command(entry, "delete", _cmd_entry, "delete an entry")
    entry_delete.add_argument("id", metavar="ID")

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
    _command(commands, "revocations", _cmd_revocations, "list the deny-list (admin)")

    bundle = _command(
        commands,
        "bundle",
        _cmd_bundle,
        "fetch the current trust bundle, verified with the one held (no identity needed)",
    )
    bundle.add_argument("--out", metavar="FILE", help="write FILE atomically (default: stdout)")
    bundle.add_argument(
        "--format",
        choices=("pem", "spiffe"),
        default="pem",
        help="PEM certificates or the SPIFFE bundle (JWK Set) (default: %(default)s)",
    )
    crl = _command(commands, "crl", _cmd_crl, "fetch the CRLs, PEM (no identity needed)")
    crl.add_argument("--out", metavar="FILE", help="write FILE atomically (default: stdout)")

    completion = _command(
        commands,
        "completion",
        _cmd_completion,
        "print a bash or zsh completion script (needs secinfra[completion])",
        connects=False,
    )
    completion.add_argument("shell", choices=("bash", "zsh"))

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
def _fail(
    message: str, status: int, *, code: str, as_json: bool, request_id: str | None = None
) -> int:
    """Report an error on stderr: one line (``secinfra: ...``), or with ``--json``
    one JSON object ``{"code", "message", "request_id"}``."""
    text = " ".join(message.split()).removeprefix("secinfra: ")  # one line, whatever it held
    if as_json:
        doc = {"code": code, "message": text, "request_id": request_id}
        print(json.dumps(doc, sort_keys=True), file=sys.stderr)
    else:
        print(f"{PROG}: {text}", file=sys.stderr)
    return status


def _wants_json(argv: Sequence[str]) -> bool:
    """``--json`` among the CLI's own arguments (not after ``--exec``): known even
    when the arguments do not parse."""
    for arg in argv:
        if arg in ("--exec", "--"):
            return False
        if arg == "--json":
            return True
    return False


def _api_error(exc: SecinfraError, settings: _Settings | None) -> str:
    """The error's message, with what to do when the server's certificate does
    not chain to the bundle (a CA rotation the held bundle predates)."""
    message = str(exc)
    if UNTRUSTED_SERVER in message:
        where = "the trust bundle"
        if settings is not None:
            where = (
                f"the bundle in {settings.identity_dir}"
                if settings.identity_dir and not settings.bundle
                else f"the trust bundle {settings.bundle}"
            )
        message += (
            f". If the CA was rotated since {where} was written, get the current bundle"
            f" ('{PROG} bundle --out FILE' run with a bundle that is current, or from"
            " an administrator) or enrol again"
        )
    return message


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``secinfra`` with ``argv`` (default ``sys.argv[1:]``); the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    as_json = _wants_json(arguments)
    settings: _Settings | None = None
    try:
        args = build_parser().parse_args(arguments)
        as_json = bool(getattr(args, "json", False)) or as_json
        handler: Handler = args.handler
        settings = _settings(args)
        return handler(args, settings)
    except (UsageError, SinkError) as exc:
        return _fail(str(exc), EXIT_USAGE, code="usage", as_json=as_json)
    except SecinfraError as exc:
        return _fail(
            _api_error(exc, settings),
            EXIT_API_ERROR,
            code=exc.code,
            as_json=as_json,
            request_id=exc.request_id,
        )
    except BrokenPipeError:
        return EXIT_OK  # secinfra secrets list | head
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        return _fail(f"{exc.strerror or exc}{where}", EXIT_USAGE, code="usage", as_json=as_json)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED, code="interrupted", as_json=as_json)
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
