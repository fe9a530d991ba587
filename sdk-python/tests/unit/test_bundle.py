"""Parsing trust bundles (spec 10.1) and the retryable flag (spec 11.5)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from secinfra import load_bundle
from secinfra._runtime._retry import status_retryable
from secinfra.errors import SecinfraError


def _ca(name: str) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier("spiffe://td")]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )


def _b64(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def test_only_the_first_x5c_certificate_is_an_authority() -> None:
    first, extra = _ca("first"), _ca("extra")
    doc = {
        "keys": [{"use": "x509-svid", "x5c": [_b64(first), _b64(extra)]}],
        "spiffe_sequence": 7,
    }
    bundle = load_bundle(json.dumps(doc))
    certs = x509.load_pem_x509_certificates(bundle.pem.encode())
    assert [c.subject for c in certs] == [first.subject]
    assert bundle.sequence == 7


@pytest.mark.parametrize(
    "keys",
    [[], [{"use": "jwt-svid", "x5c": []}], [{"use": "x509-svid", "x5c": []}]],
)
def test_a_bundle_without_authorities_is_refused(keys: list[dict[str, object]]) -> None:
    with pytest.raises(SecinfraError, match=r"no X\.509 authority"):
        load_bundle(json.dumps({"keys": keys}))


@pytest.mark.parametrize(
    ("status", "headers", "idempotency", "retryable"),
    [
        (503, {}, "non_idempotent", True),
        (429, {}, "read_only", True),
        (500, {}, "read_only", True),
        (500, {}, "non_idempotent", False),
        (409, {"Secinfra-Should-Retry": "true"}, "non_idempotent", True),
        (503, {"Secinfra-Should-Retry": "false"}, "read_only", False),
        (404, {}, "read_only", False),
        (501, {}, "idempotent", False),
    ],
)
def test_retryable_flag_follows_the_rules(
    status: int, headers: dict[str, str], idempotency: str, retryable: bool
) -> None:
    assert status_retryable(status, headers, idempotency) is retryable
