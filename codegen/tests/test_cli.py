"""The CLI writes outputs, deletes stale files, and --check catches any drift."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from codegen_testlib import REPO


def _run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "secinfra_codegen", "--root", str(root), *args],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A temp copy of the repo subset the generator reads."""
    shutil.copytree(REPO / "api", tmp_path / "api")
    shutil.copytree(REPO / "conformance" / "protocol", tmp_path / "conformance" / "protocol")
    if (REPO / "pyproject.toml").is_file():
        shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    result = _run(tmp_path)
    assert result.returncode == 0, result.stderr
    return tmp_path


def test_clean_tree_passes_check(repo: Path) -> None:
    result = _run(repo, "--check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (repo / "sdk-python/src/secinfra/_gen/secrets_client.py").is_file()
    assert (repo / "server/src/secinfra_server/_gen/routes.py").is_file()
    assert (repo / "docs/api/openapi.json").is_file()


def test_edited_file_fails_check_with_a_diff(repo: Path) -> None:
    target = repo / "server/src/secinfra_server/_gen/routes.py"
    target.write_text(target.read_text() + "# hand edit\n")
    result = _run(repo, "--check")
    assert result.returncode == 1
    assert "server/src/secinfra_server/_gen/routes.py (changed)" in result.stderr
    assert "-# hand edit" in result.stdout


@pytest.mark.parametrize("kind", ["stale", "missing"])
def test_stale_and_missing_files_fail_check(repo: Path, kind: str) -> None:
    if kind == "stale":
        (repo / "sdk-python/src/secinfra/_gen/old.py").write_text("x = 1\n")
    else:
        (repo / "docs/api/openapi.json").unlink()
    result = _run(repo, "--check")
    assert result.returncode == 1
    assert f"({kind})" in result.stderr
    fixed = _run(repo)
    assert fixed.returncode == 0
    assert not (repo / "sdk-python/src/secinfra/_gen/old.py").exists()
    assert _run(repo, "--check").returncode == 0


def test_invalid_api_exits_2(repo: Path) -> None:
    proto = repo / "api/secinfra/v1/errors.proto"
    proto.write_text(proto.read_text().replace("// The error code.\n", ""))
    result = _run(repo, "--check")
    assert result.returncode == 2
    assert "field secinfra.v1.Error.code has no comment" in result.stderr
