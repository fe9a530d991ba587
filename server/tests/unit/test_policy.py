"""EnginePolicy: the server's own access control through the engine, on a real
database of each backend (admin bootstrap, folder inheritance, groups, default
deny)."""

from __future__ import annotations

import asyncio

import pytest

from secinfra_server._clock import Clock
from secinfra_server.audit import AuditChain, verify
from secinfra_server.authz import TupleKey
from secinfra_server.crypto import AuditKey
from secinfra_server.policy import AuthzEngine, EnginePolicy, Snapshot
from secinfra_server.storage import SqlStorage
from secinfra_server.storage.authz_tables import apply_tuple_changes, current_revision

TD = "td.test"
ADMIN = f"spiffe://{TD}/secinfra/admin"
APP = f"spiffe://{TD}/app"
OTHER = f"spiffe://{TD}/other"


AUDIT_KEY = AuditKey.generate()


def new_policy(storage: SqlStorage) -> EnginePolicy:
    return EnginePolicy(
        AuthzEngine(storage, clock=Clock(), admin_id=ADMIN, chain=AuditChain(AUDIT_KEY))
    )


@pytest.fixture
def storage(any_storage: SqlStorage) -> SqlStorage:
    """Each backend in turn (conftest's ``any_storage``)."""
    return any_storage


@pytest.fixture
def policy(storage: SqlStorage) -> EnginePolicy:
    return new_policy(storage)


def tuple_key(text: str) -> TupleKey:
    """``object#relation@user``."""
    left, _, user = text.partition("@")
    obj, _, relation = left.partition("#")
    return TupleKey(user, relation, obj)


async def write(policy: EnginePolicy, *tuples: str, delete: bool = False) -> None:
    keys = [tuple_key(t) for t in tuples]

    def run(snapshot: Snapshot) -> None:
        apply_tuple_changes(snapshot.conn, [] if delete else keys, keys if delete else [])

    await policy.engine.write(run)


async def rows(storage: SqlStorage, sql: str) -> list[tuple[object, ...]]:
    return await storage.read(lambda conn: [tuple(row) for row in conn.execute(sql)])


# ------------------------------------------------------------------ bootstrap


async def test_the_init_admin_is_the_only_admin(policy: EnginePolicy) -> None:
    assert await policy.is_admin(ADMIN)
    assert not await policy.is_admin(APP)
    assert not await policy.is_admin("spiffe://other.test/secinfra/admin")


async def test_bootstrap_tuple_is_written_exactly_once_and_audited(
    storage: SqlStorage,
) -> None:
    first = new_policy(storage)
    assert await first.is_admin(ADMIN)
    # A restart: a new engine over the same database.
    second = new_policy(storage)
    assert await second.is_admin(ADMIN)
    assert await rows(
        storage, 'SELECT object_type, object_id, relation, "user" FROM authz_tuples'
    ) == [("system", "root", "admin", f"workload:{ADMIN}")]
    audits = await rows(storage, "SELECT actor, action, resource FROM audit_log")
    assert audits == [("secinfra-server", "authz.bootstrap_admin", "system:root")]
    assert (await storage.read(lambda conn: verify(conn, AUDIT_KEY))).ok
    assert await storage.read(current_revision) == 1


async def test_deleted_bootstrap_grant_does_not_come_back(
    storage: SqlStorage, policy: EnginePolicy
) -> None:
    await write(policy, f"system:root#admin@workload:{APP}")
    await write(policy, f"system:root#admin@workload:{ADMIN}", delete=True)
    restarted = new_policy(storage)
    assert not await restarted.is_admin(ADMIN)
    assert await restarted.is_admin(APP)


async def test_concurrent_first_calls_bootstrap_once(
    storage: SqlStorage,
) -> None:
    policies = [new_policy(storage) for _ in range(3)]
    results = await asyncio.gather(*(p.is_admin(ADMIN) for p in policies for _ in range(3)))
    assert all(results)
    assert await rows(storage, "SELECT COUNT(*) FROM audit_log") == [(1,)]


