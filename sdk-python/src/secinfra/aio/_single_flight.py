"""Single-flight for asyncio: one request for concurrent misses of one key (spec 7.8).

The asyncio twin of ``secinfra._runtime._single_flight``. The first caller
for a key starts the fetch as a task of its own; every caller, the first
included, awaits that task without owning it, so one caller's cancellation
or deadline never ends the fetch for the others. A caller that joins waits
at most its own ``timeout``. When the last caller stops waiting (cancelled),
the fetch is cancelled too: nothing is left running for nobody, and a
cancelled call leaves no entry behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Hashable
from typing import Any, Generic, TypeVar, cast

__all__ = ["AsyncSingleFlight"]

T = TypeVar("T")


class _Flight(Generic[T]):
    """One fetch in flight and how many callers wait for it."""

    __slots__ = ("callers", "task")

    def __init__(self, task: asyncio.Task[T]) -> None:
        self.task = task
        self.callers = 0


class AsyncSingleFlight:
    """Collapses concurrent calls for one key into one (one event loop).

    >>> import asyncio
    >>> async def answer() -> int:
    ...     return 42
    >>> asyncio.run(AsyncSingleFlight().do("k", answer))
    42
    """

    def __init__(self) -> None:
        self._flights: dict[Hashable, _Flight[Any]] = {}

    async def do(
        self,
        key: Hashable,
        fetch: Any,
        *,
        timeout: float | None = None,
    ) -> T:
        """``await fetch()`` unless a fetch for ``key`` is in flight; either way its result.

        ``fetch`` is a zero-argument callable returning a coroutine. A caller
        that joins a running fetch waits at most ``timeout`` seconds (None:
        without limit), then raises `TimeoutError`; the fetch goes on for
        the others. ``timeout`` does not bound the caller that starts it.
        """
        if timeout is not None and not timeout >= 0.0:
            raise ValueError("secinfra: single-flight: timeout must be a number >= 0")
        flight = self._flights.get(key)
        leader = flight is None or flight.task.done()
        if leader:
            coroutine: Coroutine[Any, Any, T] = fetch()
            task = asyncio.get_running_loop().create_task(coroutine)
            task.add_done_callback(_retrieve)
            flight = self._flights[key] = _Flight(task)
        assert flight is not None
        flight.callers += 1
        try:
            done, _ = await asyncio.wait({flight.task}, timeout=None if leader else timeout)
            if not done:
                raise TimeoutError(
                    f"secinfra: single-flight: the running call did not finish in {timeout:g} s"
                )
            return cast(T, flight.task.result())
        finally:
            flight.callers -= 1
            if flight.task.done() or flight.callers == 0:
                if self._flights.get(key) is flight:
                    del self._flights[key]
                if not flight.task.done():
                    flight.task.cancel()  # nobody waits any more

    def in_flight(self) -> int:
        """How many keys have a fetch running now."""
        return sum(1 for flight in self._flights.values() if not flight.task.done())

    def waiting(self, key: Hashable) -> int:
        """How many callers wait for the running fetch for ``key`` (0 if none runs)."""
        flight = self._flights.get(key)
        return flight.callers if flight is not None and not flight.task.done() else 0


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a fetch's error as seen: every caller that wanted it got it already."""
    if not task.cancelled():
        task.exception()
