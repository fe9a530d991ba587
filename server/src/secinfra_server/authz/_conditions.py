"""Conditions: named CEL expressions over typed parameters (OpenFGA's conditions).

A model declares conditions; a relation's directly related user type may name
one (``[user with in_office_hours]``); a tuple written for that type carries the
condition's name and part of its context. At check time the tuple's context is
merged with the request's (the tuple's value wins for a parameter in both, as in
OpenFGA's ``EvaluateTupleCondition``), each parameter is converted to its
declared type, and the expression decides whether the tuple holds.

Compiled once, when the model is built (so a model version compiles its
conditions once): the expression is parsed and type-checked against the
declared parameters by CEL's checker (cel-expr-python, Google's CEL C++
runtime) and must yield ``bool``. Evaluation is bounded: CEL's iteration budget
refuses runaway comprehensions, expressions and contexts have size limits, and
:class:`EvaluationBudget` caps the total time a request spends in conditions.

Parameter types are OpenFGA's: ``bool``, ``string``, ``int``, ``uint``,
``double``, ``duration`` (Go syntax: ``1h30m``), ``timestamp`` (RFC 3339),
``ipaddress`` (with ``ip.in_cidr("10.0.0.0/8")``), ``any``, ``list<T>`` and
``map<T>`` (string keys).
"""

from __future__ import annotations

import datetime
import ipaddress
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, TypeAlias

from cel_expr_python import cel

from ._errors import ConditionError, ConditionTooComplex, ModelError

MAX_EXPRESSION_LENGTH: Final = 4096
MAX_PARAMETERS: Final = 64
MAX_CONDITION_NAME_LENGTH: Final = 50
#: The total time one request may spend evaluating conditions.
DEFAULT_EVALUATION_BUDGET_SECONDS: Final = 0.1

JSONValue: TypeAlias = object
Context: TypeAlias = Mapping[str, JSONValue]

_PARAM_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WIRE_PREFIX: Final = "TYPE_NAME_"
_SCALARS: Final = (
    "any",
    "bool",
    "string",
    "int",
    "uint",
    "double",
    "duration",
    "timestamp",
    "ipaddress",
)
_GENERICS: Final = ("list", "map")


# ------------------------------------------------------------------ parameter types


@dataclass(frozen=True)
class ParameterType:
    """A parameter's declared type: a scalar name, or ``list``/``map`` of ``element``."""

    name: str
    element: ParameterType | None = None

    def __str__(self) -> str:
        return f"{self.name}<{self.element}>" if self.element is not None else self.name

    def to_dict(self) -> dict[str, object]:
        """OpenFGA's JSON shape: ``{"type_name": "TYPE_NAME_LIST", "generic_types": [...]}``."""
        out: dict[str, object] = {"type_name": _WIRE_PREFIX + self.name.upper()}
        if self.element is not None:
            out["generic_types"] = [self.element.to_dict()]
        return out

    def cel_type(self, *, checking: bool) -> cel.Type:
        """The CEL type; ``ipaddress`` is an opaque type when ``checking``, a string
        (already validated) when running."""
        if self.element is not None:
            inner = self.element.cel_type(checking=checking)
            if self.name == "list":
                return cel.Type.List(inner)
            return cel.Type.Map(cel.Type.STRING, inner)
        if self.name == "ipaddress":
            return _IPADDRESS_TYPE if checking else cel.Type.STRING
        return _CEL_SCALARS[self.name]


_CEL_SCALARS: Final = {
    "any": cel.Type.DYN,
    "bool": cel.Type.BOOL,
    "string": cel.Type.STRING,
    "int": cel.Type.INT,
    "uint": cel.Type.UINT,
    "double": cel.Type.DOUBLE,
    "duration": cel.Type.DURATION,
    "timestamp": cel.Type.TIMESTAMP,
}
_IPADDRESS_TYPE: Final = cel.Type.AbstractType("ipaddress")


