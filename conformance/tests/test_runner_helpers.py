"""Runner pieces a case relies on: the JWT issuer, the no_return rule, derived fields."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest

from conformance.runner.attestation import AUDIENCE, ISSUER, NAMESPACE, JwtIssuer
from conformance.runner.cases import parse_document
from conformance.runner.execute import _no_return, _normalise, _Run, _sequential
from conformance.runner.matchers import Context, match
from conformance.runner.server import Server
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


def test_sequential_needs_each_request_finished_before_the_next_arrives() -> None:
    def entry(seq: int, received: float, finished: float | None) -> dict[str, Any]:
        return {"seq": seq, "received_monotonic": received, "finished_monotonic": finished}

    one_at_a_time = [entry(1, 0.0, 1.2), entry(2, 1.3, 2.5), entry(3, 2.6, 2.7)]
    assert _sequential(one_at_a_time) == []
    hedged = [entry(1, 0.0, 1.2), entry(2, 0.5, 1.7)]
    assert "seq 2 arrived at 0.500, before seq 1 was finished" in _sequential(hedged)[0]
    assert _sequential([entry(1, 0.0, None), entry(2, 3.0, 3.1)])  # never finished
    assert "needs two requests" in _sequential(one_at_a_time[:1])[0]


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


def test_server_checks_select_by_replica_and_by_each_replicas_window() -> None:
    """Replica logs have sequence numbers of their own: a step's window is per
    replica, and ``replica:`` keeps one replica's requests."""
    (case,) = parse_document(
        {
            "suite": "endpoints",
            "cases": [
                {
                    "name": "windows",
                    "spec": "12.3",
                    "description": "per-replica windows",
                    "setup": {"replicas": 2},
                    "steps": [{"call": "GetCallerIdentity", "id": "one"}],
                    "checks": [{"server": "*", "replica": "b", "count": 1}],
                }
            ],
        },
        "endpoints",
        "endpoints.yaml",
    )
    run = _Run(case, "fake", {"a": cast(Server, None), "b": cast(Server, None)})
    entry = {"rpc": "GetCallerIdentity", "headers": {}, "client_spiffe_id": "spiffe://x/w"}
    run.log = [
        {**entry, "replica": "a", "seq": 7, "received_monotonic": 1.0},  # before the step on a
        {**entry, "replica": "b", "seq": 2, "received_monotonic": 1.5},  # b's own numbering
        {**entry, "replica": "a", "seq": 8, "received_monotonic": 2.0},
    ]
    run.windows = {"one": {"a": (7, 8), "b": (0, 2)}}
    assert [e["seq"] for e in run._entries({"server": "*", "during": "one"})] == [2, 8]
    assert [e["seq"] for e in run._entries({"server": "*", "replica": "a"})] == [7, 8]
    assert run._entries({"server": "*", "replica": "b", "during": "one"})[0]["replica"] == "b"
