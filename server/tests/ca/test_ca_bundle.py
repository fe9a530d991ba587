"""The SPIFFE trust bundle: JSON shape, ETag, and parsing back."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from spiffe import TrustDomain, X509Bundle

from secinfra_server.ca import (
    CertificateAuthority,
    InvalidBundle,
    KeyAlgorithm,
    bundle_etag,
    create_root_ca,
    parse_bundle,
    render_bundle,
)


def _b64url(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


@pytest.fixture(scope="module")
def p384_ca(now: datetime) -> CertificateAuthority:
    return create_root_ca("example.org", now=now, key_algorithm=KeyAlgorithm.EC_P384)


def test_bundle_shape(ca: CertificateAuthority, p384_ca: CertificateAuthority) -> None:
    bundle = render_bundle([ca, p384_ca], sequence=7, refresh_hint=timedelta(seconds=120))
    document = json.loads(bundle.body)

    assert set(document) == {"keys", "spiffe_sequence", "spiffe_refresh_hint"}
    assert document["spiffe_sequence"] == 7 == bundle.sequence
    assert document["spiffe_refresh_hint"] == 120 == bundle.refresh_hint
    assert len(document["keys"]) == 2
    by_curve = {key["crv"]: key for key in document["keys"]}
    for crv, authority, size in (("P-256", ca, 32), ("P-384", p384_ca, 48)):
        key = by_curve[crv]
        assert set(key) == {"use", "kty", "crv", "x", "y", "x5c"}
        assert (key["use"], key["kty"]) == ("x509-svid", "EC")
        assert len(key["x5c"]) == 1
        assert base64.b64decode(key["x5c"][0]) == authority.certificate_der
        numbers = authority.certificate.public_key()
        assert isinstance(numbers, ec.EllipticCurvePublicKey)
        assert int.from_bytes(_b64url(key["x"]), "big") == numbers.public_numbers().x
        assert int.from_bytes(_b64url(key["y"]), "big") == numbers.public_numbers().y
        assert len(_b64url(key["x"])) == len(_b64url(key["y"])) == size
        assert "=" not in key["x"] + key["y"]


def test_default_refresh_hint(ca: CertificateAuthority) -> None:
    assert json.loads(render_bundle([ca], sequence=1).body)["spiffe_refresh_hint"] == 300


def test_etag_is_strong_and_stable(ca: CertificateAuthority, p384_ca: CertificateAuthority) -> None:
    first = render_bundle([ca, p384_ca], sequence=3)
    again = render_bundle([p384_ca.certificate, ca.certificate, ca], sequence=3)
    assert first.etag == again.etag
    assert first.body == again.body
    assert first.etag.startswith('"')
    assert first.etag.endswith('"')
    assert not first.etag.startswith("W/")
    assert first.etag == bundle_etag(first.body)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"sequence": 4}, id="sequence"),
        pytest.param({"refresh_hint": timedelta(seconds=60)}, id="refresh-hint"),
        pytest.param({"drop_ca": True}, id="ca-removed"),
        pytest.param({"add_ca": True}, id="ca-added"),
    ],
)
def test_etag_changes_with_contents(
    ca: CertificateAuthority,
    p384_ca: CertificateAuthority,
    other_ca: CertificateAuthority,
    change: dict[str, Any],
) -> None:
    base = render_bundle([ca, p384_ca], sequence=3)
    cas: list[CertificateAuthority] = [ca, p384_ca]
    if change.pop("drop_ca", False):
        cas = [ca]
    if change.pop("add_ca", False):
        cas = [ca, p384_ca, other_ca]
    kwargs: dict[str, Any] = {"sequence": 3, **change}
    assert render_bundle(cas, **kwargs).etag != base.etag


def test_parse_round_trip(ca: CertificateAuthority, p384_ca: CertificateAuthority) -> None:
    bundle = render_bundle([ca, p384_ca], sequence=1)
    expected = {ca.certificate, p384_ca.certificate}
    assert set(parse_bundle(bundle.body)) == expected
    assert set(parse_bundle(bundle.body.decode())) == expected
    assert set(parse_bundle(json.loads(bundle.body))) == expected
    # py-spiffe takes the same certificates as an X.509 bundle.
    x509_bundle = X509Bundle(TrustDomain("example.org"), set(parse_bundle(bundle.body)))
    assert x509_bundle.x509_authorities == expected


def test_parse_skips_jwt_svid_keys(ca: CertificateAuthority) -> None:
    document = json.loads(render_bundle([ca], sequence=1).body)
    document["keys"].append({"use": "jwt-svid", "kty": "EC", "kid": "k", "crv": "P-256"})
    assert parse_bundle(document) == [ca.certificate]


def _mutate(ca: CertificateAuthority, how: str) -> object:
    document: dict[str, Any] = json.loads(render_bundle([ca], sequence=1).body)
    key = document["keys"][0]
    if how == "not-json":
        return b"{not json"
    if how == "no-keys":
        return {"spiffe_sequence": 1}
    if how == "key-not-object":
        document["keys"] = ["x"]
    elif how == "two-certs-in-x5c":
        key["x5c"] = key["x5c"] * 2
    elif how == "bad-base64":
        key["x5c"] = ["!!!"]
    elif how == "not-a-certificate":
        key["x5c"] = [base64.b64encode(b"hello").decode()]
    elif how == "jwk-does-not-match-x5c":
        key["x"] = key["y"]
    return document


@pytest.mark.parametrize(
    "how",
    [
        "not-json",
        "no-keys",
        "key-not-object",
        "two-certs-in-x5c",
        "bad-base64",
        "not-a-certificate",
        "jwk-does-not-match-x5c",
    ],
)
def test_parse_rejects(ca: CertificateAuthority, how: str) -> None:
    with pytest.raises(InvalidBundle) as caught:
        parse_bundle(_mutate(ca, how))  # type: ignore[arg-type]
    assert caught.value.code == "invalid_argument"


@pytest.mark.parametrize(
    ("sequence", "hint"),
    [
        pytest.param(-1, timedelta(minutes=5), id="negative-sequence"),
        pytest.param(1, timedelta(0), id="zero-refresh-hint"),
    ],
)
def test_render_rejects(ca: CertificateAuthority, sequence: int, hint: timedelta) -> None:
    with pytest.raises(InvalidBundle):
        render_bundle([ca], sequence=sequence, refresh_hint=hint)


def test_render_accepts_plain_certificates(ca: CertificateAuthority) -> None:
    assert isinstance(
        parse_bundle(render_bundle([ca.certificate], sequence=0).body)[0], x509.Certificate
    )
