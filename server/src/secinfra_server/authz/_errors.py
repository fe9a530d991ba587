"""Errors raised by the authorization engine.

One base class, one subclass per family::

    AuthzError                  code: set per subclass, message "secinfra: authz: ..."
    ├── ModelError              invalid_argument: a model (JSON or DSL) is malformed
    ├── TupleError              invalid_argument: a tuple or check request does not fit
    ├── RequestError            invalid_argument: an engine call breaks a limit
    ├── ConditionError          invalid_argument: a condition could not be evaluated
    │   └── ConditionTooComplex invalid_argument: it ran past its evaluation budget
    └── ResolutionTooComplex    failed_precondition: resolution exceeded the depth bound

Every message starts with ``secinfra: authz: `` followed by the family
(``model``, ``tuple``, ``request``, ``condition``, ``resolution``).
"""

from __future__ import annotations

from typing import Final

INVALID_ARGUMENT: Final = "invalid_argument"
FAILED_PRECONDITION: Final = "failed_precondition"

_PREFIX: Final = "secinfra: authz: "


def _subject(type_name: str | None, relation: str | None) -> str:
    """Render the ``type "x" relation "y": `` part of a message."""
    parts = []
    if type_name is not None:
        parts.append(f'type "{type_name}"')
    if relation is not None:
        parts.append(f'relation "{relation}"')
    return " ".join(parts) + ": " if parts else ""


class AuthzError(Exception):
    """Base class of every error raised by :mod:`secinfra_server.authz`.

    Attributes:
        code: a wire error code (``invalid_argument`` or ``failed_precondition``).
        message: the full message, starting with ``secinfra: authz: ``.
    """

    code: str = INVALID_ARGUMENT

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ModelError(AuthzError):
    """An authorization model is malformed.

    Attributes:
        type_name: the type at fault, if any.
        relation: the relation at fault, if any.
        line: the DSL line at fault (1-based), if the model came from the DSL.
        reason: the message without prefix, type, relation and line.
    """

    code = INVALID_ARGUMENT

    def __init__(
        self,
        reason: str,
        *,
        type_name: str | None = None,
        relation: str | None = None,
        line: int | None = None,
    ) -> None:
        where = f"line {line}: " if line is not None else ""
        super().__init__(f"{_PREFIX}model: {where}{_subject(type_name, relation)}{reason}")
        self.reason = reason
        self.type_name = type_name
        self.relation = relation
        self.line = line

    def with_line(self, line: int) -> ModelError:
        """Return a copy of this error that names a DSL line."""
        return ModelError(self.reason, type_name=self.type_name, relation=self.relation, line=line)


class TupleError(AuthzError):
    """A relationship tuple (or a check request) is malformed or does not fit the model.

    Attributes:
        type_name: the object type at fault, if any.
        relation: the relation at fault, if any.
    """

    code = INVALID_ARGUMENT

    def __init__(
        self, reason: str, *, type_name: str | None = None, relation: str | None = None
    ) -> None:
        super().__init__(f"{_PREFIX}tuple: {_subject(type_name, relation)}{reason}")
        self.reason = reason
        self.type_name = type_name
        self.relation = relation


class RequestError(AuthzError):
    """An engine call breaks a limit (batch size, correlation ids, result bounds)."""

    code = INVALID_ARGUMENT

    def __init__(self, reason: str) -> None:
        super().__init__(f"{_PREFIX}request: {reason}")
        self.reason = reason


class ResolutionTooComplex(AuthzError):
    """Resolving a check needed more nested steps than the configured depth bound.

    Attributes:
        max_depth: the bound that was exceeded.
    """

    code = FAILED_PRECONDITION

    def __init__(self, max_depth: int, at: str) -> None:
        super().__init__(
            f"{_PREFIX}resolution: too complex: exceeded the maximum depth of "
            f"{max_depth} nested steps while resolving {at}"
        )
        self.max_depth = max_depth


class ConditionError(AuthzError):
    """A condition could not be evaluated: a context parameter is missing or has
    the wrong type, or the expression failed (OpenFGA: "failed to evaluate
    relationship condition", a validation error).

    Attributes:
        condition: the condition's name.
        reason: the message without prefix and condition.
    """

    code = INVALID_ARGUMENT

    def __init__(self, condition: str, reason: str) -> None:
        super().__init__(f'{_PREFIX}condition "{condition}": {reason}')
        self.condition = condition
        self.reason = reason


class ConditionTooComplex(ConditionError):
    """A condition ran past its evaluation budget (CEL's iteration budget, or the
    time one request may spend in conditions): refused, never left running."""

    def __init__(self, condition: str, reason: str) -> None:
        super().__init__(condition, f"too complex: {reason}")
