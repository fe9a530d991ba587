"""The API reference's worked examples: one request and response per RPC.

Each operation of ``docs/api/openapi.json`` carries ``x-secinfra-example``,
written by codegen from the ``example`` field of the RPC's
``(secinfra.v1.rpc)`` option (api/secinfra/v1/options.proto says what the
texts may hold). This module turns an example into the HTTP request it stands
for and a curl command (for the ``openapi-rpcs`` directive), and compares a
real answer with the example's response (for ``docs/tests/test_api_examples.py``,
which sends every example to a real server).

No Sphinx import here: the docs tests use it without a build.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

EXTENSION: Final = "x-secinfra-example"
ELLIPSIS: Final = "\u2026"
PLACEHOLDER: Final = re.compile(r"^\$\{(?P<name>[A-Za-z_][A-Za-z0-9_.]*)\}$")
TIMESTAMP: Final = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"
)
#: Where the curl commands send their requests (the OpenAPI document's server).
EXAMPLE_SERVER: Final = "https://localhost:8443"
#: Placeholders that name no earlier answer, and what they stand for.
INPUTS: Final = {
    "csr_pem": "a PEM certificate signing request for a key the caller has just made"
    " (the key never leaves the caller), as a JSON string (line breaks as \\n)",
}
# 2.2.1: every byte but the unreserved characters is percent-encoded, with upper-case hex.
_UNRESERVED: Final = "-._~"


class ExampleError(ValueError):
    """An example that cannot be sent or shown as written."""


@dataclass(frozen=True)
class HttpRequest:
    """What an example sends: method, target (path and query) and JSON body."""

    method: str
    target: str
    body: Mapping[str, Any] | None


def placeholder(value: Any) -> str | None:
    """The name in a ``${name}`` string, else None."""
    if isinstance(value, str):
        match = PLACEHOLDER.match(value)
        if match:
            return match.group("name")
    return None


def strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value (not its object keys), in order."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for inner in value.values():
            yield from strings(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from strings(inner)


def placeholders(value: Any) -> list[str]:
    """Every ``${name}`` in a JSON value, in order, each once."""
    found: list[str] = []
    for text in strings(value):
        name = placeholder(text)
        if name is not None and name not in found:
            found.append(name)
    return found


def lookup(name: str, answers: Mapping[str, Any], inputs: Mapping[str, Any]) -> Any:
    """The value a placeholder stands for: an input, or ``Rpc.path.0.field`` of
    an earlier answer."""
    if name in inputs:
        return inputs[name]
    rpc, _, path = name.partition(".")
    if rpc not in answers:
        raise ExampleError(f"${{{name}}}: no answer of {rpc} yet")
    value = answers[rpc]
    for step in path.split(".") if path else ():
        if isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        elif isinstance(value, Mapping) and step in value:
            value = value[step]
        else:
            raise ExampleError(f"${{{name}}}: {rpc}'s answer has no {step!r} there")
    return value


def substitute(value: Any, resolve: Callable[[str], Any]) -> Any:
    """``value`` with every placeholder replaced by ``resolve(name)``."""
    name = placeholder(value)
    if name is not None:
        return resolve(name)
    if isinstance(value, Mapping):
        return {key: substitute(item, resolve) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, resolve) for item in value]
    return value


def _wire_text(value: Any) -> str:
    """A field's JSON value as URL text (2.2.3): strings as is, numbers in decimal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _url_text(value: Any, safe: str) -> str:
    """A value percent-encoded for the URL (2.2.1), but a placeholder as written,
    so that a reader sees ``${name}`` where to put the value."""
    if placeholder(value) is not None:
        return str(value)
    return quote(_wire_text(value), safe=safe)


