"""The generated route table: one Route per RPC, regexes that match the templates."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


@pytest.fixture(scope="module")
def routes(kitchen_package: Path) -> ModuleType:
    return importlib.import_module("ks_server._gen.routes")


def _route(routes: ModuleType, rpc: str) -> Any:
    return next(r for r in routes.ROUTES if r.rpc == rpc)


@pytest.mark.parametrize(
    ("rpc", "path", "params"),
    [
        ("GetThing", "/v1/things/a", {"name": "a"}),
        ("GetThing", "/v1/things/team/app/db.password", {"name": "team/app/db.password"}),
        ("TouchThing", "/v1/shards/7/things/a/b:touch", {"shard": "7", "name": "a/b"}),
        ("ListThings", "/v1/things", {}),
        ("Ping", "/v1/ping:echo", {}),
        ("Time", "/v1/time/now", {"payload": "now"}),
    ],
)
def test_route_regex_matches(
    routes: ModuleType, rpc: str, path: str, params: dict[str, str]
) -> None:
    match = _route(routes, rpc).pattern.fullmatch(path)
    assert match is not None
    assert match.groupdict() == params


@pytest.mark.parametrize(
    ("rpc", "path"),
    [
        ("GetThing", "/v1/things/"),
        ("GetThing", "/v1/things/a:touch"),  # ':' never in a name: that is a verb
        ("GetThing", "/v1/things"),
        ("TouchThing", "/v1/shards/7/things/a"),
        ("TouchThing", "/v1/shards/7/8/things/a:touch"),  # {shard} is one segment
        ("Time", "/v1/time/a/b"),
        ("Ping", "/v1/ping"),
        ("ListThings", "/v1/things/x"),
    ],
)
def test_route_regex_rejects(routes: ModuleType, rpc: str, path: str) -> None:
    assert _route(routes, rpc).pattern.fullmatch(path) is None


def test_route_fields(routes: ModuleType) -> None:
    models = importlib.import_module("ks_server._gen.kitchen_sink")
    get = _route(routes, "GetThing")
    assert get.handler == "get_thing"
    assert get.http_method == "GET"
    assert get.request_type is models.GetThingRequest
    assert get.response_type is models.Thing
    assert get.cache == routes.CachePolicy(cacheable=True, resource="thing", key_field="name")
    delete = _route(routes, "DeleteThing")
    assert delete.admin
    assert delete.idempotency is routes.Idempotency.IDEMPOTENT
    assert delete.invalidates == routes.Invalidation(resource="thing", key_field="")
    assert _route(routes, "Ping").auth is routes.Auth.NONE
    assert len(routes.ROUTES) == 7


def test_no_two_routes_match_the_same_request(routes: ModuleType) -> None:
    samples = [
        ("GET", "/v1/things/a/b"),
        ("PUT", "/v1/things/a/b"),
        ("DELETE", "/v1/things/a"),
        ("GET", "/v1/things"),
        ("POST", "/v1/shards/1/things/a:touch"),
    ]
    for method, path in samples:
        hits = [r for r in routes.ROUTES if r.http_method == method and r.pattern.fullmatch(path)]
        assert len(hits) == 1, (method, path, hits)
