"""SecretsService over real TLS against a real server and SQLite file (the
core of it on PostgreSQL too)."""

from __future__ import annotations

import base64
import re
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from backends import ON_EACH_BACKEND

from secinfra_server import _secrets_api as secrets_api
from secinfra_server import audit
from secinfra_server.crypto import load_audit_key
from secinfra_server.policy import AccessPolicy, AuthzEngine
from secinfra_server.server import Server

from .harness import Client, Response, RunningServer, enrol


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def put(client: Client, name: str, value: bytes, **fields: Any) -> Response:
    return client.request("PUT", f"/v1/secrets/{name}", {"value": b64(value), **fields})


def get(client: Client, name: str, version: int = 0, **headers: str) -> Response:
    path = f"/v1/secrets/{name}" + (f"?version={version}" if version else "")
    return client.request("GET", path, headers=headers)


def value_of(response: Response) -> bytes:
    assert response.status == 200, response.body
    return base64.b64decode(response.json()["value"])


def metadata(client: Client, name: str) -> dict[str, Any]:
    response = client.request("GET", f"/v1/secrets/{name}:metadata")
    assert response.status == 200, response.body
    doc: dict[str, Any] = response.json()
    return doc


def states(client: Client, name: str) -> dict[int, str]:
    return {v["version"]: v["state"] for v in metadata(client, name)["versions"]}


def audit_rows(server: RunningServer) -> list[tuple[str, str, str, str, str]]:
    """The audit log (actor, action, resource, outcome, details), once the server stopped."""
    conn = sqlite3.connect(server.config.database_path)
    try:
        result = audit.verify(conn, load_audit_key(server.config.audit_key_path))
        assert result.ok, result.reason
        lost = server.server.metrics.registry.get_sample_value("secinfra_audit_entries_lost_total")
        assert lost == 0
        return conn.execute(
            "SELECT actor, action, resource, outcome, details FROM audit_log ORDER BY seq"
        ).fetchall()
    finally:
        conn.close()


# -- put / get / versions ------------------------------------------------------------------


@ON_EACH_BACKEND
def test_put_then_get_round_trips_bytes(admin: Client) -> None:
    value = bytes(range(256)) * 3
    created = put(admin, "payments/db/password", value)
    assert created.status == 200, created.body
    info = created.json()
    assert info["name"] == "payments/db/password"
    assert info["version"] == 1
    assert info["create_time"].endswith("Z")
    read = get(admin, "payments/db/password")
    assert value_of(read) == value
    assert read.json()["version"] == 1
    assert read.json()["create_time"] == info["create_time"]


@ON_EACH_BACKEND
def test_every_write_makes_a_new_version_and_old_ones_stay_readable(admin: Client) -> None:
    for n in range(1, 4):
        assert put(admin, "app/key", f"v{n}".encode()).json()["version"] == n
    assert value_of(get(admin, "app/key")) == b"v3"
    assert value_of(get(admin, "app/key", 1)) == b"v1"
    assert value_of(get(admin, "app/key", 2)) == b"v2"
    missing = get(admin, "app/key", 9)
    assert missing.status == 404
    assert missing.code == "not_found"
    assert "no version 9" in missing.json()["error"]["message"]


def test_empty_value_is_a_value(admin: Client) -> None:
    assert put(admin, "empty", b"").status == 200
    assert value_of(get(admin, "empty")) == b""


def test_missing_secret_is_404(admin: Client) -> None:
    response = get(admin, "nope")
    assert response.status == 404
    assert response.json()["error"]["message"] == "secinfra: secrets: secret 'nope' does not exist"


@ON_EACH_BACKEND
def test_check_and_set_zero_means_must_not_exist(admin: Client) -> None:
    assert put(admin, "cas", b"first", if_version=0).json()["version"] == 1
    again = put(admin, "cas", b"second", if_version=0)
    assert again.status == 412
    assert again.code == "failed_precondition"
    assert again.json()["error"]["details"] == {"current_version": 1}
    assert value_of(get(admin, "cas")) == b"first"


