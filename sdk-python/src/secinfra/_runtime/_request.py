"""A request from its descriptor: the path, query string, JSON body and headers.

Path parameters fill the descriptor's template (``{field}`` is one
percent-encoded segment, ``{field=**}`` may hold ``/``); GET and DELETE send
their query fields in the query string (a list repeats the name, booleans
are ``true``/``false``); other methods send every field that is not in the
path as a compact JSON body.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from .. import __version__
from .._rpc import MethodDescriptor

__all__ = ["EncodedRequest", "encode_request", "user_agent"]


def user_agent() -> str:
    """``secinfra-python/<version> (CPython/<version>)``."""
    return (
        f"secinfra-python/{__version__}"
        f" ({platform.python_implementation()}/{platform.python_version()})"
    )


@dataclass(frozen=True, slots=True)
class EncodedRequest:
    """One RPC's request as it goes on the wire (the same for every attempt)."""

    http_method: str
    target: str
    """The path and query string, e.g. ``/v1/secrets/app/db?version=2``."""
    body: bytes | None
    """The JSON body, or None for GET and DELETE."""
    headers: dict[str, str]
    """User-Agent, Accept and, with a body, Content-Type."""


def encode_request(method: MethodDescriptor, request_json: dict[str, Any]) -> EncodedRequest:
    """The wire form of ``request_json`` (a request model's JSON) for ``method``."""
    headers = {"User-Agent": _USER_AGENT, "Accept": "application/json"}
    path = method.path
    for name in method.path_params:
        value = str(request_json.get(name, ""))
        multi = "{" + name + "=**}"
        if multi in path:
            path = path.replace(multi, quote(value, safe="/"))
        else:
            path = path.replace("{" + name + "}", quote(value, safe=""))
    if method.http_method in ("GET", "DELETE"):
        query = [
            (name, item)
            for name in method.query_params
            if name in request_json
            for item in _query_items(request_json[name])
        ]
        target = path + ("?" + urlencode(query) if query else "")
        return EncodedRequest(method.http_method, target, None, headers)
    # Spec 2.3.5 with 2.3.3: the path fields are not repeated, and an empty
    # repeated field is absent from the message, so from its body too.
    body = {k: v for k, v in request_json.items() if k not in method.path_params and v != []}
    headers["Content-Type"] = "application/json"
    encoded = json.dumps(body, separators=(",", ":")).encode()
    return EncodedRequest(method.http_method, path, encoded, headers)


def _query_items(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [("true" if v else "false") if isinstance(v, bool) else str(v) for v in values]


_USER_AGENT = user_agent()
