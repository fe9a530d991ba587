"""Attestation: how a workload proves who it is before its first certificate.

Two methods: one-time join tokens (created by an admin, stored hashed) and JWTs
shaped like Kubernetes projected service-account tokens. Pure and synchronous; the
clock is always passed in. Errors are :class:`AttestationError` subclasses with a
``code`` (see ``_errors`` for the tree).
"""

from ._errors import (
    AttestationError,
    AttestationRejected,
    BadSignature,
    DisallowedAlgorithm,
    ErrorCode,
    InvalidArgument,
    InvalidAttestorConfig,
    InvalidClaim,
    JoinTokenExpired,
    JoinTokenMismatch,
    JoinTokenRevoked,
    JoinTokenUsed,
    MalformedJoinToken,
    MalformedJWT,
    MissingClaim,
    TokenExpired,
    TokenNotYetValid,
    UnknownJoinToken,
    UnknownKeyId,
    WrongAudience,
    WrongIssuer,
)
from ._join_token import (
    DEFAULT_JOIN_TOKEN_TTL,
    JOIN_TOKEN_PREFIX,
    JoinTokenRecord,
    generate_join_token,
    join_token_id,
    verify_join_token,
)
from ._jwt import (
    DEFAULT_ALGORITHMS,
    DEFAULT_LEEWAY,
    DEFAULT_SPIFFE_ID_TEMPLATE,
    JWTAttestation,
    JWTAttestor,
    JWTAttestorConfig,
)

__all__ = [
    "DEFAULT_ALGORITHMS",
    "DEFAULT_JOIN_TOKEN_TTL",
    "DEFAULT_LEEWAY",
    "DEFAULT_SPIFFE_ID_TEMPLATE",
    "JOIN_TOKEN_PREFIX",
    "AttestationError",
    "AttestationRejected",
    "BadSignature",
    "DisallowedAlgorithm",
    "ErrorCode",
    "InvalidArgument",
    "InvalidAttestorConfig",
    "InvalidClaim",
    "JWTAttestation",
    "JWTAttestor",
    "JWTAttestorConfig",
    "JoinTokenExpired",
    "JoinTokenMismatch",
    "JoinTokenRecord",
    "JoinTokenRevoked",
    "JoinTokenUsed",
    "MalformedJWT",
    "MalformedJoinToken",
    "MissingClaim",
    "TokenExpired",
    "TokenNotYetValid",
    "UnknownJoinToken",
    "UnknownKeyId",
    "WrongAudience",
    "WrongIssuer",
    "generate_join_token",
    "join_token_id",
    "verify_join_token",
]
