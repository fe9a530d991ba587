"""Every package carries the project's license, version and links.

The packages are built from their own directories (a Python sdist, a gem, a
Maven jar, a Go module zip), so each carries its own copy of the license; this
test keeps every copy identical to the repository's LICENSE, and the version
and metadata the same across the five packages.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Final

import pytest

ROOT: Final = Path(__file__).resolve().parents[2]
PACKAGE_DIRS: Final = ("server", "sdk-python", "sdk-go", "sdk-java", "sdk-ruby")
HOMEPAGE: Final = "https://github.com/secinfra/secinfra"


def _one(pattern: str, path: Path) -> str:
    found = re.findall(pattern, path.read_text(), flags=re.MULTILINE)
    assert len(found) == 1, f"{path.relative_to(ROOT)}: expected one match of {pattern!r}"
    return str(found[0])


def _versions() -> dict[str, str]:
    return {
        "server/pyproject.toml": tomllib.loads((ROOT / "server/pyproject.toml").read_text())[
            "project"
        ]["version"],
        "server __version__": _one(
            r'^__version__ = "([^"]+)"', ROOT / "server/src/secinfra_server/__init__.py"
        ),
        "sdk-python/pyproject.toml": tomllib.loads(
            (ROOT / "sdk-python/pyproject.toml").read_text()
        )["project"]["version"],
        "sdk-python __version__": _one(
            r'^__version__ = "([^"]+)"', ROOT / "sdk-python/src/secinfra/__init__.py"
        ),
        "sdk-go Version": _one(r'^const Version = "([^"]+)"', ROOT / "sdk-go/client.go"),
        "sdk-java pom.xml": _one(r"^  <version>([^<]+)</version>", ROOT / "sdk-java/pom.xml"),
        "sdk-java VERSION": _one(
            r'VERSION = "([^"]+)";',
            ROOT / "sdk-java/src/main/java/dev/secinfra/SecinfraClient.java",
        ),
        "sdk-ruby VERSION": _one(r'VERSION = "([^"]+)"', ROOT / "sdk-ruby/lib/secinfra/version.rb"),
    }


@pytest.mark.parametrize("directory", PACKAGE_DIRS)
def test_each_package_carries_the_repository_license(directory: str) -> None:
    root_license = (ROOT / "LICENSE").read_text()
    assert "Apache License" in root_license
    assert "Version 2.0" in root_license
    copy = ROOT / directory / "LICENSE"
    assert copy.is_file(), f"{directory}/LICENSE is missing (copy the repository's LICENSE)"
    assert copy.read_text() == root_license, f"{directory}/LICENSE differs from LICENSE"


def test_every_package_has_one_version() -> None:
    versions = _versions()
    assert len(set(versions.values())) == 1, f"versions disagree: {versions}"


@pytest.mark.parametrize("directory", ["server", "sdk-python"])
def test_python_packages_have_full_metadata(directory: str) -> None:
    project = tomllib.loads((ROOT / directory / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    assert (ROOT / directory / project["readme"]).is_file()
    assert project["urls"]["Homepage"] == HOMEPAGE
    assert "Changelog" in project["urls"]
    assert any(
        c.startswith("Programming Language :: Python :: 3.11") for c in project["classifiers"]
    )


def test_java_and_ruby_packages_have_full_metadata() -> None:
    pom = (ROOT / "sdk-java/pom.xml").read_text()
    for element in ("<url>", "<licenses>", "<scm>", "<developers>", "<issueManagement>"):
        assert element in pom, f"sdk-java/pom.xml has no {element}"
    assert "<name>Apache-2.0</name>" in pom
    gemspec = (ROOT / "sdk-ruby/secinfra.gemspec").read_text()
    assert f'spec.homepage = "{HOMEPAGE}"' in gemspec
    for key in ("source_code_uri", "documentation_uri", "changelog_uri", "bug_tracker_uri"):
        assert f'spec.metadata["{key}"]' in gemspec, f"the gemspec has no {key}"
    assert '"LICENSE"' in gemspec


def test_changelog_keeps_an_unreleased_section() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "[Keep a Changelog]" in text
    assert re.search(r"^## \[Unreleased\]$", text, flags=re.MULTILINE)
