"""Server configuration: defaults, then a TOML file, then environment, then flags.

Each setting has one name. In the TOML file it is a top-level key
(``leaf_ttl_seconds = 3600``) or, for JWT attestation, a key of the ``[jwt]``
table. In the environment it is ``SECINFRA_`` plus the upper-cased name
(``SECINFRA_LEAF_TTL_SECONDS=3600``; ``SECINFRA_JWT_ISSUER`` for the table).
On the command line it is ``--leaf-ttl-seconds 3600``. A later source wins.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from . import _tracing
from .ca import ADMIN_SPIFFE_PATH

ENV_PREFIX: Final = "SECINFRA_"
#: Join tokens live at most a day (the API enforces the same bound).
MAX_JOIN_TOKEN_TTL_SECONDS: Final = 86400
TRUST_DOMAIN_PATTERN: Final = re.compile(r"[a-z0-9._-]{1,255}")
DNS_NAME_PATTERN: Final = re.compile(
    r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*",
    re.IGNORECASE,
)
#: Leaf certificates shorter than this need test mode (--test-hooks).
MIN_PRODUCTION_LEAF_TTL_SECONDS: Final = 60
#: The longest admin identity (the default is 8 h; the CLI renews it).
MAX_ADMIN_CERT_TTL_SECONDS: Final = 7 * 86400


class ConfigError(ValueError):
    """A setting is missing, malformed or unsafe. The message names it."""


@dataclass(frozen=True)
class JwtAttestationConfig:
    """Verifying Kubernetes projected service-account tokens for enrolment."""

    issuer: str
    audiences: tuple[str, ...]
    jwks_file: Path
    spiffe_id_template: str = "spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    leeway_seconds: int = 30


@dataclass(frozen=True)
class ServerConfig:
    """Every server setting, validated."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8443
    trust_domain: str = "secinfra.local"
    #: Lifetime of workload certificates.
    leaf_ttl_seconds: int = 3600
    #: Lifetime of the server's own serving certificate.
    server_cert_ttl_seconds: int = 3600
    #: Lifetime of the admin identity ``init`` writes to ``<data dir>/admin``
    #: (and of each renewal of it): short, since the CLI renews it.
    admin_cert_ttl_seconds: int = 8 * 3600
    ca_ttl_days: int = 365
    bundle_refresh_hint_seconds: int = 300
    #: Run CA rotation steps automatically when they fall due.
    ca_auto_rotate: bool = True
    join_token_default_ttl_seconds: int = 600
    max_body_bytes: int = 1024 * 1024
    #: Connections open at once, TLS handshakes included; past it a new
    #: connection is closed before TLS. At start it is lowered to fit the
    #: process's file-descriptor limit (see ``_listener.connection_budget``).
    max_connections: int = 1024
    #: Connections open at once from one client IP address; past it a new
    #: connection from that address is closed before TLS.
    max_connections_per_peer: int = 128
    #: A client must complete the TLS handshake within this many seconds of
    #: connecting.
    tls_handshake_timeout_seconds: float = 10.0
    #: A request head must be complete within this many seconds of the TLS
    #: handshake (a connection's first request) or of the request's first byte.
    header_timeout_seconds: float = 15.0
    #: A kept-alive connection may wait this many seconds after a response for
    #: the first byte of its next request.
    idle_timeout_seconds: float = 15.0
    body_timeout_seconds: float = 10.0
    #: Past this many requests in flight the server answers 503 + Retry-After.
    max_in_flight: int = 512
    #: Enrolment attempts (IssueCertificate) one source address (an IPv6 /64)
    #: may make at once before it must wait; a successful enrolment is free.
    enrolment_source_burst: int = 20
    #: How many of those attempts a source regains per minute.
    enrolment_source_per_minute: int = 30
    #: Failed attempts naming one join token id before further wrong secrets
    #: for it are answered 429 (the right secret always enrols).
    enrolment_token_burst: int = 5
    #: How many of those failures a join token id regains per minute.
    enrolment_token_per_minute: int = 6
    #: Sources and token ids the enrolment limits track at most (LRU).
    enrolment_limit_max_keys: int = 10000
    #: Check and BatchCheck answers carry ``Cache-Control: private, max-age=N``
    #: with this N: how many seconds an SDK may reuse an authorization decision
    #: (a client's own tuple writes still bypass older entries). 0: revalidate.
    authz_check_max_age_seconds: int = 10
    shutdown_timeout_seconds: float = 30.0
    #: Test mode: the conformance control API. Loopback only; never in production.
    test_hooks: bool = False
    kek_file: Path | None = None
    #: The audit key (keys the audit chain, signs checkpoints); default
    #: ``<data dir>/audit.key``, or the SECINFRA_AUDIT_KEY environment variable.
    audit_key_file: Path | None = None
    #: Read-path audit entries (secret reads, checks, denials) waiting to be
    #: written at most; past it ``audit_queue_full`` decides.
    audit_queue_max: int = 10000
    #: ``wait``: the request waits (at most ``audit_queue_wait_seconds``) for
    #: room, then is refused 503; ``refuse``: it is refused 503 at once.
    audit_queue_full: str = "wait"
    audit_queue_wait_seconds: float = 2.0
    #: Append a signed checkpoint of the audit chain's head to this file every
    #: ``audit_checkpoint_interval_seconds`` (and log it); empty: log only.
    audit_checkpoint_file: Path | None = None
    audit_checkpoint_interval_seconds: float = 300.0
    #: PostgreSQL connection string (libpq URL or key=value); empty: SQLite in
    #: the data dir. Kept out of ``repr``: it may hold a password.
    database_dsn: str = field(default="", repr=False)
    #: A file holding the PostgreSQL connection string (e.g. a mounted secret).
    database_dsn_file: Path | None = None
    #: Apply pending PostgreSQL schema migrations at start (SQLite always does).
    migrate: bool = False
    log_level: str = "info"
    #: Send OpenTelemetry traces: a span per request, authorization check,
    #: storage transaction and signature. Needs the ``otel`` extra; the
    #: standard ``OTEL_*`` variables say where spans go and which are sampled.
    tracing: bool = False
    dns_names: tuple[str, ...] = ("localhost",)
    jwt: JwtAttestationConfig | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def kek_path(self) -> Path:
        """Where the key encryption key lives."""
        return self.kek_file if self.kek_file is not None else self.data_dir / "kek"

    @property
    def audit_key_path(self) -> Path:
        """Where the audit key lives (when not in the environment)."""
        return (
            self.audit_key_file if self.audit_key_file is not None else self.data_dir / "audit.key"
        )

    @property
    def database_path(self) -> Path:
        """The SQLite database file."""
        return self.data_dir / "secinfra.db"

    def postgres_dsn(self) -> str | None:
        """The PostgreSQL DSN (read from ``database_dsn_file`` if that is set), or
        None for SQLite. An error names the file, never what is in it."""
        if self.database_dsn_file is None:
            return self.database_dsn or None
        try:
            dsn = self.database_dsn_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"secinfra: config: database_dsn_file: cannot read {self.database_dsn_file}:"
                f" {exc.strerror}"
            ) from exc
        if not dsn:
            raise ConfigError(
                f"secinfra: config: database_dsn_file: {self.database_dsn_file} is empty"
            )
        return dsn

    @property
    def admin_spiffe_id(self) -> str:
        """The SPIFFE ID of the admin identity init creates (``spiffe://<td>/secinfra/admin``)."""
        return f"spiffe://{self.trust_domain}{ADMIN_SPIFFE_PATH}"

    @property
    def admin_dir(self) -> Path:
        """Where init writes the admin identity (certificate + key)."""
        return self.data_dir / "admin"


