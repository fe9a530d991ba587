"""OpenAPI 3.1 target: one JSON document for external tools.

Schemas are named by proto full name (``secinfra.v1.Secret``). The ``default``
response of every operation is the error envelope: the one message of the API
whose only field is ``error`` (a message).
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any

from .. import model as m
from ..errors import CodegenError
from ..render import render
from . import HEADER, Layout, Output

_MULTI_SEGMENT_NOTE = (
    "One or more path segments: the value may contain '/', which is sent as is "
    "(each segment percent-encoded); it never contains ':'."
)


def _scalar_schema(scalar: str) -> dict[str, Any]:
    if scalar in m.INT32_TYPES:
        return {"type": "integer", "format": "int32"}
    if scalar in m.UINT32_TYPES:
        return {"type": "integer", "format": "uint32", "minimum": 0, "maximum": 2**32 - 1}
    if scalar in m.INT64_TYPES:
        return {"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"}
    if scalar in m.UINT64_TYPES:
        return {"type": "string", "format": "uint64", "pattern": "^[0-9]+$"}
    return {
        "double": {"type": "number", "format": "double"},
        "float": {"type": "number", "format": "float"},
        "bool": {"type": "boolean"},
        "string": {"type": "string"},
        "bytes": {"type": "string", "format": "byte", "contentEncoding": "base64"},
    }[scalar]


def _ref(full_name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{full_name}"}


def value_schema(t: m.TypeRef) -> dict[str, Any]:
    if t.kind is m.Kind.SCALAR:
        return _scalar_schema(t.scalar)
    if t.kind is m.Kind.TIMESTAMP:
        return {"type": "string", "format": "date-time"}
    if t.kind is m.Kind.STRUCT:
        return {"type": "object", "additionalProperties": True}
    return _ref(t.ref)


def field_schema(f: m.Field) -> dict[str, Any]:
    """The schema of a field's JSON value, without its description."""
    value = value_schema(f.type)
    if f.map_key is not None:
        schema: dict[str, Any] = {"type": "object", "additionalProperties": value}
        if f.map_key.is_integer:
            schema["propertyNames"] = {"pattern": "^-?[0-9]+$"}
        elif f.map_key.kind is m.Kind.SCALAR and f.map_key.scalar == "bool":
            schema["propertyNames"] = {"enum": ["true", "false"]}
        return schema
    if f.repeated:
        return {"type": "array", "items": value}
    return value


def _field_description(msg: m.Message, f: m.Field) -> str:
    text = f.comment
    if f.oneof is not None:
        group = next(o for o in msg.oneofs if o.name == f.oneof)
        others = ", ".join(f"`{n}`" for n in group.fields)
        text += f"\n\nMember of oneof `{group.name}`: set at most one of {others}."
    return text


def _message_schema(msg: m.Message) -> dict[str, Any]:
    properties = {}
    for f in msg.fields:
        prop = field_schema(f)
        prop["description"] = _field_description(msg, f)
        if f.oneof is not None:
            prop["x-secinfra-oneof"] = f.oneof
        properties[f.json_name] = prop
    schema: dict[str, Any] = {"type": "object", "description": msg.comment}
    schema["properties"] = properties
    return schema


def _enum_schema(enum: m.Enum) -> dict[str, Any]:
    lines = [enum.comment, "", "Values:", ""]
    lines += [f"- `{v.wire_name}`: {' '.join(v.comment.split())}" for v in enum.values]
    return {
        "type": "string",
        "enum": [v.wire_name for v in enum.values],
        "description": "\n".join(lines),
    }


def find_error_envelope(api: m.Api) -> m.Message:
    found = [
        msg
        for msg in api.messages
        if len(msg.fields) == 1
        and msg.fields[0].name == "error"
        and msg.fields[0].type.kind is m.Kind.MESSAGE
        and not msg.fields[0].repeated
    ]
    if len(found) != 1:
        names = ", ".join(msg.full_name for msg in found) or "none"
        raise CodegenError(
            "OpenAPI needs exactly one error envelope message (a message whose only "
            f"field is `error`, a message); found {names}"
        )
    return found[0]


def openapi_path(template: m.PathTemplate) -> str:
    out = "".join(f"{{{p.field}}}" if isinstance(p, m.PathVariable) else p for p in template.parts)
    return out + (f":{template.verb}" if template.verb else "")


def _summary(comment: str) -> str:
    first = " ".join(comment.split("\n\n")[0].split())
    end = first.find(". ")
    return first if end == -1 else first[: end + 1]


