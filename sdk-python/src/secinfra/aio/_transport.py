"""Connections and TLS for asyncio: one request on the wire, over aiohttp.

The asyncio twin of ``secinfra._runtime._transport``, with the same contract:
`AsyncHttpTransport.send` sends one attempt and returns its ``HttpAnswer``,
or raises ``NoAnswer`` (connection refused or reset, timeout) or
``ServerRejected`` (the server's chain or SPIFFE ID failed verification).
One aiohttp session (a keep-alive pool per endpoint) per kind of call
(anonymous, mTLS), built on a TLS context from the identity source's current
snapshot and bundle: TLS 1.2+, the identity presented (mTLS only), the chain
verified against the bundle by OpenSSL and the SPIFFE ID checked right after
each handshake, before a byte of the request is written
(``_runtime._tls.client_context(server_id=...)``). The private key reaches
OpenSSL through a memory file, as in the sync client.

A rotation retires the sessions it made outdated: each is closed once no
attempt uses it any more, so idle connections of the old identity go and an
attempt in flight is not cut off. No TLS session is resumed (no ``session=``
is passed to asyncio), as in the sync client (spec 8.5.1).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Final

import aiohttp
from yarl import URL

from .._identity._events import RotationEvent
from .._identity._snapshot import X509Identity
from .._runtime._endpoints import EndpointSet
from .._runtime._tls import client_context
from .._runtime._transport import (
    POOL_SIZE,
    HttpAnswer,
    NoAnswer,
    describe_connection_failure,
    server_rejected,
    verification_failure,
)
from ._source import AsyncIdentitySource

__all__ = ["AsyncHttpTransport"]

#: Seconds an idle pooled connection is kept: below the reference server's
#: 15 s idle timeout, so a request never races the server closing it.
KEEPALIVE_SECONDS: Final = 10.0


class _Pool:
    """One aiohttp session for one (identity, bundle), and the attempts using it."""

    __slots__ = ("bundle_pem", "key", "retired", "session", "users")

    def __init__(self, key: tuple[str | None, str], session: aiohttp.ClientSession) -> None:
        self.key = key
        self.bundle_pem = key[1]
        self.session = session
        self.users = 0
        self.retired = False


class AsyncHttpTransport:
    """Connections to a server's endpoints over aiohttp, verified by SPIFFE ID.

    Used from one event loop (the one that makes its first request).
    ``endpoints`` is the client's `EndpointSet`; which endpoint an attempt goes
    to is the caller's choice.
    """

    def __init__(self, endpoints: EndpointSet, source: AsyncIdentitySource) -> None:
        self._endpoints = endpoints
        self._source = source
        self._pools: dict[bool, _Pool] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._stale: list[_Pool] = []
        source.subscribe(self._on_rotation)

    @property
    def endpoints(self) -> EndpointSet:
        """The endpoints this transport has pools for."""
        return self._endpoints

    async def close(self) -> None:
        """Close every pooled connection."""
        pools = [*self._pools.values(), *self._stale]
        self._pools.clear()
        self._stale.clear()
        for pool in pools:
            await pool.session.close()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    async def send(
        self,
        http_method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes | None,
        *,
        mtls: bool,
        timeout: float,
        endpoint: str | None = None,
        identity: X509Identity | None = None,
    ) -> HttpAnswer:
        """Send one attempt of ``http_method target`` to ``endpoint`` (default:
        the home endpoint) and read the whole answer within ``timeout`` seconds
        (connect, handshake, head and body together, spec 5.2.2). An mTLS
        attempt presents ``identity`` (default: the source's current one).
        """
        if mtls and identity is None:
            identity = await self._source.ensure_identity()
        pool = self._pool(mtls, identity)
        base = endpoint if endpoint is not None else self._endpoints.home
        # The target goes on the wire as given (spec 2.2.5): an encoded URL
        # keeps "." and ".." segments, which yarl would otherwise remove.
        url = URL(base + target, encoded=True)
        progress = SimpleNamespace(connected=False)
        pool.users += 1
        try:
            async with asyncio.timeout(timeout):
                async with pool.session.request(
                    http_method,
                    url,
                    headers=dict(headers),
                    data=body,
                    allow_redirects=False,
                    trace_request_ctx=progress,
                ) as response:
                    content = await response.read()
                    return HttpAnswer(response.status, response.headers.copy(), content)
        except TimeoutError as exc:
            what = "the attempt timed out"
            raise NoAnswer(what, sent=progress.connected, timeout=True) from exc
        except aiohttp.ClientConnectorCertificateError as exc:
            refused = verification_failure(exc.certificate_error) or _as_verification(exc)
            raise server_rejected(refused, pool.bundle_pem) from exc
        except (aiohttp.ClientError, ssl.SSLError, OSError) as exc:
            rejected = verification_failure(exc)
            if rejected is not None:
                raise server_rejected(rejected, pool.bundle_pem) from exc
            sent = not isinstance(exc, aiohttp.ClientConnectorError) and progress.connected
            raise NoAnswer(describe_connection_failure(exc), sent=sent, timeout=False) from exc
        finally:
            pool.users -= 1
            if pool.retired and pool.users == 0:
                self._close_later(pool)

    # -- connections -----------------------------------------------------------------
    def _pool(self, mtls: bool, identity: X509Identity | None) -> _Pool:
        """The session for ``mtls`` calls on ``identity`` and the current bundle."""
        if not mtls:
            identity = None
        bundle = self._source.bundle()
        key = (identity.serial if identity else None, bundle.pem)
        held = self._pools.get(mtls)
        if held is not None and held.key == key:
            return held
        context = client_context(
            bundle.pem,
            identity.chain_pem if identity else None,
            identity.key_pem if identity else None,
            server_id=self._source.server_id,
        )
        tracing = aiohttp.TraceConfig()
        tracing.on_connection_create_end.append(_connected)
        tracing.on_connection_reuseconn.append(_connected)
        connector = aiohttp.TCPConnector(
            ssl=context,
            limit=0,
            limit_per_host=POOL_SIZE,
            keepalive_timeout=KEEPALIVE_SECONDS,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            # The attempt's own timeout bounds it (asyncio.timeout above).
            timeout=aiohttp.ClientTimeout(total=None),
            trace_configs=[tracing],
            auto_decompress=True,
            requote_redirect_url=False,
            # No aiohttp User-Agent or cookie jar: the SDK sends its own headers.
            skip_auto_headers=("User-Agent",),
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        # aiohttp re-sends an idempotent request once by itself when a pooled
        # connection is reset: an attempt the retry rules never decided
        # (conformance errors/transport-error). It has no public switch; the
        # attribute is one of ClientSession's declared ones.
        session._retry_connection = False
        pool = self._pools[mtls] = _Pool(key, session)
        if held is not None:
            self._retire(held)  # idle connections of the old identity or trust go now
        return pool

    def _on_rotation(self, event: RotationEvent) -> None:
        """Retire the sessions an identity or bundle change made outdated.

        A renewal outdates only the mTLS session; the anonymous one (enrolment,
        bundle) presents no identity and stays, as in the sync transport.
        """
        identity = event.identity
        wanted: dict[bool, tuple[str | None, str]] = {
            False: (None, event.bundle.pem),
            True: (identity.serial if identity else None, event.bundle.pem),
        }
        for mtls, pool in list(self._pools.items()):
            if pool.key != wanted[mtls]:
                del self._pools[mtls]
                self._retire(pool)

    def _retire(self, pool: _Pool) -> None:
        pool.retired = True
        if pool.users == 0:
            self._close_later(pool)

    def _close_later(self, pool: _Pool) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop running (an event outside one): at close()
            self._stale.append(pool)
            return
        task = loop.create_task(pool.session.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


async def _connected(
    session: aiohttp.ClientSession, context: SimpleNamespace, params: object
) -> None:
    """A connection for the attempt is ready: from now on its request may be sent."""
    progress = context.trace_request_ctx
    if progress is not None:
        progress.connected = True


def _as_verification(exc: BaseException) -> ssl.SSLCertVerificationError:
    """A verification error for a certificate failure aiohttp reports without one."""
    return ssl.SSLCertVerificationError(str(exc))
