"""A rotating identity for asyncio: the twin of ``secinfra.RotatingIdentity``.

The rules (when to renew, retry, re-enrol and refresh; the checks a new
certificate must pass; which bundle replaces which) are
``secinfra._identity._rotating.RotationRules``', shared with the threaded
source; this class performs their steps with the async IdentityService
client and runs the loop as an asyncio task. The private key is generated
in this process and never leaves it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import TYPE_CHECKING, Any, Final

from .._identity._rotating import IdentityRpc, Reenrol, RotationRules, RotationSteps
from .._identity._snapshot import X509Identity
from .._runtime._steps import run_steps_async
from ..errors import SecinfraError

if TYPE_CHECKING:
    from .._gen.identity_aio_client import AsyncIdentityClient

__all__ = ["RotatingIdentity"]

log = logging.getLogger("secinfra.identity")

#: Set while this task refreshes the bundle: a verification failure of the
#: bundle fetch itself must not refresh again (spec 10.3).
_REFRESHING: Final = contextvars.ContextVar("secinfra_aio_refreshing", default=False)
#: Seconds `close` waits for the rotation task to end.
CLOSE_WAIT_SECONDS: Final = 5.0


class RotatingIdentity(RotationRules):
    """Enrols, then keeps the identity and the trust bundle current in an
    asyncio task. ``await start()`` once (after :meth:`attach`) and
    ``await close()`` when done; takes ``secinfra.RotatingIdentity``'s arguments."""

    def _start_driver(self) -> None:
        self._client: AsyncIdentityClient | None = None
        self._reenrolment: asyncio.Future[X509Identity] | None = None
        """The re-enrolment in flight (spec 9.7.2), or the last one, done."""
        self._task: asyncio.Task[None] | None = None

    # -- wiring ----------------------------------------------------------------------
    def attach(self, client: AsyncIdentityClient) -> None:
        """The async IdentityService client (over the transport that uses this source)."""
        self._client = client

    async def start(self) -> None:
        """Enrol now (raising on failure), then keep rotating in a task."""
        await self._perform(self._enrol())
        await self._perform(self._fetch_bundle())
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name="secinfra-identity-rotation"
        )

    async def close(self) -> None:
        """Stop rotating (and any re-enrolment in flight)."""
        for task in (self._task, self._reenrolment):
            if task is not None and not task.done():
                task.cancel()
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=CLOSE_WAIT_SECONDS)

    # -- AsyncIdentitySource ---------------------------------------------------------
    async def ensure_identity(self, timeout: float | None = None) -> X509Identity:
        """A currently valid identity; after expiry, the result of a re-enrolment.

        One re-enrolment runs at a time, as a task of its own (spec 9.7.2): a
        caller starts it or joins the one in flight and waits for it at most
        ``timeout`` seconds; then `TimeoutError`, and the re-enrolment goes
        on. A caller's cancellation never cancels it.
        """
        valid = self._valid_identity()
        if valid is not None:
            return valid
        flight = self._reenrol()
        done, _ = await asyncio.wait({flight}, timeout=timeout)
        if not done:
            raise self._still_reenrolling()
        try:
            current = flight.result()
        except SecinfraError as exc:
            raise self._reenrolment_failed(exc) from exc
        return self._reenrolled(current)

    async def refresh_bundle(self) -> bool:
        if _REFRESHING.get():
            return False  # the bundle fetch itself failed verification: give up
        before = self.bundle()
        token = _REFRESHING.set(True)
        try:
            await self._perform(self._fetch_bundle())
        except SecinfraError:
            return False
        finally:
            _REFRESHING.reset(token)
        return self.bundle().pem != before.pem

    # -- I/O -------------------------------------------------------------------------
    async def _perform(self, steps: RotationSteps) -> Any:
        """Run ``steps`` with the async IdentityClient, to their result."""
        return await run_steps_async(steps, self._perform_step)

    async def _perform_step(self, step: IdentityRpc | Reenrol) -> Any:
        if isinstance(step, Reenrol):
            return await asyncio.shield(self._reenrol())
        if self._client is None:
            raise self._unattached()
        return await getattr(self._client, step.method)(**step.kwargs)

    def _reenrol(self) -> asyncio.Future[X509Identity]:
        """The re-enrolment in flight, or a new one started as its own task.

        A new one starts only when none is running and the identity is still
        expired (a finished one may have just installed a valid certificate).
        """
        flight = self._reenrolment
        if flight is not None and not flight.done():
            return flight
        loop = asyncio.get_running_loop()
        current = self._identity
        if current is not None and self._clock.now() < current.not_after:
            ready: asyncio.Future[X509Identity] = loop.create_future()
            ready.set_result(current)
            return ready

        async def run() -> X509Identity:
            await self._perform(self._enrol())
            identity = self.identity()
            assert identity is not None
            return identity

        task = loop.create_task(run(), name="secinfra-identity-reenrol")
        task.add_done_callback(_retrieve)
        self._reenrolment = task
        return task

    async def _run(self) -> None:
        while True:
            try:
                delay = await self._perform(self._step())
            except Exception:
                # Never let the task die: a dead rotation task means a
                # certificate that silently expires. Log, wait, try again.
                log.exception("secinfra: identity: rotation step failed")
                delay = self._step_failure_delay()
            await asyncio.sleep(self._loop_delay(delay))


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a re-enrolment's error as seen: its waiters got it, or the loop logs it."""
    if not task.cancelled():
        task.exception()
