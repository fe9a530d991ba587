"""CA key material: generation and PKCS#8 DER (de)serialization.

The server encrypts the PKCS#8 bytes with its key encryption key before storing
them; this module never touches storage.
"""

from __future__ import annotations

import enum

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ._errors import InvalidKey


class KeyAlgorithm(enum.StrEnum):
    """Key types a CA may use. ECDSA P-256 is the default."""

    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"


DEFAULT_KEY_ALGORITHM = KeyAlgorithm.EC_P256

_CURVES: dict[KeyAlgorithm, type[ec.EllipticCurve]] = {
    KeyAlgorithm.EC_P256: ec.SECP256R1,
    KeyAlgorithm.EC_P384: ec.SECP384R1,
}


def generate_private_key(
    algorithm: KeyAlgorithm = DEFAULT_KEY_ALGORITHM,
) -> ec.EllipticCurvePrivateKey:
    """Generate a fresh CA private key."""
    return ec.generate_private_key(_CURVES[KeyAlgorithm(algorithm)]())


def key_algorithm_of(key: ec.EllipticCurvePrivateKey) -> KeyAlgorithm:
    """The KeyAlgorithm of an EC key; InvalidKey for curves a CA may not use."""
    for algorithm, curve in _CURVES.items():
        if isinstance(key.curve, curve):
            return algorithm
    raise InvalidKey(f"unsupported CA key curve {key.curve.name}")


def private_key_to_pkcs8_der(key: ec.EllipticCurvePrivateKey) -> bytes:
    """Serialize to unencrypted PKCS#8 DER (the caller encrypts it with its KEK)."""
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def private_key_from_pkcs8_der(data: bytes) -> ec.EllipticCurvePrivateKey:
    """Load a CA key from unencrypted PKCS#8 DER; only EC P-256/P-384 keys load."""
    try:
        key = serialization.load_der_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise InvalidKey("CA private key is not valid PKCS#8 DER") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InvalidKey("CA private key is not an EC key")
    key_algorithm_of(key)
    return key
