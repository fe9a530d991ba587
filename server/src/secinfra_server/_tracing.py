"""Optional OpenTelemetry tracing: every span the server makes, and nothing else.

The server traces only when OpenTelemetry is installed (the ``otel`` extra:
``pip install 'secinfra-server[otel]'``) and the ``tracing`` setting is on, or
when a caller hands :class:`Tracing` a tracer provider of its own (the tests
do). Otherwise every method below returns :data:`NO_SPAN`, one shared object
whose methods do nothing, so a request costs a few attribute look-ups and no
allocation.

The spans (docs/operations/tracing.md lists them with their attributes):

- ``request``: one SERVER span per HTTP request, named after the RPC
  (``secinfra.v1.SecretsService/GetSecret``) or ``<method> <route>``; a child
  of the caller's span when the request carries W3C ``traceparent``;
- ``authz_check``: one access decision of the server's own policy (object
  type, relation, allowed; never the object's id);
- ``transaction``: one storage transaction (database system, read or write,
  the function that ran in it; never SQL or its parameters);
- ``signing``: one certificate signature (CA id, kind, serial).

Child spans are made only inside a recorded request, so background jobs
(rotation, audit batches, clean-up) add no traces of their own.

What never goes into a span: secret values, tokens, CSRs or keys, request
bodies, error messages, raw paths (they hold secret names) and exception
texts. Attributes are only the constants and identifiers set here.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Callable, Mapping
from contextvars import Token
from types import TracebackType
from typing import Any, Final

from . import __version__

try:  # the `otel` extra; without it every span is NO_SPAN
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

    OTEL_AVAILABLE = True
except ImportError:
    OTEL_AVAILABLE = False

#: The instrumentation scope of every span.
SCOPE: Final = "secinfra_server"
DEFAULT_SERVICE_NAME: Final = "secinfra-server"
#: OTEL_TRACES_EXPORTER's default (the OpenTelemetry specification's).
DEFAULT_EXPORTER: Final = "otlp"
#: OTLP protocol -> the entry point (group ``opentelemetry_traces_exporter``)
#: of the package that speaks it. The ``otel`` extra ships http/protobuf.
OTLP_EXPORTERS: Final[Mapping[str, tuple[str, str]]] = {
    "http/protobuf": ("otlp_proto_http", "opentelemetry-exporter-otlp-proto-http"),
    "grpc": ("otlp_proto_grpc", "opentelemetry-exporter-otlp-proto-grpc"),
}
EXPORTER_GROUP: Final = "opentelemetry_traces_exporter"

# Attribute names: OpenTelemetry semantic conventions where one fits, else ours.
HTTP_METHOD: Final = "http.request.method"
HTTP_ROUTE: Final = "http.route"
HTTP_STATUS: Final = "http.response.status_code"
URL_SCHEME: Final = "url.scheme"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
CLIENT_ADDRESS: Final = "client.address"
RPC_SYSTEM: Final = "rpc.system"
RPC_SERVICE: Final = "rpc.service"
RPC_METHOD: Final = "rpc.method"
ERROR_TYPE: Final = "error.type"
DB_SYSTEM: Final = "db.system.name"
DB_OPERATION: Final = "db.operation.name"
CODE_FUNCTION: Final = "code.function.name"
REQUEST_ID: Final = "secinfra.request_id"
CALLER: Final = "secinfra.caller.spiffe_id"
ERROR_CODE: Final = "secinfra.error.code"
AUTHZ_OBJECT_TYPE: Final = "secinfra.authz.object_type"
AUTHZ_RELATION: Final = "secinfra.authz.relation"
AUTHZ_ALLOWED: Final = "secinfra.authz.allowed"
AUTHZ_CANDIDATES: Final = "secinfra.authz.candidates"
AUTHZ_ALLOWED_COUNT: Final = "secinfra.authz.allowed_count"
CA_ID: Final = "secinfra.ca.id"
CERT_KIND: Final = "secinfra.certificate.kind"
CERT_SPIFFE_ID: Final = "secinfra.certificate.spiffe_id"
CERT_SERIAL: Final = "secinfra.certificate.serial"


class TracingUnavailable(RuntimeError):
    """Tracing was asked for but cannot run: OpenTelemetry is not installed,
    or the exporter OTEL_TRACES_EXPORTER names is not. The message says which."""


def available() -> bool:
    """Whether OpenTelemetry (API and SDK) can be imported."""
    return OTEL_AVAILABLE


class NoSpan:
    """Every span's methods, doing nothing: what tracing costs when it is off."""

    __slots__ = ()

    def __enter__(self) -> NoSpan:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    @property
    def routed(self) -> bool:
        """Whether the dispatcher named the request after its RPC."""
        return True

    def rpc(self, service: str, method: str, route: str) -> None:
        """Name the request span after its RPC (``service``/``method``)."""

    def route(self, route: str) -> None:
        """Name the request span ``<method> <route>`` (non-RPC endpoints)."""

    def caller(self, spiffe_id: str) -> None:
        """The verified caller's SPIFFE ID."""

    def failed(self, code: str) -> None:
        """The request was answered with the error ``code``."""

    def finished(self, status: int, request_id: str | None) -> None:
        """The response's status and Request-Id."""

    def allowed(self, allowed: bool) -> None:
        """An authorization check's outcome."""

    def filtered(self, candidates: int, allowed: int) -> None:
        """How many of a list's objects the caller may see."""

    def signed(self, serial_number: int) -> None:
        """The serial number of the certificate just signed."""