@ON_EACH_BACKEND
def test_check_and_set_with_a_version(admin: Client) -> None:
    put(admin, "cas", b"one")
    put(admin, "cas", b"two")
    assert put(admin, "cas", b"three", if_version=2).json()["version"] == 3
    before = metadata(admin, "cas")
    stale = put(admin, "cas", b"lost update", if_version=2, policy={"max_versions": 1})
    assert stale.status == 412
    assert stale.json()["error"]["details"] == {"current_version": 3}
    assert "secret" in stale.json()["error"]["message"]
    assert "lost update" not in stale.body.decode()
    # A failed check-and-set changes nothing: no version, no policy change, no pruning.
    assert metadata(admin, "cas") == before
    assert value_of(get(admin, "cas")) == b"three"


def test_check_and_set_on_a_missing_secret_reports_version_zero(admin: Client) -> None:
    response = put(admin, "never", b"x", if_version=4)
    assert response.status == 412
    assert response.json()["error"]["details"] == {"current_version": 0}
    assert get(admin, "never").status == 404


@ON_EACH_BACKEND
def test_max_versions_prunes_the_oldest(admin: Client) -> None:
    put(admin, "rot", b"v1", policy={"max_versions": 3})
    for n in range(2, 6):
        put(admin, "rot", f"v{n}".encode())
    assert states(admin, "rot") == {
        5: "enabled",
        4: "enabled",
        3: "enabled",
        2: "destroyed",
        1: "destroyed",
    }
    pruned = get(admin, "rot", 2)
    assert pruned.status == 404
    assert "destroyed" in pruned.json()["error"]["message"]
    assert value_of(get(admin, "rot", 3)) == b"v3"
    # Lowering max_versions applies on that write.
    put(admin, "rot", b"v6", policy={"max_versions": 1})
    assert [v for v, s in states(admin, "rot").items() if s == "enabled"] == [6]


def test_default_policy_keeps_ten_versions(admin: Client) -> None:
    for n in range(12):
        put(admin, "many", str(n).encode())
    meta = metadata(admin, "many")
    assert meta["policy"] == {
        "max_versions": 10,
        "cache_max_age_seconds": 60,
        "stale_if_error_seconds": 300,
    }
    enabled = [v["version"] for v in meta["versions"] if v["state"] == "enabled"]
    assert enabled == list(range(12, 2, -1))


def test_destroyed_rows_hold_no_key_material(server: RunningServer, admin: Client) -> None:
    put(admin, "gone", b"v1", policy={"max_versions": 1})
    put(admin, "gone", b"v2")
    admin.request("POST", "/v1/secrets/gone:destroy", {"versions": [2]})
    server.stop()
    conn = sqlite3.connect(server.config.database_path)
    rows = conn.execute(
        "SELECT version, state, kek_id, wrapped_key, ciphertext FROM secret_versions"
        " WHERE name = 'gone' ORDER BY version"
    ).fetchall()
    conn.close()
    assert rows == [(1, "destroyed", None, None, None), (2, "destroyed", None, None, None)]


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        ({"max_versions": 101}, "policy.max_versions"),
        ({"max_versions": -1}, "policy.max_versions"),
        ({"cache_max_age_seconds": 86401}, "policy.cache_max_age_seconds"),
        ({"stale_if_error_seconds": -5}, "policy.stale_if_error_seconds"),
    ],
)
def test_policy_out_of_range_is_invalid(admin: Client, policy: dict[str, int], field: str) -> None:
    response = put(admin, "p", b"x", policy=policy)
    assert response.status == 400
    assert response.json()["error"]["details"]["field"] == field
    assert get(admin, "p").status == 404


def test_unset_policy_fields_keep_their_values(admin: Client) -> None:
    put(admin, "pol", b"x", policy={"cache_max_age_seconds": 5, "stale_if_error_seconds": 7})
    put(admin, "pol", b"y", policy={"max_versions": 4})
    put(admin, "pol", b"z")
    assert metadata(admin, "pol")["policy"] == {
        "max_versions": 4,
        "cache_max_age_seconds": 5,
        "stale_if_error_seconds": 7,
    }


# -- limits and names ----------------------------------------------------------------------


