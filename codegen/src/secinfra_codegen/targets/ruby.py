"""Ruby target: models and service clients for sdk-ruby, and its reference page.

Per proto file ``<stem>.proto`` the target writes ``<stem>.rb`` (a class per
message with a keyword constructor, readers and a ``FIELDS`` table that the
contract's ``Secinfra::RPC::Message`` uses for ``to_h`` / ``from_h``; a
module of wire-string constants per enum) and, when the file has services,
``<stem>_client.rb`` (one client class per service with one method per RPC
and a frozen ``MethodDescriptor`` constant per RPC, calling ``invoke`` on the
``Secinfra::RPC::Invoker`` it is given). Generated code names nothing but
``Secinfra::RPC`` (the contract), never ``Secinfra::Runtime``. ``all.rb``
requires everything. The Ruby module comes from the proto package
(``secinfra.v1`` -> ``Secinfra::V1``).

Naming: messages and enums are named after their qualified name with the dots
removed (``Container.Item`` -> ``ContainerItem``); enum constants are the value
names with the enum prefix stripped (``VersionState::ACTIVE``) and their values
are the wire strings; a field keeps its proto name unless it is a Ruby keyword
or a method every object has (``class``, ``hash``, ``send``, ...): then it
gets a trailing underscore (``class_``) and keeps its JSON name.

No Ruby formatter is available offline, so the templates emit canonical
two-space Ruby and the tests check every file with ``ruby -c``.

The same target writes ``docs/reference/sdk-ruby.md``: every RPC as its Ruby
method signature with its doc comment, HTTP binding, idempotency and cache
policy, and every message with its fields.
"""

from __future__ import annotations

import re
from typing import Any

from .. import model as m
from ..errors import CodegenError
from ..naming import upper_snake
from ..render import render
from . import HEADER, Layout, Output

#: Where the generated reference page goes (a shared folder: not exclusive).
DOCS_DIR = "docs/reference"
DOCS_PAGE = "sdk-ruby.md"

RUBY_KEYWORDS = frozenset(
    {
        "BEGIN", "END", "alias", "and", "begin", "break", "case", "class", "def",
        "defined?", "do", "else", "elsif", "end", "ensure", "false", "for", "if",
        "in", "module", "next", "nil", "not", "or", "redo", "rescue", "retry",
        "return", "self", "super", "then", "true", "undef", "unless", "until",
        "when", "while", "yield", "__FILE__", "__LINE__", "__ENCODING__",
    }
)  # fmt: skip

#: Methods of every object (and of the generated base class) a field must not hide.
RESERVED_METHODS = frozenset(
    {
        # Object's public methods a reader must not hide.
        "class", "clone", "display", "dup", "eql", "equal", "extend", "freeze",
        "frozen", "hash", "inspect", "instance_variables", "instance_of", "is_a",
        "itself", "kind_of", "method", "methods", "object_id", "public_send",
        "respond_to", "send", "singleton_class", "tap", "then", "to_s",
        # Names the base class (Secinfra::RPC::Message) defines or calls.
        "to_h", "to_json", "to_kwargs", "from_h", "from_json", "initialize",
        "raise", "format",
        # Locals and keywords of the generated client methods.
        "request", "call_options",
    }
)  # fmt: skip

_INTEGER_KINDS = {
    **dict.fromkeys(m.INT32_TYPES, "int32"),
    **dict.fromkeys(m.UINT32_TYPES, "uint32"),
    **dict.fromkeys(m.INT64_TYPES, "int64"),
    **dict.fromkeys(m.UINT64_TYPES, "uint64"),
}

_CONSTANT = re.compile(r"^[A-Z][A-Za-z0-9_]*$")
_METHOD = re.compile(r"^[a-z_][a-z0-9_]*$")


def attr_name(field_name: str) -> str:
    """The Ruby reader / keyword name of a proto field."""
    if field_name in RUBY_KEYWORDS or field_name in RESERVED_METHODS:
        return field_name + "_"
    return field_name


def class_name(qualified_name: str) -> str:
    return qualified_name.replace(".", "")


