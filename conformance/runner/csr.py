"""What a certificate request as sent looks like, for the ``$csr`` matcher (spec 8.3).

The server accepts more than the spec lets a client send (DER, other hashes,
a subject it ignores), so only the request as logged shows whether the
client kept to 8.3.1 and 8.3.2: this module describes it.
"""

from __future__ import annotations

from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

PEM_HEADER: Final = "-----BEGIN CERTIFICATE REQUEST-----"
_EXTENSION_REQUEST: Final = x509.ObjectIdentifier("1.2.840.113549.1.9.14")

#: The hash 8.3.1 prescribes for each key kind.
_HASH_FOR_KEY: Final = {"ec-p256": "sha256", "ec-p384": "sha384", "rsa": "sha256"}


def describe(value: Any) -> dict[str, Any] | None:
    """A description of the PEM CSR ``value``, or None when it is not one.

    Keys: ``pem`` (it is PEM with the PKCS#10 header), ``key`` (``ec-p256``,
    ``ec-p384``, ``rsa`` or the curve/key type name), ``hash`` (the signature
    hash, lower case), ``hash_fits_key`` (the hash 8.3.1 prescribes for that
    key), ``rsa_padding`` (``pkcs1v15`` or ``pss``, RSA only), ``signature_valid``
    (signed by the key it carries), ``subject`` (RFC 4514, ``""`` for empty),
    ``attributes`` and ``extensions`` (how many).
    """
    if not isinstance(value, str) or PEM_HEADER not in value:
        return None
    try:
        csr = x509.load_pem_x509_csr(value.encode())
    except ValueError:
        return None
    public = csr.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        key = {"secp256r1": "ec-p256", "secp384r1": "ec-p384"}.get(
            public.curve.name, public.curve.name
        )
    elif isinstance(public, rsa.RSAPublicKey):
        key = "rsa"
    else:
        key = type(public).__name__
    algorithm = csr.signature_hash_algorithm
    digest = algorithm.name.lower() if isinstance(algorithm, hashes.HashAlgorithm) else None
    described: dict[str, Any] = {
        "pem": value.lstrip().startswith(PEM_HEADER),
        "key": key,
        "hash": digest,
        "hash_fits_key": digest is not None and _HASH_FOR_KEY.get(key) == digest,
        "signature_valid": csr.is_signature_valid,
        "subject": csr.subject.rfc4514_string(),
        # Requested extensions travel in an extensionRequest attribute: counted
        # as extensions, not again as an attribute.
        "attributes": sum(1 for a in csr.attributes if a.oid != _EXTENSION_REQUEST),
        "extensions": len(list(csr.extensions)),
    }
    if key == "rsa":
        # PKCS #1 v1.5 has the plain sha256WithRSAEncryption OID; PSS has its own.
        described["rsa_padding"] = (
            "pss"
            if csr.signature_algorithm_oid.dotted_string == "1.2.840.113549.1.1.10"
            else "pkcs1v15"
        )
    return described
