"""The examples in the package docstring are tests."""

from __future__ import annotations

import doctest

import secinfra_server.authz as authz


def test_package_docstring_examples_run() -> None:
    result = doctest.testmod(authz, raise_on_error=False, verbose=False)
    assert result.attempted >= 3
    assert result.failed == 0
