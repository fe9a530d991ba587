"""RevokeCertificate refuses a revocation that would leave no admin with a valid
certificate (revocations cannot be lifted), and audits the refusal."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .harness import Client, Identity, RunningServer, enrol

TD = "secinfra.local"
ADMIN_ID = f"spiffe://{TD}/secinfra/admin"
SECOND_ID = f"spiffe://{TD}/ops/second"


def _serial(identity: Identity) -> str:
    return f"{identity.cert.serial_number:x}"


def _grant_admin(admin: Client, user: str) -> None:
    response = admin.request(
        "POST",
        "/v1/authz/tuples:write",
        {"writes": [{"object": "system:root", "relation": "admin", "user": user}]},
    )
    assert response.status == 200, response.body


def _revoke(client: Client, **target: str) -> tuple[int, dict[str, object]]:
    response = client.request("POST", "/v1/revocations", {**target, "reason": "test"})
    return response.status, response.json()


def _refusals(data: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(data / "secinfra.db")
    rows = conn.execute(
        "SELECT resource, details FROM audit_log"
        " WHERE action = 'identity.revoke' AND outcome = 'denied'"
    ).fetchall()
    conn.close()
    return [(str(resource), str(details)) for resource, details in rows]


@pytest.mark.parametrize("by", ["serial", "spiffe_id"])
def test_the_only_admin_cannot_revoke_itself(
    by: str, server: RunningServer, admin: Client, tmp_path: Path
) -> None:
    target = _serial(server.admin) if by == "serial" else ADMIN_ID
    status, body = _revoke(admin, **{by: target})
    assert status == 412, body
    error = body["error"]
    assert isinstance(error, dict)
    assert error["code"] == "failed_precondition"
    assert "would leave no admin with a valid certificate" in error["message"]
    assert "grant admin to another identity" in error["message"]
    # Nothing was revoked: the admin still works.
    assert admin.request("GET", "/v1/revocations").json()["revocations"] == []
    assert admin.request("GET", "/v1/join-tokens").status == 200
    server.stop()
    refusals = _refusals(server.config.data_dir)
    assert len(refusals) == 1
    assert "last_admin" in refusals[0][1]


def test_an_admin_may_revoke_itself_once_another_admin_holds_a_certificate(
    server: RunningServer, admin: Client, tmp_path: Path
) -> None:
    _grant_admin(admin, f"workload:{SECOND_ID}")
    second = Client(
        server.port, server.bundle_pem(), enrol(server, tmp_path, "/ops/second"), tmp_path / "two"
    )
    try:
        status, body = _revoke(admin, spiffe_id=ADMIN_ID)
        assert status == 200, body
        # The second admin can act; it is now the last one.
        assert second.request("GET", "/v1/join-tokens").status == 200
        status, body = _revoke(second, serial=_serial(second.identity))  # type: ignore[arg-type]
        assert status == 412, body
    finally:
        second.close()


def test_an_admin_through_a_group_counts(
    server: RunningServer, admin: Client, tmp_path: Path
) -> None:
    response = admin.request(
        "POST",
        "/v1/authz/tuples:write",
        {
            "writes": [
                {"object": "system:root", "relation": "admin", "user": "group:ops#member"},
                {"object": "group:ops", "relation": "member", "user": f"workload:{SECOND_ID}"},
            ]
        },
    )
    assert response.status == 200, response.body
    enrol(server, tmp_path, "/ops/second")
    status, body = _revoke(admin, serial=_serial(server.admin))
    assert status == 200, body


def test_a_revoked_or_unenrolled_second_admin_does_not_count(
    server: RunningServer, admin: Client, tmp_path: Path
) -> None:
    _grant_admin(admin, f"workload:{SECOND_ID}")
    # Granted but never enrolled: no certificate, so no witness.
    assert _revoke(admin, serial=_serial(server.admin))[0] == 412
    second = enrol(server, tmp_path, "/ops/second")
    assert _revoke(admin, serial=_serial(second))[0] == 200  # not the caller's: allowed
    # Its only certificate is revoked now: again no witness.
    assert _revoke(admin, spiffe_id=ADMIN_ID)[0] == 412


def test_revoking_a_workload_is_unchanged(
    server: RunningServer, admin: Client, tmp_path: Path
) -> None:
    workload = enrol(server, tmp_path)
    assert _revoke(admin, serial=_serial(workload))[0] == 200
    assert _revoke(admin, spiffe_id=f"spiffe://{TD}/workload/b")[0] == 200


def test_two_admins_revoking_themselves_at_once_leave_one(
    server: RunningServer, admin: Client, tmp_path: Path
) -> None:
    _grant_admin(admin, f"workload:{SECOND_ID}")
    second = Client(
        server.port, server.bundle_pem(), enrol(server, tmp_path, "/ops/second"), tmp_path / "two"
    )
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            first = pool.submit(_revoke, admin, spiffe_id=ADMIN_ID)
            other = pool.submit(_revoke, second, spiffe_id=SECOND_ID)
            statuses = sorted((first.result(timeout=30)[0], other.result(timeout=30)[0]))
    finally:
        second.close()
    assert statuses == [200, 412]
