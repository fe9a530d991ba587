"""Single-flight: one request for concurrent misses of one cache key (spec 7.8).

When several threads miss the cache for the same key at once, only the first
(the leader) sends the request; the others wait for it and share its answer,
so a cold cache under load sends one request per key, not one per caller.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import TypeVar, cast

__all__ = ["SingleFlight"]

T = TypeVar("T")


class _Call:
    """One in-flight call of a `SingleFlight`."""

    __slots__ = ("done", "error", "result", "waiters")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: object = None
        self.error: BaseException | None = None
        self.waiters = 0


class SingleFlight:
    """Collapses concurrent calls for one key into one.

    While a call for a key is running, further `do` calls for that key wait
    for it and share its result, or its exception (the same exception
    object is raised in every waiting thread). Once it finishes, the next
    `do` starts a new call: nothing is cached here.

    >>> SingleFlight().do("k", lambda: 42)
    42
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[Hashable, _Call] = {}

    def do(self, key: Hashable, fn: Callable[[], T], *, timeout: float | None = None) -> T:
        """Run ``fn`` unless a call for ``key`` is running; either way return its result.

        Callers that share a key must pass functions returning the same type.
        A caller that joins a running call waits at most ``timeout`` seconds
        (None: without limit) and then raises `TimeoutError`; the running call
        goes on for its other callers. ``timeout`` does not bound a caller that
        runs ``fn`` itself.
        """
        if timeout is not None and not timeout >= 0.0:
            raise ValueError("secinfra: single-flight: timeout must be a number >= 0")
        with self._lock:
            call = self._calls.get(key)
            leader = call is None
            if call is None:
                call = self._calls[key] = _Call()
            else:
                call.waiters += 1
        if not leader:
            if not call.done.wait(timeout):
                with self._lock:
                    call.waiters -= 1
                raise TimeoutError(
                    f"secinfra: single-flight: the running call did not finish in {timeout:g} s"
                )
            if call.error is not None:
                raise call.error
            return cast(T, call.result)
        try:
            result = fn()
        except BaseException as exc:
            call.error = exc
            raise
        else:
            call.result = result
            return result
        finally:
            with self._lock:
                del self._calls[key]
            call.done.set()

    def in_flight(self) -> int:
        """How many keys have a call running now."""
        with self._lock:
            return len(self._calls)

    def waiting(self, key: str) -> int:
        """How many callers wait for the running call for ``key`` (0 if none runs)."""
        with self._lock:
            call = self._calls.get(key)
            return call.waiters if call is not None else 0
