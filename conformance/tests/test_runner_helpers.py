"""Runner pieces a case relies on: the JWT issuer, the no_return rule, derived fields."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from conformance.runner.attestation import AUDIENCE, ISSUER, NAMESPACE, JwtIssuer
from conformance.runner.execute import _no_return, _normalise
from conformance.runner.matchers import Context, match
from secinfra_server.attest import AttestationRejected, JWTAttestor, JWTAttestorConfig


def test_the_runners_jwt_is_accepted_by_the_servers_attestor() -> None:
    issuer = JwtIssuer()
    attestor = JWTAttestor(
        JWTAttestorConfig(
            issuer=ISSUER, audiences=(AUDIENCE,), jwks=issuer.jwks(), trust_domain="secinfra.local"
        )
    )
    verified = attestor.attest(issuer.token("identity-x"), now=datetime.now(UTC))
    assert str(verified.spiffe_id) == f"spiffe://secinfra.local/ns/{NAMESPACE}/sa/identity-x"
    # Another key (another run) is not trusted.
    with pytest.raises(AttestationRejected):
        attestor.attest(JwtIssuer().token("identity-x"), now=datetime.now(UTC))


@pytest.mark.parametrize(
    ("values", "ok"),
    [
        (["a", "a", "b", "b", "c"], True),
        (["a", None, "a", "b"], True),  # requests without the field are ignored
        (["a", "b", "a"], False),
        (["a", "b", "b", "c", "b"], False),
    ],
)
def test_no_return(values: list[Any], ok: bool) -> None:
    entries = [{"client_serial": v, "headers": {}} for v in values]
    assert (_no_return("client_serial", entries) == []) is ok


def test_certificate_time_left_is_derived_per_entry() -> None:
    entry = _normalise(
        {
            "headers": {"Secinfra-Attempt": "1"},
            "received_at": "2026-11-22T08:00:00.250000+00:00",
            "client_not_after": "2026-11-22T08:00:03+00:00",
        }
    )
    assert entry["client_cert_seconds_left"] == 2.75
    assert entry["headers"] == {"secinfra-attempt": "1"}
    assert _normalise({"headers": {}, "received_at": "x"})["client_cert_seconds_left"] is None


def test_eq_and_ne_take_a_recorded_value() -> None:
    ctx = Context(refs=lambda path: {"first.result.serial": "ab"}.get(path))
    assert match({"$ne": {"$ref": "first.result.serial"}}, "cd", ctx) == []
    assert match({"$ne": {"$ref": "first.result.serial"}}, "ab", ctx) != []
    assert match({"$eq": {"$ref": "first.result.serial"}}, "ab", ctx) == []
    assert match({"$ne": {"$ref": "missing.path"}}, "ab", ctx) != []
