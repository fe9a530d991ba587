"""Observers (spec 14): setup.observer, the observations step and by_rpc checks.

The last test runs a real reference server in test mode (as the suite does) and
a stand-in conformance client that declares ``observer``, fetches the trust
bundle with trace context headers at configure and answers ``observations``.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from conformance.runner import execute, sdks
from conformance.runner.adapter import _with_defaults
from conformance.runner.cases import CaseError, parse_document
from conformance.runner.execute import FAILED, ServerPool, by_rpc, run_case

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-{attempt}-01"
SENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000001-01"


def case(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "c",
        "spec": "14.2",
        "description": "d",
        "setup": {"observer": {}},
        "steps": [{"observations": "seen"}],
        "checks": [{"client": "seen", "result": {"observations": []}}],
    }
    base.update(fields)
    return base


def parse(*cases: dict[str, Any]) -> list[execute.Case]:
    return parse_document({"suite": "demo", "cases": list(cases)}, "demo", "demo.yaml")


def problems(**fields: Any) -> str:
    with pytest.raises(CaseError) as info:
        parse(case(**fields))
    return str(info.value)


def test_the_observer_setup_and_the_observations_step_need_the_observer_feature() -> None:
    (with_step,) = parse(case())
    (setup_only,) = parse(
        case(
            setup={"observer": {"traceparent": TRACEPARENT, "tracestate": "a=b"}},
            steps=[{"call": "GetCallerIdentity", "id": "w"}],
            checks=[{"client": "w", "ok": True}],
        )
    )
    assert with_step.features == setup_only.features == frozenset({"observer"})
    assert with_step.step_ids == ["seen"]
    assert setup_only.setup["observer"]["traceparent"] == TRACEPARENT


def test_a_case_may_cite_section_14() -> None:
    (parsed,) = parse(case(spec="14.3.2", covers=["14.3.2", "14.2.1"]))
    assert parsed.covers == ("14.3.2", "14.2.1")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"setup": {"observer": {"trace_parent": "x"}}},
            "setup.observer: unknown observer key 'trace_parent' (known: ['failing_first',"
            " 'traceparent', 'tracestate'])",
        ),
        ({"setup": {"observer": {"failing_first": "yes"}}}, "failing_first: true or false"),
        (
            {"setup": {"observer": {"traceparent": 1}}},
            "traceparent: a string (a traceparent; {attempt} is the attempt's number",
        ),
        ({"setup": {"observer": {"tracestate": ["a=b"]}}}, "tracestate: a string"),
        ({"setup": {"observer": "on"}}, "setup.observer: must be a mapping"),
        (
            {"steps": [{"observations": "seen", "rpc": "GetSecret"}]},
            "observations does not take ['rpc']",
        ),
        ({"steps": [{"observations": 3}]}, "give the step's id"),
        (
            {"setup": {}},
            "an observations step needs setup.observer",
        ),
        (
            {
                "steps": [{"observations": "seen"}, {"call": "GetCallerIdentity", "id": "w"}],
                "checks": [{"client": "w", "by_rpc": {"GetCallerIdentity": []}}],
            },
            "checks[0].by_rpc: only the outcome of an observations step has by_rpc",
        ),
        (
            {"checks": [{"client": "seen", "by_rpc": {"GetSecrets": []}}]},
            "checks[0].by_rpc: unknown RPC 'GetSecrets'",
        ),
        (
            {"checks": [{"server": "*", "by_rpc": {}}]},
            "unknown key 'by_rpc' for a server check",
        ),
        ({"spec": "15.1"}, "sections 1-14"),
    ],
)
def test_bad_observer_cases_are_named_with_their_problem(
    fields: dict[str, Any], message: str
) -> None:
    assert message in problems(**fields)


def test_a_left_out_observation_list_is_empty() -> None:
    answer = _with_defaults("observations", {"id": 3, "ok": True})
    assert answer["result"] == {"observations": []}
    failed = {"id": 4, "ok": False, "error": {"type": "Unsupported", "message": "op"}}
    assert _with_defaults("observations", failed) == failed


def test_by_rpc_groups_notifications_by_rpc_name_oldest_first() -> None:
    get = "secinfra.v1.SecretsService/GetSecret"
    renew = "secinfra.v1.IdentityService/RenewCertificate"
    observations = [
        {"kind": "call_started", "rpc": get},
        {"kind": "call_started", "rpc": renew},
        {"kind": "cache", "rpc": get, "cache": "hit"},
        {"kind": "call_finished", "rpc": renew, "ok": False},
        {"kind": "call_finished", "rpc": get, "ok": True},
    ]
    grouped = by_rpc({"observations": observations})
    assert list(grouped) == ["GetSecret", "RenewCertificate"]
    assert [o["kind"] for o in grouped["GetSecret"]] == ["call_started", "cache", "call_finished"]
    assert grouped["RenewCertificate"][1] == {"kind": "call_finished", "rpc": renew, "ok": False}
    assert by_rpc({}) == {}


#: Declares observer; at configure fetches the bundle (an AUTH_NONE GET) with
#: trace context headers, records the configure line; answers observations with
#: two notifications, then with none (left out, as an encoder may).
OBSERVING_CLIENT = textwrap.dedent(
    """
    import http.client, json, ssl, sys
    from urllib.parse import urlsplit
    record = sys.argv[1]
    print(json.dumps({"hello": {"protocol": 1, "sdk": "stub", "ops": [],
                                "features": ["observer"]}}), flush=True)
    told = 0
    for line in sys.stdin:
        request = json.loads(line)
        op, ident = request["op"], request["id"]
        if op == "configure":
            with open(record, "w") as f:
                f.write(line)
            url = urlsplit(request["server_url"])
            context = ssl.create_default_context(cadata=request["bundle_pem"])
            connection = http.client.HTTPSConnection(url.hostname, url.port, context=context)
            connection.request("GET", "/v1/bundle", headers={
                "Secinfra-Attempt": "1",
                "traceparent": request["observer"]["traceparent"].replace(
                    "{attempt}", "%016x" % 1),
                "tracestate": request["observer"]["tracestate"]})
            connection.getresponse().read()
            answer = {"id": ident, "ok": True, "result": {"spiffe_id": "spiffe://x/stub"}}
        elif op == "observations":
            rpc = "secinfra.v1.IdentityService/GetTrustBundle"
            found = [{"kind": "call_started", "rpc": rpc, "idempotency": "read_only"},
                     {"kind": "call_finished", "rpc": rpc, "ok": True,
                      "meta": {"from_cache": False, "stale": False, "attempts": 1}}]
            result = {"observations": found} if not told else {}
            answer = {"id": ident, "ok": True, "result": result}
            told += 1
        else:
            print(json.dumps({"id": ident, "ok": True, "result": {}}), flush=True)
            break
        print(json.dumps(answer), flush=True)
    """
)


@pytest.mark.timeout(120)
def test_a_case_configures_the_observer_and_checks_observations_and_trace_headers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    script = tmp_path / "client.py"
    script.write_text(OBSERVING_CLIENT)
    record = tmp_path / "configure.json"
    monkeypatch.setitem(
        execute.SDKS, "stub", sdks.Sdk("stub", (sys.executable, str(script), str(record)))
    )
    (parsed,) = parse(
        case(
            setup={"observer": {"traceparent": TRACEPARENT, "tracestate": "ns=${ns}"}},
            steps=[{"observations": "first"}, {"observations": "second"}],
            checks=[
                {
                    "client": "first",
                    "by_rpc": {
                        "GetTrustBundle": [
                            {"kind": "call_started", "idempotency": "read_only"},
                            {"kind": "call_finished", "ok": True, "meta": {"attempts": 1}},
                        ]
                    },
                    "result": {"observations": {"$len": 2}},
                },
                {"client": "second", "result": {"observations": []}, "by_rpc": {}},
                {
                    "server": "GetTrustBundle",
                    "during": "configure",
                    "headers": {"traceparent": SENT, "TraceState": "ns=demo-c"},
                },
                {"server": "*", "headers": {"traceparent": {"$present": False}}},
            ],
        )
    )
    pool = ServerPool()
    try:
        result = run_case(parsed, "stub", pool)
    finally:
        pool.close()
    sent = json.loads(record.read_text())
    assert sent["observer"] == {"traceparent": TRACEPARENT, "tracestate": "ns=demo-c"}
    # Only the last check fails: the bundle fetch carried a traceparent.
    assert result.outcome == FAILED, result.failures
    assert result.failures, result.details
    assert all(f.startswith("checks[3] server *") for f in result.failures), result.failures
    assert any(
        f"headers.traceparent: expected $present False, got '{SENT}'" in f for f in result.failures
    ), result.failures