def admin_files(data_dir: Path) -> tuple[Path, Path, Path]:
    """Paths of the admin identity init writes: certificate, key, bundle.

    The same names as :attr:`ServerConfig.admin_dir` (``<data dir>/admin``), for
    callers that hold only the data dir (the CLI, the test harness).
    """
    admin = data_dir / "admin"
    return admin / "cert.pem", admin / "key.pem", admin / "bundle.pem"


_SCALARS: Final = {f.name: f for f in dataclasses.fields(ServerConfig)} | {}
_JWT_FIELDS: Final = {f.name: f for f in dataclasses.fields(JwtAttestationConfig)}


def _convert(name: str, kind: Any, raw: Any) -> Any:
    """Convert a raw value (string from env/flags, or TOML value) to the field type."""
    kind_text = str(kind)
    try:
        if kind_text in ("int",):
            if isinstance(raw, bool):
                raise TypeError
            return int(raw)
        if kind_text == "float":
            return float(raw)
        if kind_text == "bool":
            if isinstance(raw, bool):
                return raw
            lowered = str(raw).strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if "tuple" in kind_text:
            if isinstance(raw, list | tuple):
                return tuple(str(item) for item in raw)
            return tuple(part.strip() for part in str(raw).split(",") if part.strip())
        if "Path" in kind_text:
            return Path(str(raw)).expanduser()
        if kind_text == "str":
            if not isinstance(raw, str):
                raise TypeError
            return raw
    except (TypeError, ValueError):
        raise ConfigError(f"secinfra: config: {name}: {raw!r} is not a valid {kind_text}") from None
    raise ConfigError(f"secinfra: config: {name}: unsupported setting type {kind_text}")


