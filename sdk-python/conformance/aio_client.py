"""The asyncio Python client's conformance client (column ``python-aio``).

The same adapter protocol as ``client.py`` (whose message handling it
reuses), driving ``secinfra.aio.Client`` instead: every SDK call is a
coroutine run on one event loop that lives in a thread of its own for the
whole session, as in an asyncio service; ``concurrent`` starts all its calls
on that loop at once (``asyncio.gather``). It uses only the SDK's public API
(``secinfra.aio``, ``secinfra``, ``secinfra.errors``, ``secinfra.models``).
The mtls ops use ``secinfra.mtls`` contexts over the async client's identity
source (``secinfra.aio.snapshot_source``), as an asyncio service would.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Coroutine
from typing import Any, Final, TypeVar

import client as sync_adapter  # beside this file
import mtls_ops  # beside this file
from _gen import adapter as protocol  # beside this file

import secinfra
import secinfra.aio

SDK: Final = "python-aio"

T = TypeVar("T")


class AioAdapter(sync_adapter.Adapter):
    """One ``secinfra.aio.Client`` and the rotation events it reported."""

    def __init__(self) -> None:
        super().__init__()
        self.aio: secinfra.aio.Client | None = None
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="secinfra-aio-loop", daemon=True
        )
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the adapter's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    # -- ops -----------------------------------------------------------------------
    def configure(self, msg: protocol.ConfigureRequest) -> tuple[protocol.IdentitySnapshot, None]:
        if self.aio is not None:
            raise sync_adapter.AdapterError("configure was already called")
        url, settings = self.settings(msg)
        with sync_adapter.settings_checked():
            self.aio = self.run(secinfra.aio.Client.enrol(url, **settings))
        self.aio.on_rotation(self._record)
        return self.identity()

    def call(self, msg: protocol.CallRequest) -> sync_adapter.Answer:
        method, kwargs = self._prepare(msg.rpc, msg.request, msg.call_options_)
        return self.run(_captured_call(method, kwargs))

    def concurrent(self, msg: protocol.ConcurrentRequest) -> tuple[protocol.ConcurrentResult, None]:
        count = msg.count
        if not 1 <= count <= 256:
            raise sync_adapter.AdapterError("count must be from 1 to 256")
        method, kwargs = self._prepare(msg.rpc, msg.request, msg.call_options_)

        async def one() -> protocol.CallOutcome:
            try:
                result, meta = await _captured_call(method, kwargs)
            except secinfra.errors.SecinfraError as exc:
                return protocol.CallOutcome(ok=False, error=sync_adapter.failure(exc))
            return protocol.CallOutcome(ok=True, result=result, meta=meta)

        async def all_at_once() -> tuple[protocol.CallOutcome, ...]:
            # Every call is started before any runs: the loop's barrier.
            return tuple(await asyncio.gather(*(one() for _ in range(count))))

        return protocol.ConcurrentResult(results=self.run(all_at_once())), None

    def mtls_serve(self, msg: protocol.MtlsServeRequest) -> protocol.MtlsServeAnswer:
        if self.mtls_server is not None:
            raise sync_adapter.AdapterError("mtls_serve: already serving (mtls_stop first)")
        allowed = mtls_ops.authorizer(msg.authorizer)
        source = secinfra.aio.snapshot_source(self._client().source)
        self.mtls_server = mtls_ops.MtlsServer(source, allowed)
        serving = protocol.MtlsServing(port=self.mtls_server.port)
        return protocol.MtlsServeAnswer(id=msg.id, ok=True, result=serving)

    def mtls_call(self, msg: protocol.MtlsCallRequest) -> protocol.MtlsCallAnswer:
        source = secinfra.aio.snapshot_source(self._client().source)
        result, error = mtls_ops.call(source, msg)
        return protocol.MtlsCallAnswer(id=msg.id, ok=error is None, result=result, error=error)

    def close(self) -> None:
        self.mtls_stop(0)
        if self.aio is not None:
            self.run(self.aio.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    def _client(self) -> secinfra.aio.Client:
        if self.aio is None:
            raise sync_adapter.AdapterError("configure first")
        return self.aio


async def _captured_call(method: Any, kwargs: dict[str, Any]) -> sync_adapter.Answer:
    with secinfra.capture() as captured:
        value = await method(**kwargs)
    meta = sync_adapter.meta_of(captured.last) if captured.calls else None
    return value.to_json(), meta


if __name__ == "__main__":
    sys.exit(sync_adapter.main(AioAdapter(), SDK))
