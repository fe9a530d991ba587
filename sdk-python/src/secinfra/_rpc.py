"""The RPC contract: what generated service clients call, and nothing else.

Generated code is thin: a client method builds its request model and hands
it, with the RPC's `MethodDescriptor` and the caller's `CallOptions`, to an
`Invoker` (or, in the asyncio clients of ``secinfra.aio``, an `AsyncInvoker`),
which returns the decoded response. This module is the only one
generated code imports; the implementation behind `Invoker` (retries, cache,
identity, connections) lives in ``secinfra._runtime`` and can change without
regenerating a line.

`MethodDescriptor` mirrors the ``secinfra.v1.rpc`` option of api/secinfra/v1/
options.proto; the generator writes one per RPC beside each service client.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass
from typing import Any, Final, Protocol, Self, TypeVar

from .errors import InvalidArgument

__all__ = [
    "AsyncInvoker",
    "Auth",
    "CachePolicy",
    "CallOptions",
    "Idempotency",
    "Invalidation",
    "Invoker",
    "MethodDescriptor",
    "RequestMessage",
    "ResponseMessage",
]


class Idempotency(enum.StrEnum):
    """How safely a call may be repeated (options.proto ``Idempotency``)."""

    READ_ONLY = "read_only"
    """The call only reads; it never changes server state."""
    IDEMPOTENT = "idempotent"
    """Repeating the call has the same effect as making it once."""
    NON_IDEMPOTENT = "non_idempotent"
    """Each call changes state; retried after sending only with an Idempotency-Key."""

    @property
    def safe_to_repeat(self) -> bool:
        """Whether repeating the call cannot change its effect."""
        return self is not Idempotency.NON_IDEMPOTENT


class Auth(enum.StrEnum):
    """How the caller proves who it is (options.proto ``Auth``)."""

    MTLS = "mtls"
    """A valid client X509-SVID, re-checked on every request."""
    NONE = "none"
    """No client certificate needed (enrolment, trust bundle, CRL)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class CachePolicy:
    """Whether and how responses of a read RPC may be cached.

    Lifetimes come from each response's Cache-Control header, never from here.
    """

    cacheable: bool
    resource: str
    """The resource family of the entries ("secret", "authz", "bundle")."""
    key_field: str
    """The request field identifying one resource; "" for the whole family."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Invalidation:
    """Which cached entries a successful write makes stale in the writing client."""

    resource: str
    key_field: str
    """The request field naming the resource written; "" invalidates the family."""


@dataclass(frozen=True, kw_only=True, slots=True)
class MethodDescriptor:
    """One RPC: its HTTP binding and behaviour. Field names are JSON names."""

    service: str
    """Full proto name of the service, e.g. "secinfra.v1.SecretsService"."""
    name: str
    """The RPC name, e.g. "GetSecret"."""
    http_method: str
    path: str
    """Path template: ``{field}`` is one segment, ``{field=**}`` may contain '/'."""
    path_params: tuple[str, ...]
    query_params: tuple[str, ...]
    """Request fields sent in the query string (GET and DELETE)."""
    body_fields: tuple[str, ...]
    """Request fields sent in the JSON body (other methods)."""
    idempotency: Idempotency
    auth: Auth
    cache: CachePolicy | None
    invalidates: Invalidation | None
    admin: bool
    """The caller needs the admin relation on the system object."""

    @property
    def full_name(self) -> str:
        """``service/name``, e.g. ``secinfra.v1.SecretsService/GetSecret``."""
        return f"{self.service}/{self.name}"


#: A caller-supplied Idempotency-Key: 1 to 255 visible ASCII characters (spec 4.4.2).
_VALID_IDEMPOTENCY_KEY: Final = re.compile(r"[\x21-\x7e]{1,255}")


@dataclass(frozen=True, kw_only=True, slots=True)
class CallOptions:
    """Per-call settings laid over the client's defaults; None keeps the default."""

    deadline: float | None = None
    """Seconds for the whole call, all attempts included."""
    attempt_timeout: float | None = None
    """Seconds for one attempt."""
    max_attempts: int | None = None
    """Attempts in all (1 means no retries)."""
    idempotency_key: str | None = None
    """Use this Idempotency-Key instead of a fresh UUIDv4: 1 to 255 visible ASCII
    characters, else `InvalidArgument` when the options are made (spec 4.4.2)."""
    use_cache: bool | None = None
    """False bypasses the response cache for this call; True uses it even when
    the client was created with ``use_cache=False``."""
    revalidate: bool | None = None
    """True makes a cacheable call reach the server even when a fresh entry is
    cached (like a request's ``Cache-Control: no-cache``): conditional on the
    entry's ``ETag``, a 304 answers with the cached value, and a failure is
    raised, never hidden by a cached value. The client's own trust-bundle
    refreshes use it (spec 7.12.2, 10.2.2). None or False: the cache rules as usual."""
    base_backoff: float | None = None
    """Seconds: the backoff ceiling before the first retry (it doubles per retry)."""
    max_backoff: float | None = None
    """Seconds: the backoff ceiling never grows past this."""
    max_retry_after: float | None = None
    """Seconds: a longer ``Retry-After`` ends the call instead of waiting."""

    def __post_init__(self) -> None:
        key = self.idempotency_key
        if key is not None and not _VALID_IDEMPOTENCY_KEY.fullmatch(key):
            # Spec 4.4.2: refused before anything is sent, as the server would.
            raise InvalidArgument(
                "secinfra: idempotency: idempotency_key must be 1 to 255 visible ASCII"
                " characters (0x21-0x7E); leave it unset for a fresh UUIDv4"
            )
        # Spec 1.4.4: reject an invalid setting when it is given, naming it.
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("secinfra: call options: max_attempts must be at least 1")
        for name in ("deadline", "attempt_timeout"):
            value = getattr(self, name)
            if value is not None and not 0.0 < value < math.inf:
                raise ValueError(f"secinfra: call options: {name} must be a finite number > 0")
        for name in ("base_backoff", "max_backoff", "max_retry_after"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value < math.inf:
                raise ValueError(f"secinfra: call options: {name} must be a finite number >= 0")


class RequestMessage(Protocol):
    """A generated request model."""

    def to_json(self) -> dict[str, Any]: ...


class ResponseMessage(Protocol):
    """A generated response model."""

    @classmethod
    def from_json(cls, data: Any, *, strict: bool = ..., path: str = ...) -> Self: ...


R = TypeVar("R", bound=ResponseMessage)


class Invoker(Protocol):
    """Makes one RPC call: the one interface generated clients call.

    ``secinfra._runtime._call.CallPipeline`` implements it (encode, cache,
    attempts with retries, decode); tests may pass any object of this shape.
    """

    def invoke(
        self,
        method: MethodDescriptor,
        request: RequestMessage,
        response_type: type[R],
        options: CallOptions | None,
    ) -> R: ...


class AsyncInvoker(Protocol):
    """Makes one RPC call from asyncio: what the generated async clients call.

    ``secinfra.aio._pipeline.AsyncCallPipeline`` implements it, with the same
    rules as `Invoker`'s implementation; tests may pass any object of this shape.
    """

    async def invoke(
        self,
        method: MethodDescriptor,
        request: RequestMessage,
        response_type: type[R],
        options: CallOptions | None,
    ) -> R: ...
