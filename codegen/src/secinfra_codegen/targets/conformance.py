"""Conformance target: the adapter protocol's types beside each conformance client.

Input: ``conformance/protocol/secinfra/conformance/v1/*.proto`` (the adapter
protocol between the conformance runner and an SDK's conformance client,
docs/conformance/adapter-protocol.md), loaded into its own `model.Api`.

Output, one exclusive folder per language, rendered with that language's SDK
model templates (``models.*.j2``, ``message.java.j2``) so the protocol's
JSON follows exactly the rules of the SDKs' own models:

- Python: ``sdk-python/conformance/_gen/`` (``__init__``, ``_wire`` and one
  module per proto file), imported by ``client.py`` as the package ``_gen``.
- Go: ``sdk-go/cmd/secinfra-conformance/protocol/`` (package ``protocol``).
- Java: ``sdk-java/conformance/src/dev/secinfra/conformance/gen/`` (package
  ``dev.secinfra.conformance.gen``); the generated records use the SDK's
  ``Wire`` helpers, as the SDK's own models do.
- Ruby: ``sdk-ruby/conformance/gen/`` (module ``Secinfra::ConformanceV1``); the
  classes are ``Secinfra::Runtime::Message`` subclasses like the SDK's models.

The protocol has no services, so no client code is generated.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import model as m
from ..errors import CodegenError
from ..render import format_files, render
from . import HEADER, Output, go, java, python, ruby

PROTOCOL_DIR = "conformance/protocol"
"""The include root of the protocol's proto files, relative to the repo root."""
PROTOCOL_GLOB = "secinfra/conformance/v1/*.proto"

GO_PACKAGE = "protocol"
JAVA_PACKAGE = "dev.secinfra.conformance.gen"


@dataclass(frozen=True)
class ConformanceLayout:
    """Where each language's generated protocol types go, relative to the root."""

    python: str = "sdk-python/conformance/_gen"
    go: str = "sdk-go/cmd/secinfra-conformance/protocol"
    java: str = "sdk-java/conformance/src/dev/secinfra/conformance/gen"
    ruby: str = "sdk-ruby/conformance/gen"


def generate(protocol: m.Api, layout: ConformanceLayout) -> list[Output]:
    """Every language's protocol types (Python output still to be formatted)."""
    if protocol.services:
        raise CodegenError("the conformance protocol is messages only: it declares no services")
    return [
        _python(protocol, layout),
        _go(protocol, layout),
        _java(protocol, layout),
        _ruby(protocol, layout),
    ]


def _sources(protocol: m.Api) -> str:
    return ", ".join(f"{PROTOCOL_DIR}/{f.path}" for f in protocol.files)


def _python(protocol: m.Api, layout: ConformanceLayout) -> Output:
    package = "the conformance clients"
    files = {
        "__init__.py": render(
            "python/__init__.py.j2",
            header=f"# {HEADER}",
            doc=python.docstring(
                "The conformance adapter protocol's messages, for the Python conformance"
                " client.\n\n"
                f"Do not edit: change {_sources(protocol)} and run ``python -m secinfra_codegen``."
            ),
        ),
        "_wire.py": render("python/_wire.py.j2", header=f"# {HEADER}", package=package),
    }
    for file in protocol.files:
        files[f"{python.module_name(file)}.py"] = python._models(protocol, file, package)
    return Output(layout.python, files, exclusive=True, formatter="python")


def _go(protocol: m.Api, layout: ConformanceLayout) -> Output:
    files = {
        "doc.go": render(
            "conformance/doc.go.j2",
            header=f"// {HEADER}",
            package=GO_PACKAGE,
            sources=[f"{PROTOCOL_DIR}/{f.path}" for f in protocol.files],
        )
    }
    for file in protocol.files:
        files[f"{file.stem}.go"] = go._models(protocol, file, GO_PACKAGE)
    return Output(layout.go, format_files(files, [go.find_gofmt(), "-w"], "gofmt"), exclusive=True)


def _java(protocol: m.Api, layout: ConformanceLayout) -> Output:
    java._check_names(protocol)
    files = {
        "package-info.java": render(
            "conformance/package-info.java.j2",
            header=f"// {HEADER}",
            package=JAVA_PACKAGE,
            sources=_sources(protocol),
        )
    }
    for enum in protocol.enums:
        files[f"{java.class_name(enum.qualified_name)}.java"] = java._enum(enum, JAVA_PACKAGE)
    for msg in protocol.messages:
        files[f"{java.class_name(msg.qualified_name)}.java"] = java._message(
            protocol, msg, JAVA_PACKAGE
        )
    return Output(layout.java, files, exclusive=True)


def _ruby(protocol: m.Api, layout: ConformanceLayout) -> Output:
    files = {"all.rb": ruby._all(protocol)}
    for file in protocol.files:
        files[f"{file.stem}.rb"] = ruby._models(protocol, file)
    return Output(layout.ruby, files, exclusive=True)