#: The span every method returns when tracing is off (or outside a request).
NO_SPAN: Final = NoSpan()


class _Span(NoSpan):
    """One live OpenTelemetry span, made current while the ``with`` block runs."""

    __slots__ = ("_span", "_token")

    def __init__(self, span: trace.Span) -> None:
        self._span = span
        self._token: Token[otel_context.Context] | None = None

    def __enter__(self) -> _Span:
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if kind is not None:
                # The type only: an exception's text may quote what it was given.
                self._span.set_attribute(ERROR_TYPE, kind.__qualname__)
                self._span.set_status(trace.StatusCode.ERROR)
        finally:
            if self._token is not None:
                otel_context.detach(self._token)
            self._span.end()

    def allowed(self, allowed: bool) -> None:
        self._span.set_attribute(AUTHZ_ALLOWED, allowed)

    def filtered(self, candidates: int, allowed: int) -> None:
        self._span.set_attribute(AUTHZ_CANDIDATES, candidates)
        self._span.set_attribute(AUTHZ_ALLOWED_COUNT, allowed)

    def signed(self, serial_number: int) -> None:
        self._span.set_attribute(CERT_SERIAL, f"{serial_number:x}")


class _RequestSpan(_Span):
    """The SERVER span of one HTTP request."""

    __slots__ = ("_code", "_method", "_routed")

    def __init__(self, span: trace.Span, method: str) -> None:
        super().__init__(span)
        self._method = method
        self._routed = False
        self._code: str | None = None

    @property
    def routed(self) -> bool:
        return self._routed

    def rpc(self, service: str, method: str, route: str) -> None:
        self._routed = True
        self._span.update_name(f"{service}/{method}")
        self._span.set_attribute(HTTP_ROUTE, route)
        self._span.set_attribute(RPC_SYSTEM, "secinfra")
        self._span.set_attribute(RPC_SERVICE, service)
        self._span.set_attribute(RPC_METHOD, method)

    def route(self, route: str) -> None:
        self._routed = True
        self._span.update_name(f"{self._method} {route}")
        self._span.set_attribute(HTTP_ROUTE, route)

    def caller(self, spiffe_id: str) -> None:
        self._span.set_attribute(CALLER, spiffe_id)

    def failed(self, code: str) -> None:
        self._code = code

    def finished(self, status: int, request_id: str | None) -> None:
        span = self._span
        span.set_attribute(HTTP_STATUS, status)
        if request_id is not None:
            span.set_attribute(REQUEST_ID, request_id)
        if status >= 400 or self._code is not None:
            code = self._code or str(status)
            span.set_attribute(ERROR_TYPE, code)
            span.set_attribute(ERROR_CODE, code)
            if status >= 500:
                # HTTP semantic conventions: on a SERVER span only 5xx is the
                # server's error; a refused request (4xx) leaves the status unset.
                span.set_status(trace.StatusCode.ERROR, code)


