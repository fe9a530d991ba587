"""Call options refuse an invalid setting when they are made (spec 1.4.4, 4.4.2)."""

from __future__ import annotations

import pytest

import secinfra
from secinfra.errors import InvalidArgument


@pytest.mark.parametrize(
    "key",
    ["", "has space", "tab\there", "é-not-ascii", "x" * 256, "line\n"],
    ids=["empty", "space", "tab", "non-ascii", "too-long", "newline"],
)
def test_an_invalid_idempotency_key_is_refused_before_sending(key: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        secinfra.CallOptions(idempotency_key=key)
    refused = caught.value
    assert (refused.code, refused.status, refused.attempts) == ("invalid_argument", None, 0)
    assert key not in str(refused) or not key  # the message names the rule, not the value


@pytest.mark.parametrize("key", ["k", "x" * 255, "!~", "order-42/attempt#1"])
def test_a_valid_idempotency_key_is_kept(key: str) -> None:
    assert secinfra.CallOptions(idempotency_key=key).idempotency_key == key