def _operation(
    api: m.Api, svc: m.Service, meth: m.Method, envelope: m.Message, sequence: int
) -> dict[str, Any]:
    """One operation; ``sequence`` is the method's place in the API files, the
    order in which the docs tests run the examples."""
    request = api.message(meth.request)
    params: list[dict[str, Any]] = []
    for var in meth.path.variables:
        f = request.field(var.field)
        param: dict[str, Any] = {
            "name": f.json_name,
            "in": "path",
            "required": True,
            "description": f.comment,
            "schema": field_schema(f),
        }
        if var.multi_segment:
            param["description"] += "\n\n" + _MULTI_SEGMENT_NOTE
            param["x-secinfra-multi-segment"] = True
        params.append(param)
    for name in meth.query_params:
        f = request.field(name)
        params.append(
            {
                "name": f.json_name,
                "in": "query",
                "required": False,
                "description": _field_description(request, f),
                "schema": field_schema(f),
            }
        )
    op: dict[str, Any] = {
        "operationId": f"{svc.name}_{meth.name}",
        "tags": [svc.name],
        "summary": _summary(meth.comment),
        "description": meth.comment,
    }
    if params:
        op["parameters"] = params
    if meth.body_fields:
        if len(meth.body_fields) == len(request.fields):
            body_schema = _ref(request.full_name)
        else:
            body_schema = {
                "type": "object",
                "description": f"{request.full_name} without the fields bound in the path.",
                "properties": {
                    name: {
                        **field_schema(request.field(name)),
                        "description": _field_description(request, request.field(name)),
                    }
                    for name in meth.body_fields
                },
            }
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body_schema}},
        }
    response = api.message(meth.response)
    op["responses"] = {
        "200": {
            "description": _summary(response.comment) or "OK",
            "headers": {"Request-Id": {"$ref": "#/components/headers/Request-Id"}},
            "content": {"application/json": {"schema": _ref(response.full_name)}},
        },
        "default": {
            "description": "An error: the error envelope.",
            "headers": {"Request-Id": {"$ref": "#/components/headers/Request-Id"}},
            "content": {"application/json": {"schema": _ref(envelope.full_name)}},
        },
    }
    op["security"] = [{"mutualTLS": []}] if meth.auth is m.Auth.MTLS else []
    op["x-secinfra-idempotency"] = meth.idempotency.value
    if meth.cache is not None:
        op["x-secinfra-cache"] = {
            "cacheable": meth.cache.cacheable,
            "resource": meth.cache.resource,
            "key_field": meth.cache.key_field,
        }
    if meth.invalidates is not None:
        op["x-secinfra-invalidates"] = {
            "resource": meth.invalidates.resource,
            "key_field": meth.invalidates.key_field,
        }
    op["x-secinfra-admin"] = meth.admin
    if meth.example is not None:
        op["x-secinfra-example"] = {
            "sequence": sequence,
            "request": meth.example.request,
            "response": meth.example.response,
        }
    return op


def document(api: m.Api) -> dict[str, Any]:
    envelope = find_error_envelope(api)
    versions = sorted({f.package.rsplit(".", 1)[-1] for f in api.files})
    title = "secinfra API"
    paths: dict[str, dict[str, Any]] = {}
    sequence = 0
    for svc in api.services:
        for meth in svc.methods:
            sequence += 1
            item = paths.setdefault(openapi_path(meth.path), {})
            verb = meth.http_method.lower()
            if verb in item:
                raise CodegenError(
                    f"{svc.full_name}.{meth.name}: {meth.http_method} "
                    f"{openapi_path(meth.path)} is already bound to "
                    f"{item[verb]['operationId']}"
                )
            item[verb] = _operation(api, svc, meth, envelope, sequence)
    schemas: dict[str, Any] = {}
    decls: list[m.Message | m.Enum] = [*api.messages, *api.enums]
    for decl in sorted(decls, key=lambda d: d.full_name):
        if isinstance(decl, m.Message):
            schemas[decl.full_name] = _message_schema(decl)
        else:
            schemas[decl.full_name] = _enum_schema(decl)
    description = render(
        "openapi/description.md.j2",
        title=title,
        files=[PurePosixPath(f.path).name for f in api.files],
    ).strip()
    return {
        "x-generated": HEADER,
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": ", ".join(versions),
            "description": description,
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [
            {
                "url": "https://{host}:{port}",
                "description": "A secinfra server (placeholder: use your deployment's address).",
                "variables": {
                    "host": {"default": "localhost"},
                    "port": {"default": "8443"},
                },
            }
        ],
        "tags": [{"name": s.name, "description": s.comment} for s in api.services],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "headers": {
                "Request-Id": {
                    "description": "The request's id; also in the error envelope.",
                    "schema": {"type": "string"},
                }
            },
            "securitySchemes": {
                "mutualTLS": {
                    "type": "mutualTLS",
                    "description": (
                        "A client X509-SVID issued by the secinfra CA, re-checked on every "
                        "request (expiry, revocation, chain to a trusted CA)."
                    ),
                }
            },
        },
    }


def generate(api: m.Api, layout: Layout) -> list[Output]:
    path = PurePosixPath(layout.openapi)
    text = json.dumps(document(api), indent=2, ensure_ascii=False) + "\n"
    return [Output(str(path.parent), {path.name: text}, exclusive=False)]