class Tracing:
    """The server's tracer, or none: the span factories every layer calls.

    ``Tracing()`` traces nothing; ``Tracing(provider)`` traces through the
    caller's ``TracerProvider``; :meth:`from_environment` through one the
    ``OTEL_*`` variables configure, which :meth:`shutdown` flushes.
    """

    def __init__(self, provider: trace.TracerProvider | None = None) -> None:
        self._tracer: trace.Tracer | None = None
        self._server: dict[str, str | int] = {}
        self._owned: TracerProvider | None = None
        if provider is not None:
            if not OTEL_AVAILABLE:
                raise TracingUnavailable(
                    "secinfra: tracing: OpenTelemetry is not installed;"
                    " install secinfra-server[otel]"
                )
            self._tracer = provider.get_tracer(SCOPE, __version__)

    @classmethod
    def from_environment(cls) -> Tracing:
        """Tracing through :func:`provider_from_environment`'s provider.

        Raises:
            TracingUnavailable: OpenTelemetry or a named exporter is not installed.
        """
        provider = provider_from_environment()
        tracing = cls(provider)
        tracing._owned = provider
        return tracing

    def shutdown(self) -> None:
        """Export what is queued and stop, if this made its provider (blocks:
        call it off the event loop); a caller's provider is left alone."""
        if self._owned is not None:
            self._owned.shutdown()
            self._owned = None

    @property
    def enabled(self) -> bool:
        """Whether spans are made at all."""
        return self._tracer is not None

    def listening(self, address: str, port: int) -> None:
        """Where the server listens (``server.address``/``server.port`` of every
        request span); known once the socket is bound."""
        self._server = {SERVER_ADDRESS: address, SERVER_PORT: port}

    def request(self, method: str, headers: Mapping[str, str], client: str | None) -> NoSpan:
        """The SERVER span of one request, a child of the caller's span when
        ``headers`` carry ``traceparent`` (and ``tracestate``): the propagators
        of OTEL_PROPAGATORS, W3C trace context by default."""
        tracer = self._tracer
        if tracer is None:
            return NO_SPAN
        attributes: dict[str, str | int] = {
            HTTP_METHOD: method,
            URL_SCHEME: "https",
            **self._server,
        }
        if client is not None:
            attributes[CLIENT_ADDRESS] = client
        span = tracer.start_span(
            method,  # renamed once routed
            context=propagate.extract(headers),
            kind=trace.SpanKind.SERVER,
            attributes=attributes,
        )
        return _RequestSpan(span, method)

    def authz_check(self, object_type: str, relation: str) -> NoSpan:
        """One access decision; call ``allowed()`` with its outcome."""
        tracer = self._child_tracer()
        if tracer is None:
            return NO_SPAN
        return _Span(
            tracer.start_span(
                "authz.check",
                attributes={AUTHZ_OBJECT_TYPE: object_type, AUTHZ_RELATION: relation},
            )
        )

    def authz_filter(self, object_type: str, relation: str) -> NoSpan:
        """One decision over a list of objects; call ``filtered()`` with the counts."""
        tracer = self._child_tracer()
        if tracer is None:
            return NO_SPAN
        return _Span(
            tracer.start_span(
                "authz.filter",
                attributes={AUTHZ_OBJECT_TYPE: object_type, AUTHZ_RELATION: relation},
            )
        )

    def transaction(self, system: str, operation: str, fn: Callable[..., Any]) -> NoSpan:
        """One storage transaction: ``system`` is ``sqlite`` or ``postgresql``,
        ``operation`` ``read`` or ``write``, ``fn`` the function run in it
        (its qualified name says which query it was)."""
        tracer = self._child_tracer()
        if tracer is None:
            return NO_SPAN
        return _Span(
            tracer.start_span(
                f"storage.{operation}",
                kind=trace.SpanKind.CLIENT,
                attributes={
                    DB_SYSTEM: system,
                    DB_OPERATION: operation,
                    CODE_FUNCTION: getattr(fn, "__qualname__", type(fn).__qualname__),
                },
            )
        )

    def signing(self, ca_id: str, kind: str, spiffe_id: str) -> NoSpan:
        """One certificate signature by the CA ``ca_id``; call ``signed()``
        with the serial."""
        tracer = self._child_tracer()
        if tracer is None:
            return NO_SPAN
        return _Span(
            tracer.start_span(
                "ca.sign",
                attributes={CA_ID: ca_id, CERT_KIND: kind, CERT_SPIFFE_ID: spiffe_id},
            )
        )

    def _child_tracer(self) -> trace.Tracer | None:
        """The tracer, inside a recorded span only (never a trace of its own)."""
        tracer = self._tracer
        if tracer is None or not trace.get_current_span().is_recording():
            return None
        return tracer


