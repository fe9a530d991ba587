"""Shared fixtures: the kitchen-sink API, its generated outputs, an importable copy."""

from __future__ import annotations

import importlib
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from codegen_testlib import (
    GOLDEN_LAYOUT,
    KITCHEN_SINK,
    KITCHEN_SINK_ROOT,
    REPO,
    RUFF_CONFIG,
)

from secinfra_codegen.model import Api
from secinfra_codegen.pipeline import load, render_outputs
from secinfra_codegen.targets import Output


@pytest.fixture(scope="session")
def kitchen_api() -> Api:
    return load([KITCHEN_SINK], [KITCHEN_SINK_ROOT, REPO / "api"])


@pytest.fixture(scope="session")
def kitchen_outputs(kitchen_api: Api) -> list[Output]:
    config = RUFF_CONFIG if RUFF_CONFIG.is_file() else None
    return render_outputs(kitchen_api, GOLDEN_LAYOUT, config)


RPC_CONTRACT = "_rpc.py"
#: The contract and what it imports (errors.py imports nothing of the SDK).
RPC_CONTRACT_FILES = (RPC_CONTRACT, "errors.py")


@pytest.fixture(scope="session")
def kitchen_package(
    kitchen_outputs: list[Output], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """The generated SDK and server packages under unique names, importable.

    ``ks_sdk`` = generated SDK ``_gen`` + the hand-written RPC contract ``_rpc``;
    ``ks_server`` = generated server ``_gen``. Relative imports make them portable.
    """
    root = tmp_path_factory.mktemp("kitchen")
    for package, directory in (
        ("ks_sdk", GOLDEN_LAYOUT.sdk_python),
        ("ks_server", GOLDEN_LAYOUT.server),
    ):
        out = next(o for o in kitchen_outputs if o.directory == directory)
        gen = root / package / "_gen"
        gen.mkdir(parents=True)
        (root / package / "__init__.py").write_text('"""Kitchen-sink test package."""\n')
        (root / package / "py.typed").write_text("")
        for name, text in out.files.items():
            (gen / name).write_text(text, encoding="utf-8")
    # Generated clients depend on the RPC contract only (the descriptor types,
    # the Invoker protocol and the call options), never on the runtime; the
    # contract itself raises the SDK's public errors (a bad call option).
    for name in RPC_CONTRACT_FILES:
        shutil.copy(REPO / "sdk-python/src/secinfra" / name, root / "ks_sdk" / name)
    sys.path.insert(0, str(root))
    try:
        yield root
    finally:
        sys.path.remove(str(root))


@pytest.fixture(scope="session")
def ks(kitchen_package: Path) -> ModuleType:
    """The generated kitchen-sink models module (SDK copy)."""
    return importlib.import_module("ks_sdk._gen.kitchen_sink")


@pytest.fixture(scope="session")
def ks_wire(kitchen_package: Path) -> ModuleType:
    return importlib.import_module("ks_sdk._gen._wire")
