"""The full-jitter case holds a client to waiting, not only to short waits.

The real case (retries/backoff-full-jitter-bounds) and the runner's real
server check run over recorded request logs: a client that retries without
backoff (gaps of 0) must fail it; one whose waits are full jitter must pass.
"""

from __future__ import annotations

import random
from typing import Any, cast

import pytest

from conformance.runner import matchers
from conformance.runner.cases import Case, load_all
from conformance.runner.execute import _Run
from conformance.runner.server import Server

CASE = "retries/backoff-full-jitter-bounds"
#: The spec's full-jitter ceilings of retries 1 to 7 (docs/spec/retries.md, 3.5).
CEILINGS = (0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0)


def jitter_case() -> Case:
    return next(c for c in load_all() if c.full_name == CASE)


def failures_for(gaps: list[float]) -> list[str]:
    """The case's server checks over a log of 503s ``gaps`` seconds apart."""
    case = jitter_case()
    run = _Run(case, "fake", {"a": cast(Server, None)})
    at = 100.0
    log: list[dict[str, Any]] = []
    for attempt, gap in enumerate([0.0, *gaps], start=1):
        at += gap
        log.append(
            {
                "seq": attempt,
                "replica": "a",
                "rpc": "GetCallerIdentity",
                "status": 503 if attempt <= len(gaps) else 200,
                "headers": {"secinfra-attempt": str(attempt)},
                "received_monotonic": at,
            }
        )
    run.log = log
    run.windows = {"whoami": {"a": (0, len(log))}}
    ctx = matchers.Context()
    problems: list[str] = []
    for check in case.checks:
        if "server" in check:
            problems += run._server_check(check, ctx)
    return problems


def test_a_client_without_backoff_fails_the_jitter_case() -> None:
    problems = failures_for([0.0] * len(CEILINGS))
    assert any("gaps.max: expected $gte 0.1, got 0.0" in p for p in problems), problems


def test_waits_of_a_request_time_only_fail_too() -> None:
    """No backoff on a loaded machine: each gap is one slow request, 20 ms."""
    assert failures_for([0.02] * len(CEILINGS))


@pytest.mark.parametrize("seed", range(20))
def test_full_jitter_waits_pass(seed: int) -> None:
    rng = random.Random(seed)
    # Draws of uniform(0, c), plus 5 ms of request time each.
    gaps = [round(rng.uniform(0, c) + 0.005, 4) for c in CEILINGS]
    assert failures_for(gaps) == []


def test_the_false_failure_probability_is_the_documented_one() -> None:
    """P(every wait < 0.1 s) for waits uniform(0, c) with the ceilings above."""
    p = 1.0
    for ceiling in CEILINGS:
        p *= min(1.0, 0.1 / ceiling)
    assert p == pytest.approx(6.1e-7, rel=0.01)
