"""Server configuration: defaults, then a TOML file, then environment, then flags.

Each setting has one name. In the TOML file it is a top-level key
(``leaf_ttl_seconds = 3600``) or, for JWT attestation, a key of the ``[jwt]``
table. In the environment it is ``SECINFRA_`` plus the upper-cased name
(``SECINFRA_LEAF_TTL_SECONDS=3600``; ``SECINFRA_JWT_ISSUER`` for the table).
On the command line it is ``--leaf-ttl-seconds 3600``. A later source wins.

Lists of tables exist in the TOML file only: ``[[jwt_issuers]]`` (one per
Kubernetes cluster, each with its own ``[[jwt_issuers.rules]]``) and the
``[login]`` table (people's OIDC login, with ``[login.groups]``).
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
class JwtMappingRule:
    """One ``[[jwt_issuers.rules]]`` entry: glob patterns and a SPIFFE ID template."""

    spiffe_id: str
    namespace: str = "*"
    service_account: str = "*"


@dataclass(frozen=True)
class JwtAttestationConfig:
    """Verifying one Kubernetes cluster's projected service-account tokens.

    Keys come from ``jwks_file`` when it is set, else from the issuer's OpenID
    discovery document (fetched over HTTPS, trusting ``ca_file`` if set, else
    the system's CAs), cached in ``<data_dir>/jwks-cache/``.
    """

    issuer: str
    audiences: tuple[str, ...]
    jwks_file: Path | None = None
    #: The cluster's name: the ``{cluster}`` placeholder and the audit's ``cluster``.
    name: str = "default"
    spiffe_id_template: str = "spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"
    rules: tuple[JwtMappingRule, ...] = ()
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    leeway_seconds: int = 30
    ca_file: Path | None = None
    #: A discovered JWK Set is fetched again at most this often, also for a
    #: token naming an unknown ``kid``.
    jwks_min_refresh_seconds: float = 30.0
    #: ... and at least this often.
    jwks_max_age_seconds: float = 3600.0


@dataclass(frozen=True)
class LoginConfig:
    """People's login (``secinfra login``): one OpenID provider, its ID tokens."""

    issuer: str
    #: The OAuth client the CLI uses; ID tokens must name it in ``aud``.
    client_id: str
    #: Which claim names the user in the certificate: ``sub`` or ``email``.
    user_claim: str = "sub"
    #: Lifetime of user certificates.
    certificate_ttl_seconds: int = 43200
    #: The ID token claim holding the user's groups.
    groups_claim: str = "groups"
    #: Group name -> relationship tuples (``relation object``) the user is
    #: given at login, e.g. ``{"payments-eng" = ["reader secret:payments"]}``.
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Scopes the CLI asks for.
    scopes: tuple[str, ...] = ("openid", "email", "profile", "groups")
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    leeway_seconds: int = 30
    ca_file: Path | None = None
    jwks_min_refresh_seconds: float = 30.0
    jwks_max_age_seconds: float = 3600.0


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
    #: More Kubernetes clusters, one ``[[jwt_issuers]]`` table each.
    jwt_issuers: tuple[JwtAttestationConfig, ...] = ()
    login: LoginConfig | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def kubernetes_issuers(self) -> tuple[JwtAttestationConfig, ...]:
        """Every configured cluster: the ``[jwt]`` table's first, then ``[[jwt_issuers]]``."""
        return ((self.jwt,) if self.jwt is not None else ()) + self.jwt_issuers

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


#: Settings that are tables, not flags or environment variables.
TABLE_SETTINGS: Final = frozenset({"jwt", "jwt_issuers", "login", "extra"})
_SCALARS: Final = {f.name: f for f in dataclasses.fields(ServerConfig)} | {}
_JWT_FIELDS: Final = {f.name: f for f in dataclasses.fields(JwtAttestationConfig)}
#: What the ``[jwt]`` table (and its environment variables) may set: one issuer
#: with one template; several rules need ``[[jwt_issuers]]``.
_LEGACY_JWT_FIELDS: Final = {k: v for k, v in _JWT_FIELDS.items() if k != "rules"}
_RULE_FIELDS: Final = {f.name: f for f in dataclasses.fields(JwtMappingRule)}
_LOGIN_FIELDS: Final = {f.name: f for f in dataclasses.fields(LoginConfig)}


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
                    if jkey not in _LEGACY_JWT_FIELDS:
                        hint = " (several rules need [[jwt_issuers]])" if jkey == "rules" else ""
                        raise ConfigError(f"secinfra: config: unknown setting jwt.{jkey}{hint}")
                    jwt[jkey] = jvalue
            elif key in ("jwt_issuers", "login"):
                top[key] = value
            elif key.startswith("jwt_") and key[4:] in _LEGACY_JWT_FIELDS:
                jwt[key[4:]] = value
            elif key in _SCALARS and key not in TABLE_SETTINGS:
                top[key] = value
            else:
                raise ConfigError(f"secinfra: config: unknown setting {key!r}")
    return top, jwt


def _table(name: str, raw: Any, fields: Mapping[str, dataclasses.Field[Any]]) -> dict[str, Any]:
    """Convert one TOML table's values by its dataclass's fields (nested ones aside)."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"secinfra: config: {name} must be a table")
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"secinfra: config: unknown setting {name}.{unknown[0]}")
    return {
        key: _convert(f"{name}.{key}", fields[key].type, value)
        for key, value in raw.items()
        if key not in ("rules", "groups")
    }


def _jwt_issuer(name: str, raw: Mapping[str, Any]) -> JwtAttestationConfig:
    values = _table(name, raw, _JWT_FIELDS)
    missing = [key for key in ("issuer", "audiences") if key not in values]
    if missing:
        raise ConfigError(f"secinfra: config: {name}: missing {', '.join(missing)}")
    rules_raw = raw.get("rules", [])
    if not isinstance(rules_raw, list):
        raise ConfigError(f"secinfra: config: {name}.rules must be a list of tables")
    rules = []
    for index, rule_raw in enumerate(rules_raw):
        rule_values = _table(f"{name}.rules[{index}]", rule_raw, _RULE_FIELDS)
        if "spiffe_id" not in rule_values:
            raise ConfigError(f"secinfra: config: {name}.rules[{index}]: missing spiffe_id")
        rules.append(JwtMappingRule(**rule_values))
    return JwtAttestationConfig(**values, rules=tuple(rules))


def _login(raw: Any) -> LoginConfig:
    values = _table("login", raw, _LOGIN_FIELDS)
    missing = [key for key in ("issuer", "client_id") if key not in values]
    if missing:
        raise ConfigError(f"secinfra: config: login: missing {', '.join(missing)}")
    groups_raw = raw.get("groups", {})
    if not isinstance(groups_raw, Mapping):
        raise ConfigError("secinfra: config: login.groups must be a table of group = [tuples]")
    groups = {
        str(group): _convert(f"login.groups.{group}", "tuple[str, ...]", tuples)
        for group, tuples in groups_raw.items()
    }
    return LoginConfig(**values, groups=groups)


def env_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """Settings found in the environment (``SECINFRA_*``), by setting name."""
    names = set(_SCALARS) - TABLE_SETTINGS | {f"jwt_{name}" for name in _LEGACY_JWT_FIELDS}
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
    issuers_raw = top.pop("jwt_issuers", [])
    login_raw = top.pop("login", None)
    values: dict[str, Any] = {
        name: _convert(name, _SCALARS[name].type, raw) for name, raw in top.items()
    }
    if jwt_raw:
        values["jwt"] = _jwt_issuer("jwt", jwt_raw)
    if not isinstance(issuers_raw, list | tuple):
        raise ConfigError(
            "secinfra: config: jwt_issuers must be a list of tables ([[jwt_issuers]])"
        )
    values["jwt_issuers"] = tuple(
        _jwt_issuer(f"jwt_issuers[{index}]", raw) for index, raw in enumerate(issuers_raw)
    )
    if login_raw is not None:
        values["login"] = _login(login_raw)
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
    _validate_attestors(config, fail)
    if config.tracing and not _tracing.available():
        fail(
            "tracing: OpenTelemetry is not installed; install secinfra-server[otel]"
            " or turn tracing off"
        )


def _validate_attestors(config: ServerConfig, fail: Any) -> None:
    issuers: set[str] = set()
    names: set[str] = set()
    for index, jwt in enumerate(config.kubernetes_issuers):
        where = "jwt" if config.jwt is jwt else f"jwt_issuers[{index - (config.jwt is not None)}]"
        if jwt.issuer in issuers:
            fail(f"{where}.issuer: {jwt.issuer!r} is configured twice")
        if jwt.name in names:
            fail(f"{where}.name: {jwt.name!r} is used twice; give each cluster its own name")
        issuers.add(jwt.issuer)
        names.add(jwt.name)
        if jwt.jwks_file is None and not jwt.issuer.startswith("https://"):
            fail(
                f"{where}: without jwks_file the keys come from the issuer's discovery"
                f" document, which needs an https:// issuer (got {jwt.issuer!r})"
            )
        if not 0 < jwt.jwks_min_refresh_seconds <= jwt.jwks_max_age_seconds:
            fail(
                f"{where}: jwks_min_refresh_seconds must be positive and at most"
                " jwks_max_age_seconds"
            )
    login = config.login
    if login is None:
        return
    if not login.issuer.startswith("https://"):
        fail(f"login.issuer: {login.issuer!r} must be an https:// URL")
    if login.user_claim not in ("sub", "email"):
        fail(f"login.user_claim: {login.user_claim!r} is not one of sub, email")
    if not 60 <= login.certificate_ttl_seconds <= 7 * 86400:
        fail("login.certificate_ttl_seconds: must be between 60 seconds and 7 days")
    if "openid" not in login.scopes:
        fail("login.scopes: must include openid")
    for group, tuples in login.groups.items():
        for entry in tuples:
            parts = entry.split()
            if len(parts) != 2 or ":" not in parts[1]:
                fail(
                    f"login.groups.{group}: {entry!r} is not 'relation type:object'"
                    " (e.g. 'reader secret:payments')"
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
