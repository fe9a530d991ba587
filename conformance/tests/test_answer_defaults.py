"""Answers read with the proto3 defaults of fields a client left out."""

from __future__ import annotations

from conformance.runner.adapter import _with_defaults


def test_a_left_out_event_list_is_empty() -> None:
    answer = _with_defaults("events", {"id": 4, "ok": True, "result": {}})
    assert answer["result"] == {"events": []}


def test_an_empty_call_result_is_an_empty_object() -> None:
    assert _with_defaults("call", {"id": 2, "ok": True})["result"] == {}
    outcomes = _with_defaults(
        "concurrent", {"id": 3, "ok": True, "result": {"results": [{"ok": True}, {"ok": False}]}}
    )["result"]["results"]
    assert outcomes == [{"ok": True, "result": {}}, {"ok": False}]


def test_failures_and_given_values_are_left_alone() -> None:
    failed = {"id": 5, "ok": False, "error": {"type": "Unsupported", "message": "op 'x'"}}
    assert _with_defaults("call", failed) == failed
    given = {"id": 6, "ok": True, "result": {"name": "a"}, "meta": {"attempts": 1}}
    assert _with_defaults("call", given) == given
