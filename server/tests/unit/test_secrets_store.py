"""The secrets store's SQL (on SQLite and PostgreSQL) and the API's pure helpers
(ETag, If-None-Match, page tokens)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from secinfra_server._rpc import none_match
from secinfra_server._secrets_api import (
    decode_page_token,
    encode_page_token,
    etag_for,
)
from secinfra_server.crypto import Kek, Keyring, aad_for_secret, open_, seal
from secinfra_server.errors import ApiError
from secinfra_server.storage import SqlStorage, migrate
from secinfra_server.storage import secret_tables as store


@pytest.fixture
def sqlite_conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A bare SQLite connection, for what only SQLite has (secure_delete)."""
    connection = sqlite3.connect(tmp_path / "db", isolation_level=None)
    migrate(connection)
    yield connection
    connection.close()


def _create(conn: sqlite3.Connection, keyring: Keyring, name: str, versions: int) -> None:
    store.insert_secret(conn, store.SecretRow(name, versions, 10, 60, 300, 1000, 1000))
    for version in range(1, versions + 1):
        box = seal(keyring, f"{name}@{version}".encode(), aad_for_secret(name, version))
        store.insert_version(conn, name, version, box, 1000 + version)


async def test_versions_round_trip_and_latest_enabled(any_storage: SqlStorage) -> None:
    await any_storage.write(_versions_round_trip)


def _versions_round_trip(conn: sqlite3.Connection) -> None:
    keyring = Keyring(Kek.generate())
    _create(conn, keyring, "a/b", 3)
    latest = store.latest_enabled_version(conn, "a/b")
    assert latest is not None
    assert latest.version == 3
    store.set_deleted(conn, "a/b", 3, 5000)
    latest = store.latest_enabled_version(conn, "a/b")
    assert latest is not None
    assert latest.version == 2
    box = store.sealed_value(conn, "a/b", 2)
    assert box is not None
    assert open_(keyring, box, aad_for_secret("a/b", 2)) == b"a/b@2"
    assert [v.state for v in store.list_versions(conn, "a/b")] == ["deleted", "enabled", "enabled"]
    store.set_enabled(conn, "a/b", 3)
    row = store.get_version(conn, "a/b", 3)
    assert row is not None
    assert (row.state, row.deleted_ms) == ("enabled", None)


async def test_prune_destroys_only_older_versions_once(any_storage: SqlStorage) -> None:
    await any_storage.write(_prune_once)


def test_destroying_restores_sqlites_secure_delete(sqlite_conn: sqlite3.Connection) -> None:
    conn = sqlite_conn
    conn.execute("PRAGMA secure_delete = OFF")
    _prune_once(conn)
    (secure_delete,) = conn.execute("PRAGMA secure_delete").fetchone()
    assert secure_delete == 0, "the connection's setting is restored after destroying"


def _prune_once(conn: sqlite3.Connection) -> None:
    _create(conn, Keyring(Kek.generate()), "p", 5)
    assert store.prune_versions(conn, "p", 4, 9000) == [1, 2, 3]
    assert store.prune_versions(conn, "p", 4, 9999) == []
    destroyed = store.get_version(conn, "p", 1)
    assert destroyed is not None
    assert (destroyed.state, destroyed.deleted_ms) == ("destroyed", 9000)
    assert store.sealed_value(conn, "p", 1) is None
    assert store.sealed_value(conn, "p", 4) is not None


async def test_list_secrets_by_prefix_and_cursor(any_storage: SqlStorage) -> None:
    await any_storage.write(_list_by_prefix)


def _list_by_prefix(conn: sqlite3.Connection) -> None:
    keyring = Keyring(Kek.generate())
    for name in ("a", "a/x", "a/y", "a-b", "a0", "ab/c", "b"):
        _create(conn, keyring, name, 1)

    def names(prefix: str, after: str, limit: int) -> list[str]:
        return [r.name for r in store.list_secrets(conn, prefix, after, limit)]

    assert names("", "", 100) == ["a", "a-b", "a/x", "a/y", "a0", "ab/c", "b"]
    assert names("a/", "", 100) == ["a/x", "a/y"]
    assert names("a", "", 100) == ["a", "a-b", "a/x", "a/y", "a0", "ab/c"]
    assert names("a", "a/x", 2) == ["a/y", "a0"]
    assert names("ab/c", "", 5) == ["ab/c"]
    assert names("zz", "", 5) == []


def test_etag_depends_on_name_version_and_time_only() -> None:
    tag = etag_for("a", 1, 1000)
    assert tag.startswith('"')
    assert tag.endswith('"')
    assert etag_for("a", 1, 1000) == tag
    assert len({tag, etag_for("a", 2, 1000), etag_for("b", 1, 1000), etag_for("a", 1, 1001)}) == 4
    # Length-framed: ("a1", 1) and ("a", 11) cannot collide by concatenation.
    assert etag_for("a1", 1, 1000) != etag_for("a", 11, 1000)


@pytest.mark.parametrize(
    ("headers", "matches"),
    [
        (['"t"'], True),
        (['W/"t"'], True),
        (['"x", "t"'], True),
        (['"x"', '"t"'], True),
        (["*"], True),
        (['"x"'], False),
        (["t"], False),
        ([], False),
    ],
)
def test_if_none_match(headers: list[str], matches: bool) -> None:
    assert none_match(headers, '"t"') is matches


def test_page_tokens_round_trip_and_are_bound_to_the_prefix() -> None:
    token = encode_page_token("team/", "team/app")
    assert "=" not in token
    assert decode_page_token(token, "team/") == "team/app"
    assert decode_page_token("", "team/") == ""
    for bad, prefix in (
        (token, "other/"),
        ("!!!", "team/"),
        (encode_page_token("team/", "elsewhere"), "team/"),
        (encode_page_token("team/", "team/../x"), "team/"),
    ):
        with pytest.raises(ApiError) as caught:
            decode_page_token(bad, prefix)
        assert caught.value.code == "invalid_argument"
        assert caught.value.details == {"field": "page_token"}
