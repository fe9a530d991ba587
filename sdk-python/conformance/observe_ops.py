"""The observers the conformance client registers (feature observer, spec 14).

`Recording` keeps every notification as a protocol ``Observation`` until the
``observations`` op takes them; at each ``attempt_started`` it returns the
configured trace context, ``{attempt}`` replaced by the attempt's number in 16
lower-case hex digits. `Failing` raises at every notification: registered
before the recording one, it shows that a failing observer changes nothing
(14.1.3).
"""

from __future__ import annotations

import threading

from _gen import adapter as protocol  # beside this file; generated from the protocol's proto

import secinfra


class Recording(secinfra.Observer):
    """Records what it is told, oldest first. Thread-safe (renewals run on their own thread)."""

    def __init__(self, setup: protocol.ObserverSetup) -> None:
        self._setup = setup
        self._seen: list[protocol.Observation] = []
        self._lock = threading.Lock()

    def take(self) -> tuple[protocol.Observation, ...]:
        """Every observation since the last take, oldest first; forgets them."""
        with self._lock:
            taken, self._seen = tuple(self._seen), []
        return taken

    def _keep(self, observation: protocol.Observation) -> None:
        with self._lock:
            self._seen.append(observation)

    def call_started(self, event: secinfra.CallStarted) -> None:
        self._keep(
            protocol.Observation(kind="call_started", rpc=event.rpc, idempotency=event.idempotency)
        )

    def cache(self, event: secinfra.CacheLookup) -> None:
        self._keep(protocol.Observation(kind="cache", rpc=event.rpc, cache=str(event.result)))

    def attempt_started(self, event: secinfra.AttemptStarted) -> secinfra.TraceContext | None:
        self._keep(
            protocol.Observation(
                kind="attempt_started",
                rpc=event.rpc,
                attempt=event.attempt,
                endpoint=event.endpoint,
            )
        )
        if not self._setup.traceparent:
            return None
        traceparent = self._setup.traceparent.replace("{attempt}", f"{event.attempt:016x}")
        return secinfra.TraceContext(traceparent, self._setup.tracestate)

    def attempt_finished(self, event: secinfra.AttemptFinished) -> None:
        self._keep(
            protocol.Observation(
                kind="attempt_finished",
                rpc=event.rpc,
                attempt=event.attempt,
                status=event.status,
                code=event.code,
            )
        )

    def call_finished(self, event: secinfra.CallFinished) -> None:
        meta = event.meta
        self._keep(
            protocol.Observation(
                kind="call_finished",
                rpc=event.rpc,
                ok=event.ok,
                code=event.code,
                meta=protocol.CallMeta(
                    from_cache=meta.from_cache,
                    stale=meta.stale,
                    attempts=meta.attempts,
                    request_id=meta.request_id,
                    status=meta.status,
                    endpoint=meta.endpoint,
                ),
            )
        )


class Failing(secinfra.Observer):
    """Raises at every notification."""

    def _fail(self, event: object) -> None:
        raise RuntimeError(f"conformance: the failing observer fails ({type(event).__name__})")

    def call_started(self, event: secinfra.CallStarted) -> None:
        self._fail(event)

    def cache(self, event: secinfra.CacheLookup) -> None:
        self._fail(event)

    def attempt_started(self, event: secinfra.AttemptStarted) -> secinfra.TraceContext | None:
        self._fail(event)
        return None

    def attempt_finished(self, event: secinfra.AttemptFinished) -> None:
        self._fail(event)

    def call_finished(self, event: secinfra.CallFinished) -> None:
        self._fail(event)
