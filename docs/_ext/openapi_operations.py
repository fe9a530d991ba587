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

``openapi-rpcs`` renders every operation in full: description, HTTP binding,
idempotency, cache policy, caller, the method's name in each of the four SDKs
(computed by :func:`sdk_methods` from the operationId, and checked against the
installed Python SDK), request fields (path, query, body), response fields and
the error codes that follow from how the RPC is called, and the RPC's worked
example (``x-secinfra-example``, see :mod:`api_examples`): the request in
JSON, the same request as a curl call, and the response. ``openapi-schemas``
renders every message and enum (request messages excepted), and the type
names in the field tables link to them.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final

import api_examples
from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

HTTP_METHODS: Final = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
IDEMPOTENCY_CLASSES: Final = frozenset({"read_only", "idempotent", "non_idempotent"})
# Three columns, so the table fits the page (furo's content column) without a
# horizontal scroll: the call (method, path, operation id), what it does, and
# how it behaves (idempotency, cache, caller) as three short lines.
COLUMNS: Final = (
    ("Call", 34),
    ("Summary", 40),
    ("Behaviour", 26),
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
        call = nodes.container()
        call += nodes.paragraph(
            "", "", nodes.literal(text=op.method), nodes.Text(" "), nodes.literal(text=op.path)
        )
        call += nodes.paragraph("", "", nodes.strong(text=op.operation_id))
        behaviour = nodes.container()
        for label, value in (
            ("idempotency", op.idempotency),
            ("cache", op.cache),
            ("caller", op.caller),
        ):
            behaviour += nodes.paragraph(
                "", "", nodes.emphasis(text=label), nodes.Text(f": {value}")
            )
        body += _row([call, nodes.paragraph(text=op.summary), behaviour])
    group += body
    return table


def _row(cells: Sequence[nodes.Node]) -> nodes.row:
    row = nodes.row()
    for cell in cells:
        entry = nodes.entry()
        entry += cell
        row += entry
    return row


# -- per-RPC reference ---------------------------------------------------------------------

SERVICE_SUFFIX: Final = "Service"
#: The four SDKs' spelling of ``client.<service>.<method>`` (DESIGN.md, STYLE.md).
SDK_LANGUAGES: Final = ("Python", "Go", "Java", "Ruby")
SCHEMA_PREFIX: Final = "#/components/schemas/"


def snake_case(name: str) -> str:
    """``GetCaStatus`` -> ``get_ca_status`` (RPC names are PascalCase words)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def sdk_methods(operation_id: str) -> dict[str, str]:
    """The method each SDK exposes for an operation, from its operationId.

    ``SecretsService_GetSecret`` -> Python ``client.secrets.get_secret``, Go
    ``client.Secrets.GetSecret``, Java ``client.secrets().getSecret``, Ruby
    ``client.secrets.get_secret``.
    """
    service, sep, rpc = operation_id.partition("_")
    if not sep or not service.endswith(SERVICE_SUFFIX) or not rpc[:1].isupper():
        raise OpenApiError(f"operationId {operation_id!r} is not <Name>Service_<Rpc>")
    accessor = service.removesuffix(SERVICE_SUFFIX)
    lower = accessor[:1].lower() + accessor[1:]
    return {
        "Python": f"client.{snake_case(accessor)}.{snake_case(rpc)}",
        "Go": f"client.{accessor}.{rpc}",
        "Java": f"client.{lower}().{rpc[:1].lower()}{rpc[1:]}",
        "Ruby": f"client.{snake_case(accessor)}.{snake_case(rpc)}",
    }


def check_python_sdk(operations: Sequence[Operation]) -> list[str]:
    """Computed Python names that the installed ``secinfra`` SDK lacks.

    The Python SDK is installed for autodoc anyway, so the build verifies the
    naming rule against it instead of trusting it: ``client.<service>`` is the
    generated ``secinfra._gen.<service>_client.<Service>Client`` (see
    ``secinfra/_client.py``), and the method must be one of its attributes.
    """
    problems: list[str] = []
    for op in operations:
        _, service, method = sdk_methods(op.operation_id)["Python"].split(".")
        accessor = op.operation_id.partition("_")[0].removesuffix(SERVICE_SUFFIX)
        try:
            module = importlib.import_module(f"secinfra._gen.{service}_client")
            owner = getattr(module, f"{accessor}Client")
        except (ImportError, AttributeError):
            problems.append(f"{op.operation_id}: secinfra has no client class for {service}")
            continue
        if not callable(getattr(owner, method, None)):
            problems.append(f"{op.operation_id}: secinfra has no client.{service}.{method}")
    return problems


def resolve(document: Mapping[str, Any], schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow one ``$ref`` into ``components.schemas``."""
    ref = schema.get("$ref")
    if not ref:
        return schema
    if not str(ref).startswith(SCHEMA_PREFIX):
        raise OpenApiError(f"unsupported $ref {ref!r}")
    name = str(ref)[len(SCHEMA_PREFIX) :]
    try:
        found: Mapping[str, Any] = document["components"]["schemas"][name]
    except KeyError:
        raise OpenApiError(f"$ref {ref!r} names no schema") from None
    return found


def type_text(schema: Mapping[str, Any]) -> str:
    """A short type for a property schema: ``string (int64)``, ``list of TupleKey``."""
    ref = schema.get("$ref")
    if ref:
        return str(ref).rsplit(".", 1)[-1]
    kind = schema.get("type", "object")
    if kind == "array":
        return "list of " + type_text(schema.get("items") or {})
    if kind == "object" and "additionalProperties" in schema:
        extra = schema["additionalProperties"]
        if isinstance(extra, Mapping) and extra:
            return "map of string to " + type_text(extra)
        return "object"
    fmt = schema.get("format")
    if fmt == "byte":
        return "bytes (base64)"
    if fmt == "date-time":
        return "timestamp (RFC 3339)"
    return f"{kind} ({fmt})" if fmt else str(kind)


@dataclass(frozen=True)
class Field:
    """One request or response field as the reference lists it."""

    name: str
    where: str
    type: str
    description: str
    ref: str = ""
    """The message or enum the type names (linked to its entry), if any."""


def referenced(schema: Mapping[str, Any]) -> str:
    """The short name of the schema a property refers to, through lists and maps."""
    for candidate in (schema, schema.get("items") or {}, schema.get("additionalProperties")):
        if isinstance(candidate, Mapping) and candidate.get("$ref"):
            return str(candidate["$ref"]).rsplit(".", 1)[-1]
    return ""


def request_fields(document: Mapping[str, Any], spec: Mapping[str, Any]) -> list[Field]:
    """Path and query parameters, then body properties, in document order."""
    fields = [
        Field(
            name=param["name"],
            where=param["in"],
            type=type_text(param.get("schema") or {}),
            description=param.get("description", ""),
            ref=referenced(param.get("schema") or {}),
        )
        for param in spec.get("parameters", [])
    ]
    body = spec.get("requestBody", {}).get("content", {}).get("application/json", {})
    if body:
        schema = resolve(document, body.get("schema") or {})
        for name, prop in schema.get("properties", {}).items():
            fields.append(
                Field(name, "body", type_text(prop), prop.get("description", ""), referenced(prop))
            )
    return fields


def response_fields(
    document: Mapping[str, Any], spec: Mapping[str, Any]
) -> tuple[str, list[Field]]:
    """The 2xx response's message name and its fields."""
    for status, response in spec.get("responses", {}).items():
        if not str(status).startswith("2"):
            continue
        content = response.get("content", {}).get("application/json")
        if not content:
            return "(no body)", []
        raw = content.get("schema") or {}
        schema = resolve(document, raw)
        name = type_text(raw) if "$ref" in raw else "object"
        return name, object_fields(schema)
    raise OpenApiError(f"{spec.get('operationId')}: no 2xx response")


def object_fields(schema: Mapping[str, Any]) -> list[Field]:
    """The properties of an object schema, in document order."""
    return [
        Field(name, "", type_text(prop), prop.get("description", ""), referenced(prop))
        for name, prop in schema.get("properties", {}).items()
    ]


def error_codes(spec: Mapping[str, Any], op: Operation) -> list[tuple[str, str]]:
    """The error codes that follow from how an operation is called, derived from
    its declared properties (auth, admin, idempotency, body). The API definition
    does not declare RPC-specific codes (``not_found``, ``failed_precondition``),
    so they are not listed here."""
    has_input = bool(spec.get("parameters") or spec.get("requestBody"))
    codes: list[tuple[str, str]] = []
    if has_input:
        codes.append(("invalid_argument", "a malformed or invalid field (details.field)"))
    if op.caller != "anyone":
        codes.append(("unauthenticated", "no valid client certificate on this request"))
    if op.caller == "admin":
        codes.append(("permission_denied", "the caller lacks admin on system:root"))
    elif op.caller == "workload":
        codes.append(
            (
                "permission_denied",
                "if the server's access policy does not grant this call (secret reads and"
                " writes are checked against the authorization model)",
            )
        )
    if "requestBody" in spec:
        codes.append(("payload_too_large", "body over the server's max_body_bytes"))
    if op.idempotency != "read_only":
        codes.append(("conflict", "a call with the same Idempotency-Key is still running"))
        codes.append(
            ("idempotency_key_reused", "the Idempotency-Key was used with another request")
        )
    codes.append(("unavailable", "the server is shedding load (Retry-After: 1)"))
    codes.append(("internal", "a server fault; the message carries only the request id"))
    return codes


_INLINE_CODE: Final = re.compile(r"`([^`]+)`")


def _inline(text: str) -> list[nodes.Node]:
    """Text with `code` spans as literals; line breaks inside a paragraph joined."""
    out: list[nodes.Node] = []
    parts = _INLINE_CODE.split(" ".join(text.split("\n")))
    for index, part in enumerate(parts):
        if index % 2:
            out.append(nodes.literal(text=part))
        elif part:
            out.append(nodes.Text(part))
    return out


def _paragraphs(text: str) -> list[nodes.Node]:
    """Blank-line separated paragraphs; a chunk of ``- `` lines becomes a list."""
    out: list[nodes.Node] = []
    for chunk in text.split("\n\n"):
        if not chunk.strip():
            continue
        lines = chunk.strip().split("\n")
        if lines[0].startswith("- "):
            items: list[str] = []
            for line in lines:
                if line.startswith("- "):
                    items.append(line[2:])
                elif items:
                    items[-1] += " " + line.strip()
            bullets = nodes.bullet_list()
            for item_text in items:
                item = nodes.list_item()
                item += nodes.paragraph("", "", *_inline(item_text))
                bullets += item
            out.append(bullets)
        else:
            out.append(nodes.paragraph("", "", *_inline(chunk)))
    return out


def schema_anchor(short_name: str) -> str:
    return nodes.make_id(f"schema-{short_name}")


def _type_cell(f: Field) -> nodes.paragraph:
    if not f.ref or f.ref not in f.type:
        return nodes.paragraph(text=f.type)
    before, name, after = f.type.rpartition(f.ref)
    para = nodes.paragraph()
    if before:
        para += nodes.Text(before)
    para += nodes.reference("", name, refid=schema_anchor(f.ref), internal=True)
    if after:
        para += nodes.Text(after)
    return para


def _field_table(fields: Sequence[Field], *, with_where: bool) -> nodes.table:
    titles = ["Field", *(["In"] if with_where else []), "Type", "Description"]
    widths = [18, *([6] if with_where else []), 18, 58]
    table = nodes.table(classes=["secinfra-fields"])
    group = nodes.tgroup(cols=len(titles))
    table += group
    for width in widths:
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    head += _row([nodes.paragraph(text=title) for title in titles])
    group += head
    body = nodes.tbody()
    for f in fields:
        cells: list[nodes.Node] = [nodes.paragraph("", "", nodes.literal(text=f.name))]
        if with_where:
            cells.append(nodes.paragraph(text=f.where))
        cells.append(_type_cell(f))
        description = nodes.container()
        description += _paragraphs(f.description) or [nodes.paragraph(text="")]
        cells.append(description)
        body += _row(cells)
    group += body
    return table


def _definition(term: str, *content: nodes.Node) -> nodes.definition_list_item:
    item = nodes.definition_list_item()
    item += nodes.term(text=term)
    definition = nodes.definition()
    for node in content:
        definition += node
    item += definition
    return item


class OpenApiRpcs(SphinxDirective):
    """``openapi-rpcs``: one entry per operation with its HTTP binding, request
    and response fields, error codes, idempotency, cache policy and the
    method's name in each SDK."""

    optional_arguments: ClassVar[int] = 1
    has_content: ClassVar[bool] = False

    def run(self) -> list[nodes.Node]:
        relative = self.arguments[0] if self.arguments else self.config.openapi_document
        path = Path(self.env.srcdir) / relative
        self.env.note_dependency(str(path))
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            operations = load_operations(document)
            specs = _specs(document)
            problems = check_python_sdk(operations)
            if problems:
                raise OpenApiError("; ".join(problems))
            result: list[nodes.Node] = []
            for tag, description, members in group_by_tag(document, operations):
                result.append(nodes.rubric(text=tag, ids=[nodes.make_id(f"rpcs-{tag}")]))
                if description:
                    result.append(nodes.paragraph(text=description))
                for op in members:
                    result += self._operation(document, specs[op.operation_id], op)
        except (OSError, ValueError) as exc:
            raise self.error(f"openapi-rpcs: {relative}: {exc}") from exc
        return result

    def _operation(
        self, document: Mapping[str, Any], spec: Mapping[str, Any], op: Operation
    ) -> list[nodes.Node]:
        rpc = op.operation_id.partition("_")[2]
        anchor = nodes.make_id(f"rpc-{op.operation_id}")
        title = nodes.rubric(
            "", "", nodes.literal(text=rpc), ids=[anchor], classes=["secinfra-rpc"]
        )
        out: list[nodes.Node] = [title, *_paragraphs(spec.get("description") or op.summary)]
        facts = nodes.definition_list(classes=["secinfra-rpc-facts"])
        facts += _definition(
            "HTTP", nodes.paragraph("", "", nodes.literal(text=f"{op.method} {op.path}"))
        )
        facts += _definition("Idempotency", nodes.paragraph(text=op.idempotency))
        facts += _definition("Cache", nodes.paragraph(text=op.cache))
        facts += _definition("Caller", nodes.paragraph(text=op.caller))
        methods = nodes.bullet_list()
        for language, name in sdk_methods(op.operation_id).items():
            item = nodes.list_item()
            item += nodes.paragraph("", f"{language}: ", nodes.literal(text=name))
            methods += item
        facts += _definition("SDK methods", methods)
        out.append(facts)
        fields = request_fields(document, spec)
        out.append(nodes.paragraph("", "", nodes.strong(text="Request")))
        out.append(
            _field_table(fields, with_where=True) if fields else nodes.paragraph(text="No fields.")
        )
        name, returned = response_fields(document, spec)
        out.append(
            nodes.paragraph(
                "",
                "",
                nodes.strong(text="Response"),
                nodes.Text(" "),
                nodes.reference(
                    "", "", nodes.literal(text=name), refid=schema_anchor(name), internal=True
                )
                if name in _short_schema_names(document)
                else nodes.literal(text=name),
            )
        )
        out.append(
            _field_table(returned, with_where=False)
            if returned
            else nodes.paragraph(text="No fields.")
        )
        errors = nodes.bullet_list()
        for code, when in error_codes(spec, op):
            item = nodes.list_item()
            item += nodes.paragraph("", "", nodes.literal(text=code), nodes.Text(f": {when}"))
            errors += item
        out.append(nodes.paragraph("", "", nodes.strong(text="Errors")))
        out.append(errors)
        out += example_nodes(spec, op)
        return out


def _json_block(value: Any) -> nodes.literal_block:
    text = json.dumps(value, indent=2, ensure_ascii=False)
    return nodes.literal_block(text, text, language="json")


def example_nodes(spec: Mapping[str, Any], op: Operation) -> list[nodes.Node]:
    """The operation's worked example: request JSON, curl call, response JSON,
    and what its placeholders and abbreviations stand for."""
    example = spec.get(api_examples.EXTENSION)
    if example is None:
        return []
    request, response = example["request"], example["response"]
    http = api_examples.http_request(op.method, op.path, spec, request)
    command = api_examples.curl(http, mtls=bool(spec.get("security")), idempotency=op.idempotency)
    out: list[nodes.Node] = [
        nodes.paragraph("", "", nodes.strong(text="Example")),
        nodes.paragraph(text="Request:"),
        _json_block(request),
        nodes.paragraph(text="With curl:"),
        nodes.literal_block(command, command, language="shell"),
        nodes.paragraph(text="Response:"),
        _json_block(response),
    ]
    notes = nodes.bullet_list()
    for name in api_examples.placeholders([request, response]):
        item = nodes.list_item()
        item += nodes.paragraph(
            "",
            "",
            nodes.literal(text="${" + name + "}"),
            nodes.Text(": "),
            nodes.Text(api_examples.explain(name)),
        )
        notes += item
    if any(text.endswith(api_examples.ELLIPSIS) for text in api_examples.strings(response)):
        item = nodes.list_item()
        item += nodes.paragraph(
            "",
            "",
            nodes.Text("A value ending in "),
            nodes.literal(text=api_examples.ELLIPSIS),
            nodes.Text(" is shortened here."),
        )
        notes += item
    if len(notes):
        out.append(notes)
    return out


def _specs(document: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {
        spec["operationId"]: spec
        for item in document.get("paths", {}).values()
        for method, spec in item.items()
        if method in HTTP_METHODS
    }


def _short_schema_names(document: Mapping[str, Any]) -> set[str]:
    return {name.rsplit(".", 1)[-1] for name in document.get("components", {}).get("schemas", {})}


REQUEST_SUFFIX: Final = "Request"


class OpenApiSchemas(SphinxDirective):
    """``openapi-schemas``: every message and enum of the document, except the
    request messages (their fields are listed with their RPC)."""

    optional_arguments: ClassVar[int] = 1
    has_content: ClassVar[bool] = False

    def run(self) -> list[nodes.Node]:
        relative = self.arguments[0] if self.arguments else self.config.openapi_document
        path = Path(self.env.srcdir) / relative
        self.env.note_dependency(str(path))
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            schemas: Mapping[str, Any] = document["components"]["schemas"]
        except (OSError, ValueError, KeyError) as exc:
            raise self.error(f"openapi-schemas: {relative}: {exc}") from exc
        result: list[nodes.Node] = []
        for full_name in sorted(schemas, key=lambda n: n.rsplit(".", 1)[-1]):
            short = full_name.rsplit(".", 1)[-1]
            if short.endswith(REQUEST_SUFFIX):
                continue
            schema = schemas[full_name]
            result.append(
                nodes.rubric(
                    "",
                    "",
                    nodes.literal(text=short),
                    ids=[schema_anchor(short)],
                    classes=["secinfra-schema"],
                )
            )
            result += _paragraphs(schema.get("description") or "")
            if "enum" in schema:
                if "Values:" not in (schema.get("description") or ""):
                    values = nodes.paragraph(text="Values: ")
                    for index, value in enumerate(schema["enum"]):
                        if index:
                            values += nodes.Text(", ")
                        values += nodes.literal(text=str(value))
                    result.append(values)
            elif schema.get("properties"):
                result.append(_field_table(object_fields(schema), with_where=False))
        return result


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("openapi_document", "api/openapi.json", "env", types=[str])
    app.add_directive("openapi-operations", OpenApiOperations)
    app.add_directive("openapi-rpcs", OpenApiRpcs)
    app.add_directive("openapi-schemas", OpenApiSchemas)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
