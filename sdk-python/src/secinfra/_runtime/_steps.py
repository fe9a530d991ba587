"""What the call pipeline asks its I/O layer to do: the steps of a call.

The rules of a call (spec 2 to 7: encoding, cache, single-flight, attempts,
retries, budget, endpoints, observers) are written once, as generators in
``_call`` that yield these steps and get each one's outcome back (its value
sent in, its exception thrown in). Two drivers perform them: the threaded
``_call.CallPipeline`` (requests, ``time.sleep``, a thread-safe
single-flight) and the asyncio ``secinfra.aio`` pipeline (aiohttp,
``asyncio.sleep``, an asyncio single-flight). A rule changes in one place
and both clients keep it; a driver holds no rule, only I/O.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from .._identity._snapshot import X509Identity

__all__ = [
    "AwaitIdentity",
    "JoinFlight",
    "RefreshBundle",
    "SendAttempt",
    "Sleep",
    "Step",
    "Steps",
    "run_steps",
    "run_steps_async",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SendAttempt:
    """Send one attempt; the outcome is an ``HttpAnswer``, or ``NoAnswer`` or
    ``ServerRejected`` thrown in (the transport's ``send`` contract)."""

    http_method: str
    target: str
    headers: Mapping[str, str]
    body: bytes | None
    mtls: bool
    timeout: float
    endpoint: str
    identity: X509Identity | None


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait ``seconds`` (a retry's backoff) on the client's clock."""

    seconds: float


@dataclass(frozen=True, slots=True)
class AwaitIdentity:
    """The identity source's valid identity, waited for at most ``timeout`` s
    (``ensure_identity``): `TimeoutError` or `IdentityExpired` thrown in."""

    timeout: float


@dataclass(frozen=True, slots=True)
class RefreshBundle:
    """Refetch the trust bundle (after a chain failure, spec 10.3); outcome:
    whether it changed."""


@dataclass(frozen=True, slots=True)
class JoinFlight:
    """Run ``fetch``'s steps unless a call for ``key`` is in flight; either way
    its result. A caller that joins waits at most ``timeout`` s, then
    `TimeoutError` is thrown in (spec 7.8)."""

    key: Hashable
    fetch: Callable[[], Generator[Step, Any, Any]]
    timeout: float


Step = SendAttempt | Sleep | AwaitIdentity | RefreshBundle | JoinFlight
#: A generator of steps whose return value is ``T``.
Steps = Generator[Step, Any, T]


def _advance(steps: Generator[Any, Any, Any], outcome: Any, error: BaseException | None) -> Any:
    """Send ``outcome`` (or throw ``error``) into ``steps``: their next step, or
    `_Done` with their result."""
    try:
        return steps.send(outcome) if error is None else steps.throw(error)
    except StopIteration as done:
        return _Done(done.value)


@dataclass(frozen=True, slots=True)
class _Done:
    value: Any


def run_steps(steps: Generator[Any, Any, T], perform: Callable[[Any], Any]) -> T:
    """Perform ``steps`` with ``perform`` until they return their result.

    Each step's outcome is sent back in, or the exception ``perform`` raised
    thrown in, at the point the steps wait (they decide what it means).
    """
    outcome: Any = None
    error: BaseException | None = None
    while not isinstance(step := _advance(steps, outcome, error), _Done):
        try:
            outcome, error = perform(step), None
        except BaseException as exc:  # thrown into the steps, which decide
            outcome, error = None, exc
    result: T = step.value
    return result


async def run_steps_async(
    steps: Generator[Any, Any, T], perform: Callable[[Any], Awaitable[Any]]
) -> T:
    """`run_steps` on an event loop: ``await perform(step)`` for each step; a
    cancellation while a step waits is thrown into the steps like any error."""
    outcome: Any = None
    error: BaseException | None = None
    while not isinstance(step := _advance(steps, outcome, error), _Done):
        try:
            outcome, error = await perform(step), None
        except BaseException as exc:  # thrown into the steps, which decide
            outcome, error = None, exc
    result: T = step.value
    return result