def parse_parameter_type(text: str) -> ParameterType:
    """Parse a DSL parameter type (``int``, ``list<string>``, ``map<list<int>>``).

    Raises:
        ModelError: not one of OpenFGA's parameter types.
    """
    text = text.strip()
    match = re.fullmatch(r"(list|map)\s*<(.*)>", text)
    if match is not None:
        return ParameterType(match.group(1), parse_parameter_type(match.group(2)))
    if text not in _SCALARS:
        known = ", ".join((*_SCALARS, "list<T>", "map<T>"))
        raise ModelError(f'unknown parameter type "{text}": use one of {known}')
    return ParameterType(text)


def parameter_type_from_dict(raw: object) -> ParameterType:
    """Parse OpenFGA's JSON parameter type.

    Raises:
        ModelError: malformed, or not one of OpenFGA's parameter types.
    """
    if not isinstance(raw, Mapping):
        raise ModelError("a condition parameter type must be a JSON object")
    wire = raw.get("type_name")
    if not isinstance(wire, str) or not wire.startswith(_WIRE_PREFIX):
        raise ModelError(f"condition parameter type_name must be TYPE_NAME_..., got {wire!r}")
    name = wire.removeprefix(_WIRE_PREFIX).lower()
    generics = raw.get("generic_types") or []
    if not isinstance(generics, list):
        raise ModelError("generic_types must be a list")
    if name in _GENERICS:
        if len(generics) != 1:
            raise ModelError(f"{wire} needs exactly one generic type")
        return ParameterType(name, parameter_type_from_dict(generics[0]))
    if name not in _SCALARS:
        raise ModelError(f"unknown condition parameter type {wire!r}")
    if generics:
        raise ModelError(f"{wire} takes no generic types")
    return ParameterType(name)


# ------------------------------------------------------------------ value conversion


_DURATION_RE: Final = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS: Final = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def _parse_duration(text: str) -> datetime.timedelta:
    """Go's ``time.ParseDuration`` syntax: ``300ms``, ``-1.5h``, ``2h45m``."""
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return datetime.timedelta(0)
    pos, seconds = 0, 0.0
    while pos < len(body):
        match = _DURATION_RE.match(body, pos)
        if match is None or match.group(1) in ("", "."):
            raise ValueError(text)
        seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if not body:
        raise ValueError(text)
    return datetime.timedelta(seconds=-seconds if text.startswith("-") else seconds)


def _parse_timestamp(text: str) -> datetime.datetime:
    if not re.fullmatch(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)", text):
        raise ValueError(text)
    return datetime.datetime.fromisoformat(text.upper().replace("Z", "+00:00"))


