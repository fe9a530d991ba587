"""Assembling and running the server: storage, KEK, CA, TLS, HTTP, background tasks.

``Server`` owns every long-lived part and the order they start and stop in:
start opens the database, loads the KEK and the CA, issues the serving
certificate and starts listening; stop (SIGTERM) stops accepting, lets
in-flight requests finish within the shutdown timeout, then closes storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Final

from aiohttp import web

from . import attest
from ._authority import Authority, ServerIdentity
from ._authz_api import AuthzApi
from ._clock import Clock
from ._http import Dispatcher, Handler, new_request_id, peer_der
from ._idempotency import IdempotencyStore
from ._identity_api import IdentityApi
from ._kek_rotation import load_keyring
from ._metrics import Metrics
from ._policy import AuthzEngine, EnginePolicy
from ._secrets_api import SecretsApi
from ._testhooks import TestHooks
from ._tls import ServingTls
from .access import AccessPolicy
from .audit import AuditLog
from .config import ServerConfig
from .crypto import Keyring
from .errors import ApiError
from .storage import SqliteStorage

log = logging.getLogger("secinfra.server")

#: How often background tasks look for due work (rotation, renewal).
HOUSEKEEPING_INTERVAL_SECONDS: Final = 1.0
ADMIN_PATH: Final = "/secinfra/admin"


class StaticAdminPolicy:
    """The init-time admin may do everything; everyone else nothing.

    The policy the server starts with until the authorization engine's policy
    (``_policy.py``) is wired in; also the default-deny baseline for tests.
    """

    def __init__(self, trust_domain: str) -> None:
        self._admin = f"spiffe://{trust_domain}{ADMIN_PATH}"

    async def is_admin(self, spiffe_id: str) -> bool:
        return spiffe_id == self._admin

    async def can_read_secret(self, spiffe_id: str, name: str) -> bool:
        return spiffe_id == self._admin

    async def can_write_secret(self, spiffe_id: str, name: str) -> bool:
        return spiffe_id == self._admin

    async def readable_secrets(self, spiffe_id: str, names: Sequence[str]) -> list[str]:
        return list(names) if spiffe_id == self._admin else []


@dataclass(frozen=True)
class ServiceContext:
    """Everything a service needs, built once by :meth:`Server.start`."""

    config: ServerConfig
    storage: SqliteStorage
    keyring: Keyring
    clock: Clock
    metrics: Metrics
    authority: Authority
    audit: AuditLog
    policy: AccessPolicy


def load_jwt_attestor(config: ServerConfig) -> attest.JWTAttestor | None:
    """The JWT attestor from config, or None when JWT attestation is off."""
    if config.jwt is None:
        return None
    jwks = json.loads(config.jwt.jwks_file.read_text(encoding="utf-8"))
    return attest.JWTAttestor(
        attest.JWTAttestorConfig(
            issuer=config.jwt.issuer,
            audiences=config.jwt.audiences,
            jwks=jwks,
            trust_domain=config.trust_domain,
            allowed_algorithms=config.jwt.algorithms,
            leeway=timedelta(seconds=config.jwt.leeway_seconds),
            spiffe_id_template=config.jwt.spiffe_id_template,
        )
    )


class Server:
    """One running secinfra server."""

    def __init__(self, config: ServerConfig, *, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or Clock()
        self.metrics = Metrics()
        self.storage: SqliteStorage | None = None
        self.authority: Authority | None = None
        self.tls: ServingTls | None = None
        self.identity: ServerIdentity | None = None
        self.dispatcher: Dispatcher | None = None
        self.audit: AuditLog | None = None
        self.idempotency: IdempotencyStore | None = None
        self.hooks: TestHooks | None = None
        self.policy: AccessPolicy | None = None
        self.port: int | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._ready = False

    @property
    def url(self) -> str:
        """The base URL clients use."""
        return f"https://{self.config.host}:{self.port}"

    def service_handlers(self, ctx: ServiceContext) -> dict[str, Handler]:
        """Every RPC handler by name; RPCs without one answer ``unimplemented``."""
        handlers: dict[str, Handler] = {}
        identity = IdentityApi(
            config=ctx.config,
            authority=ctx.authority,
            storage=ctx.storage,
            clock=ctx.clock,
            admin=ctx.policy,
            jwt_attestor=load_jwt_attestor(ctx.config),
            audit=ctx.audit,
        )
        handlers.update(identity.handlers())
        handlers.update(SecretsApi(ctx).handlers())
        handlers.update(AuthzApi(ctx).handlers())
        return handlers

    def make_policy(self, storage: SqliteStorage) -> AccessPolicy:
        """The access policy the services consult: the authorization engine over
        the built-in model (see ``_policy.py``)."""
        admin_id = f"spiffe://{self.config.trust_domain}{ADMIN_PATH}"
        return EnginePolicy(AuthzEngine(storage, clock=self.clock, admin_id=admin_id))

    def extra_handlers(self) -> dict[str, Handler]:
        """Test seam: handlers that replace or add to the services' handlers."""
        return {}

    async def start(self) -> None:
        """Open storage, load keys and the CA, and start serving."""
        config = self.config
        self.storage = await SqliteStorage.open(config.database_path)
        keyring = load_keyring(config)
        self.authority = Authority(
            config=config,
            storage=self.storage,
            keyring=keyring,
            clock=self.clock,
            metrics=self.metrics,
        )
        await self.authority.load()
        self.identity = await self.authority.server_identity()
        self.tls = ServingTls(
            self.identity.chain_pem, self.identity.key_pem, self.authority.trusted_pem
        )
        self.authority.on_trust_change(self._on_trust_change)
        self.audit = AuditLog(self.storage, self.clock)
        self.audit.start()
        self.idempotency = IdempotencyStore(self.storage, keyring, self.clock)
        self.hooks = TestHooks(self) if config.test_hooks else None
        self.policy = self.make_policy(self.storage)
        ctx = ServiceContext(
            config=config,
            storage=self.storage,
            keyring=keyring,
            clock=self.clock,
            metrics=self.metrics,
            authority=self.authority,
            audit=self.audit,
            policy=self.policy,
        )
        self.dispatcher = Dispatcher(
            handlers={**self.service_handlers(ctx), **self.extra_handlers()},
            verify_peer=self.authority.verify_peer,
            metrics=self.metrics,
            max_body_bytes=config.max_body_bytes,
            body_timeout=config.body_timeout_seconds,
            max_in_flight=config.max_in_flight,
            idempotency=self.idempotency,
            hooks=self.hooks,
        )
        app = web.Application(client_max_size=config.max_body_bytes)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        if self.hooks is not None:
            self.hooks.register(app)
        app.router.add_route("*", "/{tail:.*}", self.dispatcher.handle)
        self._runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=config.shutdown_timeout_seconds,
            keepalive_timeout=config.header_timeout_seconds,
        )
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, config.host, config.port, ssl_context=self.tls.listening_context
        )
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or ()
        self.port = sockets[0].getsockname()[1] if sockets else config.port
        self._tasks.append(asyncio.create_task(self._housekeeping(), name="housekeeping"))
        self._ready = True
        log.info("serving", extra={"fields": {"url": self.url}})

    async def stop(self) -> None:
        """Stop accepting, finish in-flight requests, then release everything."""
        self._ready = False
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.audit is not None:
            await self.audit.close()
            self.audit = None
        if self.storage is not None:
            await self.storage.close()
            self.storage = None

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

    async def reload_serving_identity(self) -> None:
        """Issue a new serving certificate and hot-load it (no restart)."""
        assert self.authority is not None
        assert self.tls is not None
        self.identity = await self.authority.server_identity()
        self.tls.reload(self.identity.chain_pem, self.identity.key_pem, self.authority.trusted_pem)
        log.info(
            "serving certificate reloaded",
            extra={"fields": {"not_after": self.identity.not_after.isoformat()}},
        )

    async def _on_trust_change(self) -> None:
        # A new active CA or a changed bundle: serve a certificate from the
        # active CA and trust exactly the CAs in the bundle.
        await self.reload_serving_identity()

    async def _housekeeping(self) -> None:
        assert self.authority is not None
        while True:
            await asyncio.sleep(HOUSEKEEPING_INTERVAL_SECONDS)
            try:
                if self.config.ca_auto_rotate:
                    await self.authority.run_due_rotation()
                if self.idempotency is not None:
                    await self.idempotency.purge_expired()
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
        return web.json_response({"status": "ready"})

    async def _metrics(self, request: web.Request) -> web.Response:
        # Metrics describe the deployment: any enrolled workload may read them.
        assert self.authority is not None
        try:
            self.authority.verify_peer(peer_der(request))
        except ApiError as exc:
            request_id = new_request_id()
            return web.json_response(
                exc.envelope(request_id), status=exc.status, headers={"Request-Id": request_id}
            )
        return web.Response(body=self.metrics.render(), content_type="text/plain")


def admin_files(data_dir: Path) -> tuple[Path, Path, Path]:
    """Paths of the admin identity written by init: certificate, key, bundle."""
    admin = data_dir / "admin"
    return admin / "cert.pem", admin / "key.pem", admin / "bundle.pem"
