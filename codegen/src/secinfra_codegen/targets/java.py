"""Java target: records, enums and service clients for the Java SDK, plus its
reference page (docs/reference/sdk-java.md).

Naming: messages and enums become top-level types named after their qualified
name with the dots removed (``Container.Item`` -> ``ContainerItem``), in the
package that the output folder names (``.../src/main/java/dev/secinfra/gen`` ->
``dev.secinfra.gen``). Fields become record components in lowerCamelCase
(``create_time`` -> ``createTime``); a name that is a Java keyword or a method
the generated code defines gets a trailing underscore (``class_``) and keeps
its JSON name. Enum constants are the value names with the enum prefix
stripped (``ErrorCode.NOT_FOUND``). Service ``FooService`` becomes
``FooClient`` with one method per RPC in lowerCamelCase, each with a
``CompletableFuture`` twin suffixed ``Async``.

Formatting: the templates emit canonical code (two-space indent, one
declaration per line, imports sorted), so no external formatter runs.
"""

from __future__ import annotations

import re

from .. import model as m
from ..errors import CodegenError
from ..naming import upper_snake
from ..render import render
from . import HEADER, Layout, Output

REFERENCE_PAGE = "docs/reference/sdk-java.md"

_KEYWORDS = frozenset(
    [
        "abstract",
        "assert",
        "boolean",
        "break",
        "byte",
        "case",
        "catch",
        "char",
        "class",
        "const",
        "continue",
        "default",
        "do",
        "double",
        "else",
        "enum",
        "extends",
        "final",
        "finally",
        "float",
        "for",
        "goto",
        "if",
        "implements",
        "import",
        "instanceof",
        "int",
        "interface",
        "long",
        "native",
        "new",
        "package",
        "private",
        "protected",
        "public",
        "return",
        "short",
        "static",
        "strictfp",
        "super",
        "switch",
        "synchronized",
        "this",
        "throw",
        "throws",
        "transient",
        "try",
        "void",
        "volatile",
        "while",
        "true",
        "false",
        "null",
        "var",
        "record",
        "yield",
        "sealed",
        "permits",
        "_",
    ]
)
# Methods every generated record has (or inherits): a component may not take these names.
_RESERVED = _KEYWORDS | {
    "toJson",
    "fromJson",
    "builder",
    "toBuilder",
    "toString",
    "hashCode",
    "equals",
    "getClass",
    "notify",
    "notifyAll",
    "wait",
    "clone",
    "finalize",
}
# Fields whose values are secrets: toString() never shows them.
_SENSITIVE_STRINGS = m.SENSITIVE_STRING_FIELDS | {"csr_pem"}

_PRIMITIVE = {
    **dict.fromkeys(m.INT32_TYPES, ("int", "Integer", "0", "Int32")),
    **dict.fromkeys(m.UINT32_TYPES, ("long", "Long", "0L", "Uint32")),
    **dict.fromkeys(m.INT64_TYPES, ("long", "Long", "0L", "Int64")),
    **dict.fromkeys(m.UINT64_TYPES, ("long", "Long", "0L", "Uint64")),
    "double": ("double", "Double", "0.0", "Double"),
    "float": ("float", "Float", "0.0f", "Float"),
    "bool": ("boolean", "Boolean", "false", "Bool"),
    "string": ("String", "String", '""', "String"),
    "bytes": ("byte[]", "byte[]", "Wire.EMPTY_BYTES", "Bytes"),
}


def camel(name: str) -> str:
    """``create_time`` -> ``createTime``."""
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def field_name(proto_name: str) -> str:
    name = camel(proto_name)
    return name + "_" if name in _RESERVED else name


def class_name(qualified_name: str) -> str:
    return qualified_name.replace(".", "")


def client_class_name(service: m.Service) -> str:
    return (service.name.removesuffix("Service") or service.name) + "Client"


def accessor_name(service: m.Service) -> str:
    """The client's accessor for a service: ``SecretsService`` -> ``secrets``."""
    base = service.name.removesuffix("Service") or service.name
    return base[:1].lower() + base[1:]


def method_name(rpc: str) -> str:
    name = rpc[:1].lower() + rpc[1:]
    return name + "_" if name in _KEYWORDS else name


