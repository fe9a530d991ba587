"""AuthzService over the real server: models, tuples, checks, revision tokens,
consistency, caching headers, admin-only RPCs, who may ask about the built-in
types, and the dogfooded policy."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from backends import ON_EACH_BACKEND

from secinfra_server.authz import parse_dsl, parse_model
from secinfra_server.policy import BUILTIN_MODEL_ID

from .harness import Client, Response, RunningServer, enrol

TD = "secinfra.local"
ADMIN = f"workload:spiffe://{TD}/secinfra/admin"
APP = f"workload:spiffe://{TD}/workload/app"
OTHER = f"workload:spiffe://{TD}/workload/other"

DOCS_DSL = """model
  schema 1.1

type document
  relations
    define owner: [workload]
    define viewer: [workload, group#member] or owner
"""


def key(text: str) -> dict[str, str]:
    """``object#relation@user`` as a wire TupleKey."""
    left, _, user = text.partition("@")
    obj, _, relation = left.partition("#")
    return {"user": user, "relation": relation, "object": obj}


def write_tuples(client: Client, *writes: str, deletes: tuple[str, ...] = ()) -> Response:
    return client.request(
        "POST",
        "/v1/authz/tuples:write",
        {"writes": [key(t) for t in writes], "deletes": [key(t) for t in deletes]},
    )


def write_model(client: Client, body: dict[str, Any]) -> Response:
    return client.request("POST", "/v1/authz/models", body)


def check(client: Client, tuple_text: str, **extra: Any) -> Response:
    return client.request("POST", "/v1/authz:check", {"tuple_key": key(tuple_text), **extra})


def allowed(client: Client, tuple_text: str, **extra: Any) -> bool:
    resp = check(client, tuple_text, **extra)
    assert resp.status == 200, resp.body
    return bool(resp.json()["allowed"])


def error(resp: Response, status: int, code: str) -> str:
    assert resp.status == status, resp.body
    assert resp.code == code
    return str(resp.json()["error"]["message"])


@pytest.fixture
def workload(server: RunningServer, tmp_path: Path) -> Iterator[Client]:
    identity = enrol(server, tmp_path / "enrol", "/workload/app")
    client = Client(server.port, server.bundle_pem(), identity, tmp_path / "app-client")
    yield client
    client.close()


def audit_rows(server: RunningServer) -> list[tuple[str, str, str]]:
    assert server.server.audit is not None
    server.call(server.server.audit.flush())
    conn = sqlite3.connect(server.config.database_path)
    try:
        return [
            (str(a), str(b), str(c))
            for a, b, c in conn.execute("SELECT actor, action, outcome FROM audit_log")
        ]
    finally:
        conn.close()


# ------------------------------------------------------------------------- models


def test_the_current_model_starts_as_the_builtin_one(admin: Client, workload: Client) -> None:
    resp = workload.request("GET", "/v1/authz/models:current")
    assert resp.status == 200, resp.body
    body = resp.json()
    assert body["id"] == BUILTIN_MODEL_ID
    names = [t["type"] for t in body["model"]["type_definitions"]]
    assert names == ["workload", "group", "system", "folder", "secret", "registration_entry"]
    assert parse_dsl(body["dsl"]) == parse_model(body["model"])


def test_write_a_dsl_model_then_the_same_in_json(admin: Client) -> None:
    resp = write_model(admin, {"dsl": DOCS_DSL})
    assert resp.status == 200, resp.body
    written = resp.json()
    names = [t["type"] for t in written["model"]["type_definitions"]]
    builtin = ["workload", "group", "system", "folder", "secret", "registration_entry"]
    assert names == [*builtin, "document"]
    assert written["id"] != BUILTIN_MODEL_ID
    assert parse_dsl(written["dsl"]) == parse_model(written["model"])
    # Idempotent: the same model again (as DSL, then as JSON) has the same id.
    assert write_model(admin, {"dsl": DOCS_DSL}).json()["id"] == written["id"]
    document = [t for t in written["model"]["type_definitions"] if t["type"] == "document"]
    as_json = {"schema_version": "1.1", "type_definitions": document}
    assert write_model(admin, {"model": as_json}).json()["id"] == written["id"]
    current = admin.request("GET", "/v1/authz/models:current").json()
    assert current == written
    by_id = admin.request("GET", f"/v1/authz/models:current?id={written['id']}").json()
    assert by_id == written
    builtin = admin.request("GET", f"/v1/authz/models:current?id={BUILTIN_MODEL_ID}").json()
    assert builtin["id"] == BUILTIN_MODEL_ID
    missing = admin.request("GET", "/v1/authz/models:current?id=" + "0" * 64)
    error(missing, 404, "not_found")


@pytest.mark.parametrize("builtin", ["workload", "secret", "system"])
def test_a_user_model_colliding_with_a_builtin_type_is_rejected(
    admin: Client, builtin: str
) -> None:
    message = error(
        write_model(admin, {"dsl": DOCS_DSL + f"\ntype {builtin}\n"}), 400, "invalid_argument"
    )
    assert f'type "{builtin}"' in message
    assert "built in" in message
    as_json = {"schema_version": "1.1", "type_definitions": [{"type": builtin}]}
    message = error(write_model(admin, {"model": as_json}), 400, "invalid_argument")
    assert f'type "{builtin}"' in message


@pytest.mark.parametrize(
    ("body", "expect"),
    [
        ({"dsl": "model\n  schema 1.1\ntype doc\n  relations\n    define v: [nobody]\n"}, "line 5"),
        ({"model": {"schema_version": "1.0", "type_definitions": []}}, "schema_version"),
        ({}, "model"),
    ],
)
def test_malformed_models_are_invalid_argument(
    admin: Client, body: dict[str, Any], expect: str
) -> None:
    message = error(write_model(admin, body), 400, "invalid_argument")
    assert message.startswith("secinfra: authz: ")
    assert expect in message


# ------------------------------------------------------------------------- tuples


@ON_EACH_BACKEND
def test_write_tuples_then_check(admin: Client) -> None:
    assert write_model(admin, {"dsl": DOCS_DSL}).status == 200
    resp = write_tuples(
        admin,
        "document:plan#viewer@group:eng#member",
        f"group:eng#member@{APP}",
        f"document:roadmap#owner@{OTHER}",
    )
    assert resp.status == 200, resp.body
    revision = resp.json()["revision"]
    assert len(revision) == 20
    assert revision.isdigit()
    assert allowed(admin, f"document:plan#viewer@{APP}")
    assert not allowed(admin, f"document:plan#viewer@{OTHER}")
    assert allowed(admin, f"document:roadmap#viewer@{OTHER}")
    assert not allowed(admin, f"document:roadmap#owner@{APP}")
    # Set semantics: writing again changes nothing, not even the revision.
    again = write_tuples(admin, f"group:eng#member@{APP}").json()["revision"]
    assert again == revision
    deleted = write_tuples(admin, deletes=(f"group:eng#member@{APP}",)).json()["revision"]
    assert int(deleted) == int(revision) + 1
    assert not allowed(admin, f"document:plan#viewer@{APP}")
    assert write_tuples(admin, deletes=(f"group:eng#member@{APP}",)).json()["revision"] == deleted


@ON_EACH_BACKEND
def test_write_tuples_is_atomic_and_names_the_bad_tuple(admin: Client) -> None:
    before = write_tuples(admin).json()["revision"]
    resp = write_tuples(
        admin,
        f"folder:payments/#reader@{APP}",
        f"folder:payments/#owner@{APP}",
    )
    message = error(resp, 400, "invalid_argument")
    assert "writes[1]" in message
    assert 'type "folder"' in message
    assert 'relation "owner"' in message
    assert resp.json()["error"]["details"]["field"] == "writes[1]"
    assert not allowed(admin, f"secret:payments/x#reader@{APP}")
    assert write_tuples(admin).json()["revision"] == before


@pytest.mark.parametrize(
    ("tuple_text", "expect"),
    [
        (f"document:x#viewer@{APP}", 'type "document"'),  # not in the built-in model
        ("secret:payments/x#reader@workload:app", "SPIFFE ID"),
        (f"folder:payments#reader@{APP}", 'ending in "/"'),
        ("secret:payments/x#parent@folder:payments/", "structural"),
        ("secret:payments/x#reader@group:g", "not allowed"),
        ("not a tuple#x@y", "writes[0]"),
    ],
)
def test_write_tuples_rejects_what_does_not_fit(
    admin: Client, tuple_text: str, expect: str
) -> None:
    message = error(write_tuples(admin, tuple_text), 400, "invalid_argument")
    assert expect in message
    assert "writes[0]" in message


def test_a_tuple_in_writes_and_deletes_is_rejected(admin: Client) -> None:
    resp = write_tuples(admin, f"folder:a/#reader@{APP}", deletes=(f"folder:a/#reader@{APP}",))
    assert "deletes" in error(resp, 400, "invalid_argument")


@ON_EACH_BACKEND
def test_read_tuples_with_filters_and_pages(admin: Client) -> None:
    grants = [f"folder:team{i}/#reader@{APP}" for i in range(5)]
    assert write_tuples(admin, *grants, f"folder:team0/#writer@{OTHER}").status == 200

    def read_all(query: str, page_size: int) -> list[str]:
        seen: list[str] = []
        token = ""
        while True:
            path = f"/v1/authz/tuples?page_size={page_size}{query}"
            if token:
                path += f"&page_token={token}"
            resp = admin.request("GET", path)
            assert resp.status == 200, resp.body
            body = resp.json()
            assert len(body["tuples"]) <= page_size
            seen.extend(f"{t['object']}#{t['relation']}@{t['user']}" for t in body["tuples"])
            token = body["next_page_token"]
            if not token:
                return seen

    everything = read_all("", 2)
    assert f"system:root#admin@{ADMIN}" in everything  # the bootstrap grant
    assert len(everything) == 7
    assert read_all(f"&user={APP}", 2) == sorted(grants)
    assert read_all("&object=folder:", 4) == sorted([*grants, f"folder:team0/#writer@{OTHER}"])
    assert read_all("&object=folder:team0/&relation=writer", 10) == [
        f"folder:team0/#writer@{OTHER}"
    ]
    first = admin.request("GET", "/v1/authz/tuples?page_size=1").json()["next_page_token"]
    error(
        admin.request("GET", f"/v1/authz/tuples?relation=reader&page_token={first}"),
        400,
        "invalid_argument",
    )
    error(admin.request("GET", "/v1/authz/tuples?page_token=garbage!"), 400, "invalid_argument")
    error(admin.request("GET", "/v1/authz/tuples?object=folder"), 400, "invalid_argument")


# ------------------------------------------------------------- revisions, caching


@ON_EACH_BACKEND
def test_revision_tokens_give_read_your_writes(admin: Client) -> None:
    revision = write_tuples(admin, f"folder:payments/#reader@{APP}").json()["revision"]
    resp = check(
        admin,
        f"secret:payments/db/password#reader@{APP}",
        consistency="at_least_as_fresh",
        revision=revision,
    )
    assert resp.status == 200, resp.body
    assert resp.json() == {"allowed": True, "revision": revision}
    newer = write_tuples(admin, f"folder:other/#reader@{APP}").json()["revision"]
    assert int(newer) > int(revision)
    later = check(
        admin, f"secret:x#reader@{APP}", consistency="at_least_as_fresh", revision=revision
    )
    assert later.json()["revision"] == newer


def test_revision_tokens_are_validated(admin: Client) -> None:
    current = write_tuples(admin, f"folder:a/#reader@{APP}").json()["revision"]
    future = f"{int(current) + 1:020d}"
    tuple_text = f"secret:a/b#reader@{APP}"
    message = error(
        check(admin, tuple_text, consistency="at_least_as_fresh", revision=future),
        412,
        "failed_precondition",
    )
    assert "revision" in message
    for bad in ("abc", "-1", "1" * 21, "1.5"):
        resp = check(admin, tuple_text, consistency="at_least_as_fresh", revision=bad)
        error(resp, 400, "invalid_argument")
    error(check(admin, tuple_text, consistency="at_least_as_fresh"), 400, "invalid_argument")
    assert allowed(admin, tuple_text, consistency="minimize_latency")
    assert allowed(admin, tuple_text, consistency="at_least_as_fresh", revision="1")


def test_checks_carry_cache_control(admin: Client) -> None:
    resp = check(admin, f"secret:a#reader@{APP}")
    assert resp.headers["cache-control"] == "private, max-age=10"
    batch = admin.request(
        "POST",
        "/v1/authz:batch-check",
        {"checks": [{"correlation_id": "a", "tuple_key": key(f"secret:a#reader@{APP}")}]},
    )
    assert batch.headers["cache-control"] == "private, max-age=10"


def test_check_max_age_is_configurable(tmp_path: Path) -> None:
    running = RunningServer(tmp_path / "data", authz_check_max_age_seconds=3).start()
    client = Client(running.port, running.bundle_pem(), running.admin, tmp_path / "admin")
    try:
        resp = check(client, f"secret:a#reader@{APP}")
        assert resp.headers["cache-control"] == "private, max-age=3"
    finally:
        client.close()
        running.stop()


# ------------------------------------------------------------------ other questions


@ON_EACH_BACKEND
def test_batch_check(admin: Client) -> None:
    assert write_tuples(admin, f"folder:payments/#writer@{APP}").status == 200
    checks = [
        {"correlation_id": "read", "tuple_key": key(f"secret:payments/a#reader@{APP}")},
        {"correlation_id": "other", "tuple_key": key(f"secret:payments/a#reader@{OTHER}")},
        {"correlation_id": "no-type", "tuple_key": key(f"nothing:x#reader@{APP}")},
        {"correlation_id": "malformed", "tuple_key": key("bad")},
    ]
    resp = admin.request("POST", "/v1/authz:batch-check", {"checks": checks})
    assert resp.status == 200, resp.body
    results = resp.json()["results"]
    assert results["read"] == {"allowed": True, "error": ""}
    assert results["other"] == {"allowed": False, "error": ""}
    assert results["no-type"]["allowed"] is False
    assert 'type "nothing"' in results["no-type"]["error"]
    assert results["malformed"]["allowed"] is False
    assert "checks[3]" in results["malformed"]["error"]
    assert len(resp.json()["revision"]) == 20


def test_batch_check_limits(admin: Client) -> None:
    def batch(ids: list[str]) -> Response:
        checks = [{"correlation_id": i, "tuple_key": key(f"secret:a#reader@{APP}")} for i in ids]
        return admin.request("POST", "/v1/authz:batch-check", {"checks": checks})

    assert batch([f"c{i}" for i in range(100)]).status == 200
    assert "100" in error(batch([f"c{i}" for i in range(101)]), 400, "invalid_argument")
    error(batch(["same", "same"]), 400, "invalid_argument")
    error(batch(["has space"]), 400, "invalid_argument")


@ON_EACH_BACKEND
def test_list_objects(admin: Client) -> None:
    assert write_model(admin, {"dsl": DOCS_DSL}).status == 200
    assert (
        write_tuples(
            admin,
            f"document:a#owner@{APP}",
            "document:b#viewer@group:eng#member",
            f"group:eng#member@{APP}",
            f"document:c#owner@{OTHER}",
            f"folder:payments/db/#reader@{APP}",
        ).status
        == 200
    )
    body = {"type": "document", "relation": "viewer", "user": APP}
    resp = admin.request("POST", "/v1/authz:list-objects", body)
    assert resp.status == 200, resp.body
    assert resp.json() == {"objects": ["document:a", "document:b"], "next_page_token": ""}
    folders = admin.request(
        "POST", "/v1/authz:list-objects", {"type": "folder", "relation": "reader", "user": APP}
    )
    assert folders.json() == {"objects": ["folder:payments/db/"], "next_page_token": ""}
    bad = admin.request("POST", "/v1/authz:list-objects", {**body, "type": "nothing"})
    error(bad, 400, "invalid_argument")


@ON_EACH_BACKEND
def test_list_objects_pages_never_cut_silently(admin: Client) -> None:
    assert write_model(admin, {"dsl": DOCS_DSL}).status == 200
    # Seven documents the user can view, two it cannot (one between them in id order).
    names = [f"p{i}" for i in range(7)]
    owned = [f"document:{n}#owner@{APP}" for n in names]
    others = (f"document:p3x#owner@{OTHER}", f"document:z#owner@{OTHER}")
    assert write_tuples(admin, *owned, *others).status == 200
    body: dict[str, Any] = {"type": "document", "relation": "viewer", "user": APP, "page_size": 3}
    pages: list[list[str]] = []
    token = ""
    while True:
        resp = admin.request("POST", "/v1/authz:list-objects", {**body, "page_token": token})
        assert resp.status == 200, resp.body
        pages.append(resp.json()["objects"])
        token = resp.json()["next_page_token"]
        if not token:
            break
        assert len(pages) < 5, pages
    assert pages == [[f"document:{n}" for n in names[i : i + 3]] for i in (0, 3, 6)]
    # A full last page says there is nothing after it: no empty page follows.
    exact = admin.request("POST", "/v1/authz:list-objects", {**body, "page_size": 7}).json()
    assert exact == {"objects": [f"document:{n}" for n in names], "next_page_token": ""}

    first = admin.request("POST", "/v1/authz:list-objects", body).json()["next_page_token"]
    other = {**body, "user": OTHER, "page_token": first}
    assert "different query" in error(
        admin.request("POST", "/v1/authz:list-objects", other), 400, "invalid_argument"
    )
    junk = {**body, "page_token": "not-a-token"}
    error(admin.request("POST", "/v1/authz:list-objects", junk), 400, "invalid_argument")
    for size in (-1, 1001):
        too = {**body, "page_size": size}
        resp = admin.request("POST", "/v1/authz:list-objects", too)
        assert "page_size" in error(resp, 400, "invalid_argument")


@ON_EACH_BACKEND
def test_expand_explains_folder_inheritance(admin: Client) -> None:
    assert write_tuples(admin, f"secret:payments/db/password#reader@{APP}").status == 200
    resp = admin.request(
        "POST", "/v1/authz:expand", {"object": "secret:payments/db/password", "relation": "reader"}
    )
    assert resp.status == 200, resp.body
    root = resp.json()["tree"]["root"]
    assert root["name"] == "secret:payments/db/password#reader"
    direct, writer, inherited = root["union"]["nodes"]
    assert direct["leaf"]["users"]["users"] == [APP]
    assert writer["leaf"]["computed"]["userset"] == "secret:payments/db/password#writer"
    assert inherited["leaf"]["tupleToUserset"]["computed"] == [
        {"userset": "folder:payments/#reader"},
        {"userset": "folder:payments/db/#reader"},
    ]


def test_too_deep_resolution_is_failed_precondition(admin: Client) -> None:
    chain = [f"group:g{i}#member@group:g{i + 1}#member" for i in range(40)]
    assert write_tuples(admin, *chain, f"group:g40#member@{APP}").status == 200
    message = error(check(admin, f"group:g0#member@{APP}"), 412, "failed_precondition")
    assert message.startswith("secinfra: authz: resolution: too complex")


# ----------------------------------------------------------------- who may do what


def test_non_admins_may_ask_but_not_change(
    server: RunningServer, admin: Client, workload: Client
) -> None:
    denied = [
        write_tuples(workload, f"system:root#admin@{APP}"),
        write_model(workload, {"dsl": DOCS_DSL}),
        workload.request("GET", "/v1/authz/tuples"),
    ]
    for resp in denied:
        message = error(resp, 403, "permission_denied")
        assert message.startswith("secinfra: authz: ")
    # A workload may ask about itself on a built-in type (other users: see below).
    assert not allowed(workload, f"system:root#admin@{APP}")
    assert workload.request("GET", "/v1/authz/models:current").status == 200
    rows = audit_rows(server)
    assert [r for r in rows if r[2] == "denied"] == [
        (APP[len("workload:") :], "authz.write_tuples", "denied"),
        (APP[len("workload:") :], "authz.write_authorization_model", "denied"),
        (APP[len("workload:") :], "authz.read_tuples", "denied"),
    ]


def test_granting_admin_through_tuples_makes_an_admin(
    server: RunningServer, admin: Client, workload: Client
) -> None:
    assert (
        write_tuples(admin, "system:root#admin@group:ops#member", f"group:ops#member@{APP}").status
        == 200
    )
    # The workload may now write tuples, and even hand its admin rights on.
    assert write_tuples(workload, f"folder:payments/#reader@{OTHER}").status == 200
    assert (
        workload.request("POST", "/v1/join-tokens", {"spiffe_id": f"spiffe://{TD}/w/b"}).status
        == 200
    )
    actions = [(a, b) for a, b, c in audit_rows(server) if c == "allowed"]
    assert ("secinfra-server", "authz.bootstrap_admin") in actions
    assert (APP[len("workload:") :], "authz.write_tuples") in actions


def test_the_dogfooded_policy_follows_folder_grants(admin: Client) -> None:
    """The built-in model answers for the server's own decisions: Check shows them."""
    assert write_tuples(admin, f"folder:payments/#reader@{APP}").status == 200
    assert allowed(admin, f"secret:payments/db/password#reader@{APP}")
    assert not allowed(admin, f"secret:payments/db/password#writer@{APP}")
    assert not allowed(admin, f"secret:billing/key#reader@{APP}")
    assert allowed(admin, f"secret:billing/key#writer@{ADMIN}")


# ------------------------------------------------- who may ask about built-in types

SECRET = "secret:payments/db/password"
OWN_ONLY = "may only ask about the caller itself"


def denied_rows(server: RunningServer) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(actor, action, resource, details) of every denied audit entry, in order."""
    assert server.server.audit is not None
    server.call(server.server.audit.flush())
    conn = sqlite3.connect(server.config.database_path)
    try:
        rows = conn.execute(
            "SELECT actor, action, resource, details FROM audit_log"
            " WHERE outcome = 'denied' ORDER BY seq"
        ).fetchall()
    finally:
        conn.close()
    return [(str(a), str(b), str(c), json.loads(d)) for a, b, c, d in rows]


def list_objects(client: Client, type_name: str, relation: str, user: str) -> Response:
    body = {"type": type_name, "relation": relation, "user": user}
    return client.request("POST", "/v1/authz:list-objects", body)


def expand(client: Client, obj: str, relation: str) -> Response:
    return client.request("POST", "/v1/authz:expand", {"object": obj, "relation": relation})


def test_a_workload_may_ask_about_itself_on_a_secret(admin: Client, workload: Client) -> None:
    assert write_tuples(admin, f"folder:payments/#reader@{APP}").status == 200
    assert allowed(workload, f"{SECRET}#reader@{APP}")
    assert not allowed(workload, f"{SECRET}#writer@{APP}")
    assert not allowed(workload, f"secret:billing/key#reader@{APP}")
    assert allowed(workload, f"folder:payments/#reader@{APP}")


@pytest.mark.parametrize(
    "question",
    [
        f"{SECRET}#reader@{OTHER}",
        f"{SECRET}#reader@{ADMIN}",
        f"folder:payments/#reader@{OTHER}",
        f"system:root#admin@{ADMIN}",
        f"group:eng#member@{OTHER}",
        f"{SECRET}#reader@group:eng#member",  # a userset is not the caller itself
        f"{SECRET}#reader@workload:*",  # nor is a wildcard
    ],
)
def test_other_users_on_builtin_types_are_refused_for_a_workload_but_not_for_the_admin(
    server: RunningServer, admin: Client, workload: Client, question: str
) -> None:
    assert write_tuples(admin, f"folder:payments/#reader@{OTHER}").status == 200
    message = error(check(workload, question), 403, "permission_denied")
    obj = question.partition("#")[0]
    assert message == (
        f"secinfra: authz: check: questions about {obj} {OWN_ONLY} ({APP})"
        " unless the caller is an admin"
    )
    admin_answer = check(admin, question)
    assert admin_answer.status == 200, admin_answer.body
    assert [r[:3] for r in denied_rows(server)] == [(APP[len("workload:") :], "authz.check", obj)]


def test_the_refusal_is_audited_with_what_was_asked(
    server: RunningServer, workload: Client
) -> None:
    error(check(workload, f"{SECRET}#writer@{OTHER}"), 403, "permission_denied")
    ((actor, action, resource, details),) = denied_rows(server)
    assert (actor, action, resource) == (APP[len("workload:") :], "authz.check", SECRET)
    assert details["user"] == OTHER
    assert details["relation"] == "writer"
    assert OWN_ONLY in details["reason"]


def test_questions_about_application_types_stay_open(
    server: RunningServer, admin: Client, workload: Client
) -> None:
    assert write_model(admin, {"dsl": DOCS_DSL}).status == 200
    assert (
        write_tuples(
            admin,
            f"document:plan#owner@{OTHER}",
            "document:roadmap#viewer@group:eng#member",
            f"group:eng#member@{OTHER}",
        ).status
        == 200
    )
    assert allowed(workload, f"document:plan#viewer@{OTHER}")
    assert allowed(workload, f"document:roadmap#viewer@{OTHER}")
    assert not allowed(workload, f"document:plan#owner@{APP}")
    listed = list_objects(workload, "document", "viewer", OTHER)
    assert listed.status == 200, listed.body
    assert listed.json()["objects"] == ["document:plan", "document:roadmap"]
    tree = expand(workload, "document:plan", "owner")
    assert tree.status == 200, tree.body
    assert tree.json()["tree"]["root"]["leaf"]["users"]["users"] == [OTHER]
    assert denied_rows(server) == []


def test_batch_check_refuses_only_the_items_the_caller_may_not_ask(
    server: RunningServer, admin: Client, workload: Client
) -> None:
    assert write_model(admin, {"dsl": DOCS_DSL}).status == 200
    assert (
        write_tuples(
            admin,
            f"folder:payments/#reader@{APP}",
            f"folder:payments/#reader@{OTHER}",
            f"document:plan#owner@{OTHER}",
        ).status
        == 200
    )
    checks = [
        {"correlation_id": "mine", "tuple_key": key(f"{SECRET}#reader@{APP}")},
        {"correlation_id": "theirs", "tuple_key": key(f"{SECRET}#reader@{OTHER}")},
        {"correlation_id": "app", "tuple_key": key(f"document:plan#viewer@{OTHER}")},
        {"correlation_id": "malformed", "tuple_key": key("bad")},
        {"correlation_id": "admin", "tuple_key": key(f"system:root#admin@{ADMIN}")},
    ]
    resp = workload.request("POST", "/v1/authz:batch-check", {"checks": checks})
    assert resp.status == 200, resp.body
    results = resp.json()["results"]
    assert results["mine"] == {"allowed": True, "error": ""}
    assert results["app"] == {"allowed": True, "error": ""}
    assert results["malformed"]["allowed"] is False
    assert "checks[3]" in results["malformed"]["error"]
    assert results["theirs"] == {
        "allowed": False,
        "error": f"secinfra: authz: checks[1]: questions about {SECRET} {OWN_ONLY}"
        f" ({APP}) unless the caller is an admin",
    }
    assert results["admin"]["allowed"] is False
    assert results["admin"]["error"].startswith("secinfra: authz: checks[4]: ")
    assert OWN_ONLY in results["admin"]["error"]
    rows = denied_rows(server)
    assert [r[:3] for r in rows] == [
        (APP[len("workload:") :], "authz.batch_check", SECRET),
        (APP[len("workload:") :], "authz.batch_check", "system:root"),
    ]
    assert rows[0][3]["correlation_id"] == "theirs"
    # The admin may ask every item.
    by_admin = admin.request("POST", "/v1/authz:batch-check", {"checks": checks}).json()
    assert by_admin["results"]["theirs"] == {"allowed": True, "error": ""}
    assert by_admin["results"]["admin"] == {"allowed": True, "error": ""}


def test_list_objects_on_a_builtin_type_only_for_the_caller_itself(
    server: RunningServer, admin: Client, workload: Client
) -> None:
    assert (
        write_tuples(
            admin, f"folder:payments/#reader@{APP}", f"folder:billing/#reader@{OTHER}"
        ).status
        == 200
    )
    assert write_tuples(admin, f"{SECRET}#writer@{OTHER}").status == 200
    mine = list_objects(workload, "folder", "reader", APP)
    assert mine.status == 200, mine.body
    assert mine.json()["objects"] == ["folder:payments/"]
    message = error(list_objects(workload, "secret", "writer", OTHER), 403, "permission_denied")
    assert message == (
        f"secinfra: authz: list_objects: questions about objects of type secret {OWN_ONLY}"
        f" ({APP}) unless the caller is an admin"
    )
    theirs = list_objects(admin, "secret", "writer", OTHER)
    assert theirs.status == 200, theirs.body
    assert theirs.json() == {"objects": [SECRET], "next_page_token": ""}
    # Syntax is still checked first.
    error(list_objects(workload, "secret", "reader", "not a user"), 400, "invalid_argument")
    ((actor, action, resource, details),) = denied_rows(server)
    assert (actor, action, resource) == (APP[len("workload:") :], "authz.list_objects", "secret:")
    assert details["user"] == OTHER


def test_expand_of_a_builtin_object_is_for_admins_only(
    server: RunningServer, admin: Client, workload: Client
) -> None:
    assert write_tuples(admin, f"{SECRET}#reader@{APP}").status == 200
    for obj, relation in [(SECRET, "reader"), ("system:root", "admin"), ("group:eng", "member")]:
        message = error(expand(workload, obj, relation), 403, "permission_denied")
        assert message.startswith(f"secinfra: authz: expand: expand of {obj} ")
        assert "only an admin (admin on system:root)" in message
    # Syntax is still checked first.
    error(expand(workload, "no-colon", "reader"), 400, "invalid_argument")
    tree = expand(admin, SECRET, "reader")
    assert tree.status == 200, tree.body
    assert [r[1:3] for r in denied_rows(server)] == [
        ("authz.expand", SECRET),
        ("authz.expand", "system:root"),
        ("authz.expand", "group:eng"),
    ]


# ------------------------------------------------------------------- contextual tuples


def test_contextual_tuples_hold_for_one_question_and_are_never_stored(admin: Client) -> None:
    assert write_model(admin, {"dsl": DOCS_DSL}).status == 200
    assert write_tuples(admin, f"group:eng#member@{APP}").status == 200
    viewer = f"document:plan#viewer@{APP}"
    via_group = [key("document:plan#viewer@group:eng#member")]
    assert not allowed(admin, viewer)
    assert allowed(admin, viewer, contextual_tuples=via_group)
    assert not allowed(admin, viewer)  # nothing was written
    assert admin.request("GET", "/v1/authz/tuples?object=document:plan").json()["tuples"] == []

    objects = {"type": "document", "relation": "viewer", "user": APP}
    listed = admin.request(
        "POST", "/v1/authz:list-objects", {**objects, "contextual_tuples": via_group}
    )
    assert listed.json()["objects"] == ["document:plan"]
    assert admin.request("POST", "/v1/authz:list-objects", objects).json()["objects"] == []

    tree = admin.request(
        "POST",
        "/v1/authz:expand",
        {"object": "document:plan", "relation": "viewer", "contextual_tuples": via_group},
    ).json()["tree"]
    assert "group:eng#member" in json.dumps(tree)

    checks = [
        {"correlation_id": "with", "tuple_key": key(viewer), "contextual_tuples": via_group},
        {"correlation_id": "without", "tuple_key": key(viewer)},
        {
            "correlation_id": "bad",
            "tuple_key": key(viewer),
            "contextual_tuples": [key(f"document:plan#editor@{APP}")],
        },
    ]
    results = admin.request("POST", "/v1/authz:batch-check", {"checks": checks}).json()["results"]
    assert results["with"] == {"allowed": True, "error": ""}
    assert results["without"] == {"allowed": False, "error": ""}
    assert not results["bad"]["allowed"]
    assert "checks[2].contextual_tuples[0]" in results["bad"]["error"]
    assert "editor" in results["bad"]["error"]


def test_contextual_tuples_are_validated_like_writes(admin: Client) -> None:
    assert write_model(admin, {"dsl": DOCS_DSL}).status == 200
    viewer = key(f"document:plan#viewer@{APP}")

    def ask(contextual: list[dict[str, str]]) -> Response:
        body = {"tuple_key": viewer, "contextual_tuples": contextual}
        return admin.request("POST", "/v1/authz:check", body)

    undefined = ask([key(f"document:plan#editor@{APP}")])
    assert "contextual_tuples[0]" in error(undefined, 400, "invalid_argument")
    assert undefined.json()["error"]["details"]["field"] == "contextual_tuples[0]"
    wrong_user_type = ask([key("document:plan#owner@group:eng#member")])
    error(wrong_user_type, 400, "invalid_argument")
    malformed = ask([{"user": APP, "relation": "viewer", "object": "no-colon"}])
    error(malformed, 400, "invalid_argument")
    many = [key(f"document:d{i}#viewer@{APP}") for i in range(101)]
    assert "at most 100" in error(ask(many), 400, "invalid_argument")
    assert ask(many[:100]).status == 200


def test_contextual_tuples_on_builtin_types_need_an_admin(
    server: RunningServer, admin: Client, workload: Client
) -> None:
    secret = key(f"secret:payments/db#reader@{APP}")
    body = {"tuple_key": secret, "contextual_tuples": [secret]}
    message = error(workload.request("POST", "/v1/authz:check", body), 403, "permission_denied")
    assert "contextual_tuples[0]" in message
    assert "built-in type secret" in message
    assert (APP[len("workload:") :], "authz.check", "denied") in audit_rows(server)
    # Nothing else a workload may ask changes: its own question, no contextual tuples.
    plain = workload.request("POST", "/v1/authz:check", {"tuple_key": secret})
    assert plain.status == 200
    assert plain.json()["allowed"] is False
    assert allowed(admin, f"secret:payments/db#reader@{APP}", contextual_tuples=[secret])
    # In a batch the item alone is refused, named by its field; the others answer.
    checks = [
        {"correlation_id": "ctx", "tuple_key": secret, "contextual_tuples": [secret]},
        {"correlation_id": "plain", "tuple_key": secret},
    ]
    batch = workload.request("POST", "/v1/authz:batch-check", {"checks": checks}).json()
    assert batch["results"]["plain"] == {"allowed": False, "error": ""}
    assert not batch["results"]["ctx"]["allowed"]
    assert "checks[0].contextual_tuples[0]" in batch["results"]["ctx"]["error"]
    assert "built-in type secret" in batch["results"]["ctx"]["error"]


# -------------------------------------------------------------------------- list users


def list_users(client: Client, obj: str, relation: str, user_filter: str, **extra: Any) -> Response:
    body = {"object": obj, "relation": relation, "user_filter": user_filter, **extra}
    return client.request("POST", "/v1/authz:list-users", body)


@ON_EACH_BACKEND
def test_list_users(admin: Client, workload: Client) -> None:
    assert write_model(admin, {"dsl": DOCS_DSL}).status == 200
    written = write_tuples(
        admin,
        f"document:a#owner@{APP}",
        "document:a#viewer@group:eng#member",
        f"group:eng#member@{OTHER}",
    )
    assert written.status == 200
    users = list_users(workload, "document:a", "viewer", "workload")
    assert users.status == 200, users.body
    assert users.json() == {"users": sorted([APP, OTHER]), "next_page_token": ""}
    groups = list_users(workload, "document:a", "viewer", "group#member").json()
    assert groups["users"] == ["group:eng#member"]
    with_context = list_users(
        workload,
        "document:b",
        "viewer",
        "workload",
        contextual_tuples=[key(f"document:b#viewer@{OTHER}")],
    )
    assert with_context.json()["users"] == [OTHER]

    first = list_users(workload, "document:a", "viewer", "workload", page_size=1).json()
    assert first["users"] == [sorted([APP, OTHER])[0]]
    rest = list_users(
        workload, "document:a", "viewer", "workload", page_token=first["next_page_token"]
    ).json()
    assert rest == {"users": [sorted([APP, OTHER])[1]], "next_page_token": ""}
    other_query = list_users(
        workload, "document:a", "owner", "workload", page_token=first["next_page_token"]
    )
    assert "different query" in error(other_query, 400, "invalid_argument")

    error(list_users(workload, "document:a", "viewer", "robot"), 400, "invalid_argument")
    error(list_users(workload, "document:a", "viewer", "group#boss"), 400, "invalid_argument")
    error(list_users(workload, "nocolon", "viewer", "workload"), 400, "invalid_argument")


def test_list_users_of_builtin_objects_is_for_admins(
    server: RunningServer, admin: Client, workload: Client
) -> None:
    assert write_tuples(admin, f"secret:payments/db#reader@{APP}").status == 200
    message = error(
        list_users(workload, "secret:payments/db", "reader", "workload"), 403, "permission_denied"
    )
    assert "only an admin" in message
    assert (APP[len("workload:") :], "authz.list_users", "denied") in audit_rows(server)
    listed = list_users(admin, "secret:payments/db", "reader", "workload").json()["users"]
    assert APP in listed


# ---------------------------------------------------------------------- model versions


EDITOR_DSL = DOCS_DSL + "    define editor: [workload]\n"


@ON_EACH_BACKEND
def test_model_versions_are_listed_and_each_can_answer(admin: Client, workload: Client) -> None:
    first = write_model(admin, {"dsl": DOCS_DSL}).json()["id"]
    time.sleep(0.005)  # listed by write time (ms); a tie would be ordered by id
    second = write_model(admin, {"dsl": EDITOR_DSL}).json()["id"]
    listed = workload.request("GET", "/v1/authz/models").json()
    assert [m["id"] for m in listed["models"]][:2] == [second, first]
    assert listed["current_id"] == second
    assert "define editor" in listed["models"][0]["dsl"]
    page = workload.request("GET", "/v1/authz/models?page_size=1").json()
    assert [m["id"] for m in page["models"]] == [second]
    rest = workload.request(
        "GET", f"/v1/authz/models?page_size=1&page_token={page['next_page_token']}"
    ).json()
    assert [m["id"] for m in rest["models"]] == [first]

    editor = f"document:a#editor@{APP}"
    # The current version knows editor; the first does not, and says so.
    assert write_tuples(admin, editor).status == 200
    assert allowed(admin, editor)
    assert allowed(admin, editor, authorization_model_id=second)
    old = check(admin, editor, authorization_model_id=first)
    assert "editor" in error(old, 400, "invalid_argument")
    refused = admin.request(
        "POST",
        "/v1/authz/tuples:write",
        {"writes": [key(f"document:b#editor@{APP}")], "authorization_model_id": first},
    )
    error(refused, 400, "invalid_argument")
    objects = {"type": "document", "relation": "viewer", "user": APP}
    for path, body in (
        ("/v1/authz:list-objects", objects),
        ("/v1/authz:expand", {"object": "document:a", "relation": "viewer"}),
        (
            "/v1/authz:list-users",
            {"object": "document:a", "relation": "viewer", "user_filter": "workload"},
        ),
    ):
        assert admin.request("POST", path, {**body, "authorization_model_id": first}).status == 200
    unknown = check(admin, editor, authorization_model_id="f" * 64)
    assert "ListAuthorizationModels" in error(unknown, 404, "not_found")
    assert unknown.json()["error"]["details"]["field"] == "authorization_model_id"
    bad = workload.request("GET", "/v1/authz/models?page_token=junk")
    error(bad, 400, "invalid_argument")
    error(workload.request("GET", "/v1/authz/models?page_size=101"), 400, "invalid_argument")
