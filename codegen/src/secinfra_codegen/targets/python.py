"""Python target: models (SDK and server), SDK service clients (sync and
asyncio), `_wire.py`.

Naming: messages and enums become classes named after their qualified name
with the dots removed (``Container.Item`` -> ``ContainerItem``); enum members
are the value names with the enum prefix stripped (``ErrorCode.NOT_FOUND``)
and their values are the wire strings. A field keeps its proto name unless it
is a Python keyword or a name the generated code itself uses (``str``,
``datetime``, ``to_json``, ...): then it gets a trailing underscore in Python
and keeps its JSON name. Other model modules are imported as ``_<module>``.
"""

from __future__ import annotations

import builtins
import keyword
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import model as m
from ..errors import CodegenError
from ..naming import upper_snake
from ..render import render
from . import HEADER, Layout, Output

# Names the generated modules use at class or module scope.
_RESERVED = frozenset(keyword.kwlist) | {
    "self",
    "call_options",
    "to_json",
    "from_json",
    "dataclasses",
    "datetime",
    "str",
    "int",
    "float",
    "bool",
    "bytes",
    "dict",
    "Any",
    "Self",
    "Sequence",
    "Mapping",
}

_INT_DECODERS = {
    **dict.fromkeys(m.INT32_TYPES, "_wire.decode_int32"),
    **dict.fromkeys(m.UINT32_TYPES, "_wire.decode_uint32"),
    **dict.fromkeys(m.INT64_TYPES, "_wire.decode_int64"),
    **dict.fromkeys(m.UINT64_TYPES, "_wire.decode_uint64"),
}


def attr_name(field_name: str) -> str:
    """The Python attribute / parameter name for a proto field."""
    return field_name + "_" if field_name in _RESERVED else field_name


def class_name(qualified_name: str) -> str:
    return qualified_name.replace(".", "")


def module_name(file: m.File) -> str:
    return file.stem


def client_module_name(file: m.File) -> str:
    return f"{file.stem}_client"


def aio_client_module_name(file: m.File) -> str:
    return f"{file.stem}_aio_client"


def client_class_name(service: m.Service) -> str:
    base = service.name.removesuffix("Service") or service.name
    return base + "Client"


def descriptor_name(service: m.Service, method: m.Method) -> str:
    return f"{upper_snake(service.name)}_{upper_snake(method.name)}"


def docstring(text: str, indent: int = 0) -> str:
    """A safe triple-quoted literal: backslashes, triple quotes and edge quotes escaped."""
    body = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    if body.endswith('"'):
        body = body[:-1] + '\\"'
    if body.startswith('"'):
        body = '\\"' + body[1:]
    lines = body.split("\n")
    if len(lines) == 1:
        return f'"""{body}"""'
    pad = " " * indent
    rest = "\n".join(pad + line if line else "" for line in lines[1:])
    return f'"""{lines[0]}\n{rest}\n{pad}"""'


