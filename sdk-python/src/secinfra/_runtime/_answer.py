"""An answer turned into a result or a typed error (spec 2.5 and 11).

A 2xx body decodes into the RPC's response model; one that does not decode
is a `TransportError` carrying the status (11.4.2). An error status becomes
the `ApiError` subclass its envelope's code names (11.3), carrying status,
request id, details and whether the rules would retry it; the call pipeline
passes in what its retry decision added (the code of a ``Retry-After`` too
long to wait, and the ``Retry-After`` itself).
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from .._rpc import MethodDescriptor, ResponseMessage
from ..errors import (
    ApiError,
    InternalError,
    TransportError,
    code_for_status,
    error_for_code,
)
from ._headers import REQUEST_ID_HEADER
from ._retry import status_retryable
from ._transport import HttpAnswer

__all__ = ["decode_error", "decode_response", "error_code", "request_id", "unexpected_answer"]

R = TypeVar("R", bound=ResponseMessage)


def request_id(answer: HttpAnswer) -> str | None:
    """The answer's ``Request-Id`` header."""
    return answer.headers.get(REQUEST_ID_HEADER)


def decode_response(
    method: MethodDescriptor, answer: HttpAnswer, response_type: type[R], *, attempts: int
) -> R:
    """The response model decoded from a 2xx answer's JSON body.

    ``attempts`` is how many attempts the call made: an answer that does not
    decode ends the call, and its error records them (spec 3.9.4).
    """
    try:
        data = json.loads(answer.body) if answer.body else {}
        return response_type.from_json(data)
    except ValueError as exc:
        error = TransportError(
            f"secinfra: transport: {method.full_name}: the server's answer is not"
            f" a valid {response_type.__name__}: {exc}",
            status=answer.status,
            request_id=request_id(answer),
        )
        error.attempts = attempts
        raise error from exc


def unexpected_answer(method: MethodDescriptor, answer: HttpAnswer) -> InternalError:
    """The error for a status below 400 the API never answers (1xx, 3xx but a
    304 to a conditional request)."""
    return InternalError(
        f"secinfra: transport: {method.full_name}: unexpected HTTP {answer.status}"
        " (the API answers 2xx, or 304 to a conditional request)",
        status=answer.status,
        request_id=request_id(answer),
    )


def decode_error(
    method: MethodDescriptor,
    answer: HttpAnswer,
    *,
    code: str | None = None,
    retry_after: float | None = None,
) -> ApiError:
    """The typed error of an error answer (status 400 and above).

    ``code``, when given, overrides the envelope's: a call the retry rules
    ended because of a ``Retry-After`` too long to wait is a `RateLimited` or
    `Unavailable` whatever the envelope said (spec 11.3.3). The error class
    follows the code (`error_for_code`).
    """
    envelope = _envelope(answer.body)
    code = code or str(envelope.get("code") or code_for_status(answer.status))
    message = str(envelope.get("message") or f"secinfra: {method.full_name}: HTTP {answer.status}")
    details = envelope.get("details")
    envelope_id = str(envelope["request_id"]) if envelope.get("request_id") else None
    return error_for_code(code)(
        message,
        code=code,
        status=answer.status,
        request_id=request_id(answer) or envelope_id,
        retryable=status_retryable(answer.status, answer.headers, method.idempotency),
        retry_after=retry_after,
        details=details if isinstance(details, dict) else None,
    )


def error_code(answer: HttpAnswer) -> str:
    """The code of an error answer (status 400 and above): its envelope's, else
    the one its status implies, as `decode_error` finds it."""
    return str(_envelope(answer.body).get("code") or code_for_status(answer.status))


def _envelope(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        return {}
    error = doc.get("error") if isinstance(doc, dict) else None
    return error if isinstance(error, dict) else {}
