"""Leaf signing: the X509-SVID profile, interop with py-spiffe and openssl, and every
CSR the server must refuse."""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.x509.oid import AttributeOID, ExtendedKeyUsageOID, NameOID
from spiffe import X509Svid

from secinfra_server.ca import (
    MAX_CSR_BYTES,
    CAState,
    CAUnavailable,
    CertificateAuthority,
    CSRRequestsExtensions,
    CSRSignatureInvalid,
    InvalidArgument,
    InvalidCSR,
    InvalidSpiffeId,
    MalformedCSR,
    SpiffeId,
    UnsupportedKeyType,
    WeakSignatureAlgorithm,
    build_csr,
    create_root_ca,
    load_csr,
    sign_server_svid,
    sign_svid,
    verify_svid_chain,
)

Openssl = Callable[..., subprocess.CompletedProcess[str]]

WORKLOAD_ID = "spiffe://example.org/ns/prod/sa/web"

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _csr_pem(key: PrivateKey) -> bytes:
    der = build_csr(key)
    return x509.load_der_x509_csr(der).public_bytes(serialization.Encoding.PEM)


KEYS: dict[str, Callable[[], PrivateKey]] = {
    "ec-p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ec-p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "rsa-2048": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
}


@pytest.mark.parametrize("encoding", ["der", "pem"])
@pytest.mark.parametrize("key_type", list(KEYS))
def test_svid_profile(
    ca: CertificateAuthority, now: datetime, key_type: str, encoding: str
) -> None:
    key = KEYS[key_type]()
    csr = build_csr(key) if encoding == "der" else _csr_pem(key)
    leaf = sign_svid(ca, csr, WORKLOAD_ID, ttl=timedelta(minutes=30), now=now)
    ext = leaf.extensions

    san = ext.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [WORKLOAD_ID]
    assert len(list(san)) == 1
    basic = ext.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical
    assert not basic.value.ca
    usage = ext.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert not (usage.value.key_cert_sign)
    assert not (usage.value.crl_sign)
    assert not (usage.value.key_agreement)
    eku = ext.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH}
    aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ca.subject_key_identifier
    assert leaf.subject == x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "secinfra")])
    assert leaf.issuer == ca.certificate.subject
    assert 0 < leaf.serial_number < 2**128
    assert leaf.public_key() == key.public_key()
    assert leaf.not_valid_before_utc == now - timedelta(seconds=60)
    assert leaf.not_valid_after_utc == now + timedelta(minutes=30)
    leaf.verify_directly_issued_by(ca.certificate)


def test_serials_are_random(
    ca: CertificateAuthority, now: datetime, workload_key: ec.EllipticCurvePrivateKey
) -> None:
    csr = build_csr(workload_key)
    serials = {sign_svid(ca, csr, WORKLOAD_ID, now=now).serial_number for _ in range(8)}
    assert len(serials) == 8
    assert max(s.bit_length() for s in serials) > 100


def test_not_after_capped_at_ca_expiry(
    ca: CertificateAuthority, workload_key: ec.EllipticCurvePrivateKey
) -> None:
    late = ca.not_after - timedelta(minutes=10)
    leaf = sign_svid(ca, build_csr(workload_key), WORKLOAD_ID, ttl=timedelta(hours=1), now=late)
    assert leaf.not_valid_after_utc == ca.not_after


def test_csr_subject_is_ignored(
    ca: CertificateAuthority, now: datetime, workload_key: ec.EllipticCurvePrivateKey
) -> None:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "admin")]))
        .sign(workload_key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )
    leaf = sign_svid(ca, csr, WORKLOAD_ID, now=now)
    assert "admin" not in leaf.subject.rfc4514_string()


@pytest.mark.parametrize("key_type", list(KEYS))
def test_svid_accepted_by_py_spiffe(ca: CertificateAuthority, now: datetime, key_type: str) -> None:
    key = KEYS[key_type]()
    leaf = sign_svid(ca, build_csr(key), WORKLOAD_ID, now=now)

    svid = X509Svid.parse(_pem(leaf) + _pem(ca.certificate), _key_pem(key))
    assert str(svid.spiffe_id) == WORKLOAD_ID

    der_chain = leaf.public_bytes(serialization.Encoding.DER) + ca.certificate_der
    der_key = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    assert str(X509Svid.parse_raw(der_chain, der_key).spiffe_id) == WORKLOAD_ID


