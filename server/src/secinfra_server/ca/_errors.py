"""Errors raised by the certificate authority.

Every error carries a ``code`` the HTTP layer maps to a status, and a message that
starts with ``secinfra: ca:``::

    CAError
    ├── InvalidArgument                 code invalid_argument
    │   ├── InvalidSpiffeId
    │   ├── InvalidKey
    │   ├── InvalidBundle
    │   └── InvalidCSR
    │       ├── MalformedCSR
    │       ├── CSRSignatureInvalid
    │       ├── UnsupportedKeyType
    │       ├── WeakSignatureAlgorithm
    │       └── CSRRequestsExtensions
    ├── CertificateRejected             code unauthenticated
    │   ├── CertificateExpired
    │   ├── CertificateNotYetValid
    │   ├── UntrustedCertificate
    │   ├── NotAnSvid
    │   └── CertificateRevoked
    └── FailedPrecondition              code failed_precondition
        ├── CAUnavailable
        ├── InvalidTransition
        └── RetirementNotSafe

Messages never contain key material, and describe certificates by serial number
and SPIFFE ID only.
"""

from __future__ import annotations

from typing import ClassVar, Literal

ErrorCode = Literal[
    "invalid_argument", "unauthenticated", "permission_denied", "failed_precondition"
]

_PREFIX = "secinfra: ca: "


class CAError(Exception):
    """Base of every error the CA raises; ``code`` says which API status it maps to."""

    code: ClassVar[ErrorCode] = "failed_precondition"

    def __init__(self, message: str) -> None:
        self.message = _PREFIX + message
        super().__init__(self.message)


class InvalidArgument(CAError):
    """The caller's input is malformed or not acceptable."""

    code = "invalid_argument"


class InvalidSpiffeId(InvalidArgument):
    """A string is not a valid SPIFFE ID or trust domain."""


class InvalidKey(InvalidArgument):
    """Key material cannot be loaded or does not fit the certificate."""


class InvalidBundle(InvalidArgument):
    """A trust bundle (or a set of trusted CA certificates) is malformed."""


class InvalidCSR(InvalidArgument):
    """A certificate signing request is not acceptable."""


class MalformedCSR(InvalidCSR):
    """The CSR is not parseable PEM or DER."""


class CSRSignatureInvalid(InvalidCSR):
    """The CSR's self-signature does not verify with its own public key."""


class UnsupportedKeyType(InvalidCSR):
    """The CSR's public key is not on the allowlist (EC P-256/P-384, RSA >= 2048)."""


class WeakSignatureAlgorithm(InvalidCSR):
    """The CSR is signed with a weak or unknown algorithm (e.g. SHA-1, MD5)."""


class CSRRequestsExtensions(InvalidCSR):
    """The CSR requests extensions or attributes; only the server decides those."""


class CertificateRejected(CAError):
    """A client certificate failed verification."""

    code = "unauthenticated"


class CertificateExpired(CertificateRejected):
    """The certificate (or its issuing CA) is past its notAfter."""


class CertificateNotYetValid(CertificateRejected):
    """The certificate (or its issuing CA) is before its notBefore."""


class UntrustedCertificate(CertificateRejected):
    """The certificate does not chain to a trusted CA."""


class NotAnSvid(CertificateRejected):
    """The certificate is not a leaf X509-SVID."""


class CertificateRevoked(CertificateRejected):
    """The certificate's serial number or SPIFFE ID is on the deny-list."""


class FailedPrecondition(CAError):
    """The operation is not allowed in the current state."""

    code = "failed_precondition"


class CAUnavailable(FailedPrecondition):
    """The CA cannot sign: it is not active, or it has expired."""


class InvalidTransition(FailedPrecondition):
    """A CA rotation step does not apply to the CA's current state."""


class RetirementNotSafe(FailedPrecondition):
    """Retiring the CA now would strand unexpired leaves that chain to it."""
