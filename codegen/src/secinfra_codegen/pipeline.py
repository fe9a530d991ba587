"""The generation pipeline: protos -> model -> outputs -> written or checked files."""

from __future__ import annotations

import difflib
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import CodegenError
from .loader import load_api
from .model import Api
from .protoc import run_protoc
from .render import format_python
from .targets import Layout, Output, all_targets, conformance

API_DIR = "api"
API_GLOB = "secinfra/v1/*.proto"
_IGNORED_DIRS = frozenset({"__pycache__"})
_IGNORED_SUFFIXES = frozenset({".pyc", ".pyo"})


def find_root(start: Path) -> Path:
    """The repo root: the first folder at or above ``start`` holding api/secinfra/."""
    for folder in (start.resolve(), *start.resolve().parents):
        if (folder / API_DIR / "secinfra").is_dir():
            return folder
    raise CodegenError(f"no api/secinfra/ folder at or above {start}; pass --root")


def api_inputs(root: Path) -> list[str]:
    """Every api/secinfra/v1/*.proto, relative to api/, sorted."""
    api = root / API_DIR
    inputs = sorted(p.relative_to(api).as_posix() for p in api.glob(API_GLOB))
    if not inputs:
        raise CodegenError(f"no .proto files match {api / API_GLOB}")
    return inputs


def load(inputs: Sequence[str], include_dirs: Sequence[Path]) -> Api:
    return load_api(run_protoc(inputs, include_dirs))


def render_outputs(api: Api, layout: Layout, ruff_config: Path | None) -> list[Output]:
    """Run every target, format, and merge outputs that share a folder."""
    merged: dict[str, Output] = {}
    for target in all_targets():
        for out in target(api, layout):
            files = (
                format_python(out.files, ruff_config) if out.formatter == "python" else out.files
            )
            prev = merged.get(out.directory)
            if prev is None:
                merged[out.directory] = Output(out.directory, dict(files), out.exclusive)
                continue
            clash = set(prev.files) & set(files)
            if clash:
                raise CodegenError(f"two targets write {out.directory}/{sorted(clash)[0]}")
            merged[out.directory] = Output(
                out.directory, {**prev.files, **files}, prev.exclusive or out.exclusive
            )
    return list(merged.values())


def protocol_inputs(root: Path) -> list[str]:
    """The conformance adapter protocol's .proto files, relative to its include root."""
    folder = root / conformance.PROTOCOL_DIR
    found = folder.glob(conformance.PROTOCOL_GLOB)
    inputs = sorted(p.relative_to(folder).as_posix() for p in found)
    if not inputs:
        raise CodegenError(f"no .proto files match {folder / conformance.PROTOCOL_GLOB}")
    return inputs


def render_protocol(
    protocol: Api, layout: conformance.ConformanceLayout, ruff_config: Path | None
) -> list[Output]:
    """The conformance target's outputs (its own input: the adapter protocol), formatted."""
    return [
        Output(out.directory, format_python(out.files, ruff_config), out.exclusive)
        if out.formatter == "python"
        else out
        for out in conformance.generate(protocol, layout)
    ]


def generate_repo(root: Path) -> list[Output]:
    """All outputs for the repo at ``root`` (formatted with its pyproject.toml)."""
    config = root / "pyproject.toml"
    ruff_config = config if config.is_file() else None
    api = load(api_inputs(root), [root / API_DIR])
    protocol = load(protocol_inputs(root), [root / conformance.PROTOCOL_DIR])
    return render_outputs(api, Layout(), ruff_config) + render_protocol(
        protocol, conformance.ConformanceLayout(), ruff_config
    )


@dataclass(frozen=True)
class Drift:
    path: str  # relative to the root
    kind: str  # "changed", "missing" or "stale"
    diff: str


def _existing(folder: Path) -> set[str]:
    if not folder.is_dir():
        return set()
    found = set()
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if path.is_dir() or set(rel.parts) & _IGNORED_DIRS or path.suffix in _IGNORED_SUFFIXES:
            continue
        found.add(rel.as_posix())
    return found


def compare(outputs: Sequence[Output], root: Path) -> list[Drift]:
    """Byte-for-byte comparison of the outputs with the files under ``root``."""
    drifts: list[Drift] = []
    for out in outputs:
        folder = root / out.directory
        names = set(out.files) | (_existing(folder) if out.exclusive else set())
        for name in sorted(names):
            rel = f"{out.directory}/{name}"
            path = folder / name
            want = out.files.get(name)
            have = path.read_bytes() if path.is_file() else None
            if want is not None and have == want.encode("utf-8"):
                continue
            have_text = have.decode("utf-8", errors="replace") if have is not None else ""
            kind = "missing" if have is None else "stale" if want is None else "changed"
            diff = "".join(
                difflib.unified_diff(
                    have_text.splitlines(keepends=True),
                    (want or "").splitlines(keepends=True),
                    fromfile=f"a/{rel}" if have is not None else "/dev/null",
                    tofile=f"b/{rel}" if want is not None else "/dev/null",
                )
            )
            drifts.append(Drift(rel, kind, diff))
    return drifts


def write(outputs: Sequence[Output], root: Path) -> list[Drift]:
    """Bring the files under ``root`` in line with the outputs; return what changed."""
    changes = compare(outputs, root)
    for change in changes:
        path = root / change.path
        if change.kind == "stale":
            path.unlink()
            continue
        # Folders may nest (docs/ and docs/reference/): the file's own output holds its name.
        text = next(
            o.files[name]
            for o in outputs
            if change.path.startswith(o.directory + "/")
            and (name := change.path[len(o.directory) + 1 :]) in o.files
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
    for out in outputs:
        if out.exclusive:
            _prune_empty(root / out.directory)
    return changes


def _prune_empty(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and path.name not in _IGNORED_DIRS and not any(path.iterdir()):
            shutil.rmtree(path)
