"""The init-time admin identity (issue 21 item 7): short-lived, renewed with
its own lifetime, re-issued by ``init`` on the host once expired (break-glass),
and every issuance audited."""

from __future__ import annotations

import json
import ssl
import time
from pathlib import Path

import pytest
from cryptography import x509

from secinfra_server.cli import INIT_ACTOR, initialise

from .harness import Client, RunningServer, csr_pem, new_key, verified_audit_rows

ADMIN_TTL_SECONDS = 3
#: NotBefore is backdated this much for clock skew.
BACKDATE_SECONDS = 60


def _lifetime(cert: x509.Certificate) -> float:
    return (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds()


def _admin_issuances(data: Path) -> list[dict[str, str]]:
    """The details of init's admin issuance entries, after verifying the chain."""
    rows = verified_audit_rows(
        data,
        "SELECT details FROM audit_log WHERE actor = ? AND action = ? ORDER BY seq",
        (INIT_ACTOR, "identity.issue_admin_certificate"),
    )
    return [json.loads(details) for (details,) in rows]


def test_admin_identity_is_short_lived_renewable_and_reissued_by_init(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = RunningServer(data, test_hooks=True, admin_cert_ttl_seconds=ADMIN_TTL_SECONDS).start()
    try:
        first = server.admin.cert
        assert _lifetime(first) == BACKDATE_SECONDS + ADMIN_TTL_SECONDS
        (issued,) = _admin_issuances(data)
        assert issued["serial"] == f"{first.serial_number:x}"

        # Renewal keeps the admin lifetime (the leaf TTL is an hour here).
        admin = Client(server.port, server.bundle_pem(), server.admin, tmp_path / "admin")
        renewed = admin.request("POST", "/v1/identity:renew", {"csr_pem": csr_pem(new_key())})
        admin.close()
        assert renewed.status == 200, renewed.body
        cert = x509.load_pem_x509_certificate(renewed.json()["svid"]["cert_chain_pem"].encode())
        assert _lifetime(cert) == BACKDATE_SECONDS + ADMIN_TTL_SECONDS

        # Once expired, the files authenticate nothing...
        time.sleep(max(0.0, first.not_valid_after_utc.timestamp() - time.time() + 0.2))
        expired = Client(server.port, server.bundle_pem(), server.admin, tmp_path / "expired")
        with pytest.raises(ssl.SSLError, match="CERTIFICATE_EXPIRED"):
            expired.request("GET", "/v1/identity:whoami")
        expired.close()

        # ...and break-glass is init on the host, beside the running server.
        server.call(initialise(server.config, quiet=True))
        fresh = server.admin.cert
        assert fresh.serial_number != first.serial_number
        again = Client(server.port, server.bundle_pem(), server.admin, tmp_path / "again")
        whoami = again.request("GET", "/v1/identity:whoami")
        again.close()
        assert whoami.status == 200, whoami.body
        assert whoami.json()["admin"] is True
    finally:
        server.stop()
    issuances = _admin_issuances(data)
    assert [i["serial"] for i in issuances] == [
        f"{first.serial_number:x}",
        f"{fresh.serial_number:x}",
    ]
    assert all(i["os_user"] for i in issuances)