def test_value_size_limit(admin: Client) -> None:
    assert put(admin, "big", b"\xff" * 65536).status == 200
    too_big = put(admin, "big", b"\xff" * 65537)
    assert too_big.status == 400
    assert too_big.code == "invalid_argument"
    error = too_big.json()["error"]
    assert error["details"] == {"field": "value", "max_bytes": 65536}
    assert "65536 bytes" in error["message"]
    assert metadata(admin, "big")["current_version"] == 1


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/v1/secrets/a/../b", "'..' as a path segment"),
        ("/v1/secrets/a//b", "'//'"),
        ("/v1/secrets/Payments/db", "lowercase"),
        ("/v1/secrets/payments/", "must not end with '/'"),
        ("/v1/secrets/a%00b", "control characters"),
        ("/v1/secrets/" + "a" * 257, "the limit is 256"),
        ("/v1/secrets/-lead", "must start with a lowercase letter or digit"),
    ],
)
def test_invalid_names_are_rejected_over_http(admin: Client, path: str, fragment: str) -> None:
    for method, body in (("PUT", {"value": b64(b"x")}), ("GET", None)):
        response = admin.request(method, path, body)
        assert response.status == 400, (method, path, response.body)
        error = response.json()["error"]
        assert error["code"] == "invalid_argument"
        assert error["details"] == {"field": "name"}
        assert error["message"].startswith("secinfra: secrets: secret name")
        assert fragment in error["message"]


# -- caching headers -------------------------------------------------------------------


def _cache_control(response: Response) -> str:
    return response.headers["cache-control"]


def test_etag_and_cache_control_defaults(admin: Client) -> None:
    put(admin, "c", b"value")
    read = get(admin, "c")
    etag = read.headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag)
    assert _cache_control(read) == "private, max-age=60, stale-if-error=300"
    # Derived from name, version and create time, never the value.
    assert get(admin, "c").headers["etag"] == etag
    put(admin, "c", b"value")  # same bytes, new version: a new tag
    assert get(admin, "c").headers["etag"] != etag
    assert get(admin, "c", 1).headers["etag"] == etag


def test_cache_control_follows_the_policy(admin: Client) -> None:
    put(admin, "c", b"v", policy={"cache_max_age_seconds": 5, "stale_if_error_seconds": 30})
    assert _cache_control(get(admin, "c")) == "private, max-age=5, stale-if-error=30"
    put(admin, "c", b"v", policy={"cache_max_age_seconds": 3600})
    assert _cache_control(get(admin, "c")) == "private, max-age=3600, stale-if-error=30"


def test_if_none_match_gets_304_without_a_body(admin: Client) -> None:
    put(admin, "c", b"v", policy={"cache_max_age_seconds": 7})
    etag = get(admin, "c").headers["etag"]
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        cached = get(admin, "c", **{"If-None-Match": header})
        assert cached.status == 304, header
        assert cached.body == b""
        assert cached.headers["etag"] == etag
        assert _cache_control(cached) == "private, max-age=7, stale-if-error=300"
    assert get(admin, "c", **{"If-None-Match": '"stale"'}).status == 200
    put(admin, "c", b"w")
    fresh = get(admin, "c", **{"If-None-Match": etag})
    assert fresh.status == 200
    assert value_of(fresh) == b"w"


def test_conditional_get_of_a_deleted_version_is_404(admin: Client) -> None:
    put(admin, "c", b"v")
    etag = get(admin, "c").headers["etag"]
    admin.request("DELETE", "/v1/secrets/c")
    assert get(admin, "c", **{"If-None-Match": etag}).status == 404


# -- delete / undelete / destroy -------------------------------------------------------------


@ON_EACH_BACKEND
def test_delete_latest_then_undelete(admin: Client) -> None:
    put(admin, "d", b"one")
    put(admin, "d", b"two")
    deleted = admin.request("DELETE", "/v1/secrets/d")
    assert deleted.status == 200, deleted.body
    body = deleted.json()
    assert body["current_version"] == 2
    assert [(v["version"], v["state"]) for v in body["versions"]] == [
        (2, "deleted"),
        (1, "enabled"),
    ]
    assert "delete_time" in body["versions"][0]
    # The latest readable version is now 1; version 2 says it is deleted.
    assert value_of(get(admin, "d")) == b"one"
    gone = get(admin, "d", 2)
    assert gone.status == 404
    assert "deleted" in gone.json()["error"]["message"]
    # Idempotent: deleting again changes nothing (and does not walk back to v1).
    again = admin.request("DELETE", "/v1/secrets/d")
    assert again.status == 200
    assert states(admin, "d") == {2: "deleted", 1: "enabled"}
    restored = admin.request("POST", "/v1/secrets/d:undelete", {"versions": [2]})
    assert restored.status == 200
    assert "delete_time" not in restored.json()["versions"][0]
    assert value_of(get(admin, "d")) == b"two"
    assert admin.request("POST", "/v1/secrets/d:undelete", {"versions": [2]}).status == 200


