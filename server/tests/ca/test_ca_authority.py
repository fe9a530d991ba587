"""Root CA creation and CA key material (PKCS#8 DER) round trips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from secinfra_server.ca import (
    CAState,
    CertificateAuthority,
    InvalidArgument,
    InvalidKey,
    InvalidSpiffeId,
    KeyAlgorithm,
    create_root_ca,
    private_key_from_pkcs8_der,
    private_key_to_pkcs8_der,
)


@pytest.mark.parametrize(
    ("algorithm", "curve", "digest"),
    [
        pytest.param(KeyAlgorithm.EC_P256, ec.SECP256R1, hashes.SHA256, id="p256-default"),
        pytest.param(KeyAlgorithm.EC_P384, ec.SECP384R1, hashes.SHA384, id="p384"),
    ],
)
def test_root_ca_profile(
    now: datetime,
    algorithm: KeyAlgorithm,
    curve: type[ec.EllipticCurve],
    digest: type[hashes.HashAlgorithm],
) -> None:
    ca = create_root_ca("example.org", now=now, key_algorithm=algorithm)
    cert = ca.certificate
    ext = cert.extensions

    basic = ext.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical
    assert basic.value.ca
    usage = ext.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign
    assert usage.value.crl_sign
    assert not usage.value.digital_signature
    san = ext.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://example.org"]
    ski = ext.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    assert ca.subject_key_identifier == ski.digest

    assert cert.issuer == cert.subject
    assert ca.id in cert.subject.rfc4514_string()
    assert isinstance(ca.private_key.curve, curve)
    assert isinstance(cert.signature_hash_algorithm, digest)
    assert cert.not_valid_before_utc == now - timedelta(seconds=60)
    assert cert.not_valid_after_utc == now + timedelta(days=365)
    assert (ca.not_before, ca.not_after) == (cert.not_valid_before_utc, cert.not_valid_after_utc)
    assert 0 < cert.serial_number < 2**128
    assert ca.state is CAState.PREPARED
    assert ca.trust_domain == "example.org"
    cert.verify_directly_issued_by(cert)  # self-signed


def test_root_ca_custom_validity_and_state(now: datetime) -> None:
    ca = create_root_ca(
        "example.org", now=now, validity=timedelta(days=7), state=CAState.ACTIVE, ca_id="ca-7d"
    )
    assert ca.not_after == now + timedelta(days=7)
    assert (ca.id, ca.state, ca.activated_at) == ("ca-7d", CAState.ACTIVE, now)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        pytest.param({"trust_domain": "Example.org"}, InvalidSpiffeId, id="bad-trust-domain"),
        pytest.param({"validity": timedelta(0)}, InvalidArgument, id="zero-validity"),
        pytest.param({"ca_id": "has space"}, InvalidArgument, id="bad-ca-id"),
        pytest.param({"state": CAState.RETIRED}, InvalidArgument, id="starts-retired"),
    ],
)
def test_root_ca_rejects(now: datetime, kwargs: dict[str, object], error: type[Exception]) -> None:
    args: dict[str, object] = {"trust_domain": "example.org", "now": now, **kwargs}
    with pytest.raises(error):
        create_root_ca(**args)  # type: ignore[arg-type]


def test_naive_clock_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="timezone-aware"):
        create_root_ca("example.org", now=datetime(2031, 1, 1))


def test_clock_in_other_timezone_is_normalized(now: datetime) -> None:
    from zoneinfo import ZoneInfo

    local = now.astimezone(ZoneInfo("Asia/Tokyo"))
    ca = create_root_ca("example.org", now=local)
    assert ca.not_before == now.astimezone(UTC) - timedelta(seconds=60)


def test_private_key_pkcs8_round_trip(ca: CertificateAuthority) -> None:
    der = ca.private_key_pkcs8_der()
    assert der == private_key_to_pkcs8_der(ca.private_key)
    loaded = private_key_from_pkcs8_der(der)
    assert loaded.private_numbers() == ca.private_key.private_numbers()
    # PKCS#8, unencrypted: loadable by any standard tool.
    assert serialization.load_der_private_key(der, password=None) is not None


def test_restore_from_stored_bytes(ca: CertificateAuthority) -> None:
    restored = CertificateAuthority.restore(
        id=ca.id,
        certificate_der=ca.certificate_der,
        private_key_pkcs8_der=ca.private_key_pkcs8_der(),
        state="active",
        prepared_at=ca.prepared_at,
        activated_at=ca.activated_at,
    )
    assert restored.certificate == ca.certificate
    assert restored.state is CAState.ACTIVE
    assert "private_key" not in repr(restored)


def test_restore_rejects_mismatched_key(
    ca: CertificateAuthority, other_ca: CertificateAuthority
) -> None:
    with pytest.raises(InvalidKey, match="does not match"):
        CertificateAuthority.restore(
            id=ca.id,
            certificate_der=ca.certificate_der,
            private_key_pkcs8_der=other_ca.private_key_pkcs8_der(),
            state="active",
            prepared_at=ca.prepared_at,
        )


def _rsa_pkcs8() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _p521_pkcs8() -> bytes:
    return private_key_to_pkcs8_der(ec.generate_private_key(ec.SECP521R1()))


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: b"not a key", id="garbage"),
        pytest.param(lambda: b"", id="empty"),
        pytest.param(_rsa_pkcs8, id="rsa-key"),
        pytest.param(_p521_pkcs8, id="p521-key"),
    ],
)
def test_private_key_from_pkcs8_rejects(make: object) -> None:
    assert callable(make)
    with pytest.raises(InvalidKey) as caught:
        private_key_from_pkcs8_der(make())
    assert caught.value.code == "invalid_argument"
