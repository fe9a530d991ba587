"""The request decoder's nesting pre-scan: counts arrays and objects, not
brackets inside strings, and costs little on normal bodies."""

from __future__ import annotations

import pytest

from secinfra_server._http import MAX_JSON_DEPTH, check_json_depth
from secinfra_server.errors import ApiError


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    "body",
    [
        b"{}",
        _nested(MAX_JSON_DEPTH),
        b'{"a": "' + b"[" * 1000 + b'"}',  # brackets in a string do not nest
        b'{"a": "\\"' + b"[" * 1000 + b'"}',  # nor after an escaped quote
        b'{"a": "\\\\"' + b", " + b"[]," * 1000 + b"0}",  # many siblings, shallow
        b'{"a": "' + b"[" * 1000,  # unterminated string: left to the decoder
    ],
)
def test_bodies_within_the_limit_pass(body: bytes) -> None:
    check_json_depth(body)


@pytest.mark.parametrize(
    "body",
    [
        _nested(MAX_JSON_DEPTH + 1),
        b'{"a":' * (MAX_JSON_DEPTH + 1),
        b'{"s": "]]]]", "v": ' + _nested(5000) + b"}",
        b"[" * 1_000_000,
    ],
)
def test_bodies_past_the_limit_are_invalid_argument(body: bytes) -> None:
    with pytest.raises(ApiError) as caught:
        check_json_depth(body)
    assert caught.value.code == "invalid_argument"
    assert f"limit of {MAX_JSON_DEPTH} levels" in caught.value.message
    assert caught.value.details == {"max_depth": MAX_JSON_DEPTH}
