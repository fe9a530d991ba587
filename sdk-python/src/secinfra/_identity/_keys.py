"""The private key made in this process, and the CSR that asks the CA to certify it.

The key is generated here (ECDSA P-256, spec 8.2) and never leaves the
process: the server only ever sees the CSR. A new key is made for every
enrolment and every renewal.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = ["build_csr", "new_private_key", "private_key_pem"]


def new_private_key() -> ec.EllipticCurvePrivateKey:
    """A new ECDSA P-256 key, generated here and kept in memory."""
    return ec.generate_private_key(ec.SECP256R1())


def build_csr(key: ec.EllipticCurvePrivateKey) -> str:
    """A PEM CSR with an empty subject and no extensions: the server decides
    everything that goes into the certificate."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """``key`` as unencrypted PKCS #8 PEM, for the snapshot held in memory (and
    for the file sink, the one place that may write it to disk)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
