"""The server pool: fresh servers per case, spare default servers started ahead."""

from __future__ import annotations

import time

import pytest

from conformance.runner.cases import Case, parse_document
from conformance.runner.execute import ServerPool


def _case(server: dict[str, object] | None = None) -> Case:
    setup = {"server": server} if server else {}
    (case,) = parse_document(
        {
            "suite": "demo",
            "cases": [
                {
                    "name": "any",
                    "spec": "3.3",
                    "description": "d",
                    "setup": setup,
                    "steps": [{"sleep": 1}],
                    "checks": [{"client": "step1", "ok": True}],
                }
            ],
        },
        "demo",
        "demo.yaml",
    )
    return case


@pytest.mark.timeout(180)
def test_a_spare_server_is_fresh_and_every_server_is_closed() -> None:
    pool = ServerPool(spares=1)
    seen = []
    try:
        with pool.server_for(_case()) as first:
            seen.append(first)
            first.control("DELETE", "/_test/clock")
        deadline = time.monotonic() + 90
        while not pool._spares and time.monotonic() < deadline:  # the spare starts meanwhile
            time.sleep(0.2)
        assert pool._spares, "no spare server was started"
        spare = pool._spares[0]
        with pool.server_for(_case()) as second:
            seen.append(second)
            assert second is spare
            assert second.url != first.url
            assert not first.alive  # the first case's server went with its case
            assert second.requests_since(0) == []  # it served nothing before
        # A case with its own settings never gets a default spare.
        with pool.server_for(_case({"leaf_ttl_seconds": 5})) as third:
            seen.append(third)
            assert third.settings == {"leaf_ttl_seconds": 5}
            assert third is not spare
    finally:
        pool.close()
    assert not any(server.alive for server in seen)
    assert pool._spares == []
