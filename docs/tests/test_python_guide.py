"""The Python SDK guide (docs/sdk/python.md) names only what the SDK has.

Its code blocks must parse, every ``secinfra.<name>`` they use must exist, and
every setting its configuration table names must be a field of the settings
type it is listed under, so the guide cannot drift from the package.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import typing
from pathlib import Path
from typing import Final

import secinfra
import secinfra.aio
from secinfra import CallOptions, ClientSettings, RetryPolicy, RotationPolicy

GUIDE: Final = Path(__file__).resolve().parents[1] / "sdk" / "python.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.DOTALL)


def _table_rows() -> list[list[str]]:
    section = GUIDE.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]


def test_every_code_block_parses() -> None:
    blocks = _blocks()
    assert len(blocks) >= 8
    for block in blocks:
        ast.parse(block)


def test_every_secinfra_attribute_used_exists() -> None:
    used: set[str] = set()
    for block in _blocks():
        for node in ast.walk(ast.parse(block)):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "secinfra"
            ):
                used.add(node.attr)
    assert used, "the guide uses secinfra.<name>"
    missing = sorted(name for name in used if not hasattr(secinfra, name))
    assert missing == []
    aio_used = {
        node.attr
        for block in _blocks()
        for node in ast.walk(ast.parse(block))
        if isinstance(node, ast.Attribute) and ast.unparse(node.value) == "secinfra.aio"
    }
    assert aio_used, "the guide's asyncio section uses secinfra.aio.<name>"
    assert sorted(n for n in aio_used if not hasattr(secinfra.aio, n)) == []


def test_every_setting_in_the_table_exists() -> None:
    # ClientSettings, plus the constructors' own keywords (server_id, ...).
    client_keys = set(typing.get_type_hints(ClientSettings)) | set(
        inspect.signature(secinfra.Client.enrol).parameters
    )
    fields = {
        "RetryPolicy": {f.name for f in dataclasses.fields(RetryPolicy)},
        "RotationPolicy": {f.name for f in dataclasses.fields(RotationPolicy)},
    }
    call_keys = {f.name for f in dataclasses.fields(CallOptions)}
    rows = _table_rows()
    assert len(rows) >= 15
    for _setting, _default, per_client, per_call in rows:
        for policy, names in re.findall(r"(RetryPolicy|RotationPolicy)\(([^)]*)\)", per_client):
            for name in re.findall(r"(\w+)=", names):
                assert name in fields[policy], f"{policy} has no field {name!r}"
        for keyword in re.findall(r"`(\w+)`", re.sub(r"\w+=\w+\([^)]*\)", "", per_client)):
            if keyword.startswith('"'):
                continue
            assert keyword in client_keys, f"ClientSettings has no key {keyword!r}"
        for keyword in re.findall(r"`(\w+)`", per_call):
            assert keyword in call_keys, f"CallOptions has no field {keyword!r}"
