"""Sphinx extension: the server's configuration and metrics, read from its code.

The settings, their types and defaults come from ``secinfra_server.config``
(the ``ServerConfig`` and ``JwtAttestationConfig`` dataclasses), the
environment variable names from its ``ENV_PREFIX``, and the flags from the
``serve`` command's own argument parser, so the table cannot drift from the
server. Only each setting's meaning is written by hand, as the directive's
content, one entry per setting (continuation lines indented)::

    ```{server-settings}
    data_dir: The data directory.
    host: Address to listen on.
      Use an IP address or `localhost`.
    jwt.issuer: Expected `iss`.
    ```

A setting of the code without an entry, or an entry for a setting the code
does not have, fails the build.

``server-metrics`` does the same for the Prometheus metrics: names, types,
labels and help texts come from the registry of ``secinfra_server._metrics``;
the content adds what each one means to an operator, one entry per metric
(by the name the code registers, e.g. ``secinfra_requests``).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

#: ServerConfig fields that are not settings of their own (tables).
NOT_SETTINGS: Final = frozenset({"jwt", "jwt_issuers", "login", "extra"})
ENTRY: Final = re.compile(r"^(?P<name>[a-z_]+(?:\.[a-z_]+)?):\s*(?P<text>.*)$")


@dataclass(frozen=True)
class Setting:
    """One setting as the reference shows it."""

    name: str
    """``leaf_ttl_seconds``, or ``jwt.issuer`` for the ``[jwt]`` table."""
    env: str
    flags: tuple[str, ...]
    type: str
    default: str


def _type_text(kind: Any) -> str:
    text = str(kind)
    if "tuple" in text:
        return "list of strings"
    if "Path" in text:
        return "path"
    return {"int": "integer", "float": "number", "bool": "boolean", "str": "string"}.get(text, text)


def _default_text(field: dataclasses.Field[Any]) -> str:
    if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
        return "required"
    value = field.default
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, tuple):
        return "`[" + ", ".join(f'"{item}"' for item in value) + "]`"
    return f"`{value}`"


def serve_flags() -> dict[str, tuple[str, ...]]:
    """Option strings of ``secinfra-server serve`` by destination (setting name)."""
    from secinfra_server import cli

    parser = cli._parser()  # the real parser: flags shown are flags that work
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            serve = action.choices["serve"]
            return {a.dest: tuple(a.option_strings) for a in serve._actions if a.option_strings}
    raise RuntimeError("secinfra-server has no serve command")


def settings() -> list[Setting]:
    """Every setting of the server, in the order the code declares them."""
    from secinfra_server import config

    flags = serve_flags()
    found: list[Setting] = []
    for field in dataclasses.fields(config.ServerConfig):
        if field.name in NOT_SETTINGS:
            continue
        found.append(
            Setting(
                name=field.name,
                env=config.ENV_PREFIX + field.name.upper(),
                flags=flags.get(field.name, ()),
                type=_type_text(field.type),
                default=_default_text(field),
            )
        )
    for field in dataclasses.fields(config.JwtAttestationConfig):
        if field.name == "rules":  # [[jwt_issuers.rules]] only, described in the text
            continue
        found.append(
            Setting(
                name=f"jwt.{field.name}",
                env=f"{config.ENV_PREFIX}JWT_{field.name.upper()}",
                flags=(),
                type=_type_text(field.type),
                default=_default_text(field),
            )
        )
    for field in dataclasses.fields(config.LoginConfig):
        found.append(
            Setting(
                name=f"login.{field.name}",
                env="",  # the [login] table is in the TOML file only
                flags=(),
                type="table" if field.name == "groups" else _type_text(field.type),
                default="(none)" if field.name == "groups" else _default_text(field),
            )
        )
    return found


def parse_meanings(lines: Sequence[str]) -> dict[str, str]:
    """``name: text`` entries with indented continuation lines."""
    meanings: dict[str, str] = {}
    current: str | None = None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        match = ENTRY.match(line)
        if match and not line[0].isspace():
            current = match["name"]
            if current in meanings:
                raise ValueError(f"line {number}: {current} described twice")
            meanings[current] = match["text"].strip()
        elif current is not None and line[0].isspace():
            meanings[current] += " " + line.strip()
        else:
            raise ValueError(f"line {number}: expected 'setting: meaning', got {line!r}")
    return meanings


class ServerSettings(SphinxDirective):
    """``server-settings``: the configuration table, from the server's code."""

    has_content: ClassVar[bool] = True

    def run(self) -> list[nodes.Node]:
        try:
            meanings = parse_meanings(list(self.content))
            known = settings()
        except (ValueError, RuntimeError) as exc:
            raise self.error(f"server-settings: {exc}") from exc
        names = [s.name for s in known]
        missing = [n for n in names if n not in meanings]
        unknown = sorted(set(meanings) - set(names))
        if missing or unknown:
            raise self.error(
                "server-settings: the descriptions do not match the server's settings:"
                f" undescribed {missing}, not settings {unknown}"
            )
        lines = [
            "| setting | environment | flag | type | default | meaning |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for s in known:
            flag = ", ".join(f"`{f}`" for f in s.flags) if s.flags else "(none)"
            env = f"`{s.env}`" if s.env else "(none)"
            lines.append(
                f"| `{s.name}` | {env} | {flag} | {s.type} | {s.default} |"
                f" {meanings[s.name].replace('|', chr(92) + '|')} |"
            )
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source=self.get_source_info()[0]), 0, container)
        return container.children


@dataclass(frozen=True)
class Metric:
    """One metric family as the server registers it."""

    name: str
    exposed: str
    type: str
    labels: tuple[str, ...]
    help: str


def metrics() -> list[Metric]:
    """Every metric of a fresh server registry, in registration order."""
    from secinfra_server._metrics import Metrics

    registry = Metrics().registry
    labels: dict[str, tuple[str, ...]] = {}
    for collector in registry._collector_to_names:  # label names are not in collect()
        labels[getattr(collector, "_name", "")] = tuple(getattr(collector, "_labelnames", ()))
    found: list[Metric] = []
    for family in registry.collect():
        exposed = {
            "counter": f"{family.name}_total",
            "histogram": f"{family.name}_bucket, _sum, _count",
        }.get(family.type, family.name)
        found.append(
            Metric(
                family.name, exposed, family.type, labels.get(family.name, ()), family.documentation
            )
        )
    return found


class ServerMetrics(SphinxDirective):
    """``server-metrics``: the metrics table, from the server's registry."""

    has_content: ClassVar[bool] = True

    def run(self) -> list[nodes.Node]:
        try:
            meanings = parse_meanings(list(self.content))
            known = metrics()
        except (ValueError, RuntimeError, ImportError) as exc:
            raise self.error(f"server-metrics: {exc}") from exc
        names = [m.name for m in known]
        missing = [n for n in names if n not in meanings]
        unknown = sorted(set(meanings) - set(names))
        if missing or unknown:
            raise self.error(
                "server-metrics: the descriptions do not match the server's metrics:"
                f" undescribed {missing}, not metrics {unknown}"
            )
        lines = [
            "| metric | type | labels | help (from the code) | meaning |",
            "| --- | --- | --- | --- | --- |",
        ]
        for m in known:
            label_text = ", ".join(f"`{label}`" for label in m.labels) or "(none)"
            lines.append(
                f"| `{m.exposed}` | {m.type} | {label_text} | {m.help} |"
                f" {meanings[m.name].replace('|', chr(92) + '|')} |"
            )
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source=self.get_source_info()[0]), 0, container)
        return container.children


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("server-settings", ServerSettings)
    app.add_directive("server-metrics", ServerMetrics)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
