"""Errors raised by the secinfra SDK.

::

    SecinfraError                 every SDK error: code, message, status, request_id,
    │                             retryable, retry_after, attempts, endpoint and the cause
    │                             (__cause__)
    ├── ApiError                  the server answered with an error envelope
    │   ├── InvalidArgument       invalid_argument, payload_too_large,
    │   │                         method_not_allowed, idempotency_key_reused
    │   ├── Unauthenticated       unauthenticated
    │   ├── PermissionDenied      permission_denied
    │   ├── NotFound              not_found
    │   ├── Conflict              already_exists, conflict
    │   ├── FailedPrecondition    failed_precondition
    │   ├── RateLimited           rate_limited (HTTP 429)
    │   ├── Unavailable           unavailable, deadline_exceeded (HTTP 503/504)
    │   └── InternalError         internal, unimplemented, and unknown codes
    ├── TransportError            no usable answer: connection refused or reset,
    │   │                         TLS failure, attempt timeout
    │   └── DeadlineExceeded      the call's deadline passed before an answer
    └── IdentityExpired           the client certificate expired and could not be
                                  renewed or re-enrolled

Messages start with the component (``secinfra: secrets: ...``) and never
contain a secret value, key or token.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = [
    "ApiError",
    "Conflict",
    "DeadlineExceeded",
    "FailedPrecondition",
    "IdentityExpired",
    "InternalError",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "RateLimited",
    "SecinfraError",
    "TransportError",
    "Unauthenticated",
    "Unavailable",
    "error_for_code",
]


class SecinfraError(Exception):
    """The base of every SDK error."""

    code: str = "internal"
    attempts: int = 0
    """HTTP attempts the call made before it failed (0: none was made)."""
    endpoint: str | None = None
    """The endpoint URL of the call's last attempt (spec 12.8.2); None without one."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.status = status
        self.request_id = request_id
        self.retryable = retryable
        self.retry_after = retry_after
        self.details: dict[str, Any] = dict(details or {})

    def __str__(self) -> str:
        suffix = f" (request id {self.request_id})" if self.request_id else ""
        return f"{self.message}{suffix}"


class ApiError(SecinfraError):
    """The server answered with an error envelope."""


class InvalidArgument(ApiError):
    """The request is malformed or a field is invalid: fix the request."""

    code = "invalid_argument"


class Unauthenticated(ApiError):
    """No valid client certificate or credential."""

    code = "unauthenticated"


class PermissionDenied(ApiError):
    """Authenticated, but not allowed."""

    code = "permission_denied"


class NotFound(ApiError):
    """The resource does not exist (or the caller may not know it does)."""

    code = "not_found"


class Conflict(ApiError):
    """Already exists, or a concurrent call holds the same Idempotency-Key."""

    code = "conflict"


class FailedPrecondition(ApiError):
    """The system is not in the state the call needs (e.g. a version mismatch)."""

    code = "failed_precondition"


class RateLimited(ApiError):
    """Too many requests; ``retry_after`` says how long the server asked to wait."""

    code = "rate_limited"


class Unavailable(ApiError):
    """The server cannot serve now; ``retry_after`` may say for how long."""

    code = "unavailable"


class InternalError(ApiError):
    """A failure inside the server."""

    code = "internal"


class TransportError(SecinfraError):
    """No usable answer from the server: connection, TLS or timeout trouble."""

    code = "unavailable"


class DeadlineExceeded(TransportError):
    """The call's deadline passed before it got an answer."""

    code = "deadline_exceeded"


class IdentityExpired(SecinfraError):
    """The client certificate expired and could not be renewed or re-enrolled."""

    code = "identity_expired"


_BY_CODE: Final[Mapping[str, type[ApiError]]] = {
    "invalid_argument": InvalidArgument,
    "payload_too_large": InvalidArgument,
    "method_not_allowed": InvalidArgument,
    "idempotency_key_reused": InvalidArgument,
    "unauthenticated": Unauthenticated,
    "permission_denied": PermissionDenied,
    "not_found": NotFound,
    "already_exists": Conflict,
    "conflict": Conflict,
    "failed_precondition": FailedPrecondition,
    "rate_limited": RateLimited,
    "unavailable": Unavailable,
    "deadline_exceeded": Unavailable,
    "internal": InternalError,
    "unimplemented": InternalError,
}

#: Codes derived from the HTTP status when a response carries no envelope.
_CODE_BY_STATUS: Final[Mapping[int, str]] = {
    400: "invalid_argument",
    401: "unauthenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    408: "unavailable",
    409: "conflict",
    412: "failed_precondition",
    413: "payload_too_large",
    422: "idempotency_key_reused",
    429: "rate_limited",
    501: "unimplemented",
    502: "unavailable",
    503: "unavailable",
    504: "deadline_exceeded",
}


def code_for_status(status: int) -> str:
    """The error code implied by an HTTP status (for answers without an envelope)."""
    return _CODE_BY_STATUS.get(status, "internal" if status >= 500 else "invalid_argument")


def error_for_code(code: str) -> type[ApiError]:
    """The error class for a wire error code; unknown codes are internal errors."""
    return _BY_CODE.get(code, InternalError)
