"""The attempt watchdog: an attempt ends at its timeout, wherever it is blocked.

Socket timeouts bound each read, not their sum (spec 5.2.2), so the
transport arms a watchdog per attempt; connections register with it
(:func:`watch`, called by the TLS connection class of ``_tls``) and are shut
down when the time is up.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
from typing import Any

__all__ = ["AttemptWatchdog", "watch"]


class AttemptWatchdog:
    """Ends an attempt that runs out of time, wherever it is blocked (spec 5.2.2).

    Socket timeouts bound each read, not their sum: a server that sends its
    response head a byte at a time would stretch the attempt indefinitely.
    The watchdog is armed for the attempt's time; the connection the attempt
    uses registers itself (see ``_tls.pool_class``) and, when the time is up,
    its socket is shut down so the blocked read fails at once. The transport
    then reports the attempt as timed out (:attr:`fired`).
    """

    def __init__(self, seconds: float) -> None:
        self._lock = threading.Lock()
        self._connection: Any = None
        self._done = False
        self.fired = False
        """Whether the time ran out (the socket, if any, was shut down)."""
        self.sent = False
        """Whether the request was handed to a connection (it may have been sent)."""
        self._seconds = max(0.0, seconds)

    def __enter__(self) -> AttemptWatchdog:
        _current.watchdog = self
        _scheduler.arm(self, time.monotonic() + self._seconds)
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()

    def finish(self) -> None:
        """The attempt is over: disarm, and forget the connection (it may be pooled)."""
        with self._lock:
            self._done = True
            self._connection = None
        if getattr(_current, "watchdog", None) is self:
            _current.watchdog = None

    def register(self, connection: Any, *, sending: bool) -> None:
        """``connection`` now carries this attempt."""
        with self._lock:
            if self._done:
                return
            self._connection = connection
            self.sent = self.sent or sending
            fired = self.fired
        if fired:
            _shutdown(connection)

    def fire(self) -> None:
        """The time is up (called by the scheduler; nothing happens once finished)."""
        with self._lock:
            if self._done:
                return
            self.fired = True
            connection = self._connection
        if connection is not None:
            _shutdown(connection)


class _Scheduler:
    """One daemon thread fires every client's overdue watchdogs.

    A thread per attempt (``threading.Timer``) would cost a thread start and
    join on every call; here arming is a heap push under a lock. A finished
    watchdog stays in the heap until its deadline and is then skipped
    (`AttemptWatchdog.fire` does nothing once finished). The thread starts on
    first use and again in a forked child, which inherits no threads.
    """

    def __init__(self) -> None:
        self._wake = threading.Condition()
        self._heap: list[tuple[float, int, AttemptWatchdog]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, watchdog: AttemptWatchdog, deadline: float) -> None:
        with self._wake:
            heapq.heappush(self._heap, (deadline, next(self._seq), watchdog))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="secinfra-attempt-watchdog", daemon=True
                )
                self._thread.start()
            elif self._heap[0][2] is watchdog:
                self._wake.notify()  # the new deadline is the earliest

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._wake.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                _, _, due = heapq.heappop(self._heap)
            due.fire()

    def reset_after_fork(self) -> None:
        self._wake = threading.Condition()
        self._heap = []
        self._thread = None


_scheduler = _Scheduler()
os.register_at_fork(after_in_child=_scheduler.reset_after_fork)
_current = threading.local()


def _shutdown(connection: Any) -> None:
    """Shut the connection's socket down so that a blocked read returns at once.

    ``socket.socket.shutdown`` on purpose: ``SSLSocket.shutdown`` would also
    drop the TLS object under the thread blocked in it. The owner closes it.
    """
    sock = getattr(connection, "sock", None)
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):  # already closed
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


def watch(connection: Any, *, sending: bool) -> None:
    """Register ``connection`` with the attempt running in this thread, if any."""
    watchdog: AttemptWatchdog | None = getattr(_current, "watchdog", None)
    if watchdog is not None:
        watchdog.register(connection, sending=sending)
