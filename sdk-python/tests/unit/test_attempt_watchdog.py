"""The attempt watchdog: one shared thread shuts down overdue attempts' sockets (spec 5.2.2)."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from secinfra._runtime._watchdog import AttemptWatchdog


@dataclass
class _Connection:
    """What the watchdog needs of a urllib3 connection: its socket."""

    sock: socket.socket


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def _blocked_read_ends(sock: socket.socket, within: float) -> bool:
    """Whether a read on ``sock`` (with no data coming) returns within ``within`` s."""
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""  # shut down: EOF at once
    except TimeoutError:
        return False


def test_an_overdue_attempt_has_its_socket_shut_down(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    client, _ = pair
    with AttemptWatchdog(0.05) as watchdog:
        watchdog.register(_Connection(client), sending=True)
        assert _blocked_read_ends(client, within=5.0)
        assert watchdog.fired
        assert watchdog.sent


def test_a_finished_attempt_is_left_alone(pair: tuple[socket.socket, socket.socket]) -> None:
    client, server = pair
    with AttemptWatchdog(0.05) as watchdog:
        watchdog.register(_Connection(client), sending=False)
    time.sleep(0.2)  # past the deadline: the scheduler pops it and must skip it
    assert not watchdog.fired
    server.sendall(b"x")
    client.settimeout(5.0)
    assert client.recv(1) == b"x"  # the socket still works


def test_an_earlier_deadline_armed_later_fires_first(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    client, _ = pair
    with AttemptWatchdog(30.0) as slow, AttemptWatchdog(0.05) as fast:
        fast.register(_Connection(client), sending=False)
        assert _blocked_read_ends(client, within=5.0)
        assert fast.fired
        assert not slow.fired
        assert not fast.sent


def test_registering_after_the_time_ran_out_shuts_down_at_once(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    client, _ = pair
    with AttemptWatchdog(0.0) as watchdog:
        deadline = time.monotonic() + 5.0
        while not watchdog.fired and time.monotonic() < deadline:
            time.sleep(0.01)
        assert watchdog.fired
        watchdog.register(_Connection(client), sending=True)
        assert _blocked_read_ends(client, within=1.0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_watchdogs_work_in_a_forked_child(pair: tuple[socket.socket, socket.socket]) -> None:
    client, _ = pair
    with AttemptWatchdog(0.01):
        pass  # the parent's scheduler thread is running
    pid = os.fork()
    if pid == 0:  # child: its scheduler must start a thread of its own
        ok = False
        try:
            with AttemptWatchdog(0.05) as watchdog:
                watchdog.register(_Connection(client), sending=True)
                ok = _blocked_read_ends(client, within=5.0) and watchdog.fired
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