def module_path(package: str) -> list[str]:
    """Two nested modules: ``secinfra.v1`` -> ``["Secinfra", "V1"]``,
    ``secinfra.kitchensink.v1`` -> ``["Secinfra", "KitchensinkV1"]``."""
    parts = []
    for part in package.split("."):
        name = "".join(p[:1].upper() + p[1:] for p in part.split("_"))
        if not _CONSTANT.match(name):
            raise CodegenError(f"package {package!r}: {part!r} is not a usable Ruby module name")
        parts.append(name)
    if len(parts) < 2:
        raise CodegenError(f"package {package!r}: needs at least two parts for the Ruby modules")
    return [parts[0], "".join(parts[1:])]


def client_class_name(service: m.Service) -> str:
    base = service.name.removesuffix("Service") or service.name
    return base + "Client"


def accessor_name(service: m.Service) -> str:
    """The client accessor: ``SecretsService`` -> ``secrets``."""
    from ..naming import snake

    return snake(service.name.removesuffix("Service") or service.name)


def constant_name(enum: m.Enum, value: m.EnumValue) -> str:
    short = value.short_name
    return short if _CONSTANT.match(short) else value.name


def string(text: str) -> str:
    """A double-quoted Ruby string literal (escapes ``"``, ``\\``, ``#``, controls)."""
    out = []
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "#":
            out.append("\\#")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def comment(text: str, indent: int) -> list[str]:
    """``text`` as ``#`` comment lines (empty lines kept as a bare ``#``)."""
    pad = " " * indent
    if not text:
        return []
    return [f"{pad}# {line}".rstrip() if line.strip() else f"{pad}#" for line in text.split("\n")]


def first_paragraph(text: str) -> str:
    return text.strip().split("\n\n", 1)[0].replace("\n", " ").strip()


class _Types:
    """Type names and defaults, relative to the generated module."""

    def __init__(self, api: m.Api) -> None:
        self.api = api

    def const(self, full_name: str, is_enum: bool) -> str:
        decl = self.api.enum(full_name) if is_enum else self.api.message(full_name)
        module = "::".join(module_path(self.api.file(decl.file).package))
        return f"{module}::{class_name(decl.qualified_name)}"

    def kind(self, t: m.TypeRef) -> str:
        if t.kind is m.Kind.SCALAR:
            if t.scalar in _INTEGER_KINDS:
                return _INTEGER_KINDS[t.scalar]
            return {"double": "double", "float": "float"}.get(t.scalar, t.scalar)
        return {
            m.Kind.ENUM: "enum",
            m.Kind.MESSAGE: "message",
            m.Kind.TIMESTAMP: "timestamp",
            m.Kind.STRUCT: "struct",
        }[t.kind]

    def yard(self, t: m.TypeRef) -> str:
        """The YARD type of one value."""
        if t.kind is m.Kind.SCALAR:
            if t.scalar in m.INTEGER_TYPES:
                return "Integer"
            if t.scalar in ("double", "float"):
                return "Float"
            if t.scalar == "bool":
                return "Boolean"
            return "String"
        if t.kind is m.Kind.TIMESTAMP:
            return "Time"
        if t.kind is m.Kind.STRUCT:
            return "Hash{String => Object}"
        if t.kind is m.Kind.ENUM:
            return f"String ({self.const(t.ref, True)})"
        return self.const(t.ref, False)

    def field_yard(self, f: m.Field) -> str:
        value = self.yard(f.type)
        if f.map_key is not None:
            return f"Hash{{{self.yard(f.map_key)} => {value}}}"
        if f.repeated:
            return f"Array<{value}>"
        return f"{value}, nil" if f.nullable else value

    def zero(self, t: m.TypeRef) -> str:
        if t.kind is m.Kind.ENUM:
            enum = self.api.enum(t.ref)
            return f"{self.const(t.ref, True)}::{constant_name(enum, enum.zero)}"
        if t.is_integer:
            return "0"
        return {
            "double": "0.0",
            "float": "0.0",
            "bool": "false",
            "string": '""',
            "bytes": '"".b',
        }[t.scalar]

    def default(self, f: m.Field) -> str:
        if f.map_key is not None:
            return "{}"
        if f.repeated:
            return "[]"
        if f.nullable:
            return "nil"
        return self.zero(f.type)

    def spec(self, f: m.Field) -> str:
        """The ``Secinfra::RPC::Field`` constructor of one field."""
        args = [f":{attr_name(f.name)}", string(f.json_name), f":{self.kind(f.type)}"]
        if f.type.kind in (m.Kind.ENUM, m.Kind.MESSAGE):
            args.append(f"type: {string(self.const(f.type.ref, f.type.kind is m.Kind.ENUM))}")
        if f.map_key is not None:
            args.append(f"map_key: :{self.kind(f.map_key)}")
        elif f.repeated:
            args.append("repeated: true")
        if f.nullable:
            args.append("presence: true")
        if f.oneof:
            args.append(f"oneof: {string(f.oneof)}")
        return f"Secinfra::RPC::Field.new({', '.join(args)})"


