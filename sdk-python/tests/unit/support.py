"""Stand-ins the unit tests of the call pipeline and the transport share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Self

from secinfra import TrustBundle, X509Identity
from secinfra._identity._events import Subscriber
from secinfra._rpc import Auth, CachePolicy, Idempotency, MethodDescriptor
from secinfra._runtime._call import CallPipeline
from secinfra._runtime._transport import HttpTransport

SERVER_ID = "spiffe://transport.test/server"


class Echo:
    """A response type: keeps the decoded JSON."""

    def __init__(self, data: Any) -> None:
        self.data = data

    @classmethod
    def from_json(cls, data: Any, *, strict: bool = False, path: str = "") -> Self:
        return cls(data)


class Request:
    def __init__(
        self, fields: dict[str, Any] | None = None, on_encode: Callable[[], None] | None = None
    ):
        self._fields = fields or {}
        self._on_encode = on_encode

    def to_json(self) -> dict[str, Any]:
        if self._on_encode is not None:
            self._on_encode()
        return dict(self._fields)


def descriptor(*, cacheable: bool = False) -> MethodDescriptor:
    return MethodDescriptor(
        service="test.v1.Test",
        name="Get",
        http_method="GET",
        path="/v1/thing",
        path_params=(),
        query_params=("name",),
        body_fields=(),
        idempotency=Idempotency.READ_ONLY,
        auth=Auth.NONE,
        cache=CachePolicy(cacheable=True, resource="thing", key_field="name")
        if cacheable
        else None,
        invalidates=None,
        admin=False,
    )


class Source:
    """An anonymous identity source trusting one CA."""

    def __init__(self, bundle_pem: str = "") -> None:
        self._bundle = TrustBundle(pem=bundle_pem, sequence=1, refresh_hint=300.0)

    @property
    def server_id(self) -> str:
        return SERVER_ID

    def identity(self) -> X509Identity | None:
        return None

    def bundle(self) -> TrustBundle:
        return self._bundle

    def ensure_identity(self, timeout: float | None = None) -> X509Identity:
        raise AssertionError("anonymous RPCs only")

    def refresh_bundle(self) -> bool:
        return False

    def subscribe(self, callback: Subscriber) -> None:
        pass


def make_pipeline(url: str, source: Source, **settings: Any) -> CallPipeline:
    """A call pipeline over a transport to ``url`` (nothing is sent until a call)."""
    return CallPipeline(HttpTransport(url, source, clock=settings.get("clock")), source, **settings)
