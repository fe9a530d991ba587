"""Paths and constants shared by the codegen tests."""

from __future__ import annotations

from pathlib import Path

from secinfra_codegen.targets import Layout

REPO = Path(__file__).resolve().parents[2]
TESTS = Path(__file__).resolve().parent
KITCHEN_SINK_ROOT = TESTS / "kitchen_sink"
KITCHEN_SINK = "secinfra/kitchensink/v1/kitchen_sink.proto"
GOLDEN = TESTS / "golden"
GOLDEN_LAYOUT = Layout(
    sdk_python="sdk-python/secinfra/_gen",
    server="server/secinfra_server/_gen",
    openapi="docs/openapi.json",
)
RUFF_CONFIG = REPO / "pyproject.toml"
