"""batch_check(): results keyed by correlation id, per-item errors, the 100 limit."""

from __future__ import annotations

import pytest

from secinfra_server.authz import (
    MAX_BATCH_CHECK,
    BatchCheckItem,
    BatchCheckResult,
    RequestError,
    ResolutionTooComplex,
    TupleError,
    TupleKey,
    batch_check,
)


def item(cid: str, user: str, relation: str, obj: str) -> BatchCheckItem:
    return BatchCheckItem(TupleKey(user, relation, obj), cid)


def test_results_are_keyed_by_correlation_id(request: pytest.FixtureRequest) -> None:
    w = request.getfixturevalue("drive")
    items = [
        item("alice-plan", "user:alice", "viewer", "document:plan"),
        item("carol-plan", "user:carol", "can_view", "document:plan"),
        item("eve-public", "user:eve", "viewer", "document:public"),
        item("eve-plan", "user:eve", "viewer", "document:plan"),
    ]
    results = batch_check(w.model, w.store, items)
    assert results == {
        "alice-plan": BatchCheckResult(True),
        "carol-plan": BatchCheckResult(False),
        "eve-public": BatchCheckResult(True),
        "eve-plan": BatchCheckResult(False),
    }


def test_a_failing_item_carries_its_error_and_the_others_still_run(
    request: pytest.FixtureRequest,
) -> None:
    w = request.getfixturevalue("drive")
    items = [
        item("bad", "user:alice", "reader", "document:plan"),
        item("good", "user:bob", "viewer", "document:plan"),
    ]
    results = batch_check(w.model, w.store, items, max_depth=25)
    assert results["good"] == BatchCheckResult(True)
    assert results["bad"].allowed is False
    assert isinstance(results["bad"].error, TupleError)
    assert 'relation "reader"' in str(results["bad"].error)


def test_a_too_complex_item_carries_resolution_too_complex(
    request: pytest.FixtureRequest,
) -> None:
    w = request.getfixturevalue("drive")
    items = [
        item("deep", "user:dave", "viewer", "document:plan"),
        item("shallow", "user:bob", "viewer", "document:plan"),
    ]
    results = batch_check(w.model, w.store, items, max_depth=2)
    assert isinstance(results["deep"].error, ResolutionTooComplex)
    assert results["shallow"] == BatchCheckResult(True)


def test_exactly_the_limit_is_accepted(request: pytest.FixtureRequest) -> None:
    w = request.getfixturevalue("drive")
    users = ["user:alice", "user:eve"]
    items = [item(f"c{i}", users[i % 2], "viewer", "document:plan") for i in range(MAX_BATCH_CHECK)]
    results = batch_check(w.model, w.store, items)
    assert MAX_BATCH_CHECK == 100
    assert len(results) == MAX_BATCH_CHECK
    assert [results[f"c{i}"].allowed for i in range(4)] == [True, False, True, False]


def test_an_empty_batch_returns_no_results(request: pytest.FixtureRequest) -> None:
    w = request.getfixturevalue("drive")
    assert batch_check(w.model, w.store, []) == {}


@pytest.mark.parametrize(
    ("cids", "fragment"),
    [
        ([f"c{i}" for i in range(MAX_BATCH_CHECK + 1)], "at most 100 items, got 101"),
        (["a", "b", "a"], "correlation id 'a' is used more than once"),
        ([""], "correlation id '' must be 1 to 36"),
        (["x" * 37], "must be 1 to 36"),
        (["has space"], "letters, digits, '_' or '-'"),
    ],
    ids=["over-limit", "duplicate", "empty", "too-long", "bad-characters"],
)
def test_batch_limits_are_request_errors(
    request: pytest.FixtureRequest, cids: list[str], fragment: str
) -> None:
    w = request.getfixturevalue("drive")
    items = [item(cid, "user:alice", "viewer", "document:plan") for cid in cids]
    with pytest.raises(RequestError) as info:
        batch_check(w.model, w.store, items)
    assert str(info.value).startswith("secinfra: authz: request: ")
    assert fragment in str(info.value)