# ------------------------------------------------------------------ secrets


async def test_folder_grant_gives_read_on_every_secret_inside(policy: EnginePolicy) -> None:
    await write(policy, f"folder:payments/#reader@workload:{APP}")
    assert await policy.can_read_secret(APP, "payments/db/password")
    assert await policy.can_read_secret(APP, "payments/api-key")
    assert not await policy.can_write_secret(APP, "payments/db/password")
    assert not await policy.can_read_secret(APP, "payments")  # a secret, not the folder
    assert not await policy.can_read_secret(APP, "payments-old/key")
    assert not await policy.can_read_secret(OTHER, "payments/db/password")


async def test_nested_folder_grant_stays_inside_its_folder(policy: EnginePolicy) -> None:
    await write(policy, f"folder:payments/db/#reader@workload:{APP}")
    assert await policy.can_read_secret(APP, "payments/db/password")
    assert await policy.can_read_secret(APP, "payments/db/replica/password")
    assert not await policy.can_read_secret(APP, "payments/api-key")


async def test_inheritance_does_not_depend_on_depth(policy: EnginePolicy) -> None:
    deep = "/".join(f"s{i}" for i in range(60)) + "/leaf"
    await write(policy, f"folder:s0/#writer@workload:{APP}")
    assert await policy.can_read_secret(APP, deep)
    assert await policy.can_write_secret(APP, deep)


@pytest.mark.parametrize(
    "grant",
    [
        f"secret:payments/db/password#writer@workload:{APP}",
        f"folder:payments/#writer@workload:{APP}",
        f"folder:payments/db/#writer@workload:{APP}",
    ],
)
async def test_writer_implies_reader(policy: EnginePolicy, grant: str) -> None:
    await write(policy, grant)
    assert await policy.can_write_secret(APP, "payments/db/password")
    assert await policy.can_read_secret(APP, "payments/db/password")


async def test_group_membership_grants_through_nested_groups(policy: EnginePolicy) -> None:
    await write(
        policy,
        "folder:payments/#reader@group:payments-team#member",
        "group:payments-team#member@group:oncall#member",
        f"group:oncall#member@workload:{APP}",
    )
    assert await policy.can_read_secret(APP, "payments/db/password")
    assert not await policy.can_read_secret(OTHER, "payments/db/password")


async def test_admin_group_members_are_admins_and_may_do_everything(
    policy: EnginePolicy,
) -> None:
    await write(policy, "system:root#admin@group:ops#member", f"group:ops#member@workload:{APP}")
    assert await policy.is_admin(APP)
    assert await policy.can_write_secret(APP, "anything/at/all")
    assert await policy.can_read_secret(ADMIN, "top-level")


@pytest.mark.parametrize(
    ("spiffe_id", "name"),
    [
        (APP, "payments/db/password"),  # no grant at all
        ("not a spiffe id", "payments/db/password"),
        (APP, "has space"),
        (APP, ""),
    ],
)
async def test_no_grant_or_unexpressible_input_is_denied(
    policy: EnginePolicy, spiffe_id: str, name: str
) -> None:
    await write(policy, f"secret:other#reader@workload:{APP}")
    assert not await policy.can_read_secret(spiffe_id, name)
    assert not await policy.can_write_secret(spiffe_id, name)
    assert not await policy.is_admin(spiffe_id)


async def test_readable_secrets_filters_in_order(policy: EnginePolicy) -> None:
    await write(
        policy,
        f"folder:payments/#reader@workload:{APP}",
        f"secret:shared/token#writer@workload:{APP}",
    )
    names = [
        "zeta",
        "payments/b",
        "shared/token",
        "payments/a/x",
        "shared/other",
        "bad name",
    ]
    assert await policy.readable_secrets(APP, names) == [
        "payments/b",
        "shared/token",
        "payments/a/x",
    ]
    assert await policy.readable_secrets(OTHER, names) == []
    assert await policy.readable_secrets(ADMIN, names[:5]) == names[:5]
    assert await policy.readable_secrets(APP, []) == []
