"""An issued certificate must chain to the trust bundle before it is used (spec 8.7.4)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from secinfra._identity._bundle import TrustBundle, chains_to_bundle

NOW = datetime.now(UTC)
PEM = serialization.Encoding.PEM


@dataclass
class Authority:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _issue(
    name: str,
    issuer: Authority | None,
    *,
    ca: bool,
    not_after: datetime = NOW + timedelta(days=1),
) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(hours=1))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    return Authority(cert=builder.sign(issuer.key if issuer else key, hashes.SHA256()), key=key)


def _bundle(*cas: Authority) -> TrustBundle:
    return TrustBundle(
        pem="".join(a.cert.public_bytes(PEM).decode() for a in cas), sequence=1, refresh_hint=60
    )


def _chain(*certs: Authority) -> bytes:
    return b"".join(a.cert.public_bytes(PEM) for a in certs)


def test_a_leaf_signed_by_a_bundle_ca_chains() -> None:
    root = _issue("root", None, ca=True)
    leaf = _issue("leaf", root, ca=False)
    assert chains_to_bundle(_chain(leaf), _bundle(root), NOW)


def test_a_leaf_chains_through_the_intermediates_it_carries() -> None:
    root = _issue("root", None, ca=True)
    middle = _issue("middle", root, ca=True)
    leaf = _issue("leaf", middle, ca=False)
    assert chains_to_bundle(_chain(leaf, middle), _bundle(root), NOW)
    assert not chains_to_bundle(_chain(leaf), _bundle(root), NOW)


def test_a_leaf_from_a_ca_not_in_the_bundle_does_not_chain() -> None:
    root = _issue("root", None, ca=True)
    other = _issue("other", None, ca=True)
    leaf = _issue("leaf", root, ca=False)
    assert not chains_to_bundle(_chain(leaf), _bundle(other), NOW)


def test_a_ca_with_the_same_name_but_another_key_does_not_chain() -> None:
    root = _issue("root", None, ca=True)
    impostor = _issue("root", None, ca=True)  # same subject, other key
    leaf = _issue("leaf", root, ca=False)
    assert not chains_to_bundle(_chain(leaf), _bundle(impostor), NOW)


def test_an_expired_bundle_ca_does_not_chain() -> None:
    root = _issue("root", None, ca=True, not_after=NOW + timedelta(minutes=1))
    leaf = _issue("leaf", root, ca=False)
    assert chains_to_bundle(_chain(leaf), _bundle(root), NOW)
    assert not chains_to_bundle(_chain(leaf), _bundle(root), NOW + timedelta(minutes=2))


def test_either_ca_of_a_rotation_bundle_is_enough() -> None:
    old, new = _issue("old", None, ca=True), _issue("new", None, ca=True)
    assert chains_to_bundle(_chain(_issue("leaf", new, ca=False)), _bundle(old, new), NOW)
    assert chains_to_bundle(_chain(_issue("leaf", old, ca=False)), _bundle(old, new), NOW)
