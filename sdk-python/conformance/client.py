"""The Python SDK's conformance client: the adapter protocol over stdin/stdout.

Speaks the adapter protocol (protocol 1) for the conformance runner
(``python -m conformance.runner --sdk python``): its messages are the types
codegen generates into ``_gen/`` from
conformance/protocol/secinfra/conformance/v1/adapter.proto (explained in
docs/conformance/adapter-protocol.md). It uses only the SDK's public API
(``secinfra``, ``secinfra.errors``, ``secinfra.models``), so a behaviour it
shows is a behaviour users get.

stdout carries protocol lines only; anything else (logs, warnings) goes to
stderr, which the runner keeps with the case's log.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

import mtls_ops  # beside this file
import observe_ops  # beside this file
from _gen import adapter as protocol  # beside this file; generated from the protocol's proto

import secinfra
import secinfra.models
from secinfra import errors

PROTOCOL: Final = 1
SDK: Final = "python"
OPS: Final = (
    "configure",
    "call",
    "concurrent",
    "identity",
    "events",
    "observations",
    "mtls_serve",
    "mtls_stop",
    "mtls_call",
    "shutdown",
)
#: Everything the protocol knows: the Python SDK has every option and op.
FEATURES: Final = tuple(f for f in protocol.Feature if f is not protocol.Feature.UNSPECIFIED)
#: Error family names of the protocol, most specific first (TransportError's
#: subclass DeadlineExceeded before it, and so on).
FAMILIES: Final = (
    errors.InvalidArgument,
    errors.Unauthenticated,
    errors.PermissionDenied,
    errors.NotFound,
    errors.Conflict,
    errors.FailedPrecondition,
    errors.RateLimited,
    errors.Unavailable,
    errors.InternalError,
    errors.DeadlineExceeded,
    errors.TransportError,
    errors.IdentityExpired,
)


class Unsupported(Exception):
    """An op, option or RPC this client cannot drive."""


class AdapterError(Exception):
    """A malformed request from the runner."""


class InvalidSetting(Exception):
    """The SDK refused a setting when the client was created (spec 1.4.4)."""


@contextlib.contextmanager
def settings_checked() -> Iterator[None]:
    """Inside: making the client. The SDK's ValueError or TypeError there is its
    refusal of a setting (spec 1.4.4), answered as ``InvalidSetting``."""
    try:
        yield
    except (ValueError, TypeError) as exc:
        raise InvalidSetting(str(exc)) from exc


def snake(name: str) -> str:
    """``GetSecret`` -> ``get_secret``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


#: What an op answers: its result message, and the call meta for a call.
Answer = tuple[Any, protocol.CallMeta | None]