def constant_name(rpc: str) -> str:
    return upper_snake(rpc)


def string(text: str) -> str:
    """A Java string literal."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def html(text: str) -> str:
    """Comment text made safe for Javadoc (HTML, no tags, no comment end)."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = text.replace("@", "&#64;").replace("*/", "*&#47;").replace("\\u", "\\&#117;")
    return text


def javadoc(text: str, indent: int, tags: list[str] | None = None) -> str:
    """A Javadoc block from safe text (see `html`): paragraphs as <p>, then the tags."""
    pad = " " * indent
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    lines: list[str] = []
    for i, para in enumerate(paragraphs):
        if i:
            lines.append("")
            para = "<p>" + para
        lines.extend(para.split("\n"))
    if tags:
        if lines:
            lines.append("")
        lines.extend(tags)
    body = "\n".join(f"{pad} * {line}".rstrip() for line in lines)
    return f"{pad}/**\n{body}\n{pad} */"


def first_paragraph(text: str) -> str:
    return re.split(r"\n\s*\n", text.strip())[0].replace("\n", " ") if text.strip() else ""


def _or(text: str, fallback: str) -> str:
    return text if text.strip() else fallback


class _Types:
    """Java spellings of model types."""

    def __init__(self, api: m.Api) -> None:
        self.api = api

    def _decl(self, t: m.TypeRef) -> m.Message | m.Enum:
        return self.api.enum(t.ref) if t.kind is m.Kind.ENUM else self.api.message(t.ref)

    def value(self, t: m.TypeRef, boxed: bool) -> str:
        if t.kind is m.Kind.SCALAR:
            prim, box, _zero, _wire = _PRIMITIVE[t.scalar]
            return box if boxed else prim
        if t.kind is m.Kind.TIMESTAMP:
            return "Instant"
        if t.kind is m.Kind.STRUCT:
            return "Map<String, Object>"
        return class_name(self._decl(t).qualified_name)

    def field(self, f: m.Field) -> str:
        if f.map_key is not None:
            return f"Map<{self.value(f.map_key, True)}, {self.value(f.type, True)}>"
        if f.repeated:
            return f"List<{self.value(f.type, True)}>"
        return self.value(f.type, f.nullable)

    def zero(self, t: m.TypeRef) -> str:
        if t.kind is m.Kind.SCALAR:
            return _PRIMITIVE[t.scalar][2]
        if t.kind is m.Kind.ENUM:
            enum = self.api.enum(t.ref)
            return f"{class_name(enum.qualified_name)}.{constant(enum.zero)}"
        return "null"

    def decoder(self, t: m.TypeRef) -> str:
        if t.kind is m.Kind.SCALAR:
            return f"Wire::dec{_PRIMITIVE[t.scalar][3]}"
        if t.kind is m.Kind.TIMESTAMP:
            return "Wire::decTimestamp"
        if t.kind is m.Kind.STRUCT:
            return "Wire::decStruct"
        name = class_name(self._decl(t).qualified_name)
        if t.kind is m.Kind.ENUM:
            return f"(n, p) -> {name}.fromWire(n, strict, p)"
        return f"(n, p) -> {name}.fromJson(n, strict, p)"

    def key_decoder(self, t: m.TypeRef) -> str:
        return f"Wire::key{_PRIMITIVE[t.scalar][3]}"

    def key_encoder(self, t: m.TypeRef) -> str:
        return f"Wire::keyOf{_PRIMITIVE[t.scalar][3]}"

    def encoder_ref(self, t: m.TypeRef) -> str:
        if t.kind is m.Kind.SCALAR:
            return f"Wire::enc{_PRIMITIVE[t.scalar][3]}"
        if t.kind is m.Kind.TIMESTAMP:
            return "Wire::encTimestamp"
        if t.kind is m.Kind.STRUCT:
            return "Wire::encStruct"
        if t.kind is m.Kind.ENUM:
            return "Wire::encEnum"
        return f"{self.value(t, False)}::toJson"

    def encode(self, t: m.TypeRef, var: str) -> str:
        if t.kind is m.Kind.MESSAGE:
            return f"{var}.toJson()"
        return self.encoder_ref(t).replace("::", ".") + f"({var})"

    def decode_field(self, f: m.Field) -> str:
        key = string(f.json_name)
        if f.map_key is not None:
            return (
                f"Wire.decMap(obj, {key}, path, {self.key_decoder(f.map_key)}, "
                f"{self.decoder(f.type)})"
            )
        if f.repeated:
            return f"Wire.decList(obj, {key}, path, {self.decoder(f.type)})"
        if f.nullable:
            return f"Wire.decOptional(obj, {key}, path, {self.decoder(f.type)})"
        return f"Wire.decField(obj, {key}, path, {self.decoder(f.type)}, {self.zero(f.type)})"

    def encode_lines(self, f: m.Field) -> list[str]:
        var = f"this.{field_name(f.name)}"
        key = string(f.json_name)
        if f.map_key is not None:
            enc = f"Wire.encMap({var}, {self.key_encoder(f.map_key)}, {self.encoder_ref(f.type)})"
            return [f"out.set({key}, {enc});"]
        if f.repeated:
            return [f"out.set({key}, Wire.encList({var}, {self.encoder_ref(f.type)}));"]
        if f.nullable:
            return [f"if ({var} != null) {{", f"  out.set({key}, {self.encode(f.type, var)});", "}"]
        return [f"out.set({key}, {self.encode(f.type, var)});"]

    def normalise(self, f: m.Field) -> str | None:
        """Compact-constructor statement that replaces a null argument."""
        name = field_name(f.name)
        if f.map_key is not None:
            return f"{name} = Wire.copyMap({name});"
        if f.repeated:
            return f"{name} = Wire.copyList({name});"
        if f.nullable:
            return None
        if f.type.kind is m.Kind.SCALAR and f.type.scalar == "bytes":
            return f"{name} = Wire.copyBytes({name});"
        if f.type.kind is m.Kind.ENUM or (
            f.type.kind is m.Kind.SCALAR and f.type.scalar == "string"
        ):
            return f"{name} = {name} == null ? {self.zero(f.type)} : {name};"
        return None

    def shown(self, f: m.Field) -> str:
        """toString() expression for a field; secrets are never shown."""
        name = f"this.{field_name(f.name)}"
        if f.type.kind is m.Kind.SCALAR and f.type.scalar == "bytes":
            if f.repeated:
                return f'"<" + {name}.size() + " values>"'
            return f'({name} == null ? "null" : "<" + {name}.length + " bytes>")'
        if (
            f.name in _SENSITIVE_STRINGS
            and f.type.kind is m.Kind.SCALAR
            and f.type.scalar == "string"
            and not f.repeated
            and f.map_key is None
        ):
            return f'({name} == null || {name}.isEmpty() ? "\\"\\"" : "<redacted>")'
        return f"{name}"


