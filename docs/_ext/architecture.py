"""Sphinx extension: the architecture page's pictures, drawn from the code's own data.

``sdk-floor-plan`` draws one SDK as the floor plan table says it is built
(docs/sdk/floor-plan.md, which docs/tests/test_floor_plan.py holds to the four
SDKs): a node per subject of the table, grouped into the contract (``rpc``),
the runtime and identity, with the arrows below. An arrow that names a subject
the table does not have fails the build, and so does a subject without one.

``server-layers`` draws the reference server's layers from the layer table
that the server's import test enforces (``server/layers.toml``): one
band per layer, bottom up, with its modules, so the picture is the rule the
test holds the code to.

Both render through ``sphinx.ext.graphviz`` (Graphviz's ``dot``; the docs
session installs it with scripts/ensure-graphviz.sh).
"""

from __future__ import annotations

import itertools
import re
import tomllib
from pathlib import Path
from typing import Any, Final

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.ext.graphviz import graphviz
from sphinx.util.docutils import SphinxDirective

FLOOR_PLAN: Final = Path(__file__).resolve().parents[1] / "sdk" / "floor-plan.md"

#: How the subjects of one SDK use each other: (from, to, label). "implements"
#: edges are drawn dashed. Names are the table's subjects, plus "generated code".
USES: Final = (
    ("generated code", "rpc: invoker", "calls"),
    ("generated code", "rpc: descriptor", "declares"),
    ("generated code", "rpc: call options", "accepts"),
    ("client", "call", "builds"),
    ("client", "identity: rotating source", "builds"),
    ("call", "rpc: invoker", "implements"),
    ("call", "call: request", ""),
    ("call", "retry", "asks"),
    ("call", "retry budget", "spends"),
    ("call", "endpoints", "picks"),
    ("call", "cache", "looks up"),
    ("call", "single-flight", ""),
    ("call", "transport", "sends"),
    ("call", "call: answer", ""),
    ("call", "observe: dispatch", "notifies"),
    ("observe: dispatch", "observe: observer", "calls"),
    ("call: answer", "errors", "raises"),
    ("transport", "identity: source", "per handshake"),
    ("identity: static source", "identity: source", "implements"),
    ("identity: rotating source", "identity: source", "implements"),
    ("identity: rotating source", "rotation", "when"),
    ("identity: rotating source", "identity: keys and CSR", ""),
    ("identity: rotating source", "identity: trust bundle", "refreshes"),
    ("identity: rotating source", "identity: events", "emits"),
    ("identity: source", "identity: snapshot", "current"),
    ("identity: file sink", "identity: events", "subscribes"),
    ("mtls: configs", "identity: source", "per handshake"),
    ("mtls: configs", "mtls: authorizer", "asks"),
)

GROUPS: Final = (
    ("rpc", "contract (rpc)", "#e8f0fe"),
    ("identity", "identity", "#e6f4ea"),
    ("mtls", "service-to-service mTLS", "#fef7e0"),
    ("observe", "observers (spec 14)", "#fce8e6"),
)
RUNTIME: Final = (
    "retry",
    "retry budget",
    "endpoints",
    "cache",
    "single-flight",
    "rotation",
    "transport",
    "call",
    "call: request",
    "call: answer",
)


def floor_plan_subjects(path: Path = FLOOR_PLAN) -> list[str]:
    """The subjects of the floor plan table, in table order."""
    text = path.read_text(encoding="utf-8")
    body = text.split("<!-- floor-plan:begin -->", 1)[1].split("<!-- floor-plan:end -->", 1)[0]
    rows = [line for line in body.strip().splitlines() if line.startswith("|")]
    return [row.strip("|").split("|")[0].strip() for row in rows[2:]]


def _node_id(name: str) -> str:
    return "n_" + re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def floor_plan_dot(subjects: list[str]) -> str:
    """Graphviz source of one SDK's floor plan."""
    known = {*subjects, "generated code"}
    for source, target, _ in USES:
        for name in (source, target):
            if name not in known:
                raise ExtensionError(f"sdk-floor-plan: arrow names {name!r}, not in the table")
    used = {name for edge in USES for name in edge[:2]}
    for name in subjects:
        if name not in used and name != "testing":
            raise ExtensionError(f"sdk-floor-plan: subject {name!r} has no arrow")
    lines = [
        "digraph floorplan {",
        '  graph [rankdir=TB, fontname="sans-serif", fontsize=11, nodesep=0.3, ranksep=0.45];',
        '  node [shape=box, style="rounded,filled", fillcolor=white, fontname="sans-serif",'
        " fontsize=10];",
        '  edge [fontname="sans-serif", fontsize=8, color="#555555"];',
        f'  {_node_id("generated code")} [label="generated code", fillcolor="#fff4e5"];',
    ]
    placed: set[str] = set()
    for prefix, label, color in GROUPS:
        members = [s for s in subjects if s.startswith(prefix + ":")]
        lines.append(f"  subgraph cluster_{prefix} {{")
        lines.append(f'    label={_quote(label)}; style="rounded,filled"; fillcolor="{color}";')
        for name in members:
            lines.append(f"    {_node_id(name)} [label={_quote(name.split(': ', 1)[1])}];")
            placed.add(name)
        lines.append("  }")
    lines.append("  subgraph cluster_runtime {")
    lines.append('    label="runtime"; style="rounded,filled"; fillcolor="#f3e8fd";')
    for name in subjects:
        if name in RUNTIME:
            lines.append(f"    {_node_id(name)} [label={_quote(name)}];")
            placed.add(name)
    lines.append("  }")
    for name in subjects:
        if name not in placed and name != "testing":
            lines.append(f"  {_node_id(name)} [label={_quote(name)}];")
    for source, target, label in USES:
        style = ', style="dashed"' if label == "implements" else ""
        lines.append(f"  {_node_id(source)} -> {_node_id(target)} [label={_quote(label)}{style}];")
    lines.append("}")
    return "\n".join(lines)


