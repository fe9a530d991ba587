"""The server's one error type and the wire error envelope.

Every non-2xx response carries ``{"error": {"code", "message", "request_id",
"details"}}``. Handlers raise :class:`ApiError` (or a domain error that
:func:`from_domain_error` maps); nothing else leaks to the client: unexpected
exceptions become ``internal`` with no detail beyond the request id.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

#: Wire error code -> HTTP status. The list is fixed (api/secinfra/v1/errors.proto).
STATUS_BY_CODE: Final[Mapping[str, int]] = {
    "invalid_argument": 400,
    "unauthenticated": 401,
    "permission_denied": 403,
    "not_found": 404,
    "already_exists": 409,
    "failed_precondition": 412,
    "conflict": 409,
    "rate_limited": 429,
    "unavailable": 503,
    "internal": 500,
    "payload_too_large": 413,
    "method_not_allowed": 405,
    "idempotency_key_reused": 422,
    "deadline_exceeded": 504,
    "unimplemented": 501,
}


class ApiError(Exception):
    """An error the client sees: a code from the fixed list, a message that says
    what to fix (never a secret), optional details and extra response headers."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if code not in STATUS_BY_CODE:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.details: dict[str, Any] = dict(details or {})
        self.headers: dict[str, str] = dict(headers or {})

    @property
    def status(self) -> int:
        """The HTTP status for this code."""
        return STATUS_BY_CODE[self.code]

    def envelope(self, request_id: str) -> dict[str, Any]:
        """The JSON body for this error."""
        error: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "request_id": request_id,
        }
        if self.details:
            error["details"] = self.details
        return {"error": error}


def from_domain_error(exc: Exception) -> ApiError | None:
    """Map a domain error that carries a wire ``code`` attribute to an ApiError.

    The domain packages (ca, attest, authz, crypto, secrets) raise their own
    typed errors with a ``code`` from the fixed list and a safe message; this
    is the one place they become wire errors. Returns None for anything else.
    """
    code = getattr(exc, "code", None)
    if code == "internal":
        # An internal fault (e.g. a record that fails to decrypt) says nothing
        # to the client beyond its request id; the server logs the details.
        return None
    if isinstance(code, str) and code in STATUS_BY_CODE:
        details: dict[str, Any] = {}
        field = getattr(exc, "field", None)
        if isinstance(field, str):
            details["field"] = field
        return ApiError(code, str(exc), details=details)
    return None