class Adapter:
    """One SDK client and the rotation events it reported."""

    def __init__(self) -> None:
        self.client: secinfra.Client | None = None
        self.events: list[protocol.RotationEvent] = []
        self._events_lock = threading.Lock()
        self.mtls_server: mtls_ops.MtlsServer | None = None
        self.recording: observe_ops.Recording | None = None

    # -- ops -----------------------------------------------------------------------
    def configure(self, msg: protocol.ConfigureRequest) -> tuple[protocol.IdentitySnapshot, None]:
        url, settings = self.settings(msg)
        with settings_checked():
            self.client = secinfra.Client.enrol(url, **settings)
        self.client.on_rotation(self._record)
        return self.identity()

    def settings(self, msg: protocol.ConfigureRequest) -> tuple[str | list[str], dict[str, Any]]:
        """The URL(s) and the ``enrol`` keywords ``configure`` asks for."""
        if self.client is not None:
            raise AdapterError("configure was already called")
        options = msg.options or protocol.ClientDefaults()
        defaults: dict[str, Any] = {
            k: v
            for k, v in {
                "max_attempts": options.max_attempts,
                "deadline": options.deadline_seconds,
                "attempt_timeout": options.attempt_timeout_seconds,
            }.items()
            if v is not None
        }
        with settings_checked():
            policy = secinfra.RetryPolicy(**defaults)
        extra: dict[str, Any] = {}
        if options.cache_size is not None:
            extra["cache_size"] = options.cache_size
        if options.endpoint_order is not None:
            extra["endpoint_order"] = options.endpoint_order
        if options.endpoint_cooldown_seconds is not None:
            extra["endpoint_cooldown"] = options.endpoint_cooldown_seconds
        if bool(msg.join_token) == bool(msg.jwt):
            raise AdapterError("configure takes exactly one of join_token and jwt")
        if msg.jwt:
            token = msg.jwt
            # A provider, not the string: a reusable attestation (spec 8.7.3), so the
            # client re-enrols by itself after an expiry (9.7.1).
            extra["jwt"] = lambda: token
        else:
            extra["join_token"] = msg.join_token
        if msg.observer is not None:
            # Registered before enrolment, so the client's own calls are recorded (14.2.4).
            self.recording = observe_ops.Recording(msg.observer)
            observers: list[secinfra.Observer] = [self.recording]
            if msg.observer.failing_first:
                observers.insert(0, observe_ops.Failing())
            extra["observers"] = observers
        # Several endpoints (spec 12.1) when the runner gives them; else the one URL.
        url: str | list[str] = list(msg.endpoints) if msg.endpoints else msg.server_url
        return url, {"bundle_pem": msg.bundle_pem, "retry_policy": policy, **extra}

    def _record(self, event: secinfra.RotationEvent) -> None:
        identity = event.identity
        with self._events_lock:
            self.events.append(
                protocol.RotationEvent(
                    kind=str(event.kind),
                    serial=identity.serial if identity else None,
                    spiffe_id=identity.spiffe_id if identity else None,
                    bundle_sequence=event.bundle.sequence,
                    error=str(event.error) if event.error else None,
                    at=time.time(),
                )
            )

    def identity(self) -> tuple[protocol.IdentitySnapshot, None]:
        client = self._client()
        current = client.source.identity()
        bundle = client.source.bundle()
        if current is None:
            return protocol.IdentitySnapshot(bundle_sequence=bundle.sequence), None
        snapshot = protocol.IdentitySnapshot(
            spiffe_id=current.spiffe_id,
            serial=current.serial,
            not_after=current.not_after.isoformat(),
            bundle_sequence=bundle.sequence,
        )
        return snapshot, None

    def events_op(self) -> tuple[protocol.EventList, None]:
        with self._events_lock:
            return protocol.EventList(events=tuple(self.events)), None

    def observations(self) -> tuple[protocol.ObservationList, None]:
        self._client()
        if self.recording is None:
            raise AdapterError("observations: configure had no observer")
        return protocol.ObservationList(observations=self.recording.take()), None

    def call(self, msg: protocol.CallRequest) -> Answer:
        method, kwargs = self._prepare(msg.rpc, msg.request, msg.call_options_)
        return _captured_call(method, kwargs)

    def concurrent(self, msg: protocol.ConcurrentRequest) -> tuple[protocol.ConcurrentResult, None]:
        count = msg.count
        if not 1 <= count <= 256:
            raise AdapterError("count must be from 1 to 256")
        method, kwargs = self._prepare(msg.rpc, msg.request, msg.call_options_)
        outcomes: list[protocol.CallOutcome] = [protocol.CallOutcome() for _ in range(count)]
        barrier = threading.Barrier(count)

        def one(index: int) -> None:
            barrier.wait()
            ok, result, meta, error = run_call(lambda: _captured_call(method, kwargs))
            outcomes[index] = protocol.CallOutcome(ok=ok, result=result, meta=meta, error=error)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return protocol.ConcurrentResult(results=tuple(outcomes)), None

    def mtls_serve(self, msg: protocol.MtlsServeRequest) -> protocol.MtlsServeAnswer:
        if self.mtls_server is not None:
            raise AdapterError("mtls_serve: already serving (mtls_stop first)")
        allowed = mtls_ops.authorizer(msg.authorizer)
        self.mtls_server = mtls_ops.MtlsServer(self._client().source, allowed)
        serving = protocol.MtlsServing(port=self.mtls_server.port)
        return protocol.MtlsServeAnswer(id=msg.id, ok=True, result=serving)

    def mtls_stop(self, ident: int) -> protocol.MtlsStopAnswer:
        if self.mtls_server is not None:
            self.mtls_server.stop()
            self.mtls_server = None
        return protocol.MtlsStopAnswer(id=ident, ok=True, result=protocol.MtlsStopped())

    def mtls_call(self, msg: protocol.MtlsCallRequest) -> protocol.MtlsCallAnswer:
        result, error = mtls_ops.call(self._client().source, msg)
        return protocol.MtlsCallAnswer(id=msg.id, ok=error is None, result=result, error=error)

    def close(self) -> None:
        """Stop what the adapter started (at shutdown or end of input)."""
        self.mtls_stop(0)
        if self.client is not None:
            self.client.close()

    # -- helpers -------------------------------------------------------------------
    def _client(self) -> Any:
        if self.client is None:
            raise AdapterError("configure first")
        return self.client

    def _prepare(
        self, rpc: str, request_json: dict[str, Any] | None, options: protocol.CallOverrides | None
    ) -> tuple[Any, dict[str, Any]]:
        client = self._client()
        method = None
        for service in (client.secrets, client.authz, client.identity):
            method = getattr(service, snake(rpc), None)
            if method is not None:
                break
        request_type = getattr(secinfra.models, f"{rpc}Request", None)
        if method is None or request_type is None:
            raise Unsupported(f"rpc {rpc!r}")
        request = request_type.from_json(request_json or {}, strict=True)
        kwargs = {f.name: getattr(request, f.name) for f in dataclasses.fields(request)}
        kwargs["call_options"] = _call_options(options)
        return method, kwargs


