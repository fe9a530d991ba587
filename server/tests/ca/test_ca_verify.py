"""verify_svid_chain / SvidVerifier: what the server checks on every request."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from secinfra_server.ca import (
    CAError,
    CAState,
    CertificateAuthority,
    CertificateExpired,
    CertificateNotYetValid,
    CertificateRejected,
    CertificateRevoked,
    InvalidBundle,
    NotAnSvid,
    RevocationList,
    SpiffeId,
    SvidVerifier,
    UntrustedCertificate,
    build_csr,
    create_root_ca,
    parse_bundle,
    render_bundle,
    sign_svid,
    verify_svid_chain,
)

WORKLOAD = "spiffe://example.org/ns/prod/sa/web"

LEAF_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


def craft_leaf(
    ca: CertificateAuthority,
    now: datetime,
    *,
    uris: tuple[str, ...] = (WORKLOAD,),
    ca_flag: bool = False,
    usage: x509.KeyUsage = LEAF_USAGE,
    signing_key: ec.EllipticCurvePrivateKey | None = None,
) -> x509.Certificate:
    """A leaf built with the raw cryptography builder, to hold one defect at a time."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "x")]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca_flag, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                x509.SubjectKeyIdentifier(ca.subject_key_identifier)
            ),
            critical=False,
        )
    )
    if uris:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris]),
            critical=False,
        )
    return builder.sign(signing_key or ca.private_key, hashes.SHA256())


def _issue(ca: CertificateAuthority, now: datetime) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    return sign_svid(ca, build_csr(key), WORKLOAD, ttl=timedelta(hours=1), now=now)


Case = Callable[[CertificateAuthority, CertificateAuthority, datetime], x509.Certificate]

CASES: list[tuple[str, Case, timedelta, type[CertificateRejected] | None]] = [
    ("valid", lambda ca, other, now: _issue(ca, now), timedelta(0), None),
    ("valid-at-not-after", lambda ca, other, now: _issue(ca, now), timedelta(hours=1), None),
    (
        "expired",
        lambda ca, other, now: _issue(ca, now),
        timedelta(hours=1, seconds=1),
        CertificateExpired,
    ),
    (
        "not-yet-valid",
        lambda ca, other, now: _issue(ca, now),
        timedelta(seconds=-61),
        CertificateNotYetValid,
    ),
    ("foreign-ca", lambda ca, other, now: _issue(other, now), timedelta(0), UntrustedCertificate),
    (
        "forged-signature",
        lambda ca, other, now: craft_leaf(ca, now, signing_key=other.private_key),
        timedelta(0),
        UntrustedCertificate,
    ),
    (
        "other-trust-domain",
        lambda ca, other, now: craft_leaf(ca, now, uris=("spiffe://evil.org/x",)),
        timedelta(0),
        UntrustedCertificate,
    ),
    (
        "leaf-with-two-uri-sans",
        lambda ca, other, now: craft_leaf(ca, now, uris=(WORKLOAD, "spiffe://example.org/admin")),
        timedelta(0),
        NotAnSvid,
    ),
    (
        "leaf-without-san",
        lambda ca, other, now: craft_leaf(ca, now, uris=()),
        timedelta(0),
        NotAnSvid,
    ),
    (
        "leaf-with-https-uri",
        lambda ca, other, now: craft_leaf(ca, now, uris=("https://example.org/x",)),
        timedelta(0),
        NotAnSvid,
    ),
    (
        "leaf-with-trust-domain-id",
        lambda ca, other, now: craft_leaf(ca, now, uris=("spiffe://example.org",)),
        timedelta(0),
        NotAnSvid,
    ),
    (
        "leaf-with-ca-flag",
        lambda ca, other, now: craft_leaf(ca, now, ca_flag=True),
        timedelta(0),
        NotAnSvid,
    ),
    (
        "leaf-with-key-cert-sign",
        lambda ca, other, now: craft_leaf(
            ca,
            now,
            usage=x509.KeyUsage(True, False, False, False, False, True, False, False, False),
        ),
        timedelta(0),
        NotAnSvid,
    ),
    ("ca-cert-as-leaf", lambda ca, other, now: ca.certificate, timedelta(0), NotAnSvid),
]


@pytest.mark.parametrize(
    ("make", "shift", "error"),
    [pytest.param(make, shift, err, id=name) for name, make, shift, err in CASES],
)
def test_verify_svid_chain(
    ca: CertificateAuthority,
    other_ca: CertificateAuthority,
    now: datetime,
    make: Case,
    shift: timedelta,
    error: type[CertificateRejected] | None,
) -> None:
    leaf = make(ca, other_ca, now)
    if error is None:
        assert verify_svid_chain(leaf, [ca.certificate], now + shift) == SpiffeId.parse(WORKLOAD)
        return
    with pytest.raises(error) as caught:
        verify_svid_chain(leaf, [ca.certificate], now + shift)
    assert caught.value.code == "unauthenticated"
    assert str(caught.value).startswith("secinfra: ca: ")


