"""The secinfra client: one object a service shares across threads."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypedDict, Unpack

from ._gen.authz_client import AuthzClient
from ._gen.entries_client import EntriesClient
from ._gen.identity_client import IdentityClient
from ._gen.secrets_client import SecretsClient
from ._identity._bundle import TrustBundle, load_bundle
from ._identity._events import Subscriber
from ._identity._rotating import JwtProvider, RotatingIdentity
from ._identity._source import IdentitySource
from ._identity._static import StaticIdentity
from ._runtime._budget import (
    BUDGET_CAPACITY,
    RETRY_COST,
    SUCCESS_REFUND,
    TIMEOUT_RETRY_COST,
    RetryBudget,
)
from ._runtime._cache import DEFAULT_MAX_ENTRIES, ResponseCache
from ._runtime._call import CallPipeline, CallRules
from ._runtime._clock import Clock, SystemClock
from ._runtime._endpoints import (
    ENDPOINT_COOLDOWN,
    ENDPOINT_COOLDOWN_MAX,
    ORDER_RANDOM,
    EndpointSet,
    EndpointState,
)
from ._runtime._observer import Observer
from ._runtime._retry import DEFAULT_RETRY_POLICY, RetryPolicy
from ._runtime._rotation import DEFAULT_ROTATION_POLICY, RotationPolicy
from ._runtime._transport import HttpTransport


@dataclass(frozen=True, slots=True)
class ClientParts:
    """What the sync and asyncio clients build alike from their settings."""

    rotation_policy: RotationPolicy
    clock: Clock
    endpoints: EndpointSet


def client_parts(
    url: str | Sequence[str],
    source: object,
    *,
    rotation_policy: RotationPolicy | None,
    endpoint_order: str,
    endpoint_cooldown: float,
    endpoint_cooldown_max: float,
    clock: Clock | None,
    rng: random.Random | None,
) -> ClientParts:
    """The rotation policy (checked against the source's), clock and endpoints."""
    held: RotationPolicy | None = getattr(source, "rotation_policy", None)
    if rotation_policy is not None and held is not None and rotation_policy != held:
        raise ValueError(
            "secinfra: client: rotation_policy differs from the identity source's;"
            " give it to the source (RotatingIdentity(rotation_policy=...))"
        )
    clock = clock or SystemClock()
    endpoints = EndpointSet(
        url,
        order=endpoint_order,
        cooldown=endpoint_cooldown,
        cooldown_max=endpoint_cooldown_max,
        clock=clock,
        rng=rng,
    )
    return ClientParts(rotation_policy or held or DEFAULT_ROTATION_POLICY, clock, endpoints)


def pipeline_settings(
    parts: ClientParts,
    *,
    retry_policy: RetryPolicy,
    cache_size: int,
    use_cache: bool,
    budget_capacity: int,
    retry_cost: int,
    timeout_retry_cost: int,
    success_refund: int,
    observers: Sequence[Observer],
    rng: random.Random | None,
) -> dict[str, Any]:
    """The keyword arguments of either call pipeline: a budget and a cache of
    the client's own, and the rest of its settings."""
    return {
        "policy": retry_policy,
        "budget": RetryBudget(
            capacity=budget_capacity,
            retry_cost=retry_cost,
            timeout_retry_cost=timeout_retry_cost,
            success_refund=success_refund,
        ),
        "cache": ResponseCache(max_entries=cache_size, clock=parts.clock),
        "clock": parts.clock,
        "rng": rng,
        "use_cache": use_cache,
        "observers": observers,
    }


def enrol_bundle(bundle_file: str | Path | None, bundle_pem: str | None) -> TrustBundle:
    """The trust bundle ``enrol`` verifies the server with before enrolment."""
    if (bundle_file is None) == (bundle_pem is None):
        raise ValueError("secinfra: give exactly one of bundle_file or bundle_pem")
    data = Path(bundle_file).read_bytes() if bundle_file is not None else bundle_pem or ""
    return load_bundle(data)


def rotating_settings(
    join_token: str | None,
    jwt: str | JwtProvider | None,
    server_id: str | None,
    settings: ClientSettings,
) -> dict[str, Any]:
    """The keyword arguments of either rotating identity ``enrol`` creates."""
    return {
        "join_token": join_token,
        "jwt": jwt,
        "server_id": server_id,
        "clock": settings.get("clock"),
        "rng": settings.get("rng"),
        "rotation_policy": settings.get("rotation_policy") or DEFAULT_ROTATION_POLICY,
    }


class ClientSettings(TypedDict, total=False):
    """The per-client settings :class:`Client` takes; ``enrol`` and
    ``from_files`` accept the same keywords and pass them on."""

    retry_policy: RetryPolicy
    rotation_policy: RotationPolicy
    cache_size: int
    use_cache: bool
    budget_capacity: int
    retry_cost: int
    timeout_retry_cost: int
    success_refund: int
    endpoint_order: str
    endpoint_cooldown: float
    endpoint_cooldown_max: float
    observers: Sequence[Observer]
    clock: Clock | None
    rng: random.Random | None


class ClientViews:
    """What the sync and asyncio clients show of their parts, alike."""

    _pipeline: CallRules[Any, Any]
    _rotation_policy: RotationPolicy
    _source: Any

    @property
    def budget(self) -> RetryBudget:
        """This client's retry budget (its own; never shared with another client)."""
        return self._pipeline.budget

    @property
    def endpoints(self) -> tuple[EndpointState, ...]:
        """Every endpoint in this client's order (home first), with its endpoint
        failures in a row and when its cooldown ends (spec 12.8.4)."""
        return self._pipeline.endpoints.states()

    @property
    def cache(self) -> ResponseCache[Any]:
        """This client's response cache."""
        return self._pipeline.cache

    @property
    def rotation_policy(self) -> RotationPolicy:
        """When this client's identity is renewed and its trust bundle refreshed."""
        return self._rotation_policy

    @property
    def source(self) -> Any:
        """Where this client's identity and trust bundle come from (an
        `IdentitySource`; in ``secinfra.aio``, its async twin)."""
        return self._source

    def on_rotation(self, callback: Subscriber) -> None:
        """Call ``callback(event)`` after every enrolment, renewal, failed renewal,
        expiry and trust-bundle change."""
        self._source.subscribe(callback)


class Client(ClientViews):
    """Talks to a secinfra server as one workload identity.

    Service clients: :attr:`secrets`, :attr:`authz`, :attr:`identity`, :attr:`entries` (one
    method per RPC). Thread-safe; create one per process and share it. Every
    default can be set here: retries, deadline and attempt timeout
    (``retry_policy``), the retry budget (``budget_capacity``, ``retry_cost``,
    ``timeout_retry_cost``, ``success_refund``: each client gets a bucket of
    its own, full at the start), the cache size (``cache_size``) and whether
    cacheable calls use the cache (``use_cache``), and when the identity is
    renewed and the trust bundle refreshed (``rotation_policy``, a
    :class:`RotationPolicy`), and how it fails over between endpoints. The
    per-call ones (``retry_policy``'s and
    ``use_cache``) can be overridden for one call with
    ``call_options=CallOptions(...)``.

    ``rotation_policy`` drives the rotating identity :meth:`enrol` creates. A
    source passed in here has its own (``RotatingIdentity(rotation_policy=...)``);
    giving the client a different one is refused. A static identity
    (:meth:`from_files`) is never renewed: the client only reports the policy.

    ``url`` is the server's URL, or a list of its replicas' URLs (spec 12):
    the client picks a home endpoint at random (``endpoint_order="listed"``:
    the first URL), stays on it while it works, and moves an attempt to the
    next endpoint after a connection failure, timeout, 502, 503 or 504, within
    the retry rules and budget. A failed endpoint is avoided for
    ``endpoint_cooldown`` seconds, doubling per failure in a row up to
    ``endpoint_cooldown_max``; then it is tried again (home first).

    ``observers`` (:class:`Observer`, spec 14) are told of every call the
    client makes, its own enrolment, renewals and bundle refreshes too, in
    the order given; an observer may return trace context for each attempt.
    With none (the default) the client sends no ``traceparent``.
    :mod:`secinfra.otel` has one for OpenTelemetry.

    Most services enrol once at start::

        client = secinfra.Client.enrol(url, join_token=token, bundle_file="bundle.pem")
        secret = client.secrets.get_secret(name="payments/db/password")

    With replicas::

        client = secinfra.Client.enrol(
            ["https://secinfra-1:8443", "https://secinfra-2:8443"],
            join_token=token,
            bundle_file="bundle.pem",
        )
    """

    def __init__(
        self,
        url: str | Sequence[str],
        source: IdentitySource,
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
        self._clock = parts.clock
        self._source = source
        self._pipeline: CallPipeline = CallPipeline(
            HttpTransport(parts.endpoints, source, clock=self._clock),
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
        self.secrets = SecretsClient(self._pipeline)
        self.authz = AuthzClient(self._pipeline)
        self.identity = IdentityClient(self._pipeline)
        self.entries = EntriesClient(self._pipeline)

    @classmethod
    def enrol(
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
        """Enrol a new key with a join token or a JWT, then keep it rotated.

        ``bundle_file``/``bundle_pem`` is the trust bundle to verify the server
        with before enrolment (PEM, or the SPIFFE JSON bundle). ``jwt`` may be a
        callable returning a fresh token: then the client re-enrols by itself if
        its certificate ever expires.
        """
        source = RotatingIdentity(
            enrol_bundle(bundle_file, bundle_pem),
            **rotating_settings(join_token, jwt, server_id, settings),
        )
        client = cls(url, source, **settings)
        source.attach(client.identity)
        try:
            source.start()
        except BaseException:
            client.close()
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
        """Use an identity kept in files by someone else (``secinfra agent``, or the
        admin identity ``secinfra-server init`` writes). Not renewed by this client."""
        source = StaticIdentity.from_files(
            bundle_file=bundle_file, cert_file=cert_file, key_file=key_file, server_id=server_id
        )
        return cls(url, source, **settings)

    @property
    def source(self) -> IdentitySource:
        """Where this client's identity and trust bundle come from."""
        source: IdentitySource = self._source
        return source

    def close(self) -> None:
        """Stop rotating, close connections and drop every cached response."""
        close = getattr(self._source, "close", None)
        if callable(close):
            close()
        self._pipeline.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