def constant(value: m.EnumValue) -> str:
    short = value.short_name
    if re.fullmatch(r"[A-Za-z_$][A-Za-z0-9_$]*", short) and short not in _KEYWORDS:
        return short
    return value.name


def _package(directory: str) -> str:
    marker = "src/main/java/"
    if marker not in directory:
        raise CodegenError(f"java output folder {directory!r} is not under {marker}")
    return directory.split(marker, 1)[1].strip("/").replace("/", ".")


def _check_names(api: m.Api) -> None:
    seen: dict[str, str] = {}
    decls: list[m.Message | m.Enum] = [*api.enums, *api.messages]
    for decl in decls:
        name = class_name(decl.qualified_name)
        if name in seen:
            raise CodegenError(
                f"{decl.full_name} maps to the Java type {name}, which {seen[name]} also maps to"
            )
        seen[name] = decl.full_name
    for svc in api.services:
        name = client_class_name(svc)
        if name in seen:
            raise CodegenError(f"service {svc.full_name} maps to {name}, a message name")
        seen[name] = svc.full_name


def _enum(enum: m.Enum, package: str) -> str:
    return render(
        "java/enum.java.j2",
        header=f"// {HEADER}",
        package=package,
        name=class_name(enum.qualified_name),
        doc=javadoc(
            html(_or(enum.comment, f"The enum {enum.full_name}."))
            + f"\n\nProto enum {{@code {enum.full_name}}}.",
            0,
        ),
        zero=constant(enum.zero),
        items=[
            {
                "name": constant(v),
                "wire": string(v.wire_name),
                "doc": javadoc(html(_or(v.comment, f"The value {v.name}.")), 2),
            }
            for v in enum.values
        ],
    )


