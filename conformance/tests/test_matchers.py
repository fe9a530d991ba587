"""Expected-value matching."""

from __future__ import annotations

from typing import Any

import pytest

from conformance.runner.matchers import Context, match, validate

CTX = Context(
    refs=lambda path: {"a.serial": "abc", "a.n": 3}.get(path), issued=lambda r: r == "rid"
)


@pytest.mark.parametrize(
    ("expected", "actual"),
    [
        (2, 2.0),
        ({"a": 1}, {"a": 1, "b": 2}),
        ({"missing": None}, {}),
        ([1, {"x": True}], [1, {"x": True, "y": 0}]),
        ({"$present": True}, "x"),
        ({"$present": False}, None),
        ({"$between": [1, 2]}, 1.5),
        ({"$regex": "^ab"}, "abc"),
        ({"$len": {"$gte": 2}, "$each": {"ok": True}}, [{"ok": True}, {"ok": True}]),
        ({"$some": {"kind": "renewed"}}, [{"kind": "enrolled"}, {"kind": "renewed"}]),
        ({"$ref": "a.serial"}, "abc"),
        ({"$lt": {"$ref": "a.n"}}, 2),
        ({"$server_request_id": True}, "rid"),
        ({"$one_of": [1, 2]}, 2),
        ({"$each_or_empty": {"ok": True}}, []),
        ({"$each_or_empty": {"ok": True}}, [{"ok": True}]),
        ({"$max": {"$gte": 0.1}}, [0.01, 0.12, 0.05]),
        ({"$sum": {"$between": [0.3, 0.31]}}, [0.1, 0.2, 0.001]),
    ],
)
def test_matches(expected: Any, actual: Any) -> None:
    assert match(expected, actual, CTX) == []


@pytest.mark.parametrize(
    ("expected", "actual", "message"),
    [
        (True, 1, "expected True, got 1"),
        ({"a": 1}, {"a": 2}, "$.a: expected 1, got 2"),
        ([1, 2], [1], "expected 2 items, got 1"),
        ({"$server_request_id": True}, "made-up", "a request id the server issued"),
        ({"$ref": "a.other"}, "x", "has no value"),
        ({"$each": {"ok": True}}, [{"ok": True}, {"ok": False}], "$[1].ok"),
        # $each over nothing checks nothing: a failure, unless the case says so
        ({"$each": {"ok": True}}, [], "$each over an empty list"),
        ({"$each_or_empty": {"ok": True}}, [{"ok": False}], "$[0].ok"),
        ({"$max": {"$gte": 0.1}}, [0.0, 0.0], "$.max: expected $gte 0.1, got 0.0"),
        ({"$max": {"$gte": 0.1}}, [], "$max needs a non-empty list of numbers"),
        ({"$sum": {"$gte": 1}}, [0.5, "x"], "$sum needs a non-empty list of numbers"),
    ],
)
def test_mismatches_say_where(expected: Any, actual: Any, message: str) -> None:
    problems = match(expected, actual, CTX)
    assert problems
    assert message in problems[0]


def test_validate_reports_unknown_and_mixed_operators() -> None:
    assert "unknown operator $gtee" in validate({"x": {"$gtee": 1}}, "w")[0]
    assert "do not mix" in validate({"$gte": 1, "x": 2}, "w")[0]


def _csr(key: Any, algorithm: Any, *, subject: str = "", san: bool = False) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import NameOID

    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)] if subject else [])
    )
    if san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier("spiffe://td/x")]),
            critical=False,
        )
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.PEM).decode()


def test_csr_matcher_describes_what_spec_8_3_checks() -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    p256 = ec.generate_private_key(ec.SECP256R1())
    conforming = {
        "$csr": {
            "pem": True,
            "key": "ec-p256",
            "hash": "sha256",
            "hash_fits_key": True,
            "signature_valid": True,
            "subject": "",
            "attributes": 0,
            "extensions": 0,
        }
    }
    assert match(conforming, _csr(p256, hashes.SHA256()), CTX) == []
    # A hash other than the key's (8.3.1), a subject, a SAN (8.3.2): each is seen.
    assert "$.csr.hash" in match(conforming, _csr(p256, hashes.SHA512()), CTX)[0]
    assert "$.csr.subject" in match(conforming, _csr(p256, hashes.SHA256(), subject="x"), CTX)[0]
    assert "$.csr.extensions" in match(conforming, _csr(p256, hashes.SHA256(), san=True), CTX)[0]
    p384 = _csr(ec.generate_private_key(ec.SECP384R1()), hashes.SHA384())
    assert match({"$csr": {"key": "ec-p384", "hash_fits_key": True}}, p384, CTX) == []
    assert "a PEM certificate request" in match(conforming, "MIIB...", CTX)[0]