def string(text: str) -> str:
    """A double-quoted Python string literal."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


class _Names:
    """Resolves type references to Python expressions from one module."""

    def __init__(self, api: m.Api, current: m.File | None) -> None:
        self.api = api
        self.current = current
        self.modules: set[str] = set()  # other model modules referenced
        self.uses_datetime = False

    def _module_of(self, path: str) -> str | None:
        if self.current is not None and path == self.current.path:
            return None
        module = module_name(self.api.file(path))
        self.modules.add(module)
        return module

    def ref(self, full_name: str, is_enum: bool) -> str:
        decl = self.api.enum(full_name) if is_enum else self.api.message(full_name)
        module = self._module_of(decl.file)
        name = class_name(decl.qualified_name)
        return f"_{module}.{name}" if module else name

    def scalar_type(self, t: m.TypeRef) -> str:
        if t.kind is m.Kind.SCALAR:
            if t.scalar in m.INTEGER_TYPES:
                return "int"
            return {"double": "float", "float": "float", "string": "str"}.get(t.scalar, t.scalar)
        if t.kind is m.Kind.TIMESTAMP:
            self.uses_datetime = True
            return "datetime.datetime"
        if t.kind is m.Kind.STRUCT:
            return "dict[str, Any]"
        return self.ref(t.ref, t.kind is m.Kind.ENUM)

    def annotation(self, f: m.Field) -> str:
        value = self.scalar_type(f.type)
        if f.map_key is not None:
            return f"Mapping[{self.scalar_type(f.map_key)}, {value}]"
        if f.repeated:
            return f"Sequence[{value}]"
        return f"{value} | None" if f.nullable else value

    def zero(self, t: m.TypeRef) -> str:
        if t.kind is m.Kind.ENUM:
            enum = self.api.enum(t.ref)
            return f"{self.ref(t.ref, True)}.{member_name(enum, enum.zero)}"
        if t.is_integer:
            return "0"
        return {"double": "0.0", "float": "0.0", "bool": "False", "string": '""', "bytes": 'b""'}[
            t.scalar
        ]

    def default(self, f: m.Field) -> str:
        """The dataclass default."""
        if f.map_key is not None:
            return "dataclasses.field(default_factory=dict)"
        if f.repeated:
            return "()"
        if f.nullable:
            return "None"
        return self.zero(f.type)

    def param_default(self, f: m.Field) -> str:
        """The client-method parameter default (immutable)."""
        if f.map_key is not None:
            return "_wire.EMPTY_MAP"
        return self.default(f)

    def decoder(self, t: m.TypeRef) -> str:
        if t.kind is m.Kind.SCALAR:
            if t.scalar in _INT_DECODERS:
                return _INT_DECODERS[t.scalar]
            if t.scalar in ("double", "float"):
                return "_wire.decode_float"
            return f"_wire.decode_{t.scalar}"
        if t.kind is m.Kind.TIMESTAMP:
            return "_wire.decode_timestamp"
        if t.kind is m.Kind.STRUCT:
            return "_wire.decode_struct"
        if t.kind is m.Kind.ENUM:
            return f"_wire.enum_of({self.ref(t.ref, True)}, {self.zero(t)}, strict)"
        return f"_wire.message({self.ref(t.ref, False)}, strict)"

    def key_decoder(self, t: m.TypeRef) -> str:
        if t.kind is m.Kind.SCALAR and t.scalar == "bool":
            return "_wire.decode_bool_key"
        return self.decoder(t)

    def decode_field(self, f: m.Field) -> str:
        item = self.decoder(f.type)
        key = string(f.json_name)
        if f.map_key is not None:
            dec = f"_wire.map_of({self.key_decoder(f.map_key)}, {item})"
            return f"_wire.field(obj, {key}, path, {dec}, {{}})"
        if f.repeated:
            return f"_wire.field(obj, {key}, path, _wire.list_of({item}), ())"
        if f.nullable:
            return f"_wire.optional(obj, {key}, path, {item})"
        return f"_wire.field(obj, {key}, path, {item}, {self.zero(f.type)})"


def encoder(t: m.TypeRef, var: str) -> str:
    """Expression encoding ``var`` (of type ``t``) to its JSON value."""
    if t.kind is m.Kind.SCALAR:
        if t.is_64bit:
            return f"str({var})"
        if t.scalar in ("double", "float"):
            return f"_wire.encode_float({var})"
        if t.scalar == "bytes":
            return f"_wire.encode_bytes({var})"
        return var
    if t.kind is m.Kind.TIMESTAMP:
        return f"_wire.encode_timestamp({var})"
    if t.kind is m.Kind.STRUCT:
        return f"dict({var})"
    if t.kind is m.Kind.ENUM:
        return f"str({var})"
    return f"{var}.to_json()"


def key_encoder(t: m.TypeRef, var: str) -> str:
    if t.kind is m.Kind.SCALAR and t.scalar == "bool":
        return f'("true" if {var} else "false")'
    if t.kind is m.Kind.SCALAR and t.scalar != "string":
        return f"str({var})"
    return var


def encode_lines(f: m.Field) -> list[str]:
    """Statements of ``to_json`` for one field (relative indentation)."""
    attr = f"self.{attr_name(f.name)}"
    key = f"out[{string(f.json_name)}]"
    if f.map_key is not None:
        k, v = key_encoder(f.map_key, "k"), encoder(f.type, "v")
        if k == "k" and v == "v":
            return [f"{key} = dict({attr})"]
        return [f"{key} = {{{k}: {v} for k, v in {attr}.items()}}"]
    if f.repeated:
        v = encoder(f.type, "v")
        if v == "v":
            return [f"{key} = list({attr})"]
        return [f"{key} = [{v} for v in {attr}]"]
    if f.nullable:
        return [f"if {attr} is not None:", f"    {key} = {encoder(f.type, attr)}"]
    return [f"{key} = {encoder(f.type, attr)}"]


def member_name(enum: m.Enum, value: m.EnumValue) -> str:
    short = value.short_name
    if short.isidentifier() and not keyword.iskeyword(short) and not short.startswith("_"):
        return short
    return value.name


@dataclass(frozen=True)
class _FieldView:
    attr: str
    json: str
    annotation: str
    default: str
    param_default: str
    doc: str
    decode: str
    encode: list[str]


def _check_names(file: m.File) -> None:
    seen: dict[str, str] = {}
    decls: list[m.Message | m.Enum] = [*file.enums, *file.messages]
    for decl in decls:
        name = class_name(decl.qualified_name)
        if name in seen or name in _RESERVED or name.startswith("_"):
            raise CodegenError(
                f"{file.path}: {decl.full_name} maps to the Python class {name}, "
                f"which clashes with {seen.get(name, 'a reserved name')}"
            )
        seen[name] = decl.full_name
    mod = module_name(file)
    if not mod.isidentifier() or keyword.iskeyword(mod) or mod.startswith("_"):
        raise CodegenError(f"{file.path}: {mod!r} is not a usable Python module name")
    if mod in dir(builtins):
        raise CodegenError(f"{file.path}: module name {mod!r} shadows a builtin")


def _sensitive(f: m.Field) -> bool:
    """A bytes field (secret values) or a credential string field."""
    if f.type.kind is not m.Kind.SCALAR:
        return False
    return f.type.scalar == "bytes" or (
        f.type.scalar == "string" and f.name in m.SENSITIVE_STRING_FIELDS
    )


def _models(api: m.Api, file: m.File, package: str) -> str:
    _check_names(file)
    names = _Names(api, file)
    enums = [
        {
            "name": class_name(e.qualified_name),
            "doc": docstring(e.comment, 4),
            "members": [
                {
                    "name": member_name(e, v),
                    "wire": string(v.wire_name),
                    "doc": docstring(v.comment, 4),
                }
                for v in e.values
            ],
        }
        for e in file.enums
    ]
    messages = []
    for msg in file.messages:
        fields = [
            _FieldView(
                attr=attr_name(f.name),
                json=string(f.json_name),
                annotation=names.annotation(f),
                default=names.default(f),
                param_default=names.param_default(f),
                doc=docstring(f.comment, 4),
                decode=names.decode_field(f),
                encode=encode_lines(f),
            )
            for f in msg.fields
        ]
        messages.append(
            {
                "name": class_name(msg.qualified_name),
                "doc": docstring(msg.comment, 4),
                "fields": fields,
                "known": py_tuple([f.json_name for f in msg.fields]),
                # Fields repr() must not show: secret values and credentials.
                "sensitive": py_tuple([attr_name(f.name) for f in msg.fields if _sensitive(f)])
                if any(_sensitive(f) for f in msg.fields)
                else None,
                "oneofs": [
                    {
                        "name": string(o.name),
                        "members": py_tuple(o.fields),
                        "attrs": py_tuple([attr_name(n) for n in o.fields]),
                    }
                    for o in msg.oneofs
                ],
            }
        )
    all_fields = [f for msg in file.messages for f in msg.fields]
    return render(
        "python/models.py.j2",
        header=f"# {HEADER}",
        doc=docstring(_module_doc(file, package)),
        enums=enums,
        messages=messages,
        imports=sorted(names.modules),
        uses_datetime=names.uses_datetime,
        uses_sequence=any(f.repeated and f.map_key is None for f in all_fields),
        uses_mapping=any(f.map_key is not None for f in all_fields),
        uses_dataclasses=bool(messages),
        uses_enum=bool(enums),
        exported=sorted([str(e["name"]) for e in enums] + [str(msg["name"]) for msg in messages]),
    )


def _module_doc(file: m.File, package: str) -> str:
    text = f"Models of {file.path} for {package}.\n\nProto package: {file.package}."
    if file.comment:
        text += "\n\n" + file.comment
    return text


def _client_view(api: m.Api, file: m.File) -> dict[str, Any]:
    """What both client templates (sync and asyncio) render: one view, two shapes."""
    names = _Names(api, None)
    services: list[dict[str, Any]] = []
    for svc in file.services:
        methods: list[dict[str, Any]] = []
        for meth in svc.methods:
            request = api.message(meth.request)
            by_name = {f.name: f for f in request.fields}
            ordered = [by_name[n] for n in meth.path_params] + [
                f for f in request.fields if f.name not in meth.path_params
            ]
            params = [
                {
                    "attr": attr_name(f.name),
                    "annotation": names.annotation(f),
                    "default": None if f.name in meth.path_params else names.param_default(f),
                }
                for f in ordered
            ]
            doc = f"{meth.comment}\n\nHTTP: ``{meth.http_method} {meth.path.template}``"
            methods.append(
                {
                    "name": meth.snake_name,
                    "descriptor": descriptor_name(svc, meth),
                    "doc": docstring(doc, 8),
                    "params": params,
                    "request": names.ref(meth.request, False),
                    "response": names.ref(meth.response, False),
                    "service": string(svc.full_name),
                    "rpc": string(meth.name),
                    "http_method": string(meth.http_method),
                    "path": string(meth.path.template),
                    "path_params": py_tuple(meth.path_params),
                    "query_params": py_tuple(meth.query_params),
                    "body_fields": py_tuple(meth.body_fields),
                    "idempotency": meth.idempotency.name,
                    "auth": meth.auth.name,
                    "cache": (
                        f"CachePolicy(cacheable=True, resource={string(meth.cache.resource)}, "
                        f"key_field={string(meth.cache.key_field)})"
                        if meth.cache
                        else "None"
                    ),
                    "invalidates": (
                        f"Invalidation(resource={string(meth.invalidates.resource)}, "
                        f"key_field={string(meth.invalidates.key_field)})"
                        if meth.invalidates
                        else "None"
                    ),
                    "admin": str(meth.admin),
                }
            )
        services.append(
            {
                "name": client_class_name(svc),
                "full_name": svc.full_name,
                "doc": docstring(f"{svc.comment}\n\nClient of {svc.full_name}.", 4),
                "methods": methods,
            }
        )
    return {
        "header": f"# {HEADER}",
        "services": services,
        "imports": sorted(names.modules),
        "uses_datetime": names.uses_datetime,
        "uses_any": "Any]" in _all_annotations(services),
        "uses_sequence": "Sequence[" in _all_annotations(services),
        "uses_mapping": "Mapping[" in _all_annotations(services),
        "uses_wire": "_wire." in _all_annotations(services),
        "uses_cache": any(m["cache"] != "None" for s in services for m in s["methods"]),
        "uses_invalidation": any(
            m["invalidates"] != "None" for s in services for m in s["methods"]
        ),
    }


def _client(api: m.Api, file: m.File) -> str:
    return render(
        "python/client.py.j2",
        doc=docstring(f"Service clients of {file.path}."),
        **_client_view(api, file),
    )


def _aio_client(api: m.Api, file: m.File) -> str:
    """The asyncio clients: the same methods as coroutines, the same descriptors
    (imported from the sync module, never written twice)."""
    view = _client_view(api, file)
    return render(
        "python/aio_client.py.j2",
        doc=docstring(
            f"asyncio service clients of {file.path} (secinfra.aio).\n\n"
            f"The method descriptors are {client_module_name(file)}'s."
        ),
        sync_module=client_module_name(file),
        # In ruff's isort order (case-insensitive), so the file passes `ruff check`.
        descriptors=sorted(
            (m["descriptor"] for svc in view["services"] for m in svc["methods"]), key=str.lower
        ),
        **view,
    )


def _all_annotations(services: list[dict[str, Any]]) -> str:
    parts: list[str] = []
    for svc in services:
        for meth in svc["methods"]:
            for p in meth["params"]:
                parts.append(p["annotation"])
                parts.append(str(p["default"]))
    return " ".join(parts)


def py_tuple(items: Sequence[str]) -> str:
    """A tuple literal of strings, without a magic trailing comma."""
    if len(items) == 1:
        return f"({string(items[0])},)"
    return "(" + ", ".join(string(i) for i in items) + ")"


def _package_files(api: m.Api, package: str, clients: bool) -> dict[str, str]:
    files: dict[str, str] = {
        "__init__.py": render(
            "python/__init__.py.j2",
            header=f"# {HEADER}",
            doc=docstring(
                f"Generated models{' and service clients' if clients else ''} for {package}.\n\n"
                "Do not edit: change the .proto files under api/ and run "
                "``python -m secinfra_codegen``."
            ),
        ),
        "_wire.py": render("python/_wire.py.j2", header=f"# {HEADER}", package=package),
    }
    for file in api.files:
        files[f"{module_name(file)}.py"] = _models(api, file, package)
        if clients and file.services:
            files[f"{client_module_name(file)}.py"] = _client(api, file)
            files[f"{aio_client_module_name(file)}.py"] = _aio_client(api, file)
    return files


def generate_sdk(api: m.Api, layout: Layout) -> list[Output]:
    files = _package_files(api, "the secinfra Python SDK", clients=True)
    return [Output(layout.sdk_python, files, exclusive=True, formatter="python")]


def generate_server(api: m.Api, layout: Layout) -> list[Output]:
    files = _package_files(api, "the secinfra reference server", clients=False)
    return [Output(layout.server, files, exclusive=True, formatter="python")]