def _check_names(file: m.File) -> None:
    seen: dict[str, str] = {}
    decls: list[m.Message | m.Enum] = [*file.enums, *file.messages]
    for decl in decls:
        name = class_name(decl.qualified_name)
        if not _CONSTANT.match(name) or name in seen:
            raise CodegenError(
                f"{file.path}: {decl.full_name} maps to the Ruby constant {name}, "
                f"which is not usable or clashes with {seen.get(name, 'another name')}"
            )
        seen[name] = decl.full_name
    for msg in file.messages:
        for f in msg.fields:
            if not _METHOD.match(attr_name(f.name)):
                raise CodegenError(f"{msg.full_name}.{f.name}: not a usable Ruby method name")


def _requires(api: m.Api, file: m.File) -> list[str]:
    return sorted(api.file(path).stem for path in file.imports if path != file.path)


def _models(api: m.Api, file: m.File) -> str:
    _check_names(file)
    types = _Types(api)
    enums = [
        {
            "name": class_name(e.qualified_name),
            "comment": comment(e.comment or f"Enum {e.full_name}.", 4),
            "members": [
                {
                    "name": constant_name(e, v),
                    "wire": string(v.wire_name),
                    "comment": comment(v.comment, 6),
                }
                for v in e.values
            ],
        }
        for e in file.enums
    ]
    messages = []
    for msg in file.messages:
        fields = [
            {
                "attr": attr_name(f.name),
                "default": types.default(f),
                "spec": types.spec(f),
                "yard": types.field_yard(f),
                "doc": first_paragraph(f.comment) or f"Field {f.name}.",
            }
            for f in msg.fields
        ]
        messages.append(
            {
                "name": class_name(msg.qualified_name),
                "full_name": msg.full_name,
                "comment": comment(msg.comment or f"Message {msg.full_name}.", 4),
                "fields": fields,
                "has_oneofs": bool(msg.oneofs),
            }
        )
    return render(
        "ruby/models.rb.j2",
        header=f"# {HEADER}",
        file=file,
        file_comment=comment(file.comment, 0),
        requires=_requires(api, file),
        modules=module_path(file.package),
        enums=enums,
        messages=messages,
    )


def _idempotency_text(meth: m.Method) -> str:
    return {
        m.Idempotency.READ_ONLY: "read-only",
        m.Idempotency.IDEMPOTENT: "idempotent",
        m.Idempotency.NON_IDEMPOTENT: "non-idempotent",
    }[meth.idempotency]


def _cache_text(meth: m.Method) -> str:
    if meth.cache is not None and meth.cache.cacheable:
        key = f", key `{meth.cache.key_field}`" if meth.cache.key_field else ""
        return f"cacheable (family `{meth.cache.resource}`{key})"
    if meth.invalidates is not None:
        key = f" (key `{meth.invalidates.key_field}`)" if meth.invalidates.key_field else ""
        return f"not cached; invalidates `{meth.invalidates.resource}`{key}"
    return "not cached"


