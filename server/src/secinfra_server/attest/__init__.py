"""Attestation: how a workload proves who it is before its first certificate.

Two methods: one-time join tokens (created by an admin, stored hashed) and JWTs
shaped like Kubernetes projected service-account tokens, from one or more
clusters, whose keys come from a file or the issuer's OpenID discovery document.
Synchronous (fetching keys blocks; callers run it off the event loop); the clock
is always passed in. Errors are :class:`AttestationError` subclasses with a
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
    KeysUnavailable,
    MalformedJoinToken,
    MalformedJWT,
    MissingClaim,
    NotMapped,
    TokenExpired,
    TokenNotYetValid,
    UnknownIssuer,
    UnknownJoinToken,
    UnknownKeyId,
    WrongAudience,
    WrongIssuer,
    WrongNonce,
)
from ._join_token import (
    DEFAULT_JOIN_TOKEN_TTL,
    JOIN_TOKEN_PREFIX,
    JoinTokenRecord,
    generate_join_token,
    join_token_id,
    verify_join_token,
)
from ._jwks import DiscoveredJwks, KeySource, StaticJwks
from ._jwt import (
    DEFAULT_ALGORITHMS,
    DEFAULT_LEEWAY,
    DEFAULT_SPIFFE_ID_TEMPLATE,
    JWTAttestation,
    JWTAttestor,
    JWTAttestorConfig,
    KubernetesAttestors,
    MappingRule,
)
from ._oidc import USER_PATH_PREFIX, OidcVerifier, UserIdentity, key_nonce

__all__ = [
    "DEFAULT_ALGORITHMS",
    "DEFAULT_JOIN_TOKEN_TTL",
    "DEFAULT_LEEWAY",
    "DEFAULT_SPIFFE_ID_TEMPLATE",
    "JOIN_TOKEN_PREFIX",
    "USER_PATH_PREFIX",
    "AttestationError",
    "AttestationRejected",
    "BadSignature",
    "DisallowedAlgorithm",
    "DiscoveredJwks",
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
    "KeySource",
    "KeysUnavailable",
    "KubernetesAttestors",
    "MalformedJWT",
    "MalformedJoinToken",
    "MappingRule",
    "MissingClaim",
    "NotMapped",
    "OidcVerifier",
    "StaticJwks",
    "TokenExpired",
    "TokenNotYetValid",
    "UnknownIssuer",
    "UnknownJoinToken",
    "UnknownKeyId",
    "UserIdentity",
    "WrongAudience",
    "WrongIssuer",
    "WrongNonce",
    "generate_join_token",
    "join_token_id",
    "key_nonce",
    "verify_join_token",
]
