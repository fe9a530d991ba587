"""The generated kitchen-sink Python: JSON round trips, decode errors, clients, lint."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import importlib
import inspect
import json
import math
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from codegen_testlib import REPO, RUFF_CONFIG

from secinfra_codegen.render import find_ruff

UTC = datetime.UTC


def _full_thing(ks: ModuleType) -> Any:
    item = ks.ContainerItem(name="a", kind=ks.ContainerItemKind.LARGE)
    return ks.Thing(
        name="team/app/db",
        scalars=ks.Scalars(
            int32_value=-(2**31),
            int64_value=2**63 - 1,
            uint32_value=2**32 - 1,
            uint64_value=2**64 - 1,
            sint32_value=-5,
            sint64_value=-(2**63),
            fixed32_value=7,
            fixed64_value=2**64 - 1,
            sfixed32_value=-9,
            sfixed64_value=-10,
            double_value=1.5,
            float_value=-0.25,
            bool_value=True,
            string_value='quote " backslash \\ unicode 日本語',
            bytes_value=b"\x00\xff binary",
            color=ks.Color.DARK_GREEN,
            maybe_int64=0,
            maybe_string="",
            maybe_color=ks.Color.BLUE,
            maybe_bool=False,
        ),
        container=ks.Container(
            tags=("x", "y"),
            counts=(1, -(2**63)),
            items=(item,),
            colors=(ks.Color.RED, ks.Color.BLUE),
            items_by_name={"a": item},
            names_by_id={1: "one", -2: "minus two"},
            colors_by_name={"sky": ks.Color.BLUE},
            created_at=datetime.datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC),
            attributes={"nested": {"list": [1, "two", None]}},
            seen_at=(datetime.datetime(2024, 5, 1, tzinfo=UTC),),
            square=item,
            primary=ks.ContainerItem(name="p"),
            blobs=(b"", b"abc"),
            default_kind=ks.ContainerItemKind.SMALL,
        ),
        keywords=ks.Keywords(class_="c", type="t", from_="f", import_="i", def_="d", end="e"),
        tree=ks.Node(value="root", children=(ks.Node(value="leaf"),), parent=None),
    )


def test_round_trip_every_type(ks: ModuleType) -> None:
    thing = _full_thing(ks)
    data = thing.to_json()
    text = json.dumps(data)  # plain JSON types only
    assert ks.Thing.from_json(json.loads(text), strict=True) == thing


def test_wire_encoding(ks: ModuleType) -> None:
    data = _full_thing(ks).to_json()
    scalars, container = data["scalars"], data["container"]
    assert scalars["int64_value"] == str(2**63 - 1)
    assert scalars["uint64_value"] == scalars["fixed64_value"] == str(2**64 - 1)
    assert scalars["int32_value"] == -(2**31)
    assert scalars["bytes_value"] == "AP8gYmluYXJ5"
    assert scalars["color"] == "dark_green"
    assert scalars["maybe_int64"] == "0"
    assert scalars["maybe_bool"] is False
    assert container["created_at"] == "2024-05-01T12:00:00.250Z"
    assert container["seen_at"] == ["2024-05-01T00:00:00Z"]
    assert container["names_by_id"] == {"1": "one", "-2": "minus two"}
    assert container["colors"] == ["red", "blue"]
    assert container["counts"] == ["1", str(-(2**63))]
    assert "radius" not in container
    assert "label" not in container
    assert data["keywords"]["class"] == "c"
    assert data["keywords"]["from"] == "f"
    assert "parent" not in data["tree"]


def test_defaults_are_proto3_zero_values(ks: ModuleType) -> None:
    empty = ks.Scalars.from_json({})
    assert empty == ks.Scalars()
    assert empty.int64_value == 0
    assert empty.bytes_value == b""
    assert empty.maybe_int64 is None
    assert empty.color is ks.Color.UNSPECIFIED
    assert ks.Scalars().to_json()["int64_value"] == "0"
    assert ks.Scalars.from_json({"string_value": None}).string_value == ""


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"scalars": {"int32_value": "x"}}, "$.scalars.int32_value"),
        ({"scalars": {"int32_value": 2**31}}, "$.scalars.int32_value"),
        ({"scalars": {"uint64_value": "-1"}}, "$.scalars.uint64_value"),
        ({"scalars": {"bool_value": 1}}, "$.scalars.bool_value"),
        ({"scalars": {"int64_value": True}}, "$.scalars.int64_value"),
        ({"scalars": {"bytes_value": "not base64!"}}, "$.scalars.bytes_value"),
        ({"scalars": {"color": 2}}, "$.scalars.color"),
        ({"container": {"items": [{}, {"name": 3}]}}, "$.container.items[1].name"),
        ({"container": {"names_by_id": {"x": "one"}}}, '$.container.names_by_id["x"]'),
        ({"container": {"created_at": "2024-05-01 12:00"}}, "$.container.created_at"),
        ({"container": {"attributes": []}}, "$.container.attributes"),
        ({"container": {"tags": "x"}}, "$.container.tags"),
        ({"container": {"radius": 1, "label": "x"}}, "$.container.label"),
        (
            {"tree": {"children": [{"children": [{"value": 1}]}]}},
            "$.tree.children[0].children[0].value",
        ),
        ([], "$"),
    ],
)
def test_decode_errors_name_the_path(
    ks: ModuleType, ks_wire: ModuleType, data: Any, path: str
) -> None:
    with pytest.raises(ks_wire.DecodeError) as info:
        ks.Thing.from_json(data)
    assert info.value.path == path
    assert str(info.value).startswith(f"{path}: ")


def test_strict_mode(ks: ModuleType, ks_wire: ModuleType) -> None:
    lenient = ks.Scalars.from_json({"color": "ultraviolet", "extra": 1})
    assert lenient.color is ks.Color.UNSPECIFIED
    with pytest.raises(ks_wire.DecodeError) as info:
        ks.Scalars.from_json({"extra": 1}, strict=True)
    assert info.value.path == "$.extra"
    with pytest.raises(ks_wire.DecodeError) as info:
        ks.Thing.from_json({"scalars": {"color": "ultraviolet"}}, strict=True)
    assert info.value.path == "$.scalars.color"


def test_lenient_scalar_forms(ks: ModuleType) -> None:
    decoded = ks.Scalars.from_json(
        {"int64_value": 5, "int32_value": "-3", "double_value": "NaN", "float_value": "-Infinity"}
    )
    assert decoded.int64_value == 5
    assert decoded.int32_value == -3
    assert math.isnan(decoded.double_value)
    assert decoded.float_value == -math.inf
    assert ks.Scalars(double_value=math.inf).to_json()["double_value"] == "Infinity"
    stamp = ks.Container.from_json({"created_at": "2024-05-01T14:00:00.123456789+02:00"})
    assert stamp.created_at == datetime.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert ks.Scalars.from_json({"bytes_value": "_w"}).bytes_value == b"\xff"


def test_naive_timestamps_are_rejected(ks: ModuleType) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ks.Container(created_at=datetime.datetime(2024, 1, 1)).to_json()


def test_oneof_allows_one_member(ks: ModuleType) -> None:
    with pytest.raises(ValueError, match="oneof 'shape'"):
        ks.Container(radius=1.0, label="x")
    assert ks.Container(label="x").to_json()["label"] == "x"


def test_models_are_frozen_keyword_only_dataclasses(ks: ModuleType) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        ks.Node().value = "x"
    with pytest.raises(TypeError):
        ks.Node("positional")
    assert ks.Color.DARK_GREEN == "dark_green"


class RecordingInvoker:
    def __init__(self, response: dict[str, Any]) -> None:
        self.response = response
        self.calls: list[tuple[Any, Any, Any, Any]] = []

    def invoke(self, method: Any, request: Any, response_type: Any, options: Any) -> Any:
        self.calls.append((method, request, response_type, options))
        return response_type.from_json(self.response)


def test_client_builds_request_and_calls_the_invoker(ks: ModuleType, kitchen_package: Path) -> None:
    clients = importlib.import_module("ks_sdk._gen.kitchen_sink_client")
    rpc = importlib.import_module("ks_sdk._rpc")
    invoker = RecordingInvoker({"name": "a/b"})
    client = clients.ThingClient(invoker)
    options = rpc.CallOptions(max_attempts=1)
    thing = client.get_thing(name="a/b", version=3, call_options=options)
    assert thing == ks.Thing(name="a/b")
    method, request, response_type, passed = invoker.calls[0]
    assert method is clients.THING_SERVICE_GET_THING
    assert method.path == "/v1/things/{name=**}"
    assert method.query_params == ("version", "fields", "color", "since")
    assert method.idempotency is rpc.Idempotency.READ_ONLY
    assert method.cache == rpc.CachePolicy(cacheable=True, resource="thing", key_field="name")
    assert request == ks.GetThingRequest(name="a/b", version=3)
    assert response_type is ks.Thing
    assert passed is options

    ping = clients.PingClient(RecordingInvoker({"payload": "hi"}))
    assert ping.ping(payload="hi", class_="c").payload == "hi"
    assert clients.PING_SERVICE_PING.auth is rpc.Auth.NONE
    with pytest.raises(TypeError):
        client.get_thing()  # the path-bound field is required


class AsyncRecordingInvoker(RecordingInvoker):
    async def invoke(  # type: ignore[override]
        self, method: Any, request: Any, response_type: Any, options: Any
    ) -> Any:
        return RecordingInvoker.invoke(self, method, request, response_type, options)


def test_async_client_awaits_the_invoker_with_the_sync_descriptors(
    ks: ModuleType, kitchen_package: Path
) -> None:
    sync = importlib.import_module("ks_sdk._gen.kitchen_sink_client")
    aio = importlib.import_module("ks_sdk._gen.kitchen_sink_aio_client")
    invoker = AsyncRecordingInvoker({"name": "a/b"})
    client = aio.AsyncThingClient(invoker)
    coroutine = client.get_thing(name="a/b", version=3)
    assert inspect.iscoroutine(coroutine)
    assert asyncio.run(coroutine) == ks.Thing(name="a/b")
    method, request, response_type, passed = invoker.calls[0]
    # One descriptor per RPC, shared: the async module defines none of its own.
    assert method is sync.THING_SERVICE_GET_THING
    assert request == ks.GetThingRequest(name="a/b", version=3)
    assert response_type is ks.Thing
    assert passed is None
    assert not [name for name in vars(aio) if name.isupper() and name not in vars(sync)]
    sync_methods = {n for n in vars(sync.ThingClient) if not n.startswith("_")}
    assert {n for n in vars(aio.AsyncThingClient) if not n.startswith("_")} == sync_methods
    with pytest.raises(TypeError):
        client.get_thing()  # the path-bound field is required


def test_generated_python_passes_ruff_and_mypy(kitchen_package: Path) -> None:
    packages = [str(kitchen_package / "ks_sdk"), str(kitchen_package / "ks_server")]
    config = ["--config", str(RUFF_CONFIG)] if RUFF_CONFIG.is_file() else ["--isolated"]
    ruff = subprocess.run(
        [find_ruff(), "check", "--no-cache", *config, *packages],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ruff.returncode == 0, ruff.stdout + ruff.stderr
    mypy = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "-p",
            "ks_sdk",
            "-p",
            "ks_server",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=kitchen_package,
        env={"PATH": "", "MYPYPATH": str(kitchen_package)},
    )
    assert mypy.returncode == 0, mypy.stdout + mypy.stderr
    assert REPO.is_dir()