def _call_options(options: protocol.CallOverrides | None) -> secinfra.CallOptions | None:
    if options is None or options == protocol.CallOverrides():
        return None
    return secinfra.CallOptions(
        deadline=options.deadline_seconds,
        attempt_timeout=options.attempt_timeout_seconds,
        max_attempts=options.max_attempts,
        idempotency_key=options.idempotency_key,
        use_cache=options.use_cache,
    )


def _captured_call(method: Any, kwargs: dict[str, Any]) -> Answer:
    with secinfra.capture() as captured:
        value = method(**kwargs)
    return value.to_json(), (meta_of(captured.last) if captured.calls else None)


def meta_of(meta: secinfra.ResponseMeta) -> protocol.CallMeta:
    return protocol.CallMeta(
        from_cache=meta.from_cache,
        stale=meta.stale,
        attempts=meta.attempts,
        request_id=meta.request_id,
        status=meta.status,
        endpoint=meta.endpoint,
    )


def failure(exc: errors.SecinfraError) -> protocol.Failure:
    """The protocol's error object for an SDK error."""
    family = next((f.__name__ for f in FAMILIES if isinstance(exc, f)), "InternalError")
    return protocol.Failure(
        type=family,
        code=exc.code,
        message=str(exc),
        status=exc.status,
        request_id=exc.request_id,
        retryable=exc.retryable,
        retry_after=exc.retry_after,
        attempts=exc.attempts,
        endpoint=exc.endpoint,
    )


def run_call(fn: Callable[[], Answer]) -> tuple[bool, Any, protocol.CallMeta | None, Any]:
    """Run one op; (ok, result, meta, error), an SDK error caught as the error."""
    try:
        result, meta = fn()
    except errors.SecinfraError as exc:
        return False, None, None, failure(exc)
    except InvalidSetting as exc:
        return False, None, None, protocol.Failure(type="InvalidSetting", message=str(exc))
    return True, result, meta, None


def answer(op: str, ident: int, fn: Callable[[], Answer]) -> Any:
    """The op's answer message for the outcome of ``fn``."""
    ok, result, meta, error = run_call(fn)
    if op == "call":
        return protocol.CallAnswer(id=ident, ok=ok, result=result, meta=meta, error=error)
    if op == "concurrent":
        return protocol.ConcurrentAnswer(id=ident, ok=ok, result=result, error=error)
    if op == "events":
        return protocol.EventsAnswer(id=ident, ok=ok, result=result, error=error)
    if op == "observations":
        return protocol.ObservationsAnswer(id=ident, ok=ok, result=result, error=error)
    return protocol.IdentityAnswer(id=ident, ok=ok, result=result, error=error)