def test_delete_given_versions_in_the_query(admin: Client) -> None:
    for n in range(3):
        put(admin, "d", str(n).encode())
    response = admin.request("DELETE", "/v1/secrets/d?versions=1&versions=3")
    assert response.status == 200, response.body
    assert states(admin, "d") == {3: "deleted", 2: "enabled", 1: "deleted"}
    assert value_of(get(admin, "d")) == b"1"


def test_all_versions_deleted_reads_404(admin: Client) -> None:
    put(admin, "d", b"x")
    admin.request("DELETE", "/v1/secrets/d")
    response = get(admin, "d")
    assert response.status == 404
    assert "no readable version" in response.json()["error"]["message"]


@ON_EACH_BACKEND
def test_destroy_is_final_and_idempotent(admin: Client) -> None:
    put(admin, "x", b"one")
    put(admin, "x", b"two")
    admin.request("DELETE", "/v1/secrets/x?versions=1")
    destroyed = admin.request("POST", "/v1/secrets/x:destroy", {"versions": [1, 2]})
    assert destroyed.status == 200, destroyed.body
    assert states(admin, "x") == {2: "destroyed", 1: "destroyed"}
    assert admin.request("POST", "/v1/secrets/x:destroy", {"versions": [1, 2]}).status == 200
    undelete = admin.request("POST", "/v1/secrets/x:undelete", {"versions": [1]})
    assert undelete.status == 412
    assert undelete.json()["error"]["details"] == {"destroyed": [1]}
    assert get(admin, "x", 2).status == 404
    # A new write still gets the next number.
    assert put(admin, "x", b"three").json()["version"] == 3


def test_destroy_and_undelete_need_versions(admin: Client) -> None:
    put(admin, "x", b"one")
    for verb in ("destroy", "undelete"):
        response = admin.request("POST", f"/v1/secrets/x:{verb}", {})
        assert response.status == 400
        assert response.json()["error"]["details"] == {"field": "versions"}
    assert value_of(get(admin, "x")) == b"one"


def test_version_operations_on_unknown_versions_and_secrets(admin: Client) -> None:
    put(admin, "x", b"one")
    unknown = admin.request("POST", "/v1/secrets/x:destroy", {"versions": [1, 5]})
    assert unknown.status == 404
    assert unknown.json()["error"]["details"] == {"versions": [5]}
    assert states(admin, "x") == {1: "enabled"}, "all or nothing"
    assert admin.request("DELETE", "/v1/secrets/none").status == 404
    assert admin.request("POST", "/v1/secrets/x:destroy", {"versions": [0]}).status == 400


# -- metadata and list ---------------------------------------------------------------------


def test_metadata_never_holds_a_value(admin: Client) -> None:
    put(admin, "m", b"supersecretvalue", policy={"max_versions": 2})
    put(admin, "m", b"supersecretvalue2")
    response = admin.request("GET", "/v1/secrets/m:metadata")
    assert b"supersecretvalue" not in response.body
    assert b64(b"supersecretvalue") not in response.body.decode()
    doc = response.json()
    assert doc["name"] == "m"
    assert doc["current_version"] == 2
    assert doc["policy"]["max_versions"] == 2
    assert [v["version"] for v in doc["versions"]] == [2, 1]
    assert doc["create_time"] <= doc["update_time"]
    assert admin.request("GET", "/v1/secrets/nothing:metadata").status == 404


def _list(client: Client, query: str) -> dict[str, Any]:
    response = client.request("GET", f"/v1/secrets?{query}")
    assert response.status == 200, response.body
    doc: dict[str, Any] = response.json()
    return doc