#: Tracing switched off (the server's default, and every test's).
NO_TRACING: Final = Tracing()


def provider_from_environment() -> TracerProvider:
    """A ``TracerProvider`` configured by the standard OpenTelemetry variables
    of this process's environment (the SDK and exporters read them too).

    ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` name the service
    (default ``secinfra-server``); ``OTEL_TRACES_SAMPLER`` and its argument
    choose the sampler (the SDK reads them); ``OTEL_TRACES_EXPORTER`` lists
    the exporters (default ``otlp``; ``console``, ``none``, or any installed
    exporter's entry point name), each behind a batch processor
    (``OTEL_BSP_*``). ``otlp`` speaks ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL``
    or ``OTEL_EXPORTER_OTLP_PROTOCOL`` (default ``http/protobuf``) to
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` (the exporter reads its own variables).

    Raises:
        TracingUnavailable: OpenTelemetry or a named exporter is not installed.
    """
    if not OTEL_AVAILABLE:
        raise TracingUnavailable(
            "secinfra: tracing: the tracing setting is on, but OpenTelemetry is not"
            " installed; install secinfra-server[otel] or turn tracing off"
        )
    resource = Resource.create({"service.version": __version__})
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": DEFAULT_SERVICE_NAME}))
    provider = TracerProvider(resource=resource)
    for exporter in exporters_from_environment(os.environ):
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def exporters_from_environment(environ: Mapping[str, str]) -> list[SpanExporter]:
    """The span exporters OTEL_TRACES_EXPORTER names (see
    :func:`provider_from_environment`)."""
    names = [
        name.strip()
        for name in environ.get("OTEL_TRACES_EXPORTER", DEFAULT_EXPORTER).split(",")
        if name.strip()
    ]
    if "none" in names:
        return []
    exporters: list[SpanExporter] = []
    for name in names:
        package = "the package that provides it"
        entry_name = name
        if name == "otlp":
            protocol = environ.get(
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ).strip()
            if protocol not in OTLP_EXPORTERS:
                raise TracingUnavailable(
                    f"secinfra: tracing: OTLP protocol {protocol!r} is not supported;"
                    f" use one of {', '.join(sorted(OTLP_EXPORTERS))}"
                )
            entry_name, package = OTLP_EXPORTERS[protocol]
        found = importlib.metadata.entry_points(group=EXPORTER_GROUP, name=entry_name)
        if not found:
            raise TracingUnavailable(
                f"secinfra: tracing: OTEL_TRACES_EXPORTER names {name!r}, but no installed"
                f" package provides it (install {package})"
            )
        exporters.append(next(iter(found)).load()())
    return exporters
