"""Errors raised while verifying an attestation (join token or JWT).

Every error carries a ``code`` and a message starting ``secinfra: attest:``.
Messages never contain the token, its secret, or claim values taken from it::

    AttestationError
    ├── InvalidArgument                 code invalid_argument
    │   ├── MalformedJoinToken
    │   ├── MalformedJWT
    │   └── InvalidAttestorConfig       (operator configuration, at startup)
    ├── KeysUnavailable                 code unavailable (issuer's keys not fetched yet)
    ├── NotMapped                       code permission_denied (no mapping rule matches)
    └── AttestationRejected             code unauthenticated
        ├── UnknownJoinToken
        │   └── JoinTokenRevoked        (told apart only in the audit log)
        ├── JoinTokenMismatch
        ├── JoinTokenExpired
        ├── JoinTokenUsed
        ├── DisallowedAlgorithm
        ├── UnknownKeyId
        ├── BadSignature
        ├── WrongIssuer
        │   └── UnknownIssuer           (no configured issuer has that ``iss``)
        ├── WrongAudience
        ├── TokenExpired
        ├── TokenNotYetValid
        ├── MissingClaim
        ├── InvalidClaim
        └── WrongNonce                  (login: the ID token is not for this key)
"""

from __future__ import annotations

from typing import ClassVar, Literal

ErrorCode = Literal[
    "invalid_argument", "unauthenticated", "permission_denied", "failed_precondition", "unavailable"
]

_PREFIX = "secinfra: attest: "


class AttestationError(Exception):
    """Base of every attestation error; ``code`` says which API status it maps to."""

    code: ClassVar[ErrorCode] = "unauthenticated"

    def __init__(self, message: str) -> None:
        self.message = _PREFIX + message
        super().__init__(self.message)


class InvalidArgument(AttestationError):
    """Malformed input: a credential not even shaped like one, or bad parameters."""

    code = "invalid_argument"


class MalformedJoinToken(InvalidArgument):
    """Not ``sjt_<id>.<secret>``."""


class MalformedJWT(InvalidArgument):
    """Not a decodable compact JWS."""


class InvalidAttestorConfig(InvalidArgument):
    """The JWT attestor configuration is unusable (checked at startup)."""


class KeysUnavailable(AttestationError):
    """The issuer's signing keys could not be fetched and none are cached."""

    code = "unavailable"


class NotMapped(AttestationError):
    """A valid token that no mapping rule of its issuer turns into an identity."""

    code = "permission_denied"


class AttestationRejected(AttestationError):
    """A well-formed credential that does not authenticate."""

    code = "unauthenticated"


class UnknownJoinToken(AttestationRejected):
    """No join token with that id exists."""


class JoinTokenRevoked(UnknownJoinToken):
    """The join token was revoked by an admin. The client is told the same as
    for an unknown token; only the server's audit log tells the two apart."""


class JoinTokenMismatch(AttestationRejected):
    """The join token's secret does not match the stored hash."""


class JoinTokenExpired(AttestationRejected):
    """The join token is past its expiry."""


class JoinTokenUsed(AttestationRejected):
    """The join token was already used (join tokens are single use)."""


class DisallowedAlgorithm(AttestationRejected):
    """The JWT's ``alg`` is not allowed (``none`` and HS* never are)."""


class UnknownKeyId(AttestationRejected):
    """The JWT's ``kid`` is missing or not in the configured JWKS."""


class BadSignature(AttestationRejected):
    """The JWT's signature does not verify."""


class WrongIssuer(AttestationRejected):
    """The JWT's ``iss`` is not the configured issuer."""


class UnknownIssuer(WrongIssuer):
    """The JWT's ``iss`` is none of the configured issuers."""


class WrongAudience(AttestationRejected):
    """The JWT's ``aud`` holds none of the configured audiences."""


class TokenExpired(AttestationRejected):
    """The JWT's ``exp`` has passed (beyond leeway)."""


class TokenNotYetValid(AttestationRejected):
    """The JWT's ``nbf`` or ``iat`` is in the future (beyond leeway)."""


class MissingClaim(AttestationRejected):
    """A required claim is absent."""


class InvalidClaim(AttestationRejected):
    """A claim has the wrong type or value (e.g. ``sub`` does not match the SA)."""


class WrongNonce(AttestationRejected):
    """The ID token's ``nonce`` is not the one bound to the CSR's public key."""
