"""Sphinx extension: render the operations of the generated OpenAPI document.

``docs/api/openapi.json`` is written by codegen from the proto definitions. The
directive below reads it at build time and renders one table per service (the
document's tags), so the API page cannot drift from the API::

    ```{openapi-operations}
    ```

The optional argument is the document's path relative to the docs folder; by
default the ``openapi_document`` config value. Each row shows the HTTP method,
path template, operationId, summary, idempotency class
(``x-secinfra-idempotency``), cache behaviour (``x-secinfra-cache`` and
``x-secinfra-invalidates``) and who may call it (``security`` and
``x-secinfra-admin``). A document without operations, or an operation without
an operationId, summary or a known idempotency class, fails the build.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

HTTP_METHODS: Final = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
IDEMPOTENCY_CLASSES: Final = frozenset({"read_only", "idempotent", "non_idempotent"})
COLUMNS: Final = (
    ("Method", 7),
    ("Path", 22),
    ("Operation", 22),
    ("Summary", 37),
    ("Idempotency", 12),
    ("Cache", 14),
    ("Caller", 10),
)


@dataclass(frozen=True)
class Operation:
    """One operation of the document, as the table shows it."""

    method: str
    path: str
    operation_id: str
    summary: str
    tag: str
    idempotency: str
    cache: str
    caller: str


class OpenApiError(ValueError):
    """The document is not what the API page can render."""


def load_operations(document: Mapping[str, Any]) -> list[Operation]:
    """Every operation of an OpenAPI document, in document order."""
    operations: list[Operation] = []
    for path, item in document.get("paths", {}).items():
        for method in HTTP_METHODS:
            if method in item:
                operations.append(_operation(method, path, item[method]))
    if not operations:
        raise OpenApiError("the document has no operations")
    return operations


def _operation(method: str, path: str, spec: Mapping[str, Any]) -> Operation:
    where = f"{method.upper()} {path}"
    operation_id = spec.get("operationId")
    summary = spec.get("summary")
    idempotency = spec.get("x-secinfra-idempotency")
    if not operation_id:
        raise OpenApiError(f"{where}: no operationId")
    if not summary:
        raise OpenApiError(f"{where} ({operation_id}): no summary")
    if idempotency not in IDEMPOTENCY_CLASSES:
        raise OpenApiError(
            f"{where} ({operation_id}): x-secinfra-idempotency is {idempotency!r},"
            f" not one of {', '.join(sorted(IDEMPOTENCY_CLASSES))}"
        )
    tags = spec.get("tags") or ["(untagged)"]
    return Operation(
        method=method.upper(),
        path=path,
        operation_id=operation_id,
        summary=summary,
        tag=tags[0],
        idempotency=idempotency,
        cache=_cache_text(spec),
        caller=_caller_text(spec),
    )


def _cache_text(spec: Mapping[str, Any]) -> str:
    cache = spec.get("x-secinfra-cache") or {}
    invalidates = spec.get("x-secinfra-invalidates") or {}
    if cache.get("cacheable"):
        return "cached: " + _resource_text(cache)
    if invalidates:
        return "invalidates: " + _resource_text(invalidates)
    return "-"


def _resource_text(policy: Mapping[str, Any]) -> str:
    resource = str(policy.get("resource") or "?")
    key_field = policy.get("key_field")
    return f"{resource} by {key_field}" if key_field else resource


def _caller_text(spec: Mapping[str, Any]) -> str:
    needs_mtls = any("mutualTLS" in requirement for requirement in spec.get("security", []))
    if spec.get("x-secinfra-admin"):
        return "admin"
    return "workload" if needs_mtls else "anyone"


def group_by_tag(
    document: Mapping[str, Any], operations: Sequence[Operation]
) -> list[tuple[str, str, list[Operation]]]:
    """(tag, description, operations) in the document's tag order."""
    described = {tag["name"]: tag.get("description", "") for tag in document.get("tags", [])}
    order = list(described)
    order += sorted({op.tag for op in operations} - set(order))
    groups = [
        (tag, described.get(tag, ""), [op for op in operations if op.tag == tag]) for tag in order
    ]
    return [group for group in groups if group[2]]


class OpenApiOperations(SphinxDirective):
    """``openapi-operations``: tables of every operation in the OpenAPI document."""

    optional_arguments: ClassVar[int] = 1
    has_content: ClassVar[bool] = False

    def run(self) -> list[nodes.Node]:
        relative = self.arguments[0] if self.arguments else self.config.openapi_document
        path = Path(self.env.srcdir) / relative
        self.env.note_dependency(str(path))
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            operations = load_operations(document)
        except (OSError, ValueError) as exc:
            raise self.error(f"openapi-operations: {relative}: {exc}") from exc
        groups = group_by_tag(document, operations)
        intro = nodes.paragraph(
            text=(
                f"{len(operations)} operations in {len(groups)} services, read from"
                f" {relative} (API version {document.get('info', {}).get('version', '?')})."
            )
        )
        result: list[nodes.Node] = [intro]
        for tag, description, members in groups:
            result.append(nodes.rubric(text=tag, ids=[nodes.make_id(f"openapi-{tag}")]))
            if description:
                result.append(nodes.paragraph(text=description))
            result.append(_table(members))
        return result


def _table(operations: Sequence[Operation]) -> nodes.table:
    table = nodes.table(classes=["secinfra-operations"])
    group = nodes.tgroup(cols=len(COLUMNS))
    table += group
    for _, width in COLUMNS:
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    head += _row([nodes.paragraph(text=title) for title, _ in COLUMNS])
    group += head
    body = nodes.tbody()
    for op in operations:
        body += _row(
            [
                nodes.paragraph("", "", nodes.literal(text=op.method)),
                nodes.paragraph("", "", nodes.literal(text=op.path)),
                nodes.paragraph("", "", nodes.literal(text=op.operation_id)),
                nodes.paragraph(text=op.summary),
                nodes.paragraph(text=op.idempotency),
                nodes.paragraph(text=op.cache),
                nodes.paragraph(text=op.caller),
            ]
        )
    group += body
    return table


def _row(cells: Sequence[nodes.Node]) -> nodes.row:
    row = nodes.row()
    for cell in cells:
        entry = nodes.entry()
        entry += cell
        row += entry
    return row


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("openapi_document", "api/openapi.json", "env", types=[str])
    app.add_directive("openapi-operations", OpenApiOperations)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