def _method_view(api: m.Api, svc: m.Service, meth: m.Method) -> dict[str, Any]:
    types = _Types(api)
    request = api.message(meth.request)
    by_name = {f.name: f for f in request.fields}
    ordered = [by_name[n] for n in meth.path_params] + [
        f for f in request.fields if f.name not in meth.path_params
    ]
    params = [
        {
            "attr": attr_name(f.name),
            "default": None if f.name in meth.path_params else types.default(f),
            "yard": types.field_yard(f),
            "doc": first_paragraph(f.comment) or f"Field {f.name}.",
        }
        for f in ordered
    ]
    signature = ", ".join(
        [f"{p['attr']}:" + ("" if p["default"] is None else f" {p['default']}") for p in params]
        + ["call_options: nil"]
    )

    def str_list(items: tuple[str, ...]) -> str:
        return "[" + ", ".join(string(i) for i in items) + "].freeze"

    cache = "nil"
    if meth.cache is not None and meth.cache.cacheable:
        cache = (
            f"Secinfra::RPC::CachePolicy.new(resource: {string(meth.cache.resource)}, "
            f"key_field: {string(meth.cache.key_field)})"
        )
    invalidates = "nil"
    if meth.invalidates is not None:
        invalidates = (
            f"Secinfra::RPC::Invalidation.new(resource: {string(meth.invalidates.resource)}, "
            f"key_field: {string(meth.invalidates.key_field)})"
        )
    return {
        "name": meth.snake_name,
        "rpc": meth.name,
        "constant": upper_snake(meth.name),
        "comment": comment(meth.comment or f"Calls {svc.full_name}/{meth.name}.", 6),
        "summary": first_paragraph(meth.comment),
        "http": f"{meth.http_method} {meth.path.template}",
        "idempotency_text": _idempotency_text(meth),
        "cache_text": _cache_text(meth),
        "auth_text": "none (no client certificate)" if meth.auth is m.Auth.NONE else "mTLS",
        "params": params,
        "signature": signature,
        "request": types.const(meth.request, False),
        "response": types.const(meth.response, False),
        "service": string(svc.full_name),
        "rpc_literal": string(meth.name),
        "http_method": string(meth.http_method),
        "path": string(meth.path.template),
        "path_params": str_list(meth.path_params),
        "query_params": str_list(meth.query_params),
        "body_fields": str_list(meth.body_fields),
        "idempotency": meth.idempotency.value,
        "auth": meth.auth.value,
        "cache": cache,
        "invalidates": invalidates,
        "admin": "true" if meth.admin else "false",
    }


def _client(api: m.Api, file: m.File) -> str:
    services = [
        {
            "name": client_class_name(svc),
            "full_name": svc.full_name,
            "comment": comment(svc.comment, 4),
            "methods": [_method_view(api, svc, meth) for meth in svc.methods],
        }
        for svc in file.services
    ]
    return render(
        "ruby/client.rb.j2",
        header=f"# {HEADER}",
        file=file,
        stem=file.stem,
        modules=module_path(file.package),
        services=services,
    )


def _all(api: m.Api) -> str:
    names = []
    for file in api.files:
        names.append(file.stem)
        if file.services:
            names.append(f"{file.stem}_client")
    return render("ruby/all.rb.j2", header=f"# {HEADER}", names=names)


def _docs(api: m.Api) -> str:
    types = _Types(api)
    services = []
    for svc in api.services:
        services.append(
            {
                "name": svc.name,
                "full_name": svc.full_name,
                "accessor": accessor_name(svc),
                "client": "::".join(
                    [*module_path(api.file(svc.file).package), client_class_name(svc)]
                ),
                "summary": first_paragraph(svc.comment),
                "methods": [_method_view(api, svc, meth) for meth in svc.methods],
            }
        )
    messages = [
        {
            "const": types.const(msg.full_name, False),
            "summary": first_paragraph(msg.comment),
            "fields": [
                {
                    "attr": attr_name(f.name),
                    "json": f.json_name,
                    "yard": types.field_yard(f).replace("|", "\\|"),
                    "doc": first_paragraph(f.comment).replace("|", "\\|"),
                }
                for f in msg.fields
            ],
        }
        for msg in api.messages
    ]
    enums = [
        {
            "const": types.const(e.full_name, True),
            "summary": first_paragraph(e.comment),
            "members": [
                {
                    "name": constant_name(e, v),
                    "wire": v.wire_name,
                    "doc": first_paragraph(v.comment).replace("|", "\\|"),
                }
                for v in e.values
            ],
        }
        for e in api.enums
    ]
    return render(
        "ruby/reference.md.j2",
        header=f"<!-- {HEADER} -->",
        services=services,
        messages=messages,
        enums=enums,
    )


def generate(api: m.Api, layout: Layout) -> list[Output]:
    files: dict[str, str] = {"all.rb": _all(api)}
    for file in api.files:
        files[f"{file.stem}.rb"] = _models(api, file)
        if file.services:
            files[f"{file.stem}_client.rb"] = _client(api, file)
    return [
        Output(layout.sdk_ruby, files, exclusive=True),
        Output(DOCS_DIR, {DOCS_PAGE: _docs(api)}, exclusive=False),
    ]
