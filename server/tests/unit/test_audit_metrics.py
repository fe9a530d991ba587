"""The written/lost audit metrics count what committed, on each backend: an
entry appended inside a change that then rolls back is not counted."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import pytest

from secinfra_server._metrics import Metrics
from secinfra_server.audit import AuditChain, AuditEvent, verify
from secinfra_server.crypto import AuditKey
from secinfra_server.storage import SqlStorage

NOW = datetime(2026, 1, 1, tzinfo=UTC)
EVENT = AuditEvent("spiffe://td/admin", "secrets.put", "secret:a", "allowed", "req-1")


def _written(metrics: Metrics) -> float:
    value = metrics.registry.get_sample_value(
        "secinfra_audit_entries_written_total", {"mode": "in_transaction"}
    )
    assert value is not None
    return value


async def test_a_rolled_back_append_is_not_counted_as_written(any_storage: SqlStorage) -> None:
    metrics = Metrics()
    chain = AuditChain(AuditKey.generate(), metrics)

    def change_that_fails_after_its_entry(conn: sqlite3.Connection) -> None:
        chain.append(conn, EVENT, NOW)
        raise RuntimeError("the change fails after its entry was appended")

    with pytest.raises(RuntimeError):
        await any_storage.write(change_that_fails_after_its_entry)
    assert _written(metrics) == 0

    await any_storage.write(lambda conn: chain.append(conn, EVENT, NOW))
    await any_storage.write(lambda conn: [chain.append(conn, EVENT, NOW) for _ in range(2)])
    assert _written(metrics) == 3
    result = await any_storage.read(lambda conn: verify(conn, chain.key))
    assert result.ok, result.reason
    assert result.entries == 3
    assert metrics.registry.get_sample_value("secinfra_audit_entries_lost_total") == 0
