"""Shared worlds (a model plus its tuples) for the authz tests.

Tuples are written ``object#relation@user``. Each world is a fixture returning a
``World``; tests pick one by name with ``request.getfixturevalue``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from secinfra_server.authz import AuthorizationModel, InMemoryTupleStore, TupleKey, parse_dsl


def tuple_key(text: str) -> TupleKey:
    """Parse ``object#relation@user`` (the user may itself hold a ``#``)."""
    left, _, user = text.partition("@")
    obj, _, relation = left.partition("#")
    return TupleKey(user=user, relation=relation, object=obj)


@dataclass(frozen=True)
class World:
    model: AuthorizationModel
    store: InMemoryTupleStore
    tuples: tuple[TupleKey, ...]


def make_world(dsl: str, *tuples: str) -> World:
    keys = tuple(tuple_key(t) for t in tuples)
    return World(parse_dsl(dsl), InMemoryTupleStore(keys), keys)


# Every operator, one relation each, over one document.
OPS_DSL = """
model
  schema 1.1
type user
type employee
type group
  relations
    define member: [user, group#member]
type folder
  relations
    define viewer: [user]
    define banned: [user]
type doc
  relations
    define parent: [folder]
    define a: [user, user:*, group#member]
    define b: [user]
    define c: [user]
    define d: [user]
    define a_or_b: a or b
    define a_and_b: a and b
    define a_not_b: a but not b
    define ab_or_and_c: (a or b) and c
    define a_not_b_or_c: a but not (b or c)
    define a_and_b_or_c: (a and b) or c
    define a_or_b_not_c: (a or b) but not c
    define parent_viewer: viewer from parent
    define a_not_parent_banned: a but not banned from parent
    define nested: ((a and b) or (c and d)) but not (b and d)
    define direct_and_c: [user] and c
"""

OPS_TUPLES = (
    "doc:1#a@user:anne",
    "doc:1#a@user:bob",
    "doc:1#a@user:dana",
    "doc:1#a@user:fred",
    "doc:1#a@group:g#member",
    "doc:1#b@user:bob",
    "doc:1#b@user:erin",
    "doc:1#b@user:fred",
    "doc:1#c@user:carl",
    "doc:1#c@user:dana",
    "doc:1#c@user:erin",
    "doc:1#c@user:fred",
    "doc:1#d@user:carl",
    "doc:1#d@user:erin",
    "doc:1#direct_and_c@user:anne",
    "doc:1#direct_and_c@user:dana",
    "doc:1#parent@folder:f",
    "group:g#member@user:gina",
    "group:g#member@group:h#member",
    "group:h#member@user:hank",
    "folder:f#viewer@user:ivan",
    "folder:f#banned@user:anne",
    "doc:pub#a@user:*",
)

# Google-Drive-like: folders inherit down any number of levels, groups nest.
DRIVE_DSL = """
model
  schema 1.1

type user

type group
  relations
    define member: [user, group#member]

type folder
  relations
    define parent: [folder]
    define owner: [user]
    define editor: [user, group#member] or owner or editor from parent
    define viewer: [user, user:*, group#member] or editor or viewer from parent

type document
  relations
    define parent: [folder]
    define owner: [user]
    define editor: [user, group#member] or owner or editor from parent
    define viewer: [user, user:*, group#member] or editor or viewer from parent
    define blocked: [user]
    define can_view: viewer but not blocked
    define can_share: owner or editor from parent
"""

DRIVE_TUPLES = (
    "folder:root#owner@user:alice",
    "folder:eng#parent@folder:root",
    "folder:eng#editor@group:eng#member",
    "folder:eng-secret#parent@folder:eng",
    "document:plan#parent@folder:eng-secret",
    "document:plan#viewer@user:bob",
    "document:plan#blocked@user:carol",
    "document:readme#parent@folder:eng",
    "document:public#viewer@user:*",
    "group:eng#member@user:carol",
    "group:eng#member@group:sre#member",
    "group:sre#member@user:dave",
)