@ON_EACH_BACKEND
def test_list_by_prefix_pages_in_name_order(admin: Client) -> None:
    names = [f"team/app{n:02d}" for n in range(7)] + ["team-other", "teamx/a", "zeta"]
    for name in reversed(names):
        put(admin, name, b"v")
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        query = "prefix=team/&page_size=3" + (f"&page_token={token}" if token else "")
        page = _list(admin, query)
        pages += 1
        seen += [s["name"] for s in page["secrets"]]
        assert all(s["versions"] == [] for s in page["secrets"])
        assert all("value" not in s for s in page["secrets"])
        token = page["next_page_token"]
        if not token:
            break
    assert seen == names[:7]
    assert pages == 3
    # A prefix without '/' matches by string: team/, team-other and teamx/.
    assert [s["name"] for s in _list(admin, "prefix=team")["secrets"]] == sorted(names[:-1])
    assert len(_list(admin, "")["secrets"]) == len(names)


def test_list_rejects_bad_prefixes_and_tokens(admin: Client) -> None:
    put(admin, "a/b", b"v")
    for query, field in (
        ("prefix=A/", "prefix"),
        ("prefix=a//", "prefix"),
        ("prefix=a&page_token=bogus", "page_token"),
        ("page_size=-1", "page_size"),
    ):
        response = admin.request("GET", f"/v1/secrets?{query}")
        assert response.status == 400, query
        assert response.json()["error"]["details"]["field"] == field
    token_for_a = _list(admin, "prefix=a/&page_size=1")
    assert token_for_a["next_page_token"] == ""
    put(admin, "a/c", b"v")
    page = _list(admin, "prefix=a/&page_size=1")
    other = admin.request("GET", f"/v1/secrets?prefix=b/&page_token={page['next_page_token']}")
    assert other.status == 400, "a token is bound to its prefix"


def test_list_page_size_is_capped(admin: Client) -> None:
    put(admin, "a", b"v")
    assert len(_list(admin, "page_size=5000")["secrets"]) == 1


# -- access control and audit -------------------------------------------------------------


def test_non_admin_workload_is_denied_and_the_denial_is_audited(
    server: RunningServer, admin: Client, tmp_path: Path
) -> None:
    put(admin, "payments/db", b"v")
    workload = Client(
        server.port, server.bundle_pem(), enrol(server, tmp_path, "/workload/a"), tmp_path / "w"
    )
    calls = [
        ("GET", "/v1/secrets/payments/db", None),
        ("GET", "/v1/secrets/payments/missing", None),
        ("PUT", "/v1/secrets/payments/db", {"value": b64(b"x")}),
        ("GET", "/v1/secrets/payments/db:metadata", None),
        ("DELETE", "/v1/secrets/payments/db", None),
        ("POST", "/v1/secrets/payments/db:destroy", {"versions": [1]}),
    ]
    bodies = []
    for method, path, body in calls:
        response = workload.request(method, path, body)
        assert response.status == 403, (method, path, response.body)
        assert response.code == "permission_denied"
        bodies.append(response.json()["error"]["message"])
    # A denied caller cannot tell an existing secret from a missing one.
    assert bodies[0].replace("payments/db", "X") == bodies[1].replace("payments/missing", "X")
    listed = workload.request("GET", "/v1/secrets?prefix=payments/")
    assert listed.status == 200
    assert listed.json()["secrets"] == []
    workload.close()
    assert value_of(get(admin, "payments/db")) == b"v"
    admin.close()
    server.stop()
    rows = audit_rows(server)
    denied = [r for r in rows if r[3] == "denied" and r[0].endswith("/workload/a")]
    assert [(r[1], r[2]) for r in denied] == [
        ("secrets.get", "secret:payments/db"),
        ("secrets.get", "secret:payments/missing"),
        ("secrets.put", "secret:payments/db"),
        ("secrets.get_metadata", "secret:payments/db"),
        ("secrets.delete", "secret:payments/db"),
        ("secrets.destroy", "secret:payments/db"),
    ]