def _collect(sources: list[Mapping[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    top: dict[str, Any] = {}
    jwt: dict[str, Any] = {}
    for source in sources:
        for key, value in source.items():
            if value is None:
                continue
            if key == "jwt" and isinstance(value, Mapping):
                for jkey, jvalue in value.items():
                    if jkey not in _JWT_FIELDS:
                        raise ConfigError(f"secinfra: config: unknown setting jwt.{jkey}")
                    jwt[jkey] = jvalue
            elif key.startswith("jwt_") and key[4:] in _JWT_FIELDS:
                jwt[key[4:]] = value
            elif key in _SCALARS and key not in ("jwt", "extra"):
                top[key] = value
            else:
                raise ConfigError(f"secinfra: config: unknown setting {key!r}")
    return top, jwt


def env_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """Settings found in the environment (``SECINFRA_*``), by setting name."""
    names = set(_SCALARS) - {"jwt", "extra"} | {f"jwt_{name}" for name in _JWT_FIELDS}
    found: dict[str, Any] = {}
    for name in names:
        value = environ.get(ENV_PREFIX + name.upper())
        if value is not None:
            found[name] = value
    return found


def load_config(
    *,
    config_file: Path | None = None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> ServerConfig:
    """Build the configuration from its sources and validate it. ``defaults``
    (e.g. dev mode's) rank below every other source."""
    sources: list[Mapping[str, Any]] = [dict(defaults or {})]
    if config_file is not None:
        try:
            sources.append(tomllib.loads(config_file.read_text(encoding="utf-8")))
        except OSError as exc:
            raise ConfigError(
                f"secinfra: config: cannot read {config_file}: {exc.strerror}"
            ) from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"secinfra: config: {config_file}: {exc}") from exc
    sources.append(env_settings(os.environ if environ is None else environ))
    sources.append(dict(flags or {}))
    top, jwt_raw = _collect(sources)
    if "data_dir" not in top:
        raise ConfigError(
            "secinfra: config: data_dir is required (--data-dir, SECINFRA_DATA_DIR or data_dir)"
        )
    values = {name: _convert(name, _SCALARS[name].type, raw) for name, raw in top.items()}
    if jwt_raw:
        missing = [name for name in ("issuer", "audiences", "jwks_file") if name not in jwt_raw]
        if missing:
            raise ConfigError(f"secinfra: config: jwt: missing {', '.join(missing)}")
        jwt_values = {
            name: _convert(f"jwt.{name}", _JWT_FIELDS[name].type, raw)
            for name, raw in jwt_raw.items()
        }
        values["jwt"] = JwtAttestationConfig(**jwt_values)
    config = ServerConfig(**values)
    validate(config)
    return config


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only the loopback interface."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate(config: ServerConfig) -> None:
    """Reject unsafe or nonsensical settings with a message naming the setting."""

    def fail(message: str) -> None:
        raise ConfigError(f"secinfra: config: {message}")

    if not 0 <= config.port <= 65535:
        fail(f"port: {config.port} is not a TCP port")
    if config.test_hooks and not is_loopback(config.host):
        fail(f"test_hooks: refusing to enable test hooks on non-loopback host {config.host!r}")
    min_ttl = 2 if config.test_hooks else MIN_PRODUCTION_LEAF_TTL_SECONDS
    for name in ("leaf_ttl_seconds", "server_cert_ttl_seconds", "admin_cert_ttl_seconds"):
        value = getattr(config, name)
        if value < min_ttl:
            fail(f"{name}: {value} is below the minimum of {min_ttl} seconds")
    if config.leaf_ttl_seconds > 30 * 86400:
        fail("leaf_ttl_seconds: at most 30 days; short-lived certificates are the point")
    if config.admin_cert_ttl_seconds > MAX_ADMIN_CERT_TTL_SECONDS:
        fail(
            "admin_cert_ttl_seconds: at most 7 days; the CLI renews the admin identity,"
            " and `secinfra-server init` on the host issues a new one (break-glass)"
        )
    if config.ca_ttl_days < 1:
        fail("ca_ttl_days: must be at least 1")
    if not 0 < config.join_token_default_ttl_seconds <= MAX_JOIN_TOKEN_TTL_SECONDS:
        fail(f"join_token_default_ttl_seconds: must be between 1 and {MAX_JOIN_TOKEN_TTL_SECONDS}")
    if not TRUST_DOMAIN_PATTERN.fullmatch(config.trust_domain):
        fail(
            f"trust_domain: {config.trust_domain!r} must be lowercase letters, digits, '.', '-'"
            " and '_' (a SPIFFE trust domain, no scheme or port)"
        )
    for name in config.dns_names:
        if not DNS_NAME_PATTERN.fullmatch(name):
            fail(f"dns_names: {name!r} is not a DNS name")
    if config.audit_queue_full not in ("wait", "refuse"):
        fail(f"audit_queue_full: {config.audit_queue_full!r} is not one of wait, refuse")
    if config.audit_queue_max < 1:
        fail("audit_queue_max: must be positive")
    if not 0 < config.audit_queue_wait_seconds <= 60:
        fail("audit_queue_wait_seconds: must be above 0 and at most 60")
    if config.audit_checkpoint_interval_seconds < 1:
        fail("audit_checkpoint_interval_seconds: must be at least 1")
    if config.authz_check_max_age_seconds < 0:
        fail("authz_check_max_age_seconds: must not be negative")
    for name in (
        "max_body_bytes",
        "max_in_flight",
        "bundle_refresh_hint_seconds",
        "enrolment_source_burst",
        "enrolment_source_per_minute",
        "enrolment_token_burst",
        "enrolment_token_per_minute",
        "enrolment_limit_max_keys",
        "max_connections",
        "max_connections_per_peer",
    ):
        if getattr(config, name) <= 0:
            fail(f"{name}: must be positive")
    if config.max_connections_per_peer > config.max_connections:
        fail(
            f"max_connections_per_peer: {config.max_connections_per_peer} exceeds"
            f" max_connections ({config.max_connections})"
        )
    for name in (
        "tls_handshake_timeout_seconds",
        "header_timeout_seconds",
        "idle_timeout_seconds",
        "body_timeout_seconds",
        "shutdown_timeout_seconds",
    ):
        if getattr(config, name) <= 0:
            fail(f"{name}: must be positive")
    if config.database_dsn and config.database_dsn_file is not None:
        fail("database_dsn and database_dsn_file: set one, not both")
    if config.log_level not in ("debug", "info", "warning", "error"):
        fail(f"log_level: {config.log_level!r} is not one of debug, info, warning, error")
    if config.tracing and not _tracing.available():
        fail(
            "tracing: OpenTelemetry is not installed; install secinfra-server[otel]"
            " or turn tracing off"
        )


#: One line of ``--help`` per setting (``secinfra-server serve --help``); the
#: full descriptions are in docs/operations/configuration.md. Every setting
#: that is a flag has one (tests/unit/test_cli_help.py).
SETTING_HELP: Final[Mapping[str, str]] = {
    "data_dir": "data directory: database, KEK file and admin identity (required)",
    "host": "address to listen on (an IP address or localhost)",
    "port": "TCP port; 0 picks a free one",
    "trust_domain": "SPIFFE trust domain; fixed once init has created the first CA",
    "leaf_ttl_seconds": "lifetime of workload certificates",
    "server_cert_ttl_seconds": "lifetime of the server's own serving certificate",
    "admin_cert_ttl_seconds": "lifetime of the admin identity init writes (and its renewals)",
    "ca_ttl_days": "lifetime of each new CA",
    "bundle_refresh_hint_seconds": "the trust bundle's refresh hint and max-age",
    "ca_auto_rotate": "run CA rotation steps automatically when they fall due",
    "join_token_default_ttl_seconds": "lifetime of a join token created without a TTL",
    "max_body_bytes": "largest request body; larger gets 413",
    "max_connections": "connections open at once; one more is reset before TLS",
    "max_connections_per_peer": "connections open at once from one client IP address",
    "tls_handshake_timeout_seconds": "time a client has to complete the TLS handshake",
    "header_timeout_seconds": "time a request head has to arrive",
    "idle_timeout_seconds": "time a kept-alive connection may wait for its next request",
    "body_timeout_seconds": "time a request body has to arrive, else 400",
    "max_in_flight": "API requests served at once; more are shed with 503 + Retry-After",
    "enrolment_source_burst": "enrolment attempts one source address may make before it waits",
    "enrolment_source_per_minute": "enrolment attempts a source address regains per minute",
    "enrolment_token_burst": "failed attempts naming one join token before 429",
    "enrolment_token_per_minute": "failed attempts a join token is forgiven per minute",
    "enrolment_limit_max_keys": "source addresses and join tokens the enrolment limits track",
    "authz_check_max_age_seconds": "seconds SDKs may reuse a decision (0: revalidate)",
    "shutdown_timeout_seconds": "how long a graceful shutdown waits for requests in flight",
    "test_hooks": "test mode: the conformance control API (loopback only, never in production)",
    "kek_file": "the KEK file (default: <data_dir>/kek); not read when SECINFRA_KEK is set",
    "database_dsn": (
        "PostgreSQL connection string; empty: SQLite. Prefer SECINFRA_DATABASE_DSN or"
        " --database-dsn-file: other users see flags in the process list"
    ),
    "database_dsn_file": "a file holding the PostgreSQL connection string",
    "migrate": "apply pending PostgreSQL schema migrations at start",
    "log_level": "debug, info, warning or error",
    "tracing": "send OpenTelemetry traces (the otel extra; OTEL_* variables say where)",
    "dns_names": "DNS names of the serving certificate, comma-separated",
    "audit_key_file": (
        "the audit key (default: <data_dir>/audit.key); not read when SECINFRA_AUDIT_KEY is set"
    ),
    "audit_queue_max": "read-path audit entries waiting to be written, at most",
    "audit_queue_full": "wait or refuse: what a request does when the audit queue is full",
    "audit_queue_wait_seconds": "how long a request waits for audit queue room before 503",
    "audit_checkpoint_file": "append a signed audit checkpoint to this file (empty: log only)",
    "audit_checkpoint_interval_seconds": "seconds between signed audit checkpoints",
}
