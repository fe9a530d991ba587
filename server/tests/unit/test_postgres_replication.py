"""PostgreSQL only: the change feed replicas hear each other through, and the
leader election of the background jobs, on a real cluster; and replicas
starting at once on an empty database.

Waits have deadlines (:data:`DEADLINE_SECONDS`) so a broken feed fails the
test instead of hanging it; how fast changes arrive is measured by the
replica tests (``integration/test_postgres_replicas.py``), not here."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from secinfra_server._ca_runtime import CaRuntime
from secinfra_server._clock import Clock
from secinfra_server._metrics import Metrics
from secinfra_server.audit import AuditChain
from secinfra_server.config import load_config
from secinfra_server.crypto import AuditKey, Kek, Keyring
from secinfra_server.storage import IssuedCertificate, StoredCa, StoredRevocation
from secinfra_server.storage import postgres as pg

NOW = datetime(2026, 1, 1, tzinfo=UTC)
DEADLINE_SECONDS = 10.0


@pytest.fixture
async def storage(postgres_dsn: str) -> AsyncIterator[pg.PostgresStorage]:
    opened = await pg.PostgresStorage.open(postgres_dsn, migrate=True)
    try:
        yield opened
    finally:
        await opened.close()


class Heard:
    """A change feed callback that records what it was told."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[frozenset[str]] = asyncio.Queue()
        self.fail_next = 0

    async def __call__(self, kinds: frozenset[str]) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("test: this reload fails")
        await self.queue.put(kinds)

    async def next(self) -> frozenset[str]:
        return await asyncio.wait_for(self.queue.get(), DEADLINE_SECONDS)


def _revocation(serial: str) -> StoredRevocation:
    return StoredRevocation(serial=serial, spiffe_id="", reason="test", revoked_at=NOW)


def _ca(ca_id: str, state: str) -> StoredCa:
    return StoredCa(
        id=ca_id,
        state=state,
        cert_pem="-----BEGIN CERTIFICATE-----",
        key_kek_id="kek-1",
        key_wrapped=b"\x00wrapped",
        key_ciphertext=b"\x00cipher",
        not_before=NOW,
        not_after=NOW + timedelta(days=365),
        prepared_at=NOW,
        activated_at=NOW if state == "active" else None,
    )


def _revisions(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT kind, revision FROM state_revisions").fetchall()
    return {str(kind): int(revision) for kind, revision in rows}


async def test_the_feed_names_what_changed(storage: pg.PostgresStorage) -> None:
    heard = Heard()
    feed = storage.change_feed(heard)
    await feed.open()
    feed.start()
    try:
        await storage.add_revocation(_revocation("0a"))
        assert await heard.next() == {"revocations"}
        await storage.save_cas([_ca("ca-1", "active")], bump_bundle=True)
        assert await heard.next() == {"cas"}
    finally:
        await feed.close()


async def test_recording_a_leaf_does_not_tell_replicas_to_reload_the_cas(
    storage: pg.PostgresStorage, postgres_dsn: str
) -> None:
    await storage.save_cas([_ca("ca-1", "active")], bump_bundle=False)
    before = _revisions(postgres_dsn)
    await storage.record_issued(
        IssuedCertificate("01", "spiffe://td/w", "ca-1", NOW + timedelta(hours=1), NOW)
    )
    assert _revisions(postgres_dsn) == before
    await storage.add_revocation(_revocation("01"))
    assert _revisions(postgres_dsn) == {**before, "revocations": before["revocations"] + 1}


async def test_a_failed_write_tells_nobody(storage: pg.PostgresStorage, postgres_dsn: str) -> None:
    before = _revisions(postgres_dsn)

    def add_then_fail(conn: object) -> None:
        raise RuntimeError("test: roll back")

    with pytest.raises(RuntimeError, match="roll back"):
        await storage.add_revocation(_revocation("0b"), also=add_then_fail)
    assert _revisions(postgres_dsn) == before
    assert await storage.list_revocations() == []


async def test_a_change_made_while_the_listener_was_down_is_delivered_on_reconnect(
    storage: pg.PostgresStorage, postgres_dsn: str
) -> None:
    heard = Heard()
    feed = storage.change_feed(heard)
    await feed.open()
    try:
        # Not yet started, so nobody listens when the change commits...
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s AND datname = current_database()",
                (pg.FEED_APPLICATION_NAME,),
            )
        await storage.add_revocation(_revocation("0c"))
        feed.start()
        # ...and the feed, finding its connection dead, reconnects and
        # compares revisions.
        assert await heard.next() == {"revocations"}
        assert feed.connections == 2
    finally:
        await feed.close()


async def test_a_failed_reload_is_offered_again(storage: pg.PostgresStorage) -> None:
    heard = Heard()
    heard.fail_next = 1
    feed = storage.change_feed(heard)
    await feed.open()
    feed.start()
    try:
        await storage.add_revocation(_revocation("0d"))
        assert await heard.next() == {"revocations"}
    finally:
        await feed.close()


async def test_one_leader_at_a_time_and_the_next_takes_over(
    storage: pg.PostgresStorage,
) -> None:
    first = storage.leader_election()
    second = storage.leader_election()
    try:
        assert await first.check() is True
        assert await second.check() is False
        assert await first.check() is True  # still held
        await first.close()  # the session ends: the lock is free
        assert await second.check() is True
        assert await first.check() is False
    finally:
        await first.close()
        await second.close()


async def test_a_leader_whose_session_is_killed_stops_leading(
    storage: pg.PostgresStorage, postgres_dsn: str
) -> None:
    leader = storage.leader_election()
    other = storage.leader_election()
    try:
        assert await leader.check() is True
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            # With a timeout, pg_terminate_backend waits for the session to end.
            conn.execute(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                " WHERE application_name = %s AND datname = current_database()",
                (pg.LEADER_APPLICATION_NAME,),
            )
        assert await leader.check() is False
        assert await other.check() is True
    finally:
        await leader.close()
        await other.close()


async def test_replicas_starting_at_once_on_an_empty_database_share_one_first_ca(
    postgres_dsn: str, tmp_path: Path
) -> None:
    config = load_config(flags={"data_dir": str(tmp_path)}, environ={})
    keyring = Keyring(Kek.generate())
    storages = [await pg.PostgresStorage.open(postgres_dsn, migrate=True) for _ in range(3)]
    try:
        runtimes = [
            CaRuntime(
                config=config,
                storage=storage,
                keyring=keyring,
                clock=Clock(),
                metrics=Metrics(),
                chain=AuditChain(AuditKey.generate()),
                shared=True,
            )
            for storage in storages
        ]
        await asyncio.gather(*(runtime.load() for runtime in runtimes))
        ids = {tuple(a.id for a in runtime.authorities) for runtime in runtimes}
        assert len(ids) == 1
        (only,) = ids
        assert len(only) == 1
    finally:
        for storage in storages:
            await storage.close()