def test_verifier_picks_the_issuing_ca_among_many(
    ca: CertificateAuthority, other_ca: CertificateAuthority, now: datetime
) -> None:
    verifier = SvidVerifier([other_ca.certificate, ca.certificate])
    assert verifier.verify(_issue(ca, now), now=now) == SpiffeId.parse(WORKLOAD)
    assert verifier.verify(_issue(other_ca, now), now=now) == SpiffeId.parse(WORKLOAD)
    assert verify_svid_chain(_issue(ca, now), verifier, now) == SpiffeId.parse(WORKLOAD)


def test_issuing_ca_expired(now: datetime) -> None:
    short = create_root_ca(
        "example.org", now=now, validity=timedelta(minutes=30), state=CAState.ACTIVE
    )
    leaf = _issue(short, now)
    assert leaf.not_valid_after_utc == short.not_after
    with pytest.raises(CertificateExpired):
        verify_svid_chain(leaf, [short.certificate], short.not_after + timedelta(seconds=1))


def test_verifier_from_parsed_bundle(
    ca: CertificateAuthority, other_ca: CertificateAuthority, now: datetime
) -> None:
    bundle = render_bundle([ca, other_ca], sequence=1)
    verifier = SvidVerifier(parse_bundle(bundle.body))
    assert verifier.verify(_issue(other_ca, now), now=now) == SpiffeId.parse(WORKLOAD)


@pytest.mark.parametrize(
    ("trusted", "fragment"),
    [
        pytest.param("empty", "no trusted", id="empty"),
        pytest.param("leaf", "is not a CA", id="leaf-as-trust-anchor"),
    ],
)
def test_verifier_rejects_bad_trust_anchors(
    ca: CertificateAuthority, now: datetime, trusted: str, fragment: str
) -> None:
    anchors = [] if trusted == "empty" else [_issue(ca, now)]
    with pytest.raises(InvalidBundle, match=fragment) as caught:
        SvidVerifier(anchors)
    assert caught.value.code == "invalid_argument"


@pytest.mark.parametrize(
    ("by_serial", "by_id", "revoked"),
    [
        pytest.param(False, None, False, id="not-revoked"),
        pytest.param(True, None, True, id="revoked-serial"),
        pytest.param(False, WORKLOAD, True, id="revoked-spiffe-id"),
        pytest.param(False, "spiffe://example.org/other", False, id="other-spiffe-id-revoked"),
    ],
)
def test_revocation_list(
    ca: CertificateAuthority, now: datetime, by_serial: bool, by_id: str | None, revoked: bool
) -> None:
    leaf = _issue(ca, now)
    deny = RevocationList.of(
        serials=[leaf.serial_number] if by_serial else [123],
        spiffe_ids=[by_id] if by_id else [],
    )
    assert deny.is_revoked(leaf) is revoked
    verifier = SvidVerifier([ca.certificate])
    if revoked:
        with pytest.raises(CertificateRevoked) as caught:
            verifier.verify(leaf, now=now, revoked=deny)
        assert caught.value.code == "unauthenticated"
        assert isinstance(caught.value, CAError)
    else:
        assert verifier.verify(leaf, now=now, revoked=deny) == SpiffeId.parse(WORKLOAD)


def test_revocation_list_ignores_non_svids(ca: CertificateAuthority) -> None:
    deny = RevocationList.of(spiffe_ids=["spiffe://example.org/x"])
    assert not deny.is_revoked(ca.certificate)


def test_a_cached_chain_still_checks_time_and_revocation_on_every_call() -> None:
    from datetime import UTC, datetime, timedelta

    from cryptography.hazmat.primitives.asymmetric import ec

    from secinfra_server import ca

    now = datetime(2030, 1, 1, tzinfo=UTC)
    authority = ca.create_root_ca("td.test", now=now, state=ca.CAState.ACTIVE)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = ca.sign_svid(
        authority, ca.build_csr(key), "spiffe://td.test/w", ttl=timedelta(hours=1), now=now
    )
    verifier = ca.SvidVerifier([authority.certificate])
    assert str(verifier.verify(leaf, now=now)) == "spiffe://td.test/w"
    assert str(verifier.verify(leaf, now=now)) == "spiffe://td.test/w"  # from the cache
    with pytest.raises(ca.CertificateExpired):
        verifier.verify(leaf, now=now + timedelta(hours=2))
    with pytest.raises(ca.CertificateRevoked):
        verifier.verify(leaf, now=now, revoked=ca.RevocationList.of(serials=[leaf.serial_number]))
    other = ca.create_root_ca("td.test", now=now, state=ca.CAState.ACTIVE)
    with pytest.raises(ca.UntrustedCertificate):
        ca.SvidVerifier([other.certificate]).verify(leaf, now=now)
