"""Enrolment, static identities and the basic flow, over real mTLS."""

from __future__ import annotations

import pytest

import secinfra
from secinfra.errors import IdentityExpired, TransportError
from secinfra.testing import ReferenceServer

from .support import TRUST_DOMAIN, Log


def test_enrol_with_join_token_then_whoami(server: ReferenceServer, unique: str) -> None:
    spiffe_id = f"spiffe://{TRUST_DOMAIN}/{unique}"
    with server.enrol(spiffe_id) as client:
        me = client.identity.get_caller_identity()
        assert me.spiffe_id == spiffe_id
        assert me.admin is False
        current = client.source.identity()
        assert current is not None
        assert current.spiffe_id == spiffe_id
        assert me.serial == current.serial


def test_from_files_with_the_admin_identity(server: ReferenceServer) -> None:
    admin_dir = server.data_dir / "admin"
    with secinfra.Client.from_files(
        server.url,
        cert_file=admin_dir / "cert.pem",
        key_file=admin_dir / "key.pem",
        bundle_file=server.bundle_file,
    ) as admin:
        me = admin.identity.get_caller_identity()
    assert me.spiffe_id == f"spiffe://{TRUST_DOMAIN}/secinfra/admin"
    assert me.admin is True


def test_admin_writes_grants_and_the_workload_reads(server: ReferenceServer, unique: str) -> None:
    spiffe_id = f"spiffe://{TRUST_DOMAIN}/{unique}"
    with server.admin_client() as admin:
        admin.secrets.put_secret(name=f"{unique}/db/password", value=b"hunter2")
    server.grant(spiffe_id, "reader", f"folder:{unique}/")
    with server.enrol(spiffe_id) as workload:
        secret = workload.secrets.get_secret(name=f"{unique}/db/password")
    assert secret.value == b"hunter2"
    assert secret.version == 1


def test_a_join_token_works_once(server: ReferenceServer, unique: str) -> None:
    spiffe_id = f"spiffe://{TRUST_DOMAIN}/{unique}"
    token = server.join_token(spiffe_id)
    with secinfra.Client.enrol(server.url, join_token=token, bundle_file=server.bundle_file):
        pass
    with pytest.raises(secinfra.errors.Unauthenticated) as caught:
        secinfra.Client.enrol(server.url, join_token=token, bundle_file=server.bundle_file)
    assert caught.value.request_id


def test_enrolment_and_bundle_never_present_a_client_certificate(
    server: ReferenceServer, unique: str, log: Log
) -> None:
    with server.enrol(f"spiffe://{TRUST_DOMAIN}/{unique}") as client:
        client.source.refresh_bundle()
        client.identity.get_caller_identity()
        serial = client.source.identity().serial  # type: ignore[union-attr]
    [issue] = log.entries("IssueCertificate")
    assert issue["client_serial"] is None
    bundles = log.entries("GetTrustBundle")
    assert bundles
    assert all(entry["client_serial"] is None for entry in bundles)
    [whoami] = log.entries("GetCallerIdentity")
    assert whoami["client_serial"] == serial


def test_a_server_with_another_spiffe_id_is_refused(server: ReferenceServer) -> None:
    admin_dir = server.data_dir / "admin"
    with (
        secinfra.Client.from_files(
            server.url,
            cert_file=admin_dir / "cert.pem",
            key_file=admin_dir / "key.pem",
            bundle_file=server.bundle_file,
            server_id=f"spiffe://{TRUST_DOMAIN}/someone-else",
        ) as client,
        pytest.raises(TransportError, match="someone-else"),
    ):
        client.identity.get_caller_identity()


def test_a_client_without_identity_says_so() -> None:
    bundle = secinfra.load_bundle(_any_bundle_pem())
    client = secinfra.Client("https://127.0.0.1:1", secinfra.StaticIdentity(bundle))
    with pytest.raises(IdentityExpired, match="no identity"):
        client.identity.get_caller_identity()


def _any_bundle_pem() -> str:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier("spiffe://example.org")]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_plain_http_is_refused() -> None:
    bundle = secinfra.load_bundle(_any_bundle_pem())
    with pytest.raises(ValueError, match="https"):
        secinfra.Client("http://127.0.0.1:8443", secinfra.StaticIdentity(bundle))
