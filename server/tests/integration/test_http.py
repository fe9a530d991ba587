"""The HTTP layer: envelopes, limits, routing, authentication failures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from secinfra_server import ca

from .harness import Client, Identity, RunningServer, key_pem, new_key


def test_every_response_has_a_request_id_and_errors_use_the_envelope(anon: Client) -> None:
    resp = anon.request("GET", "/v1/nope")
    assert resp.status == 404
    error = resp.json()["error"]
    assert error["code"] == "not_found"
    assert error["request_id"] == resp.headers["request-id"]


def test_wrong_method_is_405_with_allow(anon: Client) -> None:
    resp = anon.request("DELETE", "/v1/bundle")
    assert resp.status == 405
    assert resp.code == "method_not_allowed"
    assert resp.headers["allow"] == "GET"


@pytest.mark.parametrize(
    ("raw", "expect"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"csr_pem": 5, "join_token": "x"}', "csr_pem"),
        (b'{"csr_pem": "x", "join_token": "t", "surprise": 1}', "surprise"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_bad_bodies_are_invalid_argument(raw: bytes, expect: str, anon: Client) -> None:
    resp = anon.request("POST", "/v1/identity:issue", raw=raw)
    assert resp.status == 400
    assert resp.code == "invalid_argument"
    assert expect in resp.json()["error"]["message"]


def test_oversized_body_is_413(server: RunningServer, anon: Client) -> None:
    big = b'{"csr_pem": "' + b"a" * (server.config.max_body_bytes + 10) + b'"}'
    resp = anon.request("POST", "/v1/identity:issue", raw=big)
    assert resp.status == 413
    assert resp.code == "payload_too_large"


def test_unknown_query_parameter(admin: Client) -> None:
    resp = admin.request("GET", "/v1/join-tokens?limit=3")
    assert resp.status == 400
    assert "limit" in resp.json()["error"]["message"]


def test_mtls_routes_need_a_certificate(anon: Client) -> None:
    resp = anon.request("GET", "/v1/identity:whoami")
    assert resp.status == 401
    assert resp.code == "unauthenticated"


def test_foreign_ca_certificate_is_refused(server: RunningServer, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    foreign = ca.create_root_ca("secinfra.local", now=now, state=ca.CAState.ACTIVE)
    key = new_key()
    leaf = ca.sign_svid(
        foreign, ca.build_csr(key), "spiffe://secinfra.local/evil", ttl=timedelta(hours=1), now=now
    )
    from cryptography.hazmat.primitives import serialization

    identity = Identity(leaf.public_bytes(serialization.Encoding.PEM), key_pem(key))
    client = Client(server.port, server.bundle_pem(), identity, tmp_path / "evil")
    try:
        resp = client.request("GET", "/v1/identity:whoami")
        status = resp.status
    except (OSError, ConnectionError):
        status = 0  # refused during the TLS handshake: also correct
    finally:
        client.close()
    assert status in (0, 401)


def test_health_and_metrics(server: RunningServer, admin: Client, anon: Client) -> None:
    assert anon.request("GET", "/healthz").json() == {"status": "ok"}
    assert anon.request("GET", "/readyz").json()["status"] == "ready"
    assert anon.request("GET", "/metrics").status == 401
    admin.request("GET", "/v1/identity:whoami")
    text = admin.request("GET", "/metrics").body.decode()
    assert 'secinfra_requests_total{code="ok",route="/v1/identity:whoami"}' in text
    assert "secinfra_certificates_total" in text
    assert "secinfra_ca_state" in text


def test_bundle_etag_and_conditional_get(anon: Client) -> None:
    first = anon.request("GET", "/v1/bundle")
    assert first.status == 200
    etag = first.headers["etag"]
    assert "max-age=" in first.headers["cache-control"]
    again = anon.request("GET", "/v1/bundle", headers={"If-None-Match": etag})
    assert again.status == 304
    assert again.body == b""
    body = first.json()
    assert body["spiffe_sequence"] >= 1
    assert body["keys"][0]["use"] == "x509-svid"
    assert len(body["keys"][0]["x5c"]) == 1


def test_path_variables_are_matched_as_sent_then_decoded(admin: Client) -> None:
    # Spec 2.2.1: a '/' inside one segment travels as %2F and stays in that
    # segment: the route matches and the handler sees the id "a/b".
    token = admin.request("DELETE", "/v1/join-tokens/a%2Fb")
    assert token.status == 404
    assert token.json()["error"]["message"] == "secinfra: identity: no join token with that id"
    # A ':' sent as %3A inside a name is part of the name, never a ":verb".
    colon = admin.request("GET", "/v1/secrets/app/db%3Ametadata")
    assert colon.status == 400
    assert colon.json()["error"]["details"]["field"] == "name"
    # Percent-encoding that is not UTF-8 is the request's fault, said so.
    bad = admin.request("GET", "/v1/secrets/app/%FF")
    assert bad.status == 400
    assert "not percent-encoded UTF-8" in bad.json()["error"]["message"]
    assert admin.request("GET", "/v1/secrets/app/%64b:metadata").status in (403, 404)
