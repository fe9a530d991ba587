"""A request's wire form from its descriptor (spec 2.2 and 2.3)."""

from __future__ import annotations

import json

from secinfra._gen import secrets_client as rpc
from secinfra._gen.secrets import (
    DeleteSecretRequest,
    PutSecretRequest,
    SecretPolicy,
    UndeleteSecretRequest,
)
from secinfra._runtime._request import encode_request


def test_a_put_sends_its_other_fields_as_a_json_body_without_the_path_field() -> None:
    request = PutSecretRequest(
        name="app/db", value=b"v", if_version=0, policy=SecretPolicy()
    ).to_json()
    encoded = encode_request(rpc.SECRETS_SERVICE_PUT_SECRET, request)
    assert encoded.target == "/v1/secrets/app/db"
    assert encoded.headers["Content-Type"] == "application/json"
    assert encoded.body is not None
    body = json.loads(encoded.body)
    # A set optional field at its default and a present message both travel.
    assert (body["value"], body["if_version"], "name" in body) == ("dg==", 0, False)
    assert isinstance(body["policy"], dict)


def test_an_empty_repeated_field_is_left_out_of_the_body() -> None:
    none = encode_request(
        rpc.SECRETS_SERVICE_UNDELETE_SECRET, UndeleteSecretRequest(name="app/db").to_json()
    )
    assert none.body == b"{}"
    two = encode_request(
        rpc.SECRETS_SERVICE_UNDELETE_SECRET,
        UndeleteSecretRequest(name="app/db", versions=[2]).to_json(),
    )
    assert two.body == b'{"versions":[2]}'


def test_a_delete_sends_its_fields_in_the_query_and_no_body() -> None:
    encoded = encode_request(
        rpc.SECRETS_SERVICE_DELETE_SECRET,
        DeleteSecretRequest(name="app/db", versions=[3, 4]).to_json(),
    )
    assert (encoded.target, encoded.body) == ("/v1/secrets/app/db?versions=3&versions=4", None)
    assert "Content-Type" not in encoded.headers
