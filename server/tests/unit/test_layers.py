"""The server's import graph: no cycle anywhere, and every import points down.

The layer table is data (server/layers.toml) so that the docs draw the same
picture this test enforces. The graph is read with ``ast`` from every ``.py``
file of the package, imports inside functions and ``if TYPE_CHECKING:`` blocks
included: an import that is hidden from the interpreter is still a dependency.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path

PACKAGE = "secinfra_server"
SERVER = Path(__file__).resolve().parents[2]
SOURCE = SERVER / "src" / PACKAGE
LAYERS_FILE = SERVER / "layers.toml"

Graph = Mapping[str, set[str]]


def load_layers() -> list[dict[str, object]]:
    """The layer table, bottom first."""
    with LAYERS_FILE.open("rb") as handle:
        return list(tomllib.load(handle)["layer"])


def module_names(source: Path = SOURCE) -> dict[str, Path]:
    """Every module of the package by dotted name relative to it (root: ``__init__``)."""
    names: dict[str, Path] = {}
    for path in sorted(source.rglob("*.py")):
        parts = list(path.relative_to(source).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts.pop()
        names[".".join(parts)] = path
    return names


def _is_package(name: str, modules: Mapping[str, Path]) -> bool:
    return modules[name].name == "__init__.py"


def _absolute(name: str) -> str | None:
    """``secinfra_server.x.y`` -> ``x.y``; the root -> ``__init__``; others -> None."""
    if name == PACKAGE:
        return "__init__"
    if name.startswith(PACKAGE + "."):
        return name[len(PACKAGE) + 1 :]
    return None


def _join(base: str, name: str) -> str:
    if base == "__init__":
        return name or base
    return f"{base}.{name}" if name else base


def imports_of(name: str, modules: Mapping[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports, anywhere in its file."""
    tree = ast.parse(modules[name].read_text(encoding="utf-8"), filename=str(modules[name]))
    package = name if _is_package(name, modules) else name.rpartition(".")[0] or "__init__"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _absolute(alias.name)
                if target is not None:
                    found.add(target)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0] or "__init__"
                target: str | None = _join(base, node.module or "")
            else:
                target = _absolute(node.module or "")
            if target is None:
                continue
            if target in modules:
                found.add(target)
            for alias in node.names:
                submodule = _join(target, alias.name)
                if submodule in modules:
                    found.add(submodule)
    found.discard(name)
    return found


def import_graph(source: Path = SOURCE) -> dict[str, set[str]]:
    """Module -> the package's modules it imports."""
    modules = module_names(source)
    return {name: imports_of(name, modules) for name in modules}


def find_cycle(graph: Graph) -> list[str] | None:
    """One import cycle as a path (first node repeated at the end), or None."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(node: str) -> list[str] | None:
        path.append(node)
        on_path.add(node)
        for target in sorted(graph.get(node, ())):
            if target in on_path:
                return [*path[path.index(target) :], target]
            if target not in done:
                cycle = visit(target)
                if cycle is not None:
                    return cycle
        path.pop()
        on_path.discard(node)
        done.add(node)
        return None

    for start in sorted(graph):
        if start not in done:
            cycle = visit(start)
            if cycle is not None:
                return cycle
    return None


def layer_of(layers: Iterable[dict[str, object]]) -> dict[str, tuple[int, str]]:
    """Each table entry (a module or a package prefix) -> (layer index, layer name)."""
    entries: dict[str, tuple[int, str]] = {}
    for index, layer in enumerate(layers):
        modules = layer["modules"]
        assert isinstance(modules, list)
        for entry in modules:
            assert entry not in entries, f"{entry} is listed in two layers"
            entries[str(entry)] = (index, str(layer["name"]))
    return entries


def assign(name: str, entries: Mapping[str, tuple[int, str]]) -> tuple[int, str] | None:
    """The layer of a module: its own entry, or its nearest enclosing package's."""
    probe = name
    while probe:
        if probe in entries:
            return entries[probe]
        probe = probe.rpartition(".")[0]
    return None


# ------------------------------------------------------------------------ the tests


def test_the_finder_reports_a_cycle_and_its_path() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"x": {"y"}, "y": {"y2"}, "y2": {"y"}}) == ["y", "y2", "y"]


def test_the_graph_sees_every_kind_of_import(tmp_path: Path) -> None:
    root = tmp_path / PACKAGE
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "sub" / "__init__.py").write_text("from ._inner import thing\n")
    (root / "sub" / "_inner.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from ..top import Top\n"
        "def late():\n    from .. import other\n"
    )
    (root / "top.py").write_text("import secinfra_server.sub\n")
    (root / "other.py").write_text("")
    graph = import_graph(root)
    assert graph["sub"] == {"sub._inner"}
    assert graph["sub._inner"] == {"top", "other", "__init__"}
    assert graph["top"] == {"sub"}
    assert find_cycle(graph) == ["sub", "sub._inner", "top", "sub"]


