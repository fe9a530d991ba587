"""The SPIFFE trust bundle (a JWK Set) and its ETag.

``render_bundle`` gives the exact bytes the server serves at its bundle endpoint::

    {"keys": [{"use": "x509-svid", "kty": "EC", "crv": "P-256", "x": "...",
               "y": "...", "x5c": ["<base64 DER>"]}, ...],
     "spiffe_refresh_hint": 300, "spiffe_sequence": 7}

The JSON is canonical (sorted keys, no whitespace, CAs ordered by notBefore then
SHA-256 of their DER), so the same inputs always give the same bytes, and the
ETag is the quoted SHA-256 of those bytes: a strong validator.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ._authority import CertificateAuthority
from ._errors import InvalidBundle

DEFAULT_REFRESH_HINT = timedelta(minutes=5)
"""How often clients should re-fetch the bundle (``spiffe_refresh_hint``)."""

X509_SVID_USE = "x509-svid"

_CURVE_NAMES: dict[str, tuple[str, int]] = {
    "secp256r1": ("P-256", 32),
    "secp384r1": ("P-384", 48),
    "secp521r1": ("P-521", 66),
}


@dataclass(frozen=True)
class RenderedBundle:
    """The bundle document as served: ``body`` (canonical JSON bytes) and ``etag``."""

    body: bytes
    etag: str
    sequence: int
    refresh_hint: int


def render_bundle(
    authorities: Iterable[CertificateAuthority | x509.Certificate],
    *,
    sequence: int,
    refresh_hint: timedelta = DEFAULT_REFRESH_HINT,
) -> RenderedBundle:
    """Render the SPIFFE bundle for ``authorities``.

    The caller chooses what to publish (prepared, active and retiring CAs: see
    ``trusted_authorities``) and owns ``sequence``, which must increase on every
    change of the published set.
    """
    if sequence < 0:
        raise InvalidBundle("spiffe_sequence must not be negative")
    hint = int(refresh_hint.total_seconds())
    if hint <= 0:
        raise InvalidBundle("spiffe_refresh_hint must be at least one second")
    certificates = {
        _der(c): c.certificate if isinstance(c, CertificateAuthority) else c for c in authorities
    }
    ordered = sorted(
        certificates.items(),
        key=lambda item: (item[1].not_valid_before_utc, hashlib.sha256(item[0]).digest()),
    )
    document = {
        "keys": [_jwk(der, certificate) for der, certificate in ordered],
        "spiffe_refresh_hint": hint,
        "spiffe_sequence": sequence,
    }
    body = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return RenderedBundle(body=body, etag=bundle_etag(body), sequence=sequence, refresh_hint=hint)


def bundle_etag(body: bytes) -> str:
    """Strong ETag for a bundle body: ``"sha256:<hex>"`` (quotes included)."""
    return f'"sha256:{hashlib.sha256(body).hexdigest()}"'


def parse_bundle(data: bytes | str | Mapping[str, Any]) -> list[x509.Certificate]:
    """The X.509 authorities of a SPIFFE bundle (JSON bytes/str or a parsed dict).

    Entries whose ``use`` is not ``x509-svid`` (e.g. ``jwt-svid``) are skipped; each
    ``x509-svid`` entry must hold exactly one certificate in ``x5c`` whose public
    key matches the JWK's own key parameters.
    """
    document: Any
    if isinstance(data, Mapping):
        document = data
    else:
        try:
            document = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidBundle("bundle is not valid JSON") from exc
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise InvalidBundle("bundle must be a JSON object with a 'keys' array")
    certificates: list[x509.Certificate] = []
    for index, key in enumerate(document["keys"]):
        if not isinstance(key, Mapping):
            raise InvalidBundle(f"bundle key {index} is not an object")
        if key.get("use") != X509_SVID_USE:
            continue
        x5c = key.get("x5c")
        if not isinstance(x5c, list) or len(x5c) != 1 or not isinstance(x5c[0], str):
            raise InvalidBundle(f"bundle key {index}: x5c must hold one certificate")
        try:
            certificate = x509.load_der_x509_certificate(base64.b64decode(x5c[0], validate=True))
        except ValueError as exc:
            raise InvalidBundle(f"bundle key {index}: x5c is not a certificate") from exc
        expected = _public_jwk(certificate)
        actual = {k: key.get(k) for k in expected}
        if actual != expected:
            raise InvalidBundle(
                f"bundle key {index}: JWK parameters do not match the x5c certificate"
            )
        certificates.append(certificate)
    return certificates


def _der(item: CertificateAuthority | x509.Certificate) -> bytes:
    certificate = item.certificate if isinstance(item, CertificateAuthority) else item
    return certificate.public_bytes(serialization.Encoding.DER)


def _jwk(der: bytes, certificate: x509.Certificate) -> dict[str, Any]:
    jwk: dict[str, Any] = {"use": X509_SVID_USE}
    jwk.update(_public_jwk(certificate))
    jwk["x5c"] = [base64.b64encode(der).decode("ascii")]
    return jwk


def _public_jwk(certificate: x509.Certificate) -> dict[str, str]:
    key = certificate.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _CURVE_NAMES:
            raise InvalidBundle(f"unsupported CA curve {key.curve.name}")
        crv, size = _CURVE_NAMES[key.curve.name]
        numbers = key.public_numbers()
        return {
            "kty": "EC",
            "crv": crv,
            "x": _b64url(numbers.x.to_bytes(size, "big")),
            "y": _b64url(numbers.y.to_bytes(size, "big")),
        }
    if isinstance(key, rsa.RSAPublicKey):
        rsa_numbers = key.public_numbers()
        return {
            "kty": "RSA",
            "n": _b64url(_unsigned(rsa_numbers.n)),
            "e": _b64url(_unsigned(rsa_numbers.e)),
        }
    raise InvalidBundle(f"unsupported CA key type {type(key).__name__}")


def _unsigned(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