def _message(api: m.Api, msg: m.Message, package: str) -> str:
    types = _Types(api)
    name = class_name(msg.qualified_name)
    fields = []
    for f in msg.fields:
        comment = _or(f.comment, f"The {f.name} field.")
        fields.append(
            {
                "name": field_name(f.name),
                "json": f.json_name,
                "type": types.field(f),
                "param_doc": html(first_paragraph(comment)),
                "setter_doc": javadoc(
                    f"Sets {{@code {f.json_name}}}: {html(first_paragraph(comment))}",
                    4,
                    [
                        f"@param value the new value{'; null clears it' if f.nullable else ''}",
                        "@return this builder",
                    ],
                ),
                "decode": types.decode_field(f),
                "encode": types.encode_lines(f),
                "normalise": types.normalise(f),
                "shown": types.shown(f),
            }
        )
    oneofs = [{"name": o.name, "members": [field_name(n) for n in o.fields]} for o in msg.oneofs]
    all_types = " ".join(str(f["type"]) for f in fields)
    doc_text = html(_or(msg.comment, f"The message {msg.full_name}."))
    doc_text += f"\n\nProto message {{@code {msg.full_name}}}."
    tags = [f"@param {f['name']} {f['param_doc']}" for f in fields]
    return render(
        "java/message.java.j2",
        header=f"// {HEADER}",
        package=package,
        name=name,
        doc=javadoc(doc_text, 0, tags),
        fields=fields,
        oneofs=oneofs,
        known=", ".join(string(f.json_name) for f in msg.fields),
        uses_list="List<" in all_types,
        uses_map="Map<" in all_types,
        uses_instant="Instant" in all_types,
    )


def _client(api: m.Api, svc: m.Service, package: str) -> str:
    types = _Types(api)
    methods = []
    for meth in svc.methods:
        request = class_name(api.message(meth.request).qualified_name)
        response = class_name(api.message(meth.response).qualified_name)
        cache = (
            f"new CachePolicy({string(meth.cache.resource)}, {string(meth.cache.key_field)})"
            if meth.cache
            else "null"
        )
        invalidates = (
            f"new Invalidation({string(meth.invalidates.resource)}, "
            f"{string(meth.invalidates.key_field)})"
            if meth.invalidates
            else "null"
        )
        summary = html(_or(meth.comment, f"Calls {meth.name}."))
        facts = (
            f"\n\nHTTP: {{@code {meth.http_method} {meth.path.template}}}; "
            f"{meth.idempotency.name.lower().replace('_', '-')}; auth {meth.auth.name.lower()}"
            + ("; cacheable" if meth.cache else "")
            + ("; admin only" if meth.admin else "")
            + "."
        )
        methods.append(
            {
                "name": method_name(meth.name),
                "constant": constant_name(meth.name),
                "request": request,
                "response": response,
                "descriptor_args": [
                    string(svc.full_name),
                    string(meth.name),
                    string(meth.http_method),
                    string(meth.path.template),
                    _list(meth.path_params),
                    _list(meth.query_params),
                    _list(meth.body_fields),
                    f"Idempotency.{meth.idempotency.name}",
                    f"Auth.{meth.auth.name}",
                    cache,
                    invalidates,
                    str(meth.admin).lower(),
                ],
                "constant_doc": javadoc(f"The descriptor of {{@code {meth.name}}}.", 2),
                "doc": javadoc(
                    summary + facts,
                    2,
                    [
                        "@param request the request",
                        "@return the response",
                        "@throws dev.secinfra.errors.SecinfraException when the call fails",
                    ],
                ),
                "doc_opts": javadoc(
                    summary + facts,
                    2,
                    [
                        "@param request the request",
                        "@param options per-call options over the client's defaults",
                        "@return the response",
                        "@throws dev.secinfra.errors.SecinfraException when the call fails",
                    ],
                ),
                "doc_async": javadoc(
                    f"Asynchronous {{@link #{method_name(meth.name)}({request})}}.",
                    2,
                    [
                        "@param request the request",
                        "@return the response, or a future completed exceptionally with a "
                        "{@link dev.secinfra.errors.SecinfraException}",
                    ],
                ),
                "doc_async_opts": javadoc(
                    f"Asynchronous {{@link #{method_name(meth.name)}({request}, CallOptions)}}.",
                    2,
                    [
                        "@param request the request",
                        "@param options per-call options over the client's defaults",
                        "@return the response, or a future completed exceptionally with a "
                        "{@link dev.secinfra.errors.SecinfraException}",
                    ],
                ),
            }
        )
    del types
    return render(
        "java/client.java.j2",
        header=f"// {HEADER}",
        package=package,
        name=client_class_name(svc),
        doc=javadoc(
            html(_or(svc.comment, f"The service {svc.full_name}."))
            + f"\n\nClient of {{@code {svc.full_name}}}; obtain it from the SDK client.",
            0,
        ),
        methods=methods,
        uses_cache=any(meth.cache for meth in svc.methods),
        uses_invalidation=any(meth.invalidates for meth in svc.methods),
    )


