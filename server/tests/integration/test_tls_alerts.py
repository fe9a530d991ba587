"""A client certificate refused at the TLS handshake gets the matching TLS
alert, read by a real TLS client (Python's ssl, OpenSSL) on TLS 1.2 and 1.3:
``unknown_ca`` for an issuer the server does not trust, ``certificate_expired``,
``bad_certificate`` for one not yet valid. A revoked certificate passes the
handshake and is refused on its request (401)."""

from __future__ import annotations

import socket
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from secinfra_server import ca

from .harness import Client, Identity, RunningServer, enrol, key_pem

WORKLOAD = "spiffe://secinfra.local/workload/tls"
VERSIONS = [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]


def _leaf(
    issuer_cert: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey | None,
    not_before: datetime,
    not_after: datetime,
) -> tuple[bytes, bytes]:
    """An X509-SVID shaped leaf (PEM cert, PEM key); self-signed if no issuer."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tls-alert-test")])
    signer_key = issuer_key if issuer_key is not None else key
    issuer = issuer_cert.subject if issuer_cert is not None else subject
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(WORKLOAD)]), True
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            False,
        )
        .sign(signer_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem(key)


def _active_ca(server: RunningServer) -> ca.CertificateAuthority:
    assert server.server.ca_runtime is not None
    return next(a for a in server.server.ca_runtime.authorities if a.state is ca.CAState.ACTIVE)


def _alert(
    server: RunningServer, identity: tuple[bytes, bytes], version: ssl.TLSVersion, tmp: Path
) -> str:
    """Handshake (and one request) with ``identity``; the alert's reason, or ''."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "cert.pem").write_bytes(identity[0])
    (tmp / "key.pem").write_bytes(identity[1])
    context = ssl.create_default_context(cadata=server.bundle_pem())
    context.check_hostname = False
    context.minimum_version = context.maximum_version = version
    context.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        try:
            with context.wrap_socket(raw) as tls:
                # TLS 1.3: the client finishes first; the alert comes on the read.
                tls.sendall(b"GET /v1/identity:whoami HTTP/1.1\r\nHost: localhost\r\n\r\n")
                return "" if tls.recv(64) else "eof"
        except ssl.SSLError as exc:
            return str(exc.reason)


@pytest.mark.parametrize("version", VERSIONS, ids=["tls1.2", "tls1.3"])
def test_unknown_ca_gets_unknown_ca(
    server: RunningServer, version: ssl.TLSVersion, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    rogue = _leaf(None, None, now - timedelta(minutes=5), now + timedelta(hours=1))
    assert _alert(server, rogue, version, tmp_path) == "TLSV1_ALERT_UNKNOWN_CA"


@pytest.mark.parametrize("version", VERSIONS, ids=["tls1.2", "tls1.3"])
def test_expired_certificate_gets_certificate_expired(
    server: RunningServer, version: ssl.TLSVersion, tmp_path: Path
) -> None:
    authority = _active_ca(server)
    now = datetime.now(UTC)
    expired = _leaf(
        authority.certificate,
        authority.private_key,
        now - timedelta(hours=2),
        now - timedelta(hours=1),
    )
    assert _alert(server, expired, version, tmp_path) == "SSLV3_ALERT_CERTIFICATE_EXPIRED"


@pytest.mark.parametrize("version", VERSIONS, ids=["tls1.2", "tls1.3"])
def test_not_yet_valid_certificate_gets_bad_certificate(
    server: RunningServer, version: ssl.TLSVersion, tmp_path: Path
) -> None:
    authority = _active_ca(server)
    now = datetime.now(UTC)
    early = _leaf(
        authority.certificate,
        authority.private_key,
        now + timedelta(hours=1),
        now + timedelta(hours=2),
    )
    assert _alert(server, early, version, tmp_path) == "SSLV3_ALERT_BAD_CERTIFICATE"


def test_a_valid_certificate_handshakes_and_a_revoked_one_is_refused_per_request(
    server: RunningServer, admin: Client, tmp_path: Path
) -> None:
    identity: Identity = enrol(server, tmp_path / "enrol", "/workload/tls")
    pair = (identity.cert_pem, identity.key_pem)
    assert _alert(server, pair, ssl.TLSVersion.TLSv1_3, tmp_path / "ok") == ""
    revoked = admin.request(
        "POST", "/v1/revocations", {"serial": f"{identity.cert.serial_number:x}"}
    )
    assert revoked.status == 200
    client = Client(server.port, server.bundle_pem(), identity, tmp_path / "revoked")
    refused = client.request("GET", "/v1/identity:whoami")
    assert refused.status == 401
    assert refused.code == "unauthenticated"
    client.close()
