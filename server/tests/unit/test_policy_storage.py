"""Authorization state on SQLite and PostgreSQL: the tuple reader (stored and structural
tuples), set-semantics writes and revisions, filtered pages, models."""

from __future__ import annotations

import sqlite3

import pytest

from secinfra_server.authz import TupleKey, TupleReader, list_objects
from secinfra_server.policy import BUILTIN_MODEL
from secinfra_server.storage import SqlStorage
from secinfra_server.storage.authz_tables import (
    SqliteTupleReader,
    TupleFilter,
    apply_tuple_changes,
    current_model_id,
    current_revision,
    enclosing_folders,
    load_model_json,
    read_tuples,
    store_model,
)

APP = "workload:spiffe://td.test/app"


@pytest.fixture
def storage(any_storage: SqlStorage) -> SqlStorage:
    """Each backend in turn (conftest's ``any_storage``)."""
    return any_storage


def add_secrets(conn: sqlite3.Connection, *names: str) -> None:
    for name in names:
        conn.execute(
            "INSERT INTO secrets (name, current_version, max_versions, cache_max_age_s,"
            " stale_if_error_s, created_ms, updated_ms) VALUES (?, 1, 10, 60, 300, 0, 0)",
            (name,),
        )


def keys(*texts: str) -> list[TupleKey]:
    out = []
    for text in texts:
        left, _, user = text.partition("@")
        obj, _, relation = left.partition("#")
        out.append(TupleKey(user, relation, obj))
    return out


@pytest.mark.parametrize(
    ("object_id", "folders"),
    [
        ("payments/db/password", ["payments/", "payments/db/"]),
        ("payments/db/", ["payments/"]),
        ("payments/", []),
        ("token", []),
    ],
)
def test_enclosing_folders(object_id: str, folders: list[str]) -> None:
    assert enclosing_folders(object_id) == folders


async def test_reader_reads_stored_tuples(storage: SqlStorage) -> None:
    def run(conn: sqlite3.Connection) -> None:
        apply_tuple_changes(
            conn, keys(f"folder:a/#reader@{APP}", "folder:a/#reader@group:g#member"), []
        )
        reader: TupleReader = SqliteTupleReader(conn)
        assert {k.user for k in reader.read("folder", "a/", "reader")} == {
            APP,
            "group:g#member",
        }
        assert list(reader.read("folder", "a/", "writer")) == []
        assert list(reader.read_objects("folder", "reader", APP)) == ["a/"]
        assert list(reader.read_objects("folder", "reader", "workload:*")) == []

    await storage.write(run)


async def test_reader_derives_structural_links_from_names(storage: SqlStorage) -> None:
    def run(conn: sqlite3.Connection) -> None:
        add_secrets(conn, "payments/db/password", "payments/api", "other/x", "top")
        apply_tuple_changes(conn, keys(f"folder:payments/cold/#reader@{APP}"), [])
        reader = SqliteTupleReader(conn)
        parents = reader.read("secret", "payments/db/password", "parent")
        assert [str(k) for k in parents] == [
            "secret:payments/db/password#parent@folder:payments/",
            "secret:payments/db/password#parent@folder:payments/db/",
        ]
        assert [k.user for k in reader.read("folder", "payments/db/", "parent")] == [
            "folder:payments/"
        ]
        assert [k.user for k in reader.read("secret", "top", "system")] == ["system:root"]
        assert [k.user for k in reader.read("folder", "a/", "system")] == ["system:root"]
        assert sorted(reader.read_objects("secret", "parent", "folder:payments/")) == [
            "payments/api",
            "payments/db/password",
        ]
        assert reader.read_objects("folder", "parent", "folder:payments/") == [
            "payments/cold/",
            "payments/db/",
        ]
        assert sorted(reader.read_objects("secret", "system", "system:root")) == [
            "other/x",
            "payments/api",
            "payments/db/password",
            "top",
        ]
        assert reader.read_objects("folder", "system", "system:root") == [
            "other/",
            "payments/",
            "payments/cold/",
            "payments/db/",
        ]
        assert reader.read_objects("secret", "parent", "folder:nothing/") == []
        assert reader.read_objects("secret", "system", "system:other") == []

    await storage.write(run)