def load_layers(path: Path) -> list[dict[str, Any]]:
    """The server's layers from its layer table (TOML, bottom layer first).

    Each layer is a mapping with ``name``, ``summary`` and ``modules``.
    """
    with path.open("rb") as handle:
        layers = tomllib.load(handle)["layer"]
    for layer in layers:
        if not {"name", "summary", "modules"} <= set(layer) or not layer["modules"]:
            raise ExtensionError(f"server-layers: {path}: a layer needs name, summary, modules")
    return [
        {"name": layer["name"], "summary": layer["summary"], "modules": tuple(layer["modules"])}
        for layer in layers
    ]


MODULES_PER_LINE: Final = 7


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def layers_dot(layers: list[dict[str, Any]]) -> str:
    """Graphviz source: one band per layer, stacked, the top layer drawn first.

    Each band names its layer and lists its modules; an arrow points from each
    layer to the one below it (imports only go down).
    """
    lines = [
        "digraph layers {",
        '  graph [rankdir=TB, fontname="sans-serif", nodesep=0.2, ranksep=0.18];',
        '  node [shape=box, style="rounded,filled", fillcolor="#f1f3f4", fontname="sans-serif",'
        ' fontsize=10, width=7.5, margin="0.15,0.06"];',
        '  edge [color="#888888", arrowsize=0.6];',
    ]
    ids = []
    for index, layer in enumerate(reversed(layers)):
        modules = list(layer["modules"])
        rows = [
            ", ".join(modules[i : i + MODULES_PER_LINE])
            for i in range(0, len(modules), MODULES_PER_LINE)
        ]
        label = f"<b>{_html(layer['name'])}</b>" + "".join(
            f'<br/><font point-size="9">{_html(row)}</font>' for row in rows
        )
        node = f"layer{index}"
        ids.append(node)
        lines.append(f"  {node} [label=<{label}>];")
    for upper, lower in itertools.pairwise(ids):
        lines.append(f"  {upper} -> {lower};")
    lines.append("}")
    return "\n".join(lines)


def _graph(code: str, alt: str) -> graphviz:
    node = graphviz()
    node["code"] = code
    node["options"] = {}
    node["alt"] = alt
    node["align"] = "center"
    return node


class SdkFloorPlan(SphinxDirective):
    """``{sdk-floor-plan}``: the picture of one SDK's subjects and their uses."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        self.env.note_dependency(str(FLOOR_PLAN))
        return [_graph(floor_plan_dot(floor_plan_subjects()), "SDK floor plan")]


class ServerLayers(SphinxDirective):
    """``{server-layers}``: the server's layers as a picture and a table."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        path = Path(self.env.srcdir, self.config.architecture_server_layers).resolve()
        self.env.note_dependency(str(path))
        layers = load_layers(path)
        table = nodes.table()
        group = nodes.tgroup(cols=3)
        table += group
        for width in (18, 40, 42):
            group += nodes.colspec(colwidth=width)
        head = nodes.thead()
        group += head
        head += _row("layer (top first)", "what it holds", "modules")
        body = nodes.tbody()
        group += body
        for layer in reversed(layers):
            body += _row(layer["name"], layer["summary"], ", ".join(layer["modules"]))
        return [_graph(layers_dot(layers), "server layers"), table]


def _row(*cells: str) -> nodes.row:
    row = nodes.row()
    for text in cells:
        entry = nodes.entry()
        entry += nodes.paragraph(text=text)
        row += entry
    return row


def setup(app: Sphinx) -> dict[str, Any]:
    app.setup_extension("sphinx.ext.graphviz")
    app.add_config_value("architecture_server_layers", "../server/layers.toml", "env")
    app.add_directive("sdk-floor-plan", SdkFloorPlan)
    app.add_directive("server-layers", ServerLayers)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
