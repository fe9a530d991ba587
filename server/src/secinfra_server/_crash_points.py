"""Test mode: the server process dies at a named point of a keyed call.

The crash-point test (``server/tests/integration/test_idempotency_crash.py``)
must see the server die exactly where a SIGKILL could land on the write path
of a call that carries an Idempotency-Key, not wherever a sleep happened to
end: after the key is claimed, after the effect and its answer are written but
before they commit, after the commit but before the response is sent (the
points of :data:`~secinfra_server._idempotency.WRITE_PATH_POINTS`).

A :class:`CrashPoint` is the :data:`~secinfra_server._idempotency.WritePathProbe`
the idempotency store tells about each point. The server's assembly builds one
only when the test hooks are on (which the configuration allows on loopback
only) *and* :data:`ENV_VAR` names a point: no configuration file, flag or
setting can arm it, and without test hooks the variable is ignored (with a
warning). Dying is ``os._exit``: no cleanup, no ``finally``, no flushed
buffers, no graceful close of database connections, as after a SIGKILL.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from ._gen.routes import ROUTES
from ._idempotency import WRITE_PATH_POINTS

log = logging.getLogger("secinfra.testmode")

#: ``<point>:<RPC>``, e.g. ``before_commit:PutSecret``.
ENV_VAR: Final = "SECINFRA_TEST_CRASH_AT"
#: The exit status of a crash point, so a test can tell it from other exits.
EXIT_STATUS: Final = 86
_KEYED_RPCS: Final = frozenset(route.rpc for route in ROUTES if route.idempotency != "read_only")


@dataclass(frozen=True)
class CrashPoint:
    """Exit the process when a keyed call of ``rpc`` reaches ``point``."""

    point: str
    rpc: str

    def __call__(self, point: str, rpc: str) -> None:
        if point == self.point and rpc == self.rpc:
            os.write(2, f"secinfra: test mode: crash point {point} of {rpc}\n".encode())
            os._exit(EXIT_STATUS)


def parse(value: str) -> CrashPoint:
    """``<point>:<RPC>`` as a crash point; ValueError saying what is allowed."""
    point, _, rpc = value.partition(":")
    if point not in WRITE_PATH_POINTS:
        raise ValueError(
            f"secinfra: test mode: {ENV_VAR}: unknown point {point!r}; one of"
            f" {', '.join(WRITE_PATH_POINTS)}"
        )
    if rpc not in _KEYED_RPCS:
        raise ValueError(
            f"secinfra: test mode: {ENV_VAR}: {rpc!r} is not an RPC that takes an"
            f" Idempotency-Key; one of {', '.join(sorted(_KEYED_RPCS))}"
        )
    return CrashPoint(point, rpc)


def from_environ(environ: Mapping[str, str], *, test_hooks: bool) -> CrashPoint | None:
    """The crash point :data:`ENV_VAR` arms, if test hooks are on (else None)."""
    value = environ.get(ENV_VAR, "")
    if not value:
        return None
    if not test_hooks:
        log.warning(
            "crash point ignored: test hooks are off", extra={"fields": {"variable": ENV_VAR}}
        )
        return None
    armed = parse(value)
    log.warning(
        "test mode: crash point armed",
        extra={"fields": {"point": armed.point, "rpc": armed.rpc}},
    )
    return armed
