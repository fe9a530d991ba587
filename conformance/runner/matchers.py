"""Expected values in cases: plain values, subset objects, and ``$`` operators.

- A scalar matches an equal value (``2`` matches ``2.0``).
- An object without ``$`` keys matches an object holding at least those keys,
  each matching (a missing key is read as null).
- A list matches a list of the same length, item by item.
- An object of ``$`` operators matches when every operator holds:

  ========================  ===============================================
  ``$present: true|false``  the value is (not) null/absent
  ``$eq: v``                equal, without subset rules
  ``$ne: v``                not equal
  ``$gt/$gte/$lt/$lte: n``  numeric comparison (``n`` may be ``{$ref: ...}``,
                            as may the argument of ``$eq`` and ``$ne``)
  ``$between: [a, b]``      ``a <= value <= b``
  ``$one_of: [..]``         matches one of the alternatives
  ``$regex: "..."``         the string matches (``re.search``)
  ``$len: m``               the length matches ``m`` (a matcher)
  ``$each: m``              the list is not empty and every item matches ``m``
  ``$each_or_empty: m``     every item matches ``m``; an empty list passes too
  ``$some: m``              at least one item matches ``m``
  ``$max: m`` / ``$sum: m`` the largest item / the sum of a non-empty list of
                            numbers matches ``m`` (aggregate bounds, e.g. a
                            lower bound on backoff waits)
  ``$ref: "step.path"``     equals a value recorded earlier (see `Context`)
  ``$server_request_id: true``  a request id the server issued (from its log)
  ``$csr: m``               the string is a PEM certificate request whose
                            description (runner/csr.py: key, hash, subject,
                            attributes, extensions, ...) matches ``m``
  ========================  ===============================================
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from . import csr

OPERATORS: Final = frozenset(
    {
        "$present",
        "$eq",
        "$ne",
        "$gt",
        "$gte",
        "$lt",
        "$lte",
        "$between",
        "$one_of",
        "$regex",
        "$len",
        "$each",
        "$each_or_empty",
        "$some",
        "$max",
        "$sum",
        "$ref",
        "$server_request_id",
        "$csr",
    }
)


_NUMERIC: Final = frozenset({"$gt", "$gte", "$lt", "$lte"})
#: Operators whose argument is itself a matcher.
_NESTED: Final = frozenset({"$len", "$each", "$each_or_empty", "$some", "$max", "$sum", "$csr"})
#: Operators whose argument may be ``{$ref: ...}`` (a value recorded earlier).
_REF_ARGS: Final = _NUMERIC | {"$eq", "$ne"}


class Context:
    """What operators may consult: earlier step outcomes and the server."""

    def __init__(
        self,
        refs: Callable[[str], Any] | None = None,
        issued: Callable[[str], bool] | None = None,
    ) -> None:
        self.refs = refs or (lambda path: None)
        self.issued = issued or (lambda request_id: False)


def is_operator_map(value: Any) -> bool:
    return isinstance(value, Mapping) and bool(value) and all(str(k).startswith("$") for k in value)


def validate(expected: Any, where: str) -> list[str]:
    """Problems with an expected value (unknown operators, mixed keys)."""
    problems: list[str] = []
    if isinstance(expected, Mapping):
        keys = [str(k) for k in expected]
        dollar = [k for k in keys if k.startswith("$")]
        if dollar and len(dollar) != len(keys):
            problems.append(f"{where}: do not mix $operators and field names in one object")
        for key in dollar:
            if key not in OPERATORS:
                problems.append(f"{where}: unknown operator {key} (known: {sorted(OPERATORS)})")
        for key, value in expected.items():
            if key in _NESTED:
                problems += validate(value, f"{where}.{key}")
            elif key == "$one_of":
                if not isinstance(value, list):
                    problems.append(f"{where}.$one_of: give a list")
                else:
                    for i, item in enumerate(value):
                        problems += validate(item, f"{where}.$one_of[{i}]")
            elif key == "$between" and not (isinstance(value, list) and len(value) == 2):
                problems.append(f"{where}.$between: give [low, high]")
            elif not str(key).startswith("$"):
                problems += validate(value, f"{where}.{key}")
    elif isinstance(expected, list):
        for i, item in enumerate(expected):
            problems += validate(item, f"{where}[{i}]")
    return problems


def match(expected: Any, actual: Any, ctx: Context, where: str = "$") -> list[str]:
    """Mismatches of ``actual`` against ``expected``; empty when it matches."""
    if is_operator_map(expected):
        out: list[str] = []
        for op, arg in expected.items():
            out += _operator(str(op), arg, actual, ctx, where)
        return out
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            return [f"{where}: expected an object, got {_show(actual)}"]
        out = []
        for key, value in expected.items():
            out += match(value, actual.get(key), ctx, f"{where}.{key}")
        return out
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{where}: expected a list, got {_show(actual)}"]
        if len(expected) != len(actual):
            return [f"{where}: expected {len(expected)} items, got {len(actual)}: {_show(actual)}"]
        out = []
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            out += match(e, a, ctx, f"{where}[{i}]")
        return out
    if _equal(expected, actual):
        return []
    return [f"{where}: expected {_show(expected)}, got {_show(actual)}"]


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    return bool(a == b)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _operator(op: str, arg: Any, actual: Any, ctx: Context, where: str) -> list[str]:
    if op in _REF_ARGS and isinstance(arg, Mapping) and set(arg) == {"$ref"}:
        arg = ctx.refs(str(arg["$ref"]))  # compare with a recorded value
        if arg is None:
            return [f"{where}: {op} refers to a value that was not recorded"]
    fail = [f"{where}: expected {op} {_show(arg)}, got {_show(actual)}"]
    if op == "$present":
        present = actual is not None and actual != ""
        return [] if present == bool(arg) else fail
    if op == "$eq":
        return [] if _equal(arg, actual) else fail
    if op == "$ne":
        return [] if not _equal(arg, actual) else fail
    if op in ("$gt", "$gte", "$lt", "$lte", "$between"):
        number = _number(actual)
        if number is None:
            return fail
        ok = {
            "$gt": lambda: number > arg,
            "$gte": lambda: number >= arg,
            "$lt": lambda: number < arg,
            "$lte": lambda: number <= arg,
            "$between": lambda: arg[0] <= number <= arg[1],
        }[op]()
        return [] if ok else fail
    if op == "$one_of":
        return [] if any(not match(alt, actual, ctx, where) for alt in arg) else fail
    if op == "$regex":
        return [] if isinstance(actual, str) and re.search(str(arg), actual) else fail
    if op == "$len":
        if not hasattr(actual, "__len__"):
            return fail
        return match(arg, len(actual), ctx, f"{where}.length")
    if op in ("$each", "$each_or_empty"):
        if not isinstance(actual, list):
            return fail
        if not actual and op == "$each":
            # An empty list would pass vacuously: a check of nothing. Say so,
            # or use $each_or_empty where no items is a valid outcome.
            return [f"{where}: $each over an empty list (use $each_or_empty if none is fine)"]
        out: list[str] = []
        for i, item in enumerate(actual):
            out += match(arg, item, ctx, f"{where}[{i}]")
        return out
    if op in ("$max", "$sum"):
        numbers = [_number(item) for item in actual] if isinstance(actual, list) else []
        if not numbers or any(n is None for n in numbers):
            return [f"{where}: {op} needs a non-empty list of numbers, got {_show(actual)}"]
        known = [n for n in numbers if n is not None]
        value = max(known) if op == "$max" else round(sum(known), 4)
        return match(arg, value, ctx, f"{where}.{op[1:]}")
    if op == "$some":
        if isinstance(actual, list) and any(not match(arg, item, ctx) for item in actual):
            return []
        return fail
    if op == "$ref":
        wanted = ctx.refs(str(arg))
        if wanted is None:
            return [f"{where}: $ref {arg} has no value (did that step run and succeed?)"]
        return (
            []
            if _equal(wanted, actual)
            else [f"{where}: expected the value of {arg} ({_show(wanted)}), got {_show(actual)}"]
        )
    if op == "$csr":
        described = csr.describe(actual)
        if described is None:
            return [f"{where}: expected a PEM certificate request, got {_show(actual)}"]
        return match(arg, described, ctx, f"{where}.csr")
    if op == "$server_request_id":
        issued = isinstance(actual, str) and ctx.issued(actual)
        return (
            []
            if issued == bool(arg)
            else [f"{where}: expected a request id the server issued, got {_show(actual)}"]
        )
    return [f"{where}: unknown operator {op}"]


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 300 else text[:297] + "..."
