"""The mtls suite's runner parts that need no client: step validation, the matrix report."""

from __future__ import annotations

from typing import Any

import pytest

from conformance.runner import mtls_matrix
from conformance.runner.cases import CaseError, parse_document

SDKS = ["go", "java", "python", "ruby"]


def case(steps: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "suite": "mtls",
        "cases": [
            {
                "name": "c",
                "spec": "13.3.3",
                "description": "d",
                "steps": steps,
                "checks": [{"client": steps[-1].get("id", f"step{len(steps)}"), "ok": True}],
            }
        ],
    }


PEER = {"peer_identity": {"kind": "issued", "spiffe_id": "spiffe://secinfra.local/w/p"}, "id": "p"}


@pytest.mark.parametrize(
    ("steps", "features"),
    [
        ([PEER], set()),
        ([PEER, {"peer_serve": "p", "id": "s"}], set()),
        ([PEER, {"peer_call": "p", "id": "c"}], {"mtls"}),
        ([{"mtls_serve": {"authorizer": {"kind": "member_of", "trust_domain": "td"}}}], {"mtls"}),
        ([{"mtls_stop": True}], {"mtls"}),
        ([{"await_identity": {"serial": {"$present": True}}}], {"identity"}),
    ],
)
def test_mtls_steps_imply_their_features(steps: list[dict[str, Any]], features: set[str]) -> None:
    (parsed,) = parse_document(case(steps), "mtls", "mtls.yaml")
    assert set(parsed.features) == features


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([{"peer_call": "p", "id": "c"}], "no earlier peer_identity step has id 'p'"),
        (
            [{"peer_identity": {"kind": "issued", "spiffe_id": "spiffe://td/x"}}],
            "give the identity's name",
        ),
        (
            [{**PEER, "peer_identity": {"kind": "stolen", "spiffe_id": "spiffe://td/x"}}],
            "peer_identity",
        ),
        ([{"mtls_serve": {"authorizer": {"kind": "id"}}}], "authorizer: give 'id'"),
        (
            [{"mtls_serve": {"authorizer": {"kind": "member_of", "trust_domain": "td", "x": 1}}}],
            "unknown authorizer key 'x'",
        ),
    ],
)
def test_bad_mtls_steps_are_refused_with_a_reason(
    steps: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(CaseError, match=message):
        parse_document(case(steps), "mtls", "mtls.yaml")


def test_matrix_pairs_of_sdks_without_mtls_are_skipped_with_the_reason() -> None:
    # No client declares mtls, so no server starts and every pair is skipped.
    ok, pairs, _ = mtls_matrix.run(SDKS, {sdk: frozenset({"identity"}) for sdk in SDKS})
    assert ok
    assert len(pairs) == 16
    assert {p.status for p in pairs} == {mtls_matrix.SKIPPED}
    java_ruby = next(p for p in pairs if (p.server, p.client) == ("java", "ruby"))
    assert java_ruby.skip_reason == (
        "skipped: the java client does not declare the feature mtls;"
        " the ruby client does not declare the feature mtls"
    )
    data = mtls_matrix.report(ok, pairs, 1.0)
    assert data["summary"] == {"skipped": 16}
    table = mtls_matrix.markdown(data)
    assert "| **java** | skipped | skipped | skipped | skipped |" in table
    assert "java serving, ruby calling (skipped)" in table