async def test_list_objects_over_the_builtin_model(storage: SqlStorage) -> None:
    def run(conn: sqlite3.Connection) -> None:
        add_secrets(conn, "payments/db/password", "payments/api", "other/x")
        apply_tuple_changes(conn, keys(f"folder:payments/#reader@{APP}"), [])
        reader = SqliteTupleReader(conn)
        assert list_objects(BUILTIN_MODEL, reader, "secret", "reader", APP) == [
            "secret:payments/api",
            "secret:payments/db/password",
        ]

    await storage.write(run)


async def test_writes_have_set_semantics_and_advance_the_revision(
    storage: SqlStorage,
) -> None:
    def run(conn: sqlite3.Connection) -> None:
        first = apply_tuple_changes(conn, keys(f"folder:a/#reader@{APP}"), [])
        assert (first.written, first.deleted, first.revision) == (1, 0, 1)
        again = apply_tuple_changes(conn, keys(f"folder:a/#reader@{APP}"), [])
        assert (again.changed, again.revision) == (False, 1)
        missing = apply_tuple_changes(conn, [], keys(f"folder:b/#reader@{APP}"))
        assert (missing.changed, missing.revision) == (False, 1)
        both = apply_tuple_changes(
            conn, keys(f"folder:c/#reader@{APP}"), keys(f"folder:a/#reader@{APP}")
        )
        assert (both.written, both.deleted, both.revision) == (1, 1, 2)
        assert current_revision(conn) == 2
        stored = conn.execute("SELECT object_id, revision FROM authz_tuples").fetchall()
        assert stored == [("c/", 2)]

    await storage.write(run)


async def test_a_failed_write_changes_nothing(storage: SqlStorage) -> None:
    def run(conn: sqlite3.Connection) -> None:
        apply_tuple_changes(conn, keys(f"folder:a/#reader@{APP}"), [])
        raise RuntimeError("validation failed after the write")

    with pytest.raises(RuntimeError):
        await storage.write(run)
    assert await storage.read(current_revision) == 0
    assert await storage.read(
        lambda c: c.execute("SELECT COUNT(*) FROM authz_tuples").fetchone()
    ) == (0,)


async def test_read_tuples_filters_and_pages(storage: SqlStorage) -> None:
    tuples = keys(
        *(f"folder:f{i:02d}/#reader@{APP}" for i in range(7)),
        "folder:f00/#writer@group:g#member",
        f"secret:s#reader@{APP}",
        "group:g#member@workload:spiffe://td.test/b",
    )

    def run(conn: sqlite3.Connection) -> None:
        apply_tuple_changes(conn, tuples, [])

        def all_pages(where: TupleFilter, limit: int) -> list[str]:
            seen: list[str] = []
            after = None
            while True:
                page, after = read_tuples(conn, where, after=after, limit=limit)
                assert len(page) <= limit
                seen.extend(str(k) for k in page)
                if after is None:
                    return seen

        everything = all_pages(TupleFilter(), 3)
        assert sorted(everything) == sorted(str(k) for k in tuples)
        assert everything == all_pages(TupleFilter(), 100)
        assert len(all_pages(TupleFilter(object_type="folder"), 2)) == 8
        assert all_pages(TupleFilter(object_type="folder", object_id="f00"), 2) == []
        assert all_pages(TupleFilter(object_type="folder", object_id="f00/"), 1) == [
            "folder:f00/#reader@" + APP,
            "folder:f00/#writer@group:g#member",
        ]
        assert len(all_pages(TupleFilter(user=APP), 4)) == 8
        assert len(all_pages(TupleFilter(relation="reader", user=APP), 4)) == 8
        assert all_pages(TupleFilter(relation="member"), 4) == [
            "group:g#member@workload:spiffe://td.test/b"
        ]

    await storage.write(run)


async def test_models_are_stored_once_and_switching_advances_the_revision(
    storage: SqlStorage,
) -> None:
    def run(conn: sqlite3.Connection) -> None:
        assert current_model_id(conn) == ""
        assert store_model(conn, "m1", '{"a":1}', 0)
        assert current_revision(conn) == 1
        assert not store_model(conn, "m1", '{"a":1}', 5)
        assert current_revision(conn) == 1
        assert store_model(conn, "m2", '{"b":2}', 0)
        assert store_model(conn, "m1", '{"ignored":1}', 0)
        assert current_model_id(conn) == "m1"
        assert load_model_json(conn, "m1") == '{"a":1}'
        assert load_model_json(conn, "nope") is None
        assert current_revision(conn) == 3

    await storage.write(run)