# GitHub-like: organizations, repositories, nested teams.
GITHUB_DSL = """
model
  schema 1.1
type user
type team
  relations
    define member: [user, team#member]
type organization
  relations
    define owner: [user]
    define member: [user] or owner
    define repo_admin: [user, organization#member]
    define repo_reader: [user, organization#member]
type repo
  relations
    define owner: [organization]
    define admin: [user, team#member] or repo_admin from owner
    define maintainer: [user, team#member] or admin
    define writer: [user, team#member] or maintainer
    define triager: [user, team#member] or writer
    define reader: [user, team#member, user:*] or triager or repo_reader from owner
"""

GITHUB_TUPLES = (
    "organization:acme#owner@user:olivia",
    "organization:acme#member@user:mike",
    "organization:acme#repo_reader@organization:acme#member",
    "organization:acme#repo_admin@user:alan",
    "repo:api#owner@organization:acme",
    "repo:api#writer@team:backend#member",
    "repo:api#triager@user:tess",
    "team:backend#member@user:will",
    "team:backend#member@team:core#member",
    "team:core#member@user:cora",
    "repo:site#reader@user:*",
)

# Close to what the secrets server needs: secrets in folders, workloads, admins.
SECRETS_DSL = """
model
  schema 1.1
type user
type workload
type group
  relations
    define member: [user, workload, group#member]
type platform
  relations
    define admin: [user]
type folder
  relations
    define platform: [platform]
    define parent: [folder]
    define admin: [user, group#member] or admin from platform or admin from parent
    define writer: [user, group#member] or admin or writer from parent
    define reader: [user, workload, group#member] or writer or reader from parent
type secret
  relations
    define parent: [folder]
    define owner: [user]
    define writer: [user, group#member] or owner or writer from parent
    define reader: [user, workload, group#member] or writer or reader from parent
    define revoked: [user, workload]
    define can_read: reader but not revoked
    define can_rotate: writer and reader
    define can_delete: owner or admin from parent
"""

API_WORKLOAD = "workload:spiffe://example.org/ns/prod/sa/api"

SECRETS_TUPLES = (
    "platform:main#admin@user:root",
    "folder:prod#platform@platform:main",
    "folder:prod/db#parent@folder:prod",
    f"folder:prod/db#reader@{API_WORKLOAD}",
    "folder:prod#writer@group:dbas#member",
    "folder:prod#reader@workload:legacy",
    "group:dbas#member@user:dina",
    "group:dbas#member@group:oncall#member",
    "group:oncall#member@user:olly",
    "secret:prod/db/password#parent@folder:prod/db",
    "secret:prod/db/password#revoked@workload:legacy",
    "secret:prod/db/password#owner@user:sam",
    "secret:staging/token#owner@user:sam",
)

# Cycles: a group inside itself, two groups inside each other, relations defined
# through each other, folders that are each other's parent.
CYCLES_DSL = """
model
  schema 1.1
type user
type group
  relations
    define member: [user, group#member]
type doc
  relations
    define parent: [doc]
    define a: [user] or b
    define b: [user] or a
    define both: a and b
    define viewer: [user] or viewer from parent
"""

CYCLES_TUPLES = (
    "group:loop#member@group:loop#member",
    "group:x#member@group:y#member",
    "group:y#member@group:x#member",
    "group:y#member@user:yan",
    "doc:1#a@user:ann",
    "doc:1#b@user:ben",
    "doc:x#parent@doc:y",
    "doc:y#parent@doc:x",
    "doc:y#viewer@user:vic",
)


@pytest.fixture
def ops() -> World:
    return make_world(OPS_DSL, *OPS_TUPLES)


@pytest.fixture
def drive() -> World:
    return make_world(DRIVE_DSL, *DRIVE_TUPLES)


@pytest.fixture
def github() -> World:
    return make_world(GITHUB_DSL, *GITHUB_TUPLES)


@pytest.fixture
def secrets() -> World:
    return make_world(SECRETS_DSL, *SECRETS_TUPLES)


@pytest.fixture
def cycles() -> World:
    return make_world(CYCLES_DSL, *CYCLES_TUPLES)
