"""/readyz answers 503 when storage or the CA key cannot serve, and 200 again after.

The failures are real: a PostgreSQL database that refuses connections (its
backends terminated, ``ALLOW_CONNECTIONS false``), and a CA that has expired
on the server's clock. /healthz stays 200 throughout: the process is alive, and
restarting it would not bring the database back.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from postgres_cluster import PostgresCluster

from .harness import Client, RunningServer


def _database(dsn: str) -> str:
    return dsn.rsplit("/", 1)[1]


@pytest.fixture
def pg_server(postgres: PostgresCluster, tmp_path: Path) -> Iterator[tuple[RunningServer, str]]:
    dsn = postgres.new_database()
    running = RunningServer(tmp_path / "data", database_dsn=dsn, migrate=True).start()
    running.server.ready_cache_seconds = 0
    try:
        yield running, dsn
    finally:
        with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{_database(dsn)}" ALLOW_CONNECTIONS true')
        running.stop()


def test_ready_reports_each_check(server: RunningServer, anon: Client) -> None:
    answer = anon.request("GET", "/readyz")
    assert answer.status == 200
    assert answer.json() == {"status": "ready", "checks": {"storage": "ok", "ca_key": "ok"}}


def test_storage_outage_makes_the_replica_not_ready_until_it_returns(
    pg_server: tuple[RunningServer, str], postgres: PostgresCluster
) -> None:
    server, dsn = pg_server
    anon = Client(server.port, server.bundle_pem())
    try:
        assert anon.request("GET", "/readyz").status == 200
        with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
            name = _database(dsn)
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
        down = anon.request("GET", "/readyz")
        assert down.status == 503
        body = down.json()
        assert body["status"] == "not_ready"
        assert body["checks"]["storage"] in {"unavailable", "timeout"}
        assert body["checks"]["ca_key"] == "ok"
        assert "password" not in down.body.decode()
        assert anon.request("GET", "/healthz").status == 200

        with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        # The pool reconnects on its next use; the probe is that use.
        statuses = [anon.request("GET", "/readyz").status for _ in range(3)]
        assert statuses[-1] == 200, statuses
    finally:
        anon.close()


def test_an_expired_ca_makes_the_server_not_ready(server: RunningServer, anon: Client) -> None:
    server.server.ready_cache_seconds = 0
    server.server.clock.shift(timedelta(days=server.config.ca_ttl_days + 1))
    answer = anon.request("GET", "/readyz")
    assert answer.status == 503
    assert answer.json() == {
        "status": "not_ready",
        "checks": {"storage": "ok", "ca_key": "ca_expired"},
    }
    assert anon.request("GET", "/healthz").status == 200


def test_one_probe_serves_calls_within_the_cache_time(server: RunningServer, anon: Client) -> None:
    server.server.ready_cache_seconds = 3600
    assert anon.request("GET", "/readyz").status == 200
    # The CA expires on the clock, but the cached probe still answers: one
    # probe per ready_cache_seconds, however often a balancer asks.
    server.server.clock.shift(timedelta(days=server.config.ca_ttl_days + 1))
    assert anon.request("GET", "/readyz").status == 200