def _list(items: tuple[str, ...]) -> str:
    return "List.of(" + ", ".join(string(i) for i in items) + ")"


def _reference(api: m.Api) -> str:
    types = _Types(api)
    services = []
    for svc in api.services:
        rpcs = []
        for meth in svc.methods:
            request = class_name(api.message(meth.request).qualified_name)
            response = class_name(api.message(meth.response).qualified_name)
            cache = "not cached"
            if meth.cache:
                key = f", key `{meth.cache.key_field}`" if meth.cache.key_field else ""
                cache = f"cacheable (family `{meth.cache.resource}`{key})"
            rpcs.append(
                {
                    "name": meth.name,
                    "signature": (
                        f"{response} {accessor_name(svc)}().{method_name(meth.name)}"
                        f"({request} request[, CallOptions options])"
                    ),
                    "summary": first_paragraph(meth.comment),
                    "http": f"{meth.http_method} {meth.path.template}",
                    "idempotency": meth.idempotency.name,
                    "auth": meth.auth.name,
                    "cache": cache,
                    "admin": meth.admin,
                }
            )
        services.append(
            {
                "name": svc.full_name,
                "client": client_class_name(svc),
                "accessor": accessor_name(svc),
                "summary": first_paragraph(svc.comment),
                "rpcs": rpcs,
            }
        )
    messages = [
        {
            "name": class_name(msg.qualified_name),
            "full_name": msg.full_name,
            "summary": first_paragraph(msg.comment),
            "fields": [
                {
                    "name": field_name(f.name),
                    "json": f.json_name,
                    "type": types.field(f),
                    "comment": first_paragraph(f.comment).replace("|", "\\|"),
                }
                for f in msg.fields
            ],
        }
        for msg in api.messages
    ]
    enums = [
        {
            "name": class_name(e.qualified_name),
            "full_name": e.full_name,
            "summary": first_paragraph(e.comment),
            "items": [
                {
                    "name": constant(v),
                    "wire": v.wire_name,
                    "comment": first_paragraph(v.comment).replace("|", "\\|"),
                }
                for v in e.values
            ],
        }
        for e in api.enums
    ]
    return render(
        "java/reference.md.j2",
        header=f"<!-- {HEADER} -->",
        services=services,
        messages=messages,
        enums=enums,
    )


def generate(api: m.Api, layout: Layout) -> list[Output]:
    """The Java SDK's gen package, and its reference page."""
    _check_names(api)
    package = _package(layout.sdk_java)
    files: dict[str, str] = {
        "package-info.java": render(
            "java/package-info.java.j2", header=f"// {HEADER}", package=package
        )
    }
    for enum in api.enums:
        files[f"{class_name(enum.qualified_name)}.java"] = _enum(enum, package)
    for msg in api.messages:
        files[f"{class_name(msg.qualified_name)}.java"] = _message(api, msg, package)
    for svc in api.services:
        files[f"{client_class_name(svc)}.java"] = _client(api, svc, package)
    folder, _, page = REFERENCE_PAGE.rpartition("/")
    return [
        Output(layout.sdk_java, files, exclusive=True),
        Output(folder, {page: _reference(api)}, exclusive=False),
    ]