def main(adapter: Adapter | None = None, sdk: str = SDK) -> int:
    """Serve the protocol on stdin/stdout with ``adapter`` (default: the sync
    client's) for the matrix column ``sdk``."""
    adapter = adapter if adapter is not None else Adapter()
    out = sys.stdout
    lock = threading.Lock()

    def send(message: Any) -> None:
        with lock:
            out.write(json.dumps(message.to_json(), separators=(",", ":")) + "\n")
            out.flush()

    send(
        protocol.HelloLine(
            hello=protocol.Hello(
                protocol=PROTOCOL,
                sdk=sdk,
                sdk_version=secinfra.__version__,
                ops=OPS,
                features=FEATURES,
            )
        )
    )
    handlers: dict[str, Callable[[dict[str, Any]], Answer]] = {
        "configure": lambda m: adapter.configure(
            protocol.ConfigureRequest.from_json(m, strict=True)
        ),
        "call": lambda m: adapter.call(protocol.CallRequest.from_json(m, strict=True)),
        "concurrent": lambda m: adapter.concurrent(
            protocol.ConcurrentRequest.from_json(m, strict=True)
        ),
        "identity": lambda m: adapter.identity(),
        "events": lambda m: adapter.events_op(),
        "observations": lambda m: adapter.observations(),
    }
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            msg = json.loads(line)
            header = protocol.RequestHeader.from_json(msg)
        except ValueError as exc:
            send(_adapter_error(None, "AdapterError", str(exc)))
            continue
        ident, op = header.id, header.op
        if op == "shutdown":
            send(protocol.ShutdownAnswer(id=ident, ok=True, result=protocol.ShutdownResult()))
            break
        if op in MTLS_OPS:
            send(mtls_answer(adapter, op, ident, msg))
            continue
        handler = handlers.get(op)
        if handler is None:
            send(_adapter_error(ident, "Unsupported", f"op {op!r}"))
            continue
        try:
            if op in ("identity", "events", "observations"):
                protocol.BareRequest.from_json(msg, strict=True)
            reply = answer(op, ident, functools.partial(handler, msg))
        except Unsupported as exc:
            send(_adapter_error(ident, "Unsupported", str(exc)))
            continue
        except Exception as exc:  # report, never die: the runner reads the reason
            send(_adapter_error(ident, "AdapterError", f"{type(exc).__name__}: {exc}"))
            continue
        send(reply)
    adapter.close()
    return 0


MTLS_OPS: Final = ("mtls_serve", "mtls_stop", "mtls_call")


def mtls_answer(adapter: Adapter, op: str, ident: int, msg: dict[str, Any]) -> Any:
    """The answer to an mtls op; its failures are in the answer, not SDK errors."""
    try:
        if op == "mtls_serve":
            return adapter.mtls_serve(protocol.MtlsServeRequest.from_json(msg, strict=True))
        if op == "mtls_stop":
            protocol.BareRequest.from_json(msg, strict=True)
            return adapter.mtls_stop(ident)
        return adapter.mtls_call(protocol.MtlsCallRequest.from_json(msg, strict=True))
    except errors.SecinfraError as exc:  # no identity to present (expired, say)
        return protocol.ErrorAnswer(id=ident, ok=False, error=failure(exc))
    except Exception as exc:  # a malformed request, or a bug: the runner reads the reason
        return _adapter_error(ident, "AdapterError", f"{type(exc).__name__}: {exc}")


def _adapter_error(ident: int | None, kind: str, message: str) -> protocol.ErrorAnswer:
    return protocol.ErrorAnswer(
        id=ident, ok=False, error=protocol.Failure(type=kind, message=message)
    )


if __name__ == "__main__":
    sys.exit(main())
