"""Conditions over the real server, on SQLite and PostgreSQL: a model with a
condition, conditional tuples written, read back and validated, and request
context on Check, BatchCheck, ListObjects and ListUsers."""

from __future__ import annotations

from typing import Any

from backends import ON_EACH_BACKEND

from .harness import Client
from .test_authz_api import TD, allowed, error, key, write_model

APP = f"workload:spiffe://{TD}/workload/app"

DSL = """model
  schema 1.1

type document
  relations
    define viewer: [workload with in_network, group#member]

condition in_network(ip: ipaddress, cidrs: list<string>) {
  cidrs.exists(c, ip.in_cidr(c))
}
"""
OFFICE = {"name": "in_network", "context": {"cidrs": ["10.0.0.0/8"]}}
VIEWER = f"document:plan#viewer@{APP}"


def write(client: Client, *tuples: dict[str, Any]) -> Any:
    return client.request("POST", "/v1/authz/tuples:write", {"writes": list(tuples)})


def conditional(text: str, condition: dict[str, Any]) -> dict[str, Any]:
    return {**key(text), "condition": condition}


@ON_EACH_BACKEND
def test_conditional_tuples_and_request_context(admin: Client) -> None:
    model = write_model(admin, {"dsl": DSL})
    assert model.status == 200, model.body
    assert "condition in_network(ip: ipaddress, cidrs: list<string>)" in model.json()["dsl"]
    assert model.json()["model"]["conditions"]["in_network"]["parameters"]["ip"] == {
        "type_name": "TYPE_NAME_IPADDRESS"
    }
    assert write(admin, conditional(VIEWER, OFFICE)).status == 200
    # stored and read back with its condition
    read = admin.request("GET", "/v1/authz/tuples?object=document:plan").json()["tuples"]
    assert read == [conditional(VIEWER, OFFICE)]
    # writing it again is a no-op; with another condition it is refused
    assert write(admin, conditional(VIEWER, OFFICE)).status == 200
    other = {"name": "in_network", "context": {"cidrs": ["192.168.0.0/16"]}}
    message = error(write(admin, conditional(VIEWER, other)), 409, "already_exists")
    assert "different condition" in message

    assert allowed(admin, VIEWER, context={"ip": "10.1.2.3"})
    assert not allowed(admin, VIEWER, context={"ip": "172.16.0.1"})
    missing = admin.request("POST", "/v1/authz:check", {"tuple_key": key(VIEWER)})
    assert 'missing context parameters "ip"' in error(missing, 400, "invalid_argument")
    bad = admin.request(
        "POST", "/v1/authz:check", {"tuple_key": key(VIEWER), "context": {"ip": "10.1"}}
    )
    assert "well-formed IP address" in error(bad, 400, "invalid_argument")

    checks = [
        {"correlation_id": "in", "tuple_key": key(VIEWER), "context": {"ip": "10.0.0.9"}},
        {"correlation_id": "out", "tuple_key": key(VIEWER), "context": {"ip": "11.0.0.9"}},
        {"correlation_id": "none", "tuple_key": key(VIEWER)},
    ]
    results = admin.request("POST", "/v1/authz:batch-check", {"checks": checks}).json()["results"]
    assert results["in"] == {"allowed": True, "error": ""}
    assert results["out"] == {"allowed": False, "error": ""}
    assert not results["none"]["allowed"]
    assert "missing context" in results["none"]["error"]

    objects = {"type": "document", "relation": "viewer", "user": APP}
    listed = admin.request(
        "POST", "/v1/authz:list-objects", {**objects, "context": {"ip": "10.9.9.9"}}
    )
    assert listed.json()["objects"] == ["document:plan"]
    users = {"object": "document:plan", "relation": "viewer", "user_filter": "workload"}
    found = admin.request("POST", "/v1/authz:list-users", {**users, "context": {"ip": "10.9.9.9"}})
    assert found.json()["users"] == [APP]
    failed = admin.request("POST", "/v1/authz:list-users", users)
    assert "missing context" in error(failed, 400, "invalid_argument")


@ON_EACH_BACKEND
def test_bad_conditions_are_refused_and_change_nothing(admin: Client) -> None:
    bad_model = DSL.replace("cidrs.exists(c, ip.in_cidr(c))", "ip == 1")
    message = error(write_model(admin, {"dsl": bad_model}), 400, "invalid_argument")
    assert 'condition "in_network"' in message
    assert "no matching overload" in message
    assert write_model(admin, {"dsl": DSL}).status == 200
    cases = [
        (key(VIEWER), "is not one of"),  # the relation takes only the conditional type
        (conditional(VIEWER, {"name": "nope"}), 'condition "nope" is not defined'),
        (conditional(VIEWER, {"name": "in_network", "context": {"x": 1}}), "not a parameter"),
        (conditional(VIEWER, {"name": "in_network", "context": {"cidrs": "10/8"}}), "a list"),
        (conditional(VIEWER, {"name": ""}), "condition.name is required"),
    ]
    for tuple_key, fragment in cases:
        message = error(write(admin, tuple_key), 400, "invalid_argument")
        assert "writes[0]" in message
        assert fragment in message, message
    assert admin.request("GET", "/v1/authz/tuples?object=document:plan").json()["tuples"] == []
