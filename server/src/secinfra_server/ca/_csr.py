"""CSR intake: parse and validate what a workload sends before anything is signed.

Checks, in order, each with its own error (code invalid_argument):

1. size and encoding (PEM ``CERTIFICATE REQUEST`` or DER)      MalformedCSR
2. public key on the allowlist                                  UnsupportedKeyType
   (EC P-256, EC P-384, RSA 2048-8192; not Ed25519/Ed448, DSA, other curves)
3. signature algorithm: SHA-256/384/512 with ECDSA, RSA PKCS#1 v1.5 or RSA-PSS
   (SHA-1, MD5 and anything else are refused)                   WeakSignatureAlgorithm
4. the CSR's self-signature verifies                            CSRSignatureInvalid
5. no requested extensions and no other attributes              CSRRequestsExtensions

The CSR's subject is ignored: the server alone decides every field of the
certificate. Only its public key is used.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import (
    AttributeOID,
    ExtensionOID,
    ObjectIdentifier,
    SignatureAlgorithmOID,
)

from ._errors import (
    CSRRequestsExtensions,
    CSRSignatureInvalid,
    MalformedCSR,
    UnsupportedKeyType,
    WeakSignatureAlgorithm,
)

MAX_CSR_BYTES = 16 * 1024
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192

AllowedPublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

_ALLOWED_CURVES = (ec.SECP256R1, ec.SECP384R1)
_STRONG_HASHES = (hashes.SHA256, hashes.SHA384, hashes.SHA512)
_ALLOWED_SIGNATURE_OIDS = frozenset(
    {
        SignatureAlgorithmOID.ECDSA_WITH_SHA256,
        SignatureAlgorithmOID.ECDSA_WITH_SHA384,
        SignatureAlgorithmOID.ECDSA_WITH_SHA512,
        SignatureAlgorithmOID.RSA_WITH_SHA256,
        SignatureAlgorithmOID.RSA_WITH_SHA384,
        SignatureAlgorithmOID.RSA_WITH_SHA512,
        SignatureAlgorithmOID.RSASSA_PSS,
    }
)
_PEM_MARKER = b"-----BEGIN"
_EXTENSION_REQUEST = ObjectIdentifier("1.2.840.113549.1.9.14")  # PKCS#9 extensionRequest
_OID_NAMES = {
    value: name.lower()
    for namespace in (ExtensionOID, AttributeOID, SignatureAlgorithmOID)
    for name, value in vars(namespace).items()
    if isinstance(value, ObjectIdentifier)
}


def _oid_name(oid: ObjectIdentifier) -> str:
    return _OID_NAMES.get(oid, oid.dotted_string)


def load_csr(data: bytes | str) -> x509.CertificateSigningRequest:
    """Parse and validate a CSR (PEM or DER); see the module docstring for the rules."""
    csr = _parse(data)
    public_key = check_public_key(csr.public_key())
    _check_signature_algorithm(csr, public_key)
    if not csr.is_signature_valid:
        raise CSRSignatureInvalid("CSR signature does not verify with its public key")
    _check_no_extensions(csr)
    return csr


def _parse(data: bytes | str) -> x509.CertificateSigningRequest:
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if not raw:
        raise MalformedCSR("CSR is empty")
    if len(raw) > MAX_CSR_BYTES:
        raise MalformedCSR(f"CSR is larger than {MAX_CSR_BYTES} bytes")
    try:
        if raw.lstrip().startswith(_PEM_MARKER):
            return x509.load_pem_x509_csr(raw)
        return x509.load_der_x509_csr(raw)
    except ValueError as exc:
        raise MalformedCSR("CSR is not a valid PEM or DER certificate request") from exc


def check_public_key(key: object) -> AllowedPublicKey:
    """Return ``key`` if its type is on the allowlist, else raise UnsupportedKeyType."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if isinstance(key.curve, _ALLOWED_CURVES):
            return key
        raise UnsupportedKeyType(f"EC curve {key.curve.name} is not supported; use P-256 or P-384")
    if isinstance(key, rsa.RSAPublicKey):
        if MIN_RSA_BITS <= key.key_size <= MAX_RSA_BITS:
            return key
        raise UnsupportedKeyType(
            f"RSA key size {key.key_size} is not supported; "
            f"use {MIN_RSA_BITS} to {MAX_RSA_BITS} bits"
        )
    kind = type(key).__name__.removesuffix("PublicKey") or "unknown"
    raise UnsupportedKeyType(
        f"{kind} keys are not supported; use EC P-256 (recommended), EC P-384 "
        f"or RSA >= {MIN_RSA_BITS}"
    )


def _check_signature_algorithm(csr: x509.CertificateSigningRequest, key: AllowedPublicKey) -> None:
    oid = csr.signature_algorithm_oid
    name = _oid_name(oid)
    if oid not in _ALLOWED_SIGNATURE_OIDS:
        raise WeakSignatureAlgorithm(
            f"CSR signature algorithm {name} is not allowed; sign with SHA-256, SHA-384 or SHA-512"
        )
    try:
        digest = csr.signature_hash_algorithm
    except UnsupportedAlgorithm as exc:  # e.g. PSS with an unknown hash
        raise WeakSignatureAlgorithm(
            f"CSR signature algorithm {name} has unsupported parameters"
        ) from exc
    if not isinstance(digest, _STRONG_HASHES):
        raise WeakSignatureAlgorithm(f"CSR signature algorithm {name} is not allowed")
    is_ec_signature = oid.dotted_string.startswith("1.2.840.10045.")
    if is_ec_signature != isinstance(key, ec.EllipticCurvePublicKey):
        raise CSRSignatureInvalid(
            f"CSR signature algorithm {name} does not match its public key type"
        )


def _check_no_extensions(csr: x509.CertificateSigningRequest) -> None:
    try:
        extensions = csr.extensions
        attributes = list(csr.attributes)
    except ValueError as exc:
        raise MalformedCSR("CSR attributes or extensions cannot be parsed") from exc
    if len(extensions):
        names = ", ".join(sorted(_oid_name(e.oid) for e in extensions))
        raise CSRRequestsExtensions(
            f"CSR must not request extensions (found: {names}); "
            "the server decides the certificate's SANs and extensions"
        )
    others = [a for a in attributes if a.oid != _EXTENSION_REQUEST]
    if others:
        names = ", ".join(sorted(_oid_name(a.oid) for a in others))
        raise CSRRequestsExtensions(f"CSR must not carry attributes (found: {names})")
