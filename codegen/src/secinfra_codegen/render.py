"""Jinja2 environment and formatters shared by the targets."""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import jinja2

from .errors import CodegenError


@functools.cache
def environment() -> jinja2.Environment:
    """Templates live in ``templates/<target>/``; undefined names are errors."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("secinfra_codegen", "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - renders source code and JSON text, never HTML
    )


def render(template: str, **context: object) -> str:
    return environment().get_template(template).render(**context)


def find_ruff() -> str:
    """The pinned ruff: beside the running interpreter, else on PATH."""
    beside = Path(sys.executable).parent / "ruff"
    if beside.is_file():
        return str(beside)
    found = shutil.which("ruff")
    if found is None:
        raise CodegenError("ruff not found beside the Python interpreter or on PATH")
    return found


def format_files(files: dict[str, str], command: list[str], tool: str) -> dict[str, str]:
    """Write ``files`` to a temp folder, run ``command`` + their paths, read them back.

    The shared step behind every language's formatter (ruff format, gofmt -w,
    ...): ``command`` must rewrite the files in place; ``tool`` names it in
    the error raised when it fails.
    """
    if not files:
        return {}
    with tempfile.TemporaryDirectory(prefix="secinfra-codegen-fmt-") as tmp:
        root = Path(tmp)
        for name, text in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        cmd = [*command, *(str(root / name) for name in sorted(files))]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
        if proc.returncode != 0:
            raise CodegenError(f"{tool} failed on generated code:\n{proc.stderr}")
        return {name: (root / name).read_text(encoding="utf-8") for name in files}


def format_python(files: dict[str, str], config: Path | None) -> dict[str, str]:
    """Run ``ruff format`` over the files (names relative to one folder).

    ``config`` is the repo's pyproject.toml, so generated code is formatted the
    way ``ruff format --check .`` expects; without one ruff's defaults apply.
    """
    cmd = [find_ruff(), "format", "--quiet", "--no-cache"]
    cmd += ["--config", str(config)] if config is not None else ["--isolated"]
    return format_files(files, cmd, "ruff format")
