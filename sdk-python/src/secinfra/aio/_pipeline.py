"""The asyncio call pipeline: `CallRules`' steps performed on an event loop.

Every rule of a call (encoding, cache, single-flight, attempts, retries,
budget, endpoints, observers, errors) is ``secinfra._runtime._call.CallRules``',
the same code the sync client runs; this driver only performs the steps:
an attempt over aiohttp, a backoff with ``asyncio.sleep``, the identity
source's coroutines, and the asyncio single-flight.

Cancellation: a cancelled call has its `CancelledError` thrown into the
steps at the point it waits, so observers are told the call finished (with
an error) and nothing is half done: an attempt in flight is dropped with its
connection, a cache entry is written only from a whole answer, and a fetch
other callers share goes on for them.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from .._rpc import CallOptions, MethodDescriptor, RequestMessage, ResponseMessage
from .._runtime._call import CallRules
from .._runtime._clock import SystemClock
from .._runtime._steps import (
    AwaitIdentity,
    RefreshBundle,
    SendAttempt,
    Sleep,
    Step,
    run_steps_async,
)
from ._single_flight import AsyncSingleFlight
from ._source import AsyncIdentitySource
from ._transport import AsyncHttpTransport

__all__ = ["AsyncCallPipeline"]

R = TypeVar("R", bound=ResponseMessage)
T = TypeVar("T")


class AsyncCallPipeline(CallRules[AsyncHttpTransport, AsyncIdentitySource]):
    """The runtime behind every generated async client (an ``AsyncInvoker``)."""

    def _new_flights(self) -> AsyncSingleFlight:
        return AsyncSingleFlight()

    async def close(self) -> None:
        """Drop every cache entry and close every pooled connection (spec 7.11.3)."""
        self._cache.clear()
        await self._transport.close()

    async def invoke(
        self,
        method: MethodDescriptor,
        request: RequestMessage,
        response_type: type[R],
        options: CallOptions | None,
    ) -> R:
        """Make one RPC call (``secinfra._runtime._call``'s rules)."""
        key = None
        if self._notifier is None:
            key = self._cache_key(method, request, options)
            entry = self._fresh_entry(method, key, options)
            if entry is not None:
                hit: R = entry.value
                return hit
        steps = self._steps(method, request, response_type, options, key)
        return await run_steps_async(steps, self._perform)

    async def _perform(self, step: Step) -> Any:
        if isinstance(step, SendAttempt):
            return await self._transport.send(
                step.http_method,
                step.target,
                step.headers,
                step.body,
                mtls=step.mtls,
                timeout=step.timeout,
                endpoint=step.endpoint,
                identity=step.identity,
            )
        if isinstance(step, Sleep):
            if isinstance(self._clock, SystemClock):
                await asyncio.sleep(step.seconds)
            else:
                self._clock.sleep(step.seconds)  # a test clock: it only moves
            return None
        if isinstance(step, AwaitIdentity):
            return await self._source.ensure_identity(timeout=step.timeout)
        if isinstance(step, RefreshBundle):
            return await self._source.refresh_bundle()
        fetch = step.fetch
        return await self._flights.do(
            step.key, lambda: run_steps_async(fetch(), self._perform), timeout=step.timeout
        )