def _show(value: JSONValue) -> str:
    """A context value for an error message, cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _integer(value: JSONValue, what: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected {what}, found a bool")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"expected {what}, found the string {_show(value)}") from None
        if math.isfinite(number) and number.is_integer():
            return int(number)
    raise ValueError(f"expected {what}, found {_show(value)}")


def _convert(ptype: ParameterType, value: JSONValue) -> object:
    """Convert a JSON value to ``ptype``'s CEL value, as OpenFGA's converters do.

    Raises:
        ValueError: the value does not fit the type (the message says why).
    """
    name = ptype.name
    if name == "any":
        return value
    if name == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"expected a bool, found {_show(value)}")
        return value
    if name == "string":
        if not isinstance(value, str):
            raise ValueError(f"expected a string, found {_show(value)}")
        return value
    if name == "int":
        number = _integer(value, "an int")
        if not -(2**63) <= number < 2**63:
            raise ValueError(f"int {number} is out of range")
        return number
    if name == "uint":
        number = _integer(value, "a uint")
        if not 0 <= number < 2**64:
            raise ValueError(f"expected a uint, found {number}")
        return number
    if name == "double":
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"expected a double, found {_show(value)}")
        try:
            double = float(value)
        except (ValueError, OverflowError):
            double = math.inf
        if not math.isfinite(double):
            raise ValueError(f"expected a finite double, found {_show(value)}")
        return double
    if name in ("duration", "timestamp", "ipaddress"):
        return _convert_text(name, value)
    assert ptype.element is not None
    element = ptype.element
    if name == "list":
        if not isinstance(value, list):
            raise ValueError(f"expected a list, found {_show(value)}")
        return [_convert(element, item) for item in value]
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"expected a map with string keys, found {_show(value)}")
    return {k: _convert(element, v) for k, v in value.items()}


def _convert_text(name: str, value: JSONValue) -> object:
    if not isinstance(value, str):
        raise ValueError(f"expected a {name} string ({_SHAPES[name]}), found {_show(value)}")
    try:
        if name == "duration":
            return _parse_duration(value)
        if name == "timestamp":
            return _parse_timestamp(value)
        return str(ipaddress.ip_address(value))
    except (ValueError, OverflowError):
        raise ValueError(f"expected {_SHAPES[name]}, found {_show(value)}") from None


_SHAPES: Final = {
    "duration": "a duration such as 1h30m or 500ms",
    "timestamp": "an RFC 3339 timestamp",
    "ipaddress": "a well-formed IP address",
}


# -------------------------------------------------------------------------- CEL env


def _in_cidr(address: str, cidr: str) -> bool:
    return ipaddress.ip_address(address) in ipaddress.ip_network(cidr, strict=False)


def _functions(ip_type: cel.Type) -> list[cel.FunctionDecl]:
    overload = cel.Overload(
        "ipaddress_in_cidr",
        return_type=cel.Type.BOOL,
        parameters=[ip_type, cel.Type.STRING],
        is_member=True,
        impl=_in_cidr,
    )
    return [cel.FunctionDecl("in_cidr", [overload])]


def _env(parameters: Mapping[str, ParameterType], *, checking: bool) -> cel.Env:
    ip_type = _IPADDRESS_TYPE if checking else cel.Type.STRING
    variables = {name: ptype.cel_type(checking=checking) for name, ptype in parameters.items()}
    return cel.NewEnv(variables=variables, functions=_functions(ip_type))


def _cel_message(raw: object) -> str:
    """CEL's message (of an exception or an error value), first line only,
    without its status prefix and suffix."""
    text = str(raw).strip()
    text = text.splitlines()[0] if text else "unknown CEL error"
    text = re.sub(r"^[A-Z_]+: ", "", text)
    text = re.sub(r"^ERROR: <input>:", "at ", text)
    return re.sub(r" \[[A-Z_]+\]$", "", text)


# ------------------------------------------------------------------------ conditions


class EvaluationBudget:
    """How long one request may spend evaluating conditions, all of them together
    (one per request; not thread-safe, like the resolver that charges it)."""

    __slots__ = ("_spent", "seconds")

    def __init__(self, seconds: float = DEFAULT_EVALUATION_BUDGET_SECONDS) -> None:
        self.seconds = seconds
        self._spent = 0.0

    def charge(self, seconds: float, condition: str) -> None:
        """Add ``seconds``; raise :class:`ConditionTooComplex` past the budget."""
        self._spent += seconds
        if self._spent > self.seconds:
            raise ConditionTooComplex(
                condition,
                f"evaluating conditions took more than the budget of "
                f"{self.seconds * 1000:.0f} ms for one request",
            )


@dataclass(frozen=True)
class Condition:
    """A named CEL expression over typed parameters, compiled when built.

    Raises:
        ModelError: a bad name, parameter, type, or an expression that does not
            parse, does not type-check, or does not yield ``bool``.
    """

    name: str
    expression: str
    parameters: tuple[tuple[str, ParameterType], ...] = ()
    _program: Callable[[Mapping[str, object]], cel.Value] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        self._validate()
        params = dict(self.parameters)
        try:
            checked = _env(params, checking=True).compile(self.expression)
        except RuntimeError as exc:
            raise self._fail(f"the expression does not compile: {_cel_message(exc)}") from None
        if checked.return_type() != cel.Type.BOOL:
            raise self._fail(
                f"the expression must yield bool, it yields {checked.return_type().name().lower()}"
            )
        if any(_has_ipaddress(p) for p in params.values()):
            program = _env(params, checking=False).compile(self.expression)
        else:
            program = checked
        object.__setattr__(self, "_program", lambda data: program.eval(data=data))

    def _fail(self, reason: str) -> ModelError:
        return ModelError(f'condition "{self.name}": {reason}')

    def _validate(self) -> None:
        if not (
            0 < len(self.name) <= MAX_CONDITION_NAME_LENGTH and _PARAM_NAME_RE.fullmatch(self.name)
        ):
            raise self._fail(
                "bad condition name: use letters, digits and '_', starting with a letter "
                f"or '_', at most {MAX_CONDITION_NAME_LENGTH} characters"
            )
        if not self.expression.strip():
            raise self._fail("the expression is empty")
        if len(self.expression) > MAX_EXPRESSION_LENGTH:
            raise self._fail(f"the expression is longer than {MAX_EXPRESSION_LENGTH} characters")
        if len(self.parameters) > MAX_PARAMETERS:
            raise self._fail(f"more than {MAX_PARAMETERS} parameters")
        seen: set[str] = set()
        for name, _ in self.parameters:
            if not _PARAM_NAME_RE.fullmatch(name):
                raise self._fail(f'bad parameter name "{name}"')
            if name in seen:
                raise self._fail(f'parameter "{name}" is declared more than once')
            seen.add(name)

    @property
    def parameter_types(self) -> Mapping[str, ParameterType]:
        """The parameters by name."""
        return dict(self.parameters)

    def to_dict(self) -> dict[str, object]:
        """OpenFGA's JSON shape of one condition."""
        return {
            "name": self.name,
            "expression": self.expression,
            "parameters": {name: ptype.to_dict() for name, ptype in self.parameters},
        }

    def validate_context(self, context: Context, *, what: str = "context") -> None:
        """Check a tuple's (or request's) context: known parameters, right types.

        Raises:
            ConditionError: a key that is not a parameter, or a value of the wrong type.
        """
        params = self.parameter_types
        for key, value in context.items():
            ptype = params.get(key)
            if ptype is None:
                raise ConditionError(self.name, f'{what} names "{key}", which is not a parameter')
            try:
                _convert(ptype, value)
            except ValueError as exc:
                raise ConditionError(self.name, f'{what} parameter "{key}": {exc}') from None

    def evaluate(
        self,
        tuple_context: Context,
        request_context: Context,
        budget: EvaluationBudget,
        *,
        at: str,
    ) -> bool:
        """Whether the condition holds for a tuple (``at`` names it in errors).

        The contexts merge, the tuple's winning; keys that are not parameters
        are ignored (as OpenFGA does for request context).

        Raises:
            ConditionError: a parameter is missing, has the wrong type, or the
                expression failed (OpenFGA: evaluation failed, a validation error).
            ConditionTooComplex: CEL's iteration budget, or the request's time
                budget, ran out.
        """
        merged = {**request_context, **tuple_context}
        data: dict[str, object] = {}
        missing = []
        for name, ptype in self.parameters:
            if name not in merged:
                missing.append(name)
                continue
            try:
                data[name] = _convert(ptype, merged[name])
            except ValueError as exc:
                raise ConditionError(self.name, f'parameter "{name}": {exc}') from None
        if missing:
            names = ", ".join(f'"{m}"' for m in missing)
            raise ConditionError(self.name, f"tuple {at} is missing context parameters {names}")
        started = time.perf_counter()
        try:
            result = self._program(data)
        except RuntimeError as exc:
            message = _cel_message(exc)
            if "budget" in message.lower():
                raise ConditionTooComplex(self.name, message) from None
            raise ConditionError(self.name, f"evaluation failed: {message}") from None
        finally:
            budget.charge(time.perf_counter() - started, self.name)
        if result.type() != cel.Type.BOOL:  # an error value: CEL's own message
            raise ConditionError(self.name, f"evaluation failed: {_cel_message(result.value())}")
        return bool(result.value())


def _has_ipaddress(ptype: ParameterType) -> bool:
    if ptype.element is not None:
        return _has_ipaddress(ptype.element)
    return ptype.name == "ipaddress"


@dataclass(frozen=True)
class TupleCondition:
    """The condition a tuple is written with: its name and (part of) its context."""

    name: str
    context: Mapping[str, JSONValue] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """The wire shape: ``{"name": ..., "context": {...}}``."""
        return {"name": self.name, "context": dict(self.context)}
