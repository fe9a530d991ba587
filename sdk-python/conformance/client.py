"""The Python SDK's conformance client: the adapter protocol over stdin/stdout.

Speaks docs/conformance/adapter-protocol.md (protocol 1) for the conformance
runner (``python -m conformance.runner --sdk python``). It uses only the SDK's
public API (``secinfra``, ``secinfra.errors``, ``secinfra.models``), so a
behaviour it shows is a behaviour users get.

stdout carries protocol lines only; anything else (logs, warnings) goes to
stderr, which the runner keeps with the case's log.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import threading
import time
from typing import Any, Final

import secinfra
import secinfra.models
from secinfra import errors

PROTOCOL: Final = 1
SDK: Final = "python"
OPS: Final = ("configure", "call", "concurrent", "identity", "events", "shutdown")
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
CLIENT_OPTIONS: Final = {
    "max_attempts",
    "deadline_seconds",
    "attempt_timeout_seconds",
    "cache_size",
}
CALL_OPTIONS: Final = {
    "max_attempts",
    "deadline_seconds",
    "attempt_timeout_seconds",
    "idempotency_key",
    "use_cache",
}


class Unsupported(Exception):
    """An op, option or RPC this client cannot drive."""


class AdapterError(Exception):
    """A malformed request from the runner."""


def snake(name: str) -> str:
    """``GetSecret`` -> ``get_secret``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class Adapter:
    """One SDK client and the rotation events it reported."""

    def __init__(self) -> None:
        self.client: secinfra.Client | None = None
        self.events: list[dict[str, Any]] = []
        self._events_lock = threading.Lock()

    # -- ops -----------------------------------------------------------------------
    def configure(self, msg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
        if self.client is not None:
            raise AdapterError("configure was already called")
        options = dict(msg.get("options") or {})
        unknown = set(options) - CLIENT_OPTIONS
        if unknown:
            raise Unsupported(f"client options {sorted(unknown)}")
        policy = secinfra.RetryPolicy(
            **{
                k: v
                for k, v in {
                    "max_attempts": options.get("max_attempts"),
                    "deadline": options.get("deadline_seconds"),
                    "attempt_timeout": options.get("attempt_timeout_seconds"),
                }.items()
                if v is not None
            }
        )
        extra: dict[str, Any] = {}
        if options.get("cache_size") is not None:
            extra["cache_size"] = int(options["cache_size"])
        if bool(msg.get("join_token")) == bool(msg.get("jwt")):
            raise AdapterError("configure takes exactly one of join_token and jwt")
        if msg.get("jwt"):
            token = str(msg["jwt"])
            # A provider, not the string: a reusable attestation (spec 8.7.3), so the
            # client re-enrols by itself after an expiry (9.7.1).
            extra["jwt"] = lambda: token
        else:
            extra["join_token"] = msg["join_token"]
        self.client = secinfra.Client.enrol(
            msg["server_url"],
            bundle_pem=msg["bundle_pem"],
            retry_policy=policy,
            **extra,
        )
        self.client.on_rotation(self._record)
        return self.identity(msg)

    def _record(self, event: secinfra.RotationEvent) -> None:
        identity = event.identity
        with self._events_lock:
            self.events.append(
                {
                    "kind": str(event.kind),
                    "serial": identity.serial if identity else None,
                    "spiffe_id": identity.spiffe_id if identity else None,
                    "bundle_sequence": event.bundle.sequence,
                    "error": str(event.error) if event.error else None,
                    "at": time.time(),
                }
            )

    def identity(self, _msg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
        client = self._client()
        current = client.source.identity()
        bundle = client.source.bundle()
        result: dict[str, Any] = {"bundle_sequence": bundle.sequence}
        if current is not None:
            result.update(
                spiffe_id=current.spiffe_id,
                serial=current.serial,
                not_after=current.not_after.isoformat(),
            )
        return result, None

    def events_op(self, _msg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
        with self._events_lock:
            return {"events": list(self.events)}, None

    def call(self, msg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
        method, kwargs = self._prepare(msg)
        with secinfra.capture() as captured:
            value = method(**kwargs)
        meta = _meta(captured.last) if captured.calls else None
        return value.to_json(), meta

    def concurrent(self, msg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
        count = int(msg.get("count", 0))
        if not 1 <= count <= 256:
            raise AdapterError("count must be from 1 to 256")
        method, kwargs = self._prepare(msg)
        outcomes: list[dict[str, Any]] = [{} for _ in range(count)]
        barrier = threading.Barrier(count)

        def one(index: int) -> None:
            barrier.wait()
            outcomes[index] = run_call(lambda: _captured_call(method, kwargs))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return {"results": outcomes}, None

    # -- helpers -------------------------------------------------------------------
    def _client(self) -> secinfra.Client:
        if self.client is None:
            raise AdapterError("configure first")
        return self.client

    def _prepare(self, msg: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        client = self._client()
        rpc = str(msg.get("rpc", ""))
        method = None
        for service in (client.secrets, client.authz, client.identity):
            method = getattr(service, snake(rpc), None)
            if method is not None:
                break
        request_type = getattr(secinfra.models, f"{rpc}Request", None)
        if method is None or request_type is None:
            raise Unsupported(f"rpc {rpc!r}")
        request = request_type.from_json(msg.get("request") or {}, strict=True)
        kwargs = {f.name: getattr(request, f.name) for f in dataclasses.fields(request)}
        kwargs["call_options"] = _call_options(msg.get("call_options") or {})
        return method, kwargs


def _call_options(options: dict[str, Any]) -> secinfra.CallOptions | None:
    unknown = set(options) - CALL_OPTIONS
    if unknown:
        raise Unsupported(f"call options {sorted(unknown)}")
    if not options:
        return None
    return secinfra.CallOptions(
        deadline=options.get("deadline_seconds"),
        attempt_timeout=options.get("attempt_timeout_seconds"),
        max_attempts=options.get("max_attempts"),
        idempotency_key=options.get("idempotency_key"),
        use_cache=options.get("use_cache"),
    )


def _captured_call(method: Any, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
    with secinfra.capture() as captured:
        value = method(**kwargs)
    return value.to_json(), (_meta(captured.last) if captured.calls else None)


def _meta(meta: secinfra.ResponseMeta) -> dict[str, Any]:
    return {
        "from_cache": meta.from_cache,
        "stale": meta.stale,
        "attempts": meta.attempts,
        "request_id": meta.request_id,
        "status": meta.status,
    }


def error_json(exc: errors.SecinfraError) -> dict[str, Any]:
    """The protocol's error object for an SDK error."""
    family = next((f.__name__ for f in FAMILIES if isinstance(exc, f)), "InternalError")
    return {
        "type": family,
        "code": exc.code,
        "message": str(exc),
        "status": exc.status,
        "request_id": exc.request_id,
        "retryable": exc.retryable,
        "retry_after": exc.retry_after,
        "attempts": exc.attempts,
    }


def run_call(fn: Any) -> dict[str, Any]:
    """Run one SDK call; the protocol's outcome object (without the id)."""
    try:
        result, meta = fn()
    except errors.SecinfraError as exc:
        return {"ok": False, "error": error_json(exc)}
    return {"ok": True, "result": result, "meta": meta}


def main() -> int:
    adapter = Adapter()
    out = sys.stdout
    lock = threading.Lock()

    def send(message: dict[str, Any]) -> None:
        with lock:
            out.write(json.dumps(message, separators=(",", ":")) + "\n")
            out.flush()

    send(
        {
            "hello": {
                "protocol": PROTOCOL,
                "sdk": SDK,
                "sdk_version": secinfra.__version__,
                "ops": list(OPS),
            }
        }
    )
    handlers = {
        "configure": adapter.configure,
        "call": adapter.call,
        "concurrent": adapter.concurrent,
        "identity": adapter.identity,
        "events": adapter.events_op,
    }
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            msg = json.loads(line)
            if not isinstance(msg, dict):
                raise ValueError("a request is a JSON object")
        except ValueError as exc:
            send({"id": None, "ok": False, "error": {"type": "AdapterError", "message": str(exc)}})
            continue
        ident = msg.get("id")
        op = msg.get("op")
        if op == "shutdown":
            send({"id": ident, "ok": True, "result": {}})
            break
        handler = handlers.get(str(op))
        if handler is None:
            send(_adapter_error(ident, "Unsupported", f"op {op!r}"))
            continue
        try:
            answer = run_call(lambda h=handler, m=msg: h(m))
        except Unsupported as exc:
            send(_adapter_error(ident, "Unsupported", str(exc)))
            continue
        except Exception as exc:  # report, never die: the runner reads the reason
            send(_adapter_error(ident, "AdapterError", f"{type(exc).__name__}: {exc}"))
            continue
        send({"id": ident, **answer})
    if adapter.client is not None:
        adapter.client.close()
    return 0


def _adapter_error(ident: Any, kind: str, message: str) -> dict[str, Any]:
    return {"id": ident, "ok": False, "error": {"type": kind, "message": message}}


if __name__ == "__main__":
    sys.exit(main())
