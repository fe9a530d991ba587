"""Whether the tracing tests can run here (the other modules need the extra)."""

from __future__ import annotations

import importlib.util

import pytest

from .conftest import REQUIRE_OTEL


def test_the_otel_extra_is_installed() -> None:
    if importlib.util.find_spec("opentelemetry") is None and not REQUIRE_OTEL:
        pytest.skip("the otel extra is not installed; nox -s tests-server-otel runs these tests")
    assert importlib.util.find_spec("opentelemetry.sdk") is not None