def test_svid_accepted_by_openssl_strict(
    ca: CertificateAuthority,
    now: datetime,
    workload_key: ec.EllipticCurvePrivateKey,
    openssl: Openssl,
    tmp_path: Path,
) -> None:
    leaf = sign_svid(ca, build_csr(workload_key), WORKLOAD_ID, now=now)
    (tmp_path / "ca.pem").write_bytes(_pem(ca.certificate))
    (tmp_path / "leaf.pem").write_bytes(_pem(leaf))
    result = openssl(
        "verify",
        "-x509_strict",
        "-attime",
        str(int(now.timestamp())),
        "-purpose",
        "sslclient",
        "-CAfile",
        tmp_path / "ca.pem",
        tmp_path / "leaf.pem",
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert result.stdout.strip().endswith("OK")

    # Outside its validity window openssl refuses it too (the clock is injected).
    expired = openssl(
        "verify",
        "-attime",
        str(int((now + timedelta(hours=2)).timestamp())),
        "-CAfile",
        tmp_path / "ca.pem",
        tmp_path / "leaf.pem",
    )
    assert expired.returncode != 0


def test_svid_accepted_by_verify_svid_chain(
    ca: CertificateAuthority, now: datetime, workload_key: ec.EllipticCurvePrivateKey
) -> None:
    leaf = sign_svid(ca, build_csr(workload_key), SpiffeId.parse(WORKLOAD_ID), now=now)
    assert verify_svid_chain(leaf, [ca.certificate], now) == SpiffeId.parse(WORKLOAD_ID)


def test_server_svid(
    ca: CertificateAuthority,
    now: datetime,
    workload_key: ec.EllipticCurvePrivateKey,
    openssl: Openssl,
    tmp_path: Path,
) -> None:
    leaf = sign_server_svid(
        ca,
        build_csr(workload_key),
        dns_names=["localhost", "Secinfra.Internal"],
        ip_addresses=["127.0.0.1", ipaddress.ip_address("::1")],
        now=now,
    )
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://example.org/secinfra/server"
    ]
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "secinfra.internal"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    assert verify_svid_chain(leaf, [ca.certificate], now) == SpiffeId(
        "example.org", "/secinfra/server"
    )
    svid = X509Svid.parse(_pem(leaf) + _pem(ca.certificate), _key_pem(workload_key))
    assert str(svid.spiffe_id) == "spiffe://example.org/secinfra/server"

    (tmp_path / "ca.pem").write_bytes(_pem(ca.certificate))
    (tmp_path / "leaf.pem").write_bytes(_pem(leaf))
    result = openssl(
        "verify",
        "-x509_strict",
        "-attime",
        str(int(now.timestamp())),
        "-purpose",
        "sslserver",
        "-verify_hostname",
        "localhost",
        "-verify_ip",
        "127.0.0.1",
        "-CAfile",
        tmp_path / "ca.pem",
        tmp_path / "leaf.pem",
    )
    assert result.returncode == 0, result.stderr + result.stdout


@pytest.mark.parametrize(
    ("dns_names", "ip_addresses"),
    [
        pytest.param(["bad name"], [], id="space-in-dns-name"),
        pytest.param([""], [], id="empty-dns-name"),
        pytest.param(["bücher.example"], [], id="u-label"),
        pytest.param([], ["300.1.1.1"], id="bad-ip"),
    ],
)
def test_server_svid_rejects_bad_names(
    ca: CertificateAuthority,
    now: datetime,
    workload_key: ec.EllipticCurvePrivateKey,
    dns_names: list[str],
    ip_addresses: list[str],
) -> None:
    with pytest.raises(InvalidArgument):
        sign_server_svid(
            ca,
            build_csr(workload_key),
            dns_names=dns_names,
            ip_addresses=ip_addresses,
            now=now,
        )