def http_request(method: str, path: str, spec: Mapping[str, Any], request: Any) -> HttpRequest:
    """The HTTP request for a request message in JSON, bound as the operation says:
    path variables into the path, the other fields into the query string (GET,
    DELETE) or the JSON body."""
    if not isinstance(request, Mapping):
        raise ExampleError("the request must be a JSON object")
    fields = dict(request)
    query: list[tuple[str, str]] = []
    target = path
    for param in spec.get("parameters", []):
        name = param["name"]
        if param["in"] == "path":
            if name not in fields:
                raise ExampleError(f"the request has no {name!r}, which the path needs")
            safe = _UNRESERVED + ("/" if param.get("x-secinfra-multi-segment") else "")
            target = target.replace("{" + name + "}", _url_text(fields.pop(name), safe))
        elif param["in"] == "query" and name in fields:
            value = fields.pop(name)
            for item in value if isinstance(value, list) else [value]:
                query.append((name, _url_text(item, _UNRESERVED)))
    if "requestBody" in spec:
        return HttpRequest(method.upper(), target, fields)
    if fields:
        raise ExampleError(f"fields {', '.join(sorted(fields))} have nowhere to go")
    if query:
        target += "?" + "&".join(f"{quote(k, safe=_UNRESERVED)}={v}" for k, v in query)
    return HttpRequest(method.upper(), target, None)


def curl(request: HttpRequest, *, mtls: bool, idempotency: str) -> str:
    """A curl command that sends ``request`` (placeholders left in, as written)."""
    lines = [f"curl -sS --cacert bundle.pem -X {request.method}"]
    if mtls:
        lines.append("--cert cert.pem --key key.pem")
    if idempotency != "read_only":
        # Any fresh UUID: a retry of the same call reuses it (the spec's 4.x).
        lines.append('-H "Idempotency-Key: $(uuidgen)"')
    if request.body is not None:
        lines.append("-H 'Content-Type: application/json'")
        lines.append("--data " + shlex.quote(json.dumps(request.body, ensure_ascii=False)))
    lines.append(shlex.quote(EXAMPLE_SERVER + request.target))
    return " \\\n  ".join(lines)


def mismatches(
    expected: Any, actual: Any, resolve: Callable[[str], Any], where: str = ""
) -> list[str]:
    """How a real answer departs from an example's response, one line each.

    ``${name}`` must equal what it stands for; a string ending in ``…`` matches any
    string and ``"…"`` any value; an RFC 3339 timestamp any timestamp; objects must
    have the same fields and arrays the same length; anything else must be equal.
    """
    at = where or "the answer"
    name = placeholder(expected)
    if name is not None:
        wanted = resolve(name)
        return [] if wanted == actual else [f"{at}: {actual!r} is not ${{{name}}} ({wanted!r})"]
    if expected == ELLIPSIS:
        return []
    if isinstance(expected, str) and expected.endswith(ELLIPSIS):
        return [] if isinstance(actual, str) else [f"{at}: {actual!r} is not a string"]
    if isinstance(expected, str) and TIMESTAMP.match(expected):
        ok = isinstance(actual, str) and TIMESTAMP.match(actual)
        return [] if ok else [f"{at}: {actual!r} is not an RFC 3339 timestamp"]
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            return [f"{at}: {actual!r} is not an object"]
        problems: list[str] = []
        for key in sorted(set(expected) - set(actual)):
            problems.append(f"{at}: no field {key!r} in the answer")
        for key in sorted(set(actual) - set(expected)):
            problems.append(f"{at}: the answer has {key!r} = {actual[key]!r}, the example does not")
        for key in expected:
            if key in actual:
                inner = f"{where}.{key}".lstrip(".")
                problems += mismatches(expected[key], actual[key], resolve, inner)
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{at}: {actual!r} is not an array"]
        if len(expected) != len(actual):
            return [f"{at}: {len(actual)} items, the example has {len(expected)}"]
        problems = []
        for index, (want, got) in enumerate(zip(expected, actual, strict=True)):
            problems += mismatches(want, got, resolve, f"{where}.{index}".lstrip("."))
        return problems
    if type(expected) is not type(actual) or expected != actual:
        return [f"{at}: {actual!r}, the example says {expected!r}"]
    return []


def explain(name: str) -> str:
    """What a placeholder stands for, in words, for the reference page."""
    if name in INPUTS:
        return INPUTS[name]
    rpc, _, path = name.partition(".")
    field = path.replace(".", " → ") if path else "answer"
    return f"{field} in the answer of the {rpc} example"