def test_there_is_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle in secinfra_server: " + " -> ".join(cycle or [])


def test_every_module_has_one_layer() -> None:
    entries = layer_of(load_layers())
    modules = module_names()
    unassigned = [name for name in modules if assign(name, entries) is None]
    assert not unassigned, f"add these modules to a layer in {LAYERS_FILE.name}: {unassigned}"
    stale = [entry for entry in entries if entry not in modules]
    assert not stale, f"{LAYERS_FILE.name} names modules that do not exist: {stale}"


def test_every_import_points_to_its_own_layer_or_below() -> None:
    entries = layer_of(load_layers())
    upward = []
    for name, targets in sorted(import_graph().items()):
        own = assign(name, entries)
        assert own is not None
        for target in sorted(targets):
            theirs = assign(target, entries)
            assert theirs is not None
            if theirs[0] > own[0]:
                upward.append(f"{name} ({own[1]}) imports {target} ({theirs[1]})")
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


#: Imports of another package's private module that are allowed, and why.
PRIVATE_IMPORTS_ALLOWED = {
    # codegen owns the layout of _gen/; its wire codec's error has no public home.
    ("_http", "_gen._wire"),
}


def private_owner(name: str) -> str | None:
    """The package a module is private to: ``ca._verify`` -> ``ca``; None if public
    (a top-level ``_x`` is private to the root, which every module is inside)."""
    parts = name.split(".")
    for index in range(1, len(parts)):
        if parts[index].startswith("_"):
            return ".".join(parts[:index])
    return None


def test_packages_are_entered_through_their_public_surface() -> None:
    """A package's ``_`` modules are its own: others import what its
    ``__init__`` (or a public submodule) exports."""
    reaching_in = []
    for name, targets in sorted(import_graph().items()):
        for target in sorted(targets):
            owner = private_owner(target)
            if owner is None or name == owner or name.startswith(owner + "."):
                continue
            if (name, target) not in PRIVATE_IMPORTS_ALLOWED:
                reaching_in.append(f"{name} imports {target}")
    assert not reaching_in, "imports of another package's private module:\n" + "\n".join(
        reaching_in
    )


#: Modules that may import an optional dependency at top level inside
#: ``try: ... except ImportError:``, and why. Only third-party imports count.
OPTIONAL_IMPORTS_ALLOWED = {
    "_tracing": "OpenTelemetry is the `otel` extra; the server runs without it",
}


def _optional_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports in a top-level ``try:`` body whose handlers catch ImportError only."""
    found: list[ast.Import | ast.ImportFrom] = []
    for node in tree.body:
        if not isinstance(node, ast.Try) or not node.handlers:
            continue
        if not all(
            isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
            for h in node.handlers
        ):
            continue
        found.extend(n for n in node.body if isinstance(n, ast.Import | ast.ImportFrom))
    return found


def _is_third_party(node: ast.Import | ast.ImportFrom) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.level == 0 and _absolute(node.module or "") is None
    return all(_absolute(alias.name) is None for alias in node.names)


def test_no_import_is_deferred_or_hidden() -> None:
    """Imports sit at the top of each module: none in a function, none under
    ``if TYPE_CHECKING:`` (with no cycle, there is nothing to dodge). The one
    exception is an optional third-party dependency, imported at top level in
    ``try/except ImportError`` by a module of OPTIONAL_IMPORTS_ALLOWED."""
    hidden = []
    for name, path in module_names().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = {id(node) for node in tree.body}
        if name in OPTIONAL_IMPORTS_ALLOWED:
            top |= {id(node) for node in _optional_imports(tree) if _is_third_party(node)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in top:
                hidden.append(f"{name}:{node.lineno}")
    assert not hidden, f"imports below module level: {hidden}"


def test_optional_imports_are_the_listed_ones() -> None:
    """Every OPTIONAL_IMPORTS_ALLOWED module exists and has such an import, so
    the list cannot outlive the reason it gives."""
    modules = module_names()
    for name in OPTIONAL_IMPORTS_ALLOWED:
        assert name in modules, f"{name} is listed but does not exist"
        tree = ast.parse(modules[name].read_text(encoding="utf-8"))
        assert any(_is_third_party(n) for n in _optional_imports(tree)), (
            f"{name} has no optional import; take it off OPTIONAL_IMPORTS_ALLOWED"
        )


def test_every_layer_says_what_it_holds() -> None:
    layers = load_layers()
    names = [layer["name"] for layer in layers]
    assert len(set(names)) == len(names)
    for layer in layers:
        summary = layer.get("summary")
        assert isinstance(summary, str)
        assert summary
        assert "\n" not in summary
