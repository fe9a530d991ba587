"""Assembling and running the server: storage, KEK, CA, TLS, HTTP, background tasks.

``Server`` owns every long-lived part and the order they start and stop in:
start opens the database, loads the KEK and the CA, issues the serving
certificate and starts listening; stop (SIGTERM) stops accepting, lets
in-flight requests finish within the shutdown timeout, then closes storage.

On PostgreSQL the server is one of any number of replicas on the database:
its change feed reloads the CAs, the deny-list and the CRLs when another
replica changes them, and the background jobs (CA rotation, CRL refresh,
idempotency clean-up) run only while its leader election says it leads. Its
own serving certificate, with its own address SANs, it renews itself, whether
it leads or not. On SQLite there is neither: one process makes every change
and always leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import resource
import signal
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

from aiohttp import web
from cryptography import x509

from . import _crash_points, attest, ca
from ._authz_api import AuthzApi
from ._ca_runtime import CaRuntime, ServerIdentity
from ._clock import Clock
from ._enrolment_guard import EnrolmentGuard, EnrolmentLimits
from ._entries_api import EntriesApi
from ._http import (
    API_PATHS,
    Dispatcher,
    EnvelopeAppRunner,
    envelope_http_errors,
    new_request_id,
    peer_der,
    trace_requests,
)
from ._idempotency import IdempotencyStore
from ._identity_api import IdentityApi
from ._issuance_faults import IssuanceFault, ServingFault
from ._kek_rotation import load_keyring
from ._listener import ConnectionGate, ConnectionLimits, ConnectionListener
from ._login_api import UserLogin
from ._metrics import Metrics
from ._rpc import Handler, ServiceContext
from ._secrets_api import SecretsApi
from ._testhooks import TestHooks
from ._tls import ServingTls
from ._tracing import NO_TRACING, Tracing
from .audit import AuditChain, AuditLog, QueueSettings, load_audit_key_for
from .config import JwtAttestationConfig, ServerConfig
from .errors import ApiError
from .policy import AccessPolicy, AuthzEngine, EnginePolicy
from .storage import SqliteStorage, Storage
from .storage.postgres import ChangeFeed, LeaderElection, PostgresStorage

log = logging.getLogger("secinfra.server")

#: How often background tasks look for due work (rotation, renewal).
HOUSEKEEPING_INTERVAL_SECONDS: Final = 1.0
#: /readyz: how long storage may take to answer its probe, and how long one
#: probe's outcome serves later calls.
READY_PROBE_TIMEOUT_SECONDS: Final = 2.0
READY_CACHE_SECONDS: Final = 1.0


async def open_storage(
    config: ServerConfig, *, migrate: bool | None = None, tracing: Tracing = NO_TRACING
) -> Storage:
    """The configured storage, open: PostgreSQL when a DSN is set, else SQLite
    in the data dir (which always migrates itself on open).

    ``migrate`` (default: the ``migrate`` setting) applies pending PostgreSQL
    migrations first; without it a database on an older schema is refused.
    Each transaction is a span of ``tracing``.
    """
    dsn = config.postgres_dsn()
    if dsn is None:
        return await SqliteStorage.open(config.database_path, tracing=tracing)
    return await PostgresStorage.open(
        dsn, migrate=config.migrate if migrate is None else migrate, tracing=tracing
    )


def load_jwt_attestor(config: ServerConfig) -> attest.KubernetesAttestors | None:
    """The Kubernetes attestors from config (one per cluster), or None when JWT
    attestation is off. A static ``jwks_file`` is read now; discovered keys are
    fetched on first use, and cached in ``<data_dir>/jwks-cache``."""
    if not config.kubernetes_issuers:
        return None
    return attest.KubernetesAttestors(
        [_jwt_attestor(config, jwt) for jwt in config.kubernetes_issuers]
    )


def _jwt_attestor(config: ServerConfig, jwt: JwtAttestationConfig) -> attest.JWTAttestor:
    jwks: Any = None
    source: attest.KeySource | None = None
    if jwt.jwks_file is not None:
        try:
            jwks = json.loads(jwt.jwks_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise attest.InvalidAttestorConfig(
                f"cluster {jwt.name!r}: cannot read jwks_file {jwt.jwks_file}"
            ) from exc
    else:
        source = discovered_keys(
            config,
            jwt.issuer,
            jwt.algorithms,
            jwt.ca_file,
            jwt.jwks_min_refresh_seconds,
            jwt.jwks_max_age_seconds,
        )
    return attest.JWTAttestor(
        attest.JWTAttestorConfig(
            name=jwt.name,
            issuer=jwt.issuer,
            audiences=jwt.audiences,
            jwks=jwks,
            key_source=source,
            trust_domain=config.trust_domain,
            allowed_algorithms=jwt.algorithms,
            leeway=timedelta(seconds=jwt.leeway_seconds),
            spiffe_id_template=jwt.spiffe_id_template,
            rules=tuple(
                attest.MappingRule(rule.spiffe_id, rule.namespace, rule.service_account)
                for rule in jwt.rules
            ),
        )
    )


def load_oidc_verifier(config: ServerConfig) -> attest.OidcVerifier | None:
    """The ID token verifier the ``[login]`` table describes, or None."""
    login = config.login
    if login is None:
        return None
    return attest.OidcVerifier(
        issuer=login.issuer,
        client_id=login.client_id,
        keys=discovered_keys(
            config,
            login.issuer,
            login.algorithms,
            login.ca_file,
            login.jwks_min_refresh_seconds,
            login.jwks_max_age_seconds,
        ),
        trust_domain=config.trust_domain,
        user_claim=login.user_claim,
        groups_claim=login.groups_claim,
        algorithms=tuple(login.algorithms),
        leeway=timedelta(seconds=login.leeway_seconds),
    )


def discovered_keys(
    config: ServerConfig,
    issuer: str,
    algorithms: tuple[str, ...],
    ca_file: Path | None,
    min_refresh_seconds: float,
    max_age_seconds: float,
) -> attest.DiscoveredJwks:
    """An issuer's keys from its discovery document, cached in the data dir
    (``jwks-cache/<sha256 of the issuer>.json``)."""
    digest = hashlib.sha256(issuer.encode()).hexdigest()[:32]
    return attest.DiscoveredJwks(
        issuer,
        tuple(algorithms),
        cache_file=config.data_dir / "jwks-cache" / f"{digest}.json",
        ca_file=ca_file,
        min_refresh_interval=timedelta(seconds=min_refresh_seconds),
        max_age=timedelta(seconds=max_age_seconds),
    )


def enrolment_limits(config: ServerConfig) -> EnrolmentLimits:
    """The enrolment rate limits the ``enrolment_*`` settings describe."""
    return EnrolmentLimits(
        source_burst=config.enrolment_source_burst,
        source_per_minute=config.enrolment_source_per_minute,
        token_burst=config.enrolment_token_burst,
        token_per_minute=config.enrolment_token_per_minute,
        max_keys=config.enrolment_limit_max_keys,
    )


def _consume_outcome(future: asyncio.Future[int]) -> None:
    """Retrieve a probe's exception, so one that ends after its caller gave up
    is not reported as never retrieved (the caller already logged it)."""
    if not future.cancelled():
        future.exception()


class Server:
    """One running secinfra server."""

    #: How long one readiness probe's outcome serves later /readyz calls.
    ready_cache_seconds: float = READY_CACHE_SECONDS

    def __init__(
        self, config: ServerConfig, *, clock: Clock | None = None, tracing: Tracing | None = None
    ) -> None:
        """``tracing``: the caller's own (a test's tracer provider); by default
        the ``tracing`` setting decides, and spans go where the ``OTEL_*``
        variables say (see ``_tracing``)."""
        self.config = config
        self.clock = clock or Clock()
        self.metrics = Metrics()
        self._tracing_given = tracing
        self.tracing = tracing if tracing is not None else NO_TRACING
        self.storage: Storage | None = None
        self.ca_runtime: CaRuntime | None = None
        self.tls: ServingTls | None = None
        self.identity: ServerIdentity | None = None
        self.dispatcher: Dispatcher | None = None
        self.audit: AuditLog | None = None
        self.idempotency: IdempotencyStore | None = None
        self.enrolment_guard: EnrolmentGuard | None = None
        self.hooks: TestHooks | None = None
        self.engine: AuthzEngine | None = None
        self.policy: AccessPolicy | None = None
        self.port: int | None = None
        self.connections: ConnectionGate | None = None
        self._runner: EnvelopeAppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._ready = False
        #: /readyz: the last probe of storage and the CA key (monotonic time, checks).
        self._readiness: tuple[float, dict[str, str]] | None = None
        self._readiness_lock = asyncio.Lock()
        self._storage_probe: asyncio.Future[int] | None = None
        #: PostgreSQL only: other replicas' changes, and who runs the jobs.
        self._feed: ChangeFeed | None = None
        self._election: LeaderElection | None = None
        self._leader = False

    @property
    def url(self) -> str:
        """The base URL clients use."""
        return f"https://{self.config.host}:{self.port}"

    def service_handlers(self, ctx: ServiceContext) -> dict[str, Handler]:
        """Every RPC handler by name; RPCs without one answer ``unimplemented``."""
        handlers: dict[str, Handler] = {}
        assert self.enrolment_guard is not None
        user_login = UserLogin(ctx, load_oidc_verifier(ctx.config))
        identity = IdentityApi(
            config=ctx.config,
            ca_runtime=ctx.ca_runtime,
            storage=ctx.storage,
            clock=ctx.clock,
            admin=ctx.policy,
            jwt_attestor=load_jwt_attestor(ctx.config),
            audit=ctx.audit,
            enrolment_guard=self.enrolment_guard,
            user_login=user_login,
        )
        handlers.update(identity.handlers())
        handlers.update(user_login.handlers())
        handlers.update(SecretsApi(ctx).handlers())
        handlers.update(AuthzApi(ctx).handlers())
        handlers.update(EntriesApi(ctx).handlers())
        return handlers

    def make_policy(self, engine: AuthzEngine) -> AccessPolicy:
        """Test seam: the access policy the services consult; by default the
        authorization engine over the built-in model (see ``policy/``)."""
        return EnginePolicy(engine, tracing=self.tracing)

    def extra_handlers(self) -> dict[str, Handler]:
        """Test seam: handlers that replace or add to the services' handlers."""
        return {}

    async def start(self) -> None:
        """Open storage, load keys and the CA, and start serving."""
        config = self.config
        limits = self._connection_limits()  # first: a ConfigError opens nothing
        if self._tracing_given is None and config.tracing:
            self.tracing = Tracing.from_environment()
        self.storage = await open_storage(config, tracing=self.tracing)
        if isinstance(self.storage, PostgresStorage):
            # Listening (and the revisions to compare with) before the CA is
            # loaded, so that no change between the two goes unseen.
            self._feed = self.storage.change_feed(self._on_replica_change)
            await self._feed.open()
            self._election = self.storage.leader_election()
        keyring = load_keyring(config)
        chain = AuditChain(load_audit_key_for(config), self.metrics)
        self.ca_runtime = CaRuntime(
            config=config,
            storage=self.storage,
            keyring=keyring,
            clock=self.clock,
            metrics=self.metrics,
            chain=chain,
            shared=self._feed is not None,
            tracing=self.tracing,
        )
        await self.ca_runtime.load()
        self.identity = await self.ca_runtime.server_identity()
        self.tls = ServingTls(
            self.identity.chain_pem, self.identity.key_pem, self.ca_runtime.trusted_pem
        )
        self.ca_runtime.on_trust_change(self._on_trust_change)
        self.audit = AuditLog(
            self.storage,
            self.clock,
            chain,
            metrics=self.metrics,
            settings=QueueSettings(
                max_entries=config.audit_queue_max,
                when_full=config.audit_queue_full,
                wait_seconds=config.audit_queue_wait_seconds,
            ),
            checkpoint_file=config.audit_checkpoint_file,
            checkpoint_interval=config.audit_checkpoint_interval_seconds,
        )
        self.audit.start()
        self.idempotency = IdempotencyStore(
            self.storage,
            keyring,
            self.clock,
            probe=_crash_points.from_environ(os.environ, test_hooks=config.test_hooks),
        )
        self.enrolment_guard = EnrolmentGuard(
            enrolment_limits(config), storage=self.storage, clock=self.clock, chain=chain
        )
        self.engine = AuthzEngine(
            self.storage, clock=self.clock, admin_id=config.admin_spiffe_id, chain=chain
        )
        self.policy = self.make_policy(self.engine)
        if config.test_hooks:
            self.hooks = TestHooks(
                _TestModeControls(
                    self.ca_runtime,
                    self.policy,
                    self.clock,
                    config,
                    self.reload_serving_identity,
                )
            )
        ctx = ServiceContext(
            config=config,
            storage=self.storage,
            keyring=keyring,
            clock=self.clock,
            metrics=self.metrics,
            ca_runtime=self.ca_runtime,
            audit=self.audit,
            policy=self.policy,
            engine=self.engine,
            tracing=self.tracing,
        )
        self.dispatcher = Dispatcher(
            handlers={**self.service_handlers(ctx), **self.extra_handlers()},
            verify_peer=self.ca_runtime.verify_peer,
            metrics=self.metrics,
            max_body_bytes=config.max_body_bytes,
            body_timeout=config.body_timeout_seconds,
            max_in_flight=config.max_in_flight,
            idempotency=self.idempotency,
            observer=self.hooks,
        )
        # Tracing first: its span sees the status the client gets. Off, it
        # is not in the chain at all.
        traced = [trace_requests(self.tracing)] if self.tracing.enabled else []
        app = web.Application(
            client_max_size=config.max_body_bytes, middlewares=[*traced, envelope_http_errors]
        )
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        if self.hooks is not None:
            self.hooks.register(app)
        app.router.add_route("*", API_PATHS, self.dispatcher.handle)
        self.connections = ConnectionGate(limits, self.metrics)
        self._runner = EnvelopeAppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=config.shutdown_timeout_seconds,
            # aiohttp's own keep-alive timer, a backstop only: the listener's
            # header and idle timers always fire first.
            keepalive_timeout=limits.idle_timeout + limits.header_timeout,
        )
        await self._runner.setup()
        site = ConnectionListener(
            self._runner,
            config.host,
            config.port,
            ssl_context=self.tls.listening_context,
            gate=self.connections,
            connection_factory=self._runner.connection,
        )
        await site.start()
        self.port = site.port
        self.tracing.listening(config.host, site.port)
        if self._feed is not None:
            self._feed.start()
        else:
            self._set_leader(True)  # SQLite: the one process always leads
        self._tasks.append(asyncio.create_task(self._housekeeping(), name="housekeeping"))
        self._ready = True
        log.info("serving", extra={"fields": {"url": self.url}})

    def _connection_limits(self) -> ConnectionLimits:
        """The configured connection limits, fitted under the file-descriptor
        limit read now, and logged (with a warning if they had to shrink)."""
        config = self.config
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        limits = ConnectionLimits.from_config(config, nofile_soft=soft)
        fields = {
            "max_connections": limits.max_connections,
            "max_connections_per_peer": limits.max_connections_per_peer,
            "tls_handshake_timeout_seconds": limits.handshake_timeout,
            "header_timeout_seconds": limits.header_timeout,
            "idle_timeout_seconds": limits.idle_timeout,
            # null: unlimited
            "rlimit_nofile_soft": None if soft == resource.RLIM_INFINITY else soft,
            "rlimit_nofile_hard": None if hard == resource.RLIM_INFINITY else hard,
        }
        if limits.max_connections < config.max_connections:
            log.warning(
                "max_connections lowered to fit the file-descriptor limit; raise"
                " RLIMIT_NOFILE (systemd LimitNOFILE=) to allow more",
                extra={"fields": {**fields, "configured_max_connections": config.max_connections}},
            )
        log.info("connection limits", extra={"fields": fields})
        return limits

    async def stop(self) -> None:
        """Stop accepting, finish in-flight requests, then release everything."""
        self._ready = False
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._election is not None:
            # The jobs have stopped: hand leadership over at once.
            await self._election.close()
            self._election = None
            self._set_leader(False)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.enrolment_guard is not None and self.storage is not None:
            await self.enrolment_guard.flush(everything=True)
        if self._feed is not None:
            # Only now: requests still in flight are checked against
            # revocations to the end.
            await self._feed.close()
            self._feed = None
        if self.audit is not None:
            await self.audit.close()
            self.audit = None
        if self.storage is not None:
            await self.storage.close()
            self.storage = None
        if self.tracing is not self._tracing_given:
            # Exports what is still queued (within OTEL_BSP_EXPORT_TIMEOUT);
            # a caller's own tracing is the caller's to shut down.
            await asyncio.to_thread(self.tracing.shutdown)

    async def run_until_signalled(self) -> None:
        """Serve until SIGTERM or SIGINT, then shut down gracefully."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutting down", extra={"fields": {"in_flight": self._in_flight()}})
        await self.stop()

    def _in_flight(self) -> int:
        return self.dispatcher.in_flight if self.dispatcher is not None else 0

    async def reload_serving_identity(self, fault: ServingFault | None = None) -> ServerIdentity:
        """Issue a new serving certificate and hot-load it (no restart); ``fault``: test mode."""
        assert self.ca_runtime is not None
        assert self.tls is not None
        identity = await self.ca_runtime.server_identity(fault)
        self.identity = identity
        self.tls.reload(identity.chain_pem, identity.key_pem, self.ca_runtime.trusted_pem)
        log.info(
            "serving certificate reloaded",
            extra={"fields": {"not_after": identity.not_after.isoformat()}},
        )
        return identity

    async def _on_trust_change(self) -> None:
        # A new active CA or a changed bundle: serve a certificate from the
        # active CA and trust exactly the CAs in the bundle.
        await self.reload_serving_identity()

    @property
    def is_leader(self) -> bool:
        """Whether this process runs the background jobs now."""
        return self._leader

    def _set_leader(self, leader: bool) -> None:
        if leader != self._leader:
            log.info(
                "leadership acquired: this replica runs the background jobs"
                if leader
                else "leadership released: another replica may run the background jobs",
                extra={"fields": {"url": self.url, "leader": leader}},
            )
        self._leader = leader
        self.metrics.leader.set(1 if leader else 0)

    async def _on_replica_change(self, kinds: frozenset[str]) -> None:
        # The change feed's callback: another replica (or this one) changed
        # what we keep in memory; reload it from the database.
        assert self.ca_runtime is not None
        if "revocations" in kinds:
            await self.ca_runtime.refresh_revocations()
        if "cas" in kinds:
            await self.ca_runtime.refresh_cas()
        if "crls" in kinds:
            self.ca_runtime.forget_crls()

    async def _housekeeping(self) -> None:
        assert self.ca_runtime is not None
        while True:
            await asyncio.sleep(HOUSEKEEPING_INTERVAL_SECONDS)
            try:
                if self._election is not None:
                    self._set_leader(await self._election.check())
                if self._leader:
                    # Cluster-wide jobs: exactly one replica runs them.
                    if self.config.ca_auto_rotate:
                        await self.ca_runtime.run_due_rotation()
                    if self.idempotency is not None:
                        await self.idempotency.purge_expired()
                    # Re-signs the published CRLs when they are due (half
                    # their validity, a new CA, a longer deny-list), so that
                    # relying parties rarely wait for a signature.
                    await self.ca_runtime.crls()
                if self.enrolment_guard is not None:
                    # Per replica: its own rate-limit windows.
                    await self.enrolment_guard.flush()
                # Every replica renews its own serving certificate.
                identity = self.identity
                if identity is not None and self.clock.now() >= identity.renew_at:
                    await self.reload_serving_identity()
            except ApiError as exc:
                log.warning("housekeeping step failed", extra={"fields": {"error": exc.message}})
            except Exception:
                log.exception("housekeeping step failed")

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, _request: web.Request) -> web.Response:
        if not self._ready:
            return web.json_response({"status": "starting"}, status=503)
        checks = await self.readiness_checks()
        if all(outcome == "ok" for outcome in checks.values()):
            return web.json_response({"status": "ready", "checks": checks})
        return web.json_response({"status": "not_ready", "checks": checks}, status=503)

    async def readiness_checks(self) -> dict[str, str]:
        """``{"storage": ..., "ca_key": ...}``, each ``"ok"`` or why not.

        Storage must answer a one-row read within READY_PROBE_TIMEOUT_SECONDS;
        the active CA's key must sign. One probe serves every /readyz call for
        ``ready_cache_seconds``, so a balancer polling hard costs one query a second.
        The answer names the failing check only, never an error text."""
        async with self._readiness_lock:
            now = time.monotonic()
            if self._readiness is not None and now - self._readiness[0] < self.ready_cache_seconds:
                return self._readiness[1]
            checks = {"storage": await self._probe_storage(), "ca_key": self._probe_ca_key()}
            previous = self._readiness[1] if self._readiness is not None else None
            if checks != previous and any(outcome != "ok" for outcome in checks.values()):
                log.warning("not ready", extra={"fields": checks})
            self._readiness = (time.monotonic(), checks)
            return checks

    async def _probe_storage(self) -> str:
        if self.storage is None:
            return "not_open"
        # One probe in flight at most: a probe that outlived its timeout (the
        # database hangs) is awaited again, not joined by another one queued
        # behind it on the storage's reader threads.
        if self._storage_probe is None or self._storage_probe.done():
            self._storage_probe = asyncio.ensure_future(self.storage.bundle_sequence())
            self._storage_probe.add_done_callback(_consume_outcome)
        try:
            await asyncio.wait_for(asyncio.shield(self._storage_probe), READY_PROBE_TIMEOUT_SECONDS)
        except TimeoutError:
            return "timeout"
        except Exception as exc:  # any failure of the backend means: not ready
            log.warning(
                "readiness: storage probe failed", extra={"fields": {"error": type(exc).__name__}}
            )
            return "unavailable"
        return "ok"

    def _probe_ca_key(self) -> str:
        if self.ca_runtime is None:
            return "not_loaded"
        return self.ca_runtime.signing_problem() or "ok"

    async def _metrics(self, request: web.Request) -> web.Response:
        # Metrics describe the deployment: any enrolled workload may read them.
        assert self.ca_runtime is not None
        try:
            self.ca_runtime.verify_peer(peer_der(request))
        except ApiError as exc:
            request_id = new_request_id()
            return web.json_response(
                exc.envelope(request_id), status=exc.status, headers={"Request-Id": request_id}
            )
        return web.Response(body=self.metrics.render(), content_type="text/plain")


class _TestModeControls:
    """The :class:`~secinfra_server._testhooks.TestModeControls` of one server:
    the parts test mode may drive, and nothing else of the server."""

    def __init__(
        self,
        ca_runtime: CaRuntime,
        policy: AccessPolicy,
        clock: Clock,
        config: ServerConfig,
        reload_serving_identity: Callable[[ServingFault | None], Awaitable[ServerIdentity]],
    ) -> None:
        self._ca = ca_runtime
        self._policy = policy
        self._clock = clock
        self._config = config
        self._reload_serving_identity = reload_serving_identity

    @property
    def config(self) -> ServerConfig:
        return self._config

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def trusted_pem(self) -> str:
        return self._ca.trusted_pem

    def verify_peer(self, der: bytes | None) -> ca.Peer:
        return self._ca.verify_peer(der)

    async def is_admin(self, spiffe_id: str) -> bool:
        return await self._policy.is_admin(spiffe_id)

    def set_leaf_ttl(self, ttl: timedelta) -> None:
        self._ca.leaf_ttl = ttl

    async def rotate_ca(self) -> int:
        await self._ca.prepare()
        await self._ca.activate()
        return self._ca.sequence

    async def rotate_serving_certificate(self, fault: ServingFault | None = None) -> datetime:
        return (await self._reload_serving_identity(fault)).not_after

    async def issue_admin_certificate(self, csr: bytes, ttl: timedelta) -> x509.Certificate:
        return await self._ca.sign(csr, self._config.admin_spiffe_id, kind="admin", ttl=ttl)

    def arm_issuance_fault(self, fault: IssuanceFault | None) -> int:
        self._ca.arm_issuance_fault(fault)
        return self._ca.pending_issuance_faults
