"""Revocation semantics, on each storage backend: revoking a SPIFFE ID puts
its live certificates on the CRL; no join token can be made for a revoked ID;
an admin can lift the revocation (audited), after which the workload enrols
again while the certificates it held stay revoked."""

from __future__ import annotations

from pathlib import Path

from backends import ON_EACH_BACKEND
from cryptography import x509

from .harness import Client, RunningServer, audit_actions, enrol

WORKLOAD = "spiffe://secinfra.local/workload/a"


def _crl_serials(client: Client) -> set[int]:
    response = client.request("GET", "/v1/crl")
    assert response.status == 200, response.body
    pem = response.json()["crl_pem"].encode()
    serials: set[int] = set()
    for block in pem.split(b"-----END X509 CRL-----"):
        if block.strip():
            crl = x509.load_pem_x509_crl(block + b"-----END X509 CRL-----\n")
            serials |= {entry.serial_number for entry in crl}
    return serials


@ON_EACH_BACKEND
def test_revoke_lift_and_enrol_again(server: RunningServer, admin: Client, tmp_path: Path) -> None:
    first = enrol(server, tmp_path / "first")
    old_serial = first.cert.serial_number
    workload = Client(server.port, server.bundle_pem(), first, tmp_path / "w1")
    assert workload.request("GET", "/v1/identity:whoami").status == 200
    workload.close()

    revoked = admin.request("POST", "/v1/revocations", {"spiffe_id": WORKLOAD, "reason": "leak"})
    assert revoked.status == 200, revoked.body
    # The ID's live certificate is on the CRL, for relying parties that read only it.
    assert old_serial in _crl_serials(admin)
    # A join token for the revoked ID could never enrol: refused, typed.
    refused = admin.request("POST", "/v1/join-tokens", {"spiffe_id": WORKLOAD})
    assert refused.status == 412, refused.body
    assert refused.code == "failed_precondition"
    assert "lift the revocation first" in refused.json()["error"]["message"]
    assert refused.json()["error"]["details"]["spiffe_id"] == WORKLOAD

    lifted = admin.request(
        "POST", "/v1/revocations:lift", {"spiffe_id": WORKLOAD, "reason": "key rotated"}
    )
    assert lifted.status == 200, lifted.body
    body = lifted.json()
    assert body["lifted"]["spiffe_id"] == WORKLOAD
    assert body["lifted"]["reason"] == "leak"
    assert body["serials_kept_revoked"] == [f"{old_serial:x}"]
    listed = admin.request("GET", "/v1/revocations").json()["revocations"]
    assert [(r["serial"], r["spiffe_id"]) for r in listed] == [(f"{old_serial:x}", "")]
    # The old certificate stays refused, on the API and on the CRL.
    old = Client(server.port, server.bundle_pem(), first, tmp_path / "w1-again")
    assert old.request("GET", "/v1/identity:whoami").status == 401
    old.close()
    assert old_serial in _crl_serials(admin)

    # The workload enrols again, with a new token and a new key.
    second = enrol(server, tmp_path / "second")
    assert second.cert.serial_number != old_serial
    renewed = Client(server.port, server.bundle_pem(), second, tmp_path / "w2")
    whoami = renewed.request("GET", "/v1/identity:whoami")
    assert whoami.status == 200, whoami.body
    assert whoami.json()["spiffe_id"] == WORKLOAD
    renewed.close()

    again = admin.request("POST", "/v1/revocations:lift", {"spiffe_id": WORKLOAD})
    assert again.status == 404
    assert again.code == "not_found"
    rows = audit_actions(server)
    assert ("identity.lift_revocation", WORKLOAD, "allowed") in rows
    assert ("identity.lift_revocation", WORKLOAD, "error") in rows
    assert metric_lost(server) == 0


def metric_lost(server: RunningServer) -> float:
    value = server.server.metrics.registry.get_sample_value("secinfra_audit_entries_lost_total")
    return 0.0 if value is None else value


def test_lift_needs_admin_and_a_spiffe_id(
    server: RunningServer, admin: Client, tmp_path: Path
) -> None:
    me = Client(server.port, server.bundle_pem(), enrol(server, tmp_path), tmp_path / "me")
    denied = me.request("POST", "/v1/revocations:lift", {"spiffe_id": WORKLOAD})
    assert denied.status == 403
    me.close()
    missing = admin.request("POST", "/v1/revocations:lift", {"serial": "ab"})
    assert missing.status == 400
    missing = admin.request("POST", "/v1/revocations:lift", {})
    assert missing.status == 400
    assert missing.json()["error"]["details"]["field"] == "spiffe_id"
    assert ("identity.lift_revocation", WORKLOAD, "denied") in audit_actions(server)