def test_every_write_and_read_is_audited_with_the_chain_intact(
    server: RunningServer, admin: Client
) -> None:
    put(admin, "aud/s", b"topsecret-value")
    put(admin, "aud/s", b"topsecret-value-2", if_version=1)
    put(admin, "aud/s", b"nope", if_version=1)  # fails: audited as an error
    get(admin, "aud/s")
    admin.request("DELETE", "/v1/secrets/aud/s")
    admin.request("POST", "/v1/secrets/aud/s:undelete", {"versions": [2]})
    admin.request("POST", "/v1/secrets/aud/s:destroy", {"versions": [1]})
    admin.request("GET", "/v1/secrets/aud/s:metadata")
    admin.request("GET", "/v1/secrets?prefix=aud/")
    admin.close()
    server.stop()
    rows = audit_rows(server)
    secret_rows = [r for r in rows if r[1].startswith("secrets.")]
    got = [(action, resource, outcome) for _, action, resource, outcome, _ in secret_rows]
    expected_writes = [
        ("secrets.put", "secret:aud/s", "allowed"),
        ("secrets.put", "secret:aud/s", "allowed"),
        ("secrets.delete", "secret:aud/s", "allowed"),
        ("secrets.undelete", "secret:aud/s", "allowed"),
        ("secrets.destroy", "secret:aud/s", "allowed"),
    ]
    assert [
        g
        for g in got
        if g[0] in {"secrets.put", "secrets.delete", "secrets.undelete", "secrets.destroy"}
        and g[2] == "allowed"
    ] == expected_writes
    assert ("secrets.put", "secret:aud/s", "error") in got
    assert ("secrets.get", "secret:aud/s", "allowed") in got
    assert ("secrets.get_metadata", "secret:aud/s", "allowed") in got
    assert ("secrets.list", "secret:aud/*", "allowed") in got
    assert all(r[0] == "spiffe://secinfra.local/secinfra/admin" for r in secret_rows)
    flat = repr(rows)
    assert "topsecret" not in flat
    assert b64(b"topsecret-value") not in flat


class _FolderPolicy:
    """Admin may do all; workloads may read what is under ``shared/`` only."""

    def __init__(self, admin_id: str) -> None:
        self._admin = admin_id

    async def is_admin(self, spiffe_id: str) -> bool:
        return spiffe_id == self._admin

    async def can_read_secret(self, spiffe_id: str, name: str) -> bool:
        return spiffe_id == self._admin or name.startswith("shared/")

    async def can_write_secret(self, spiffe_id: str, name: str) -> bool:
        return spiffe_id == self._admin

    async def readable_secrets(self, spiffe_id: str, names: Sequence[str]) -> list[str]:
        return [n for n in names if await self.can_read_secret(spiffe_id, n)]


class _FolderPolicyServer(Server):
    def make_policy(self, engine: AuthzEngine) -> AccessPolicy:
        return _FolderPolicy(engine.admin_id)


@pytest.mark.parametrize("scan_limit", [10_000, 6])
def test_list_returns_only_readable_names_across_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scan_limit: int
) -> None:
    # With a small scan limit, pages over unreadable names come back short or
    # empty, with a token: the client still sees every readable name once.
    monkeypatch.setattr(secrets_api, "MAX_SCANNED_PER_PAGE", scan_limit)
    server = RunningServer(tmp_path / "data", server_class=_FolderPolicyServer).start()
    try:
        admin = Client(server.port, server.bundle_pem(), server.admin, tmp_path / "admin")
        names = [f"{kind}/s{n:02d}" for n in range(12) for kind in ("private", "shared")]
        for name in names:
            assert put(admin, name, b"v").status == 200
        admin.close()
        identity = enrol(server, tmp_path, "/workload/reader")
        workload = Client(server.port, server.bundle_pem(), identity, tmp_path / "w")
        seen: list[str] = []
        token = ""
        pages = 0
        while True:
            pages += 1
            page = _list(workload, "page_size=5" + (f"&page_token={token}" if token else ""))
            assert len(page["secrets"]) <= 5
            seen += [s["name"] for s in page["secrets"]]
            token = page["next_page_token"]
            if not token:
                break
        assert seen == sorted(n for n in names if n.startswith("shared/"))
        assert pages == (3 if scan_limit > len(names) else 5)
        assert _list(workload, "prefix=private/")["secrets"] == []
        assert value_of(get(workload, "shared/s03")) == b"v"
        assert get(workload, "private/s03").status == 403
        assert put(workload, "shared/s03", b"w").status == 403
        workload.close()
    finally:
        server.stop()
