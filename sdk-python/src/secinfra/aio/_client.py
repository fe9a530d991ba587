"""The asyncio secinfra client: `secinfra.Client`'s behaviour on an event loop."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Unpack

from .._client import (
    ClientSettings,
    ClientViews,
    client_parts,
    enrol_bundle,
    pipeline_settings,
    rotating_settings,
)
from .._gen.authz_aio_client import AsyncAuthzClient
from .._gen.entries_aio_client import AsyncEntriesClient
from .._gen.identity_aio_client import AsyncIdentityClient
from .._gen.secrets_aio_client import AsyncSecretsClient
from .._identity._rotating import JwtProvider
from .._runtime._budget import (
    BUDGET_CAPACITY,
    RETRY_COST,
    SUCCESS_REFUND,
    TIMEOUT_RETRY_COST,
)
from .._runtime._cache import DEFAULT_MAX_ENTRIES
from .._runtime._clock import Clock
from .._runtime._endpoints import (
    ENDPOINT_COOLDOWN,
    ENDPOINT_COOLDOWN_MAX,
    ORDER_RANDOM,
)
from .._runtime._observer import Observer
from .._runtime._retry import DEFAULT_RETRY_POLICY, RetryPolicy
from .._runtime._rotation import RotationPolicy
from ._pipeline import AsyncCallPipeline
from ._rotating import RotatingIdentity
from ._source import AsyncIdentitySource, StaticIdentity
from ._transport import AsyncHttpTransport

__all__ = ["Client"]


class Client(ClientViews):
    """Talks to a secinfra server as one workload identity, from asyncio.

    The same settings, errors, observers and behaviour as
    :class:`secinfra.Client` (retries, deadline, retry budget, cache,
    single-flight, endpoints and failover, rotation): the rules are the same
    code. Service clients :attr:`secrets`, :attr:`authz`, :attr:`identity`
    have the same methods as coroutines. Use it from one event loop; close
    it with ``await client.close()`` or ``async with``::

        async with await secinfra.aio.Client.enrol(
            url, join_token=token, bundle_file="bundle.pem"
        ) as client:
            secret = await client.secrets.get_secret(name="payments/db/password")

    A cancelled call (``asyncio.timeout``, task cancellation) leaves nothing
    half done; callers that shared its request (single-flight) still get the
    answer. Needs the ``aio`` extra: ``pip install secinfra[aio]``.
    """

    def __init__(
        self,
        url: str | Sequence[str],
        source: AsyncIdentitySource,
        *,
        retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY,
        rotation_policy: RotationPolicy | None = None,
        cache_size: int = DEFAULT_MAX_ENTRIES,
        use_cache: bool = True,
        budget_capacity: int = BUDGET_CAPACITY,
        retry_cost: int = RETRY_COST,
        timeout_retry_cost: int = TIMEOUT_RETRY_COST,
        success_refund: int = SUCCESS_REFUND,
        endpoint_order: str = ORDER_RANDOM,
        endpoint_cooldown: float = ENDPOINT_COOLDOWN,
        endpoint_cooldown_max: float = ENDPOINT_COOLDOWN_MAX,
        observers: Sequence[Observer] = (),
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        parts = client_parts(
            url,
            source,
            rotation_policy=rotation_policy,
            endpoint_order=endpoint_order,
            endpoint_cooldown=endpoint_cooldown,
            endpoint_cooldown_max=endpoint_cooldown_max,
            clock=clock,
            rng=rng,
        )
        self._rotation_policy = parts.rotation_policy
        self._source = source
        self._pipeline: AsyncCallPipeline = AsyncCallPipeline(
            AsyncHttpTransport(parts.endpoints, source),
            source,
            **pipeline_settings(
                parts,
                retry_policy=retry_policy,
                cache_size=cache_size,
                use_cache=use_cache,
                budget_capacity=budget_capacity,
                retry_cost=retry_cost,
                timeout_retry_cost=timeout_retry_cost,
                success_refund=success_refund,
                observers=observers,
                rng=rng,
            ),
        )
        self.secrets = AsyncSecretsClient(self._pipeline)
        self.authz = AsyncAuthzClient(self._pipeline)
        self.identity = AsyncIdentityClient(self._pipeline)
        self.entries = AsyncEntriesClient(self._pipeline)

    @classmethod
    async def enrol(
        cls,
        url: str | Sequence[str],
        *,
        join_token: str | None = None,
        jwt: str | JwtProvider | None = None,
        bundle_file: str | Path | None = None,
        bundle_pem: str | None = None,
        server_id: str | None = None,
        **settings: Unpack[ClientSettings],
    ) -> Client:
        """Enrol a new key with a join token or a JWT, then keep it rotated in
        a task of the running loop (as :meth:`secinfra.Client.enrol`)."""
        source = RotatingIdentity(
            enrol_bundle(bundle_file, bundle_pem),
            **rotating_settings(join_token, jwt, server_id, settings),
        )
        client = cls(url, source, **settings)
        source.attach(client.identity)
        try:
            await source.start()
        except BaseException:
            await client.close()
            raise
        return client

    @classmethod
    def from_files(
        cls,
        url: str | Sequence[str],
        *,
        cert_file: str | Path,
        key_file: str | Path,
        bundle_file: str | Path,
        server_id: str | None = None,
        **settings: Unpack[ClientSettings],
    ) -> Client:
        """Use an identity kept in files by someone else (as
        :meth:`secinfra.Client.from_files`). Not renewed by this client."""
        source = StaticIdentity.from_files(
            bundle_file=bundle_file, cert_file=cert_file, key_file=key_file, server_id=server_id
        )
        return cls(url, source, **settings)

    @property
    def source(self) -> AsyncIdentitySource:
        """Where this client's identity and trust bundle come from."""
        source: AsyncIdentitySource = self._source
        return source

    async def close(self) -> None:
        """Stop rotating, close connections and drop every cached response."""
        close = getattr(self._source, "close", None)
        if callable(close):
            await close()
        await self._pipeline.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