@pytest.mark.parametrize(
    ("spiffe_id", "ttl", "at", "error", "fragment"),
    [
        pytest.param(
            "spiffe://other.org/x",
            timedelta(hours=1),
            0,
            InvalidArgument,
            "trust domain",
            id="foreign-trust-domain",
        ),
        pytest.param(
            "spiffe://example.org",
            timedelta(hours=1),
            0,
            InvalidArgument,
            "needs a path",
            id="trust-domain-id",
        ),
        pytest.param(
            "spiffe://example.org/secinfra/server",
            timedelta(hours=1),
            0,
            InvalidArgument,
            "server's own identity",
            id="server-identity",
        ),
        pytest.param(
            "spiffe://example.org/a/../b",
            timedelta(hours=1),
            0,
            InvalidSpiffeId,
            "dot",
            id="invalid-spiffe-id",
        ),
        pytest.param(WORKLOAD_ID, timedelta(0), 0, InvalidArgument, "ttl", id="zero-ttl"),
        pytest.param(
            WORKLOAD_ID, timedelta(hours=1), 400, CAUnavailable, "expired", id="ca-expired"
        ),
        pytest.param(
            WORKLOAD_ID,
            timedelta(hours=1),
            -1,
            CAUnavailable,
            "not valid yet",
            id="ca-not-yet-valid",
        ),
    ],
)
def test_sign_svid_rejects(
    ca: CertificateAuthority,
    now: datetime,
    workload_key: ec.EllipticCurvePrivateKey,
    spiffe_id: str,
    ttl: timedelta,
    at: int,
    error: type[Exception],
    fragment: str,
) -> None:
    with pytest.raises(error, match=fragment):
        sign_svid(ca, build_csr(workload_key), spiffe_id, ttl=ttl, now=now + timedelta(days=at))


def test_only_active_ca_signs(now: datetime, workload_key: ec.EllipticCurvePrivateKey) -> None:
    prepared = create_root_ca("example.org", now=now, state=CAState.PREPARED)
    with pytest.raises(CAUnavailable, match="only an active CA signs") as caught:
        sign_svid(prepared, build_csr(workload_key), WORKLOAD_ID, now=now)
    assert caught.value.code == "failed_precondition"


# --- CSRs the server must refuse -------------------------------------------------


def _csr(key: object, digest: hashes.HashAlgorithm | None = None) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    request = builder.sign(key, digest)  # type: ignore[arg-type]
    return request.public_bytes(serialization.Encoding.DER)


def _csr_with_extension(extension: x509.ExtensionType) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(extension, critical=False)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )


def _tampered_signature() -> bytes:
    der = bytearray(build_csr(ec.generate_private_key(ec.SECP256R1())))
    der[-1] ^= 0x01  # last byte of the ECDSA signature's s value
    return bytes(der)


def _challenge_password() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_attribute(AttributeOID.CHALLENGE_PASSWORD, b"hunter2")
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )


BAD_CSRS: list[tuple[str, Callable[[], bytes | str], type[InvalidCSR], str]] = [
    ("empty", lambda: b"", MalformedCSR, "empty"),
    ("garbage-bytes", lambda: b"\x30\x03\x02\x01", MalformedCSR, "not a valid"),
    ("text-garbage", lambda: "hello", MalformedCSR, "not a valid"),
    (
        "pem-with-bad-body",
        lambda: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        MalformedCSR,
        "not a valid",
    ),
    (
        "truncated-der",
        lambda: build_csr(ec.generate_private_key(ec.SECP256R1()))[:-12],
        MalformedCSR,
        "not a valid",
    ),
    ("oversized", lambda: b"\x30" * (MAX_CSR_BYTES + 1), MalformedCSR, "larger than"),
    ("tampered-signature", _tampered_signature, CSRSignatureInvalid, "does not verify"),
    (
        "rsa-1024",
        lambda: _csr(
            rsa.generate_private_key(public_exponent=65537, key_size=1024), hashes.SHA256()
        ),
        UnsupportedKeyType,
        "RSA key size 1024",
    ),
    (
        "dsa",
        lambda: _csr(dsa.generate_private_key(key_size=1024), hashes.SHA256()),
        UnsupportedKeyType,
        "DSA keys are not supported",
    ),
    (
        "ed25519",
        lambda: _csr(ed25519.Ed25519PrivateKey.generate()),
        UnsupportedKeyType,
        "Ed25519 keys are not supported",
    ),
    (
        "ec-p521",
        lambda: _csr(ec.generate_private_key(ec.SECP521R1()), hashes.SHA512()),
        UnsupportedKeyType,
        "secp521r1",
    ),
    (
        "ec-secp256k1",
        lambda: _csr(ec.generate_private_key(ec.SECP256K1()), hashes.SHA256()),
        UnsupportedKeyType,
        "secp256k1",
    ),
    (
        "requests-uri-san",
        lambda: _csr_with_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier("spiffe://example.org/admin")]
            )
        ),
        CSRRequestsExtensions,
        "subject_alternative_name",
    ),
    (
        "requests-dns-san",
        lambda: _csr_with_extension(x509.SubjectAlternativeName([x509.DNSName("example.org")])),
        CSRRequestsExtensions,
        "subject_alternative_name",
    ),
    (
        "requests-ca-true",
        lambda: _csr_with_extension(x509.BasicConstraints(ca=True, path_length=None)),
        CSRRequestsExtensions,
        "basic_constraints",
    ),
    ("challenge-password-attribute", _challenge_password, CSRRequestsExtensions, "attributes"),
]


@pytest.mark.parametrize(
    ("make", "error", "fragment"),
    [pytest.param(make, err, frag, id=name) for name, make, err, frag in BAD_CSRS],
)
def test_bad_csr(
    ca: CertificateAuthority,
    now: datetime,
    make: Callable[[], bytes | str],
    error: type[InvalidCSR],
    fragment: str,
) -> None:
    with pytest.raises(error) as caught:
        sign_svid(ca, make(), WORKLOAD_ID, now=now)
    message = str(caught.value)
    assert fragment in message
    assert message.startswith("secinfra: ca: ")
    assert caught.value.code == "invalid_argument"


@pytest.mark.parametrize(
    ("genpkey", "digest", "fragment"),
    [
        pytest.param(
            ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            "sha1",
            "ecdsa_with_sha1",
            id="ecdsa-sha1",
        ),
        pytest.param(
            ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            "sha1",
            "rsa_with_sha1",
            id="rsa-sha1",
        ),
        pytest.param(
            ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            "md5",
            "rsa_with_md5",
            id="rsa-md5",
        ),
    ],
)
def test_weak_signature_hash(
    ca: CertificateAuthority,
    now: datetime,
    openssl: Openssl,
    tmp_path: Path,
    genpkey: list[str],
    digest: str,
    fragment: str,
) -> None:
    # cryptography refuses to sign with SHA-1/MD5, so openssl makes these CSRs.
    key, csr = tmp_path / "key.pem", tmp_path / "req.csr"
    assert openssl("genpkey", *genpkey, "-out", key).returncode == 0
    made = openssl("req", "-new", f"-{digest}", "-key", key, "-subj", "/O=x", "-out", csr)
    assert made.returncode == 0, made.stderr
    with pytest.raises(WeakSignatureAlgorithm, match=fragment) as caught:
        sign_svid(ca, csr.read_bytes(), WORKLOAD_ID, now=now)
    assert caught.value.code == "invalid_argument"


def test_load_csr_accepts_openssl_csr(openssl: Openssl, tmp_path: Path) -> None:
    key, csr = tmp_path / "key.pem", tmp_path / "req.csr"
    genpkey = ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
    assert openssl(*genpkey, "-out", key).returncode == 0
    made = openssl("req", "-new", "-sha256", "-key", key, "-subj", "/CN=w", "-out", csr)
    assert made.returncode == 0, made.stderr
    assert load_csr(csr.read_text()).is_signature_valid
