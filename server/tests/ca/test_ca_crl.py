"""CRLs: signed by the CA, list the revoked serials, accepted by openssl."""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from secinfra_server.ca import (
    CAState,
    CAUnavailable,
    CertificateAuthority,
    InvalidArgument,
    RevokedSerial,
    build_crl,
)

Openssl = Callable[..., subprocess.CompletedProcess[str]]


def test_crl_contents(ca: CertificateAuthority, now: datetime) -> None:
    revoked_at = now - timedelta(hours=2)
    crl = build_crl(
        ca,
        [RevokedSerial(0xABC, revoked_at), (2**127 + 5, revoked_at), (0xABC, now)],
        now=now,
        crl_number=42,
        next_update=timedelta(minutes=30),
    )
    parsed = x509.load_der_x509_crl(crl.public_bytes(serialization.Encoding.DER))
    assert parsed.is_signature_valid(ca.certificate.public_key())  # type: ignore[arg-type]
    assert parsed.issuer == ca.certificate.subject
    assert parsed.last_update_utc == now
    assert parsed.next_update_utc == now + timedelta(minutes=30)
    assert {entry.serial_number for entry in parsed} == {0xABC, 2**127 + 5}
    entry = parsed.get_revoked_certificate_by_serial_number(0xABC)
    assert entry is not None
    assert entry.revocation_date_utc == revoked_at
    number = parsed.extensions.get_extension_for_class(x509.CRLNumber).value
    assert number.crl_number == 42
    aki = parsed.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ca.subject_key_identifier


def test_empty_crl(ca: CertificateAuthority, now: datetime) -> None:
    crl = build_crl(ca, [], now=now, crl_number=1)
    assert len(crl) == 0
    assert crl.next_update_utc == now + timedelta(hours=1)


@pytest.mark.parametrize("encoding", ["PEM", "DER"])
def test_openssl_accepts_crl(
    ca: CertificateAuthority, now: datetime, openssl: Openssl, tmp_path: Path, encoding: str
) -> None:
    crl = build_crl(ca, [(1234567, now)], now=now, crl_number=3)
    path = tmp_path / "crl"
    path.write_bytes(crl.public_bytes(getattr(serialization.Encoding, encoding)))
    (tmp_path / "ca.pem").write_bytes(ca.certificate.public_bytes(serialization.Encoding.PEM))

    result = openssl("crl", "-noout", "-inform", encoding, "-in", path)
    assert result.returncode == 0, result.stderr
    checked = openssl(
        "crl", "-noout", "-inform", encoding, "-in", path, "-CAfile", tmp_path / "ca.pem"
    )
    assert checked.returncode == 0, checked.stderr
    assert "verify OK" in checked.stdout + checked.stderr
    text = openssl("crl", "-noout", "-text", "-inform", encoding, "-in", path).stdout
    assert "12D687" in text.upper()


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        pytest.param({"next_update": timedelta(0)}, InvalidArgument, id="zero-next-update"),
        pytest.param({"crl_number": -1}, InvalidArgument, id="negative-crl-number"),
        pytest.param({"retired": True}, CAUnavailable, id="retired-ca"),
    ],
)
def test_crl_rejects(
    ca: CertificateAuthority, now: datetime, kwargs: dict[str, object], error: type[Exception]
) -> None:
    authority = ca
    if kwargs.pop("retired", False):
        authority = dataclasses.replace(ca, state=CAState.RETIRED)
    args: dict[str, object] = {"now": now, "crl_number": 1, **kwargs}
    with pytest.raises(error):
        build_crl(authority, [], **args)  # type: ignore[arg-type]
