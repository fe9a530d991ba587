"""The listener's limits, apart from sockets: how the connection limit fits
the file-descriptor limit, and how the gate admits, refuses and counts."""

from __future__ import annotations

import logging
import resource

import pytest

from secinfra_server._listener import (
    ConnectionGate,
    ConnectionLimits,
    connection_budget,
    peer_address,
)
from secinfra_server._metrics import Metrics
from secinfra_server.config import ConfigError, load_config


@pytest.mark.parametrize(
    ("nofile_soft", "budget"),
    [
        (1024, 768),  # the common default soft limit: a quarter kept free
        (20000, 15000),
        (200, 136),  # at least 64 kept free
        (64, 0),
        (resource.RLIM_INFINITY, None),
    ],
)
def test_connection_budget_keeps_descriptors_free(nofile_soft: int, budget: int | None) -> None:
    assert connection_budget(nofile_soft) == budget


def _limits(nofile_soft: int, **settings: object) -> ConnectionLimits:
    config = load_config(flags={"data_dir": "d", **settings}, environ={})
    return ConnectionLimits.from_config(config, nofile_soft=nofile_soft)


def test_limits_are_lowered_to_fit_the_descriptor_limit() -> None:
    limits = _limits(1024, max_connections=5000, max_connections_per_peer=1000)
    assert limits.max_connections == 768
    assert limits.max_connections_per_peer == 768
    roomy = _limits(1_000_000)
    assert (roomy.max_connections, roomy.max_connections_per_peer) == (1024, 128)


def test_a_descriptor_limit_without_room_for_connections_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"RLIMIT_NOFILE 64\) leaves no room"):
        _limits(64)


def test_timeouts_come_from_the_settings() -> None:
    limits = _limits(
        4096,
        tls_handshake_timeout_seconds=3,
        header_timeout_seconds=4.5,
        idle_timeout_seconds=30,
    )
    assert (limits.handshake_timeout, limits.header_timeout, limits.idle_timeout) == (3, 4.5, 30)


@pytest.mark.parametrize(
    ("address", "peer"),
    [
        (("10.1.2.3", 5000), "10.1.2.3"),
        (("::ffff:10.1.2.3", 5000, 0, 0), "10.1.2.3"),
        (("2001:DB8::1", 5000, 0, 0), "2001:db8::1"),
    ],
)
def test_peer_address(address: tuple[object, ...], peer: str) -> None:
    assert peer_address(address) == peer


def _gate(total: int, per_peer: int, clock: list[float] | None = None) -> ConnectionGate:
    limits = ConnectionLimits(
        max_connections=total,
        max_connections_per_peer=per_peer,
        handshake_timeout=1,
        header_timeout=1,
        idle_timeout=1,
    )
    now = clock if clock is not None else [0.0]
    return ConnectionGate(limits, Metrics(), monotonic=lambda: now[0])


def _sample(gate: ConnectionGate, name: str, **labels: str) -> float | None:
    return gate._metrics.registry.get_sample_value(name, labels)


def test_gate_admits_within_both_limits_and_counts_refusals() -> None:
    gate = _gate(total=3, per_peer=2)
    a1, a2 = gate.admit("10.0.0.1"), gate.admit("10.0.0.1")
    assert a1 is not None
    assert a2 is not None
    assert gate.admit("10.0.0.1") is None  # per peer
    b1 = gate.admit("10.0.0.2")
    assert b1 is not None
    assert gate.admit("10.0.0.3") is None  # in all
    assert (gate.open, gate.open_from("10.0.0.1"), gate.open_from("10.0.0.2")) == (3, 2, 1)
    assert _sample(gate, "secinfra_connections_refused_total", reason="peer_limit") == 1
    assert _sample(gate, "secinfra_connections_refused_total", reason="global_limit") == 1
    assert _sample(gate, "secinfra_connections_accepted_total") == 5
    assert _sample(gate, "secinfra_connections_open") == 3
    assert _sample(gate, "secinfra_connections_max") == 3


def test_a_released_place_is_given_back_once() -> None:
    gate = _gate(total=1, per_peer=1)
    admission = gate.admit("10.0.0.1")
    assert admission is not None
    admission.release()
    admission.release()  # a second release (handshake failure and connection_lost) is a no-op
    assert (gate.open, gate.open_from("10.0.0.1")) == (0, 0)
    assert _sample(gate, "secinfra_connections_open") == 0
    again = gate.admit("10.0.0.2")
    assert again is not None


def test_timeouts_are_counted_by_phase() -> None:
    gate = _gate(total=2, per_peer=2)
    admission = gate.admit("10.0.0.1")
    assert admission is not None
    admission.timed_out("handshake")
    admission.timed_out("idle")
    admission.timed_out("idle")
    assert _sample(gate, "secinfra_connections_timed_out_total", phase="handshake") == 1
    assert _sample(gate, "secinfra_connections_timed_out_total", phase="headers") == 0
    assert _sample(gate, "secinfra_connections_timed_out_total", phase="idle") == 2


def test_refusals_are_logged_at_most_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = [100.0]
    gate = _gate(total=1, per_peer=1, clock=clock)
    assert gate.admit("10.0.0.1") is not None
    with caplog.at_level(logging.WARNING, logger="secinfra.listener"):
        for _ in range(50):
            assert gate.admit("10.0.0.2") is None
        clock[0] += 10.0
        assert gate.admit("10.0.0.2") is None
    lines = [r for r in caplog.records if r.getMessage() == "connection refused: limit reached"]
    fields = [r.fields for r in lines]  # type: ignore[attr-defined]
    assert [f["refused_since_last_line"] for f in fields] == [0, 49]
    assert {f["reason"] for f in fields} == {"global_limit"}
