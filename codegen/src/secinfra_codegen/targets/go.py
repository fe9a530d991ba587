"""Go target: one package of models and service clients, plus a reference page.

Output:

- ``<layout.sdk_go>/`` (exclusive): a Go package named after the proto package
  (``secinfra.v1`` -> ``secinfrav1``) with ``doc.go``, ``wire.go`` (helpers),
  one ``<stem>.go`` of structs and enums per proto file and one
  ``<stem>_client.go`` per file with services. Formatted with ``gofmt``.
- ``docs/reference/sdk-go.md`` (not exclusive): the Go reference page.

Naming: messages and enums are named after their qualified name with the dots
removed (``Container.Item`` -> ``ContainerItem``); fields are the proto names
in Go's MixedCaps with the common initialisms upper-cased (``spiffe_id`` ->
``SpiffeID``); enum constants are the type name plus the value's short name
(``ErrorCodeNotFound``); service clients drop the ``Service`` suffix
(``SecretsService`` -> ``SecretsClient``).

Wire mapping (``encoding/json`` with struct tags): scalars and enums are
always encoded; pointers, lists, maps, bytes and Structs are ``omitempty``;
fields with presence (``optional``, oneof members, messages,
timestamps) are pointers; 64-bit integers carry the ``,string`` option (lists
use ``Int64s``/``Uint64s`` from ``wire.go``); enums are ``int32`` types with
``MarshalText``/``UnmarshalText`` (unknown strings decode to the zero value);
bytes are ``[]byte`` (standard base64); timestamps ``time.Time`` (encoded in
UTC); ``google.protobuf.Struct`` is ``map[string]any``. Shapes encoding/json
cannot carry faithfully (maps with bool keys, maps of 64-bit integers or
timestamps) are rejected with a `CodegenError` rather than generated wrong.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from typing import Any

from .. import model as m
from ..errors import CodegenError
from ..render import format_files, render
from . import HEADER, Layout, Output

MODULE = "github.com/secinfra/secinfra/sdk-go"
"""The Go module path of sdk-go/ (its go.mod)."""
RPC_IMPORT = f"{MODULE}/rpc"
"""The runtime contract the generated clients call."""
DOCS_DIR = "docs/reference"
DOCS_PAGE = "sdk-go.md"

# Initialisms written in capitals inside Go names (Go's own list, plus the
# domain's). Matched per snake_case word.
_INITIALISMS = frozenset(
    {
        "acl", "api", "ca", "crl", "csr", "dns", "html", "http", "https", "id", "ip",
        "json", "jwt", "pem", "rpc", "sql", "svid", "tls", "ttl", "uid",
        "uri", "url", "uuid", "xml",
    }
)  # fmt: skip


# Method names generated on every message type (a field must not take them).
_METHODS = frozenset({"MarshalJSON", "UnmarshalJSON", "String", "GoString"})

_GO_KEYWORDS = frozenset(
    {
        "break", "case", "chan", "const", "continue", "default", "defer", "else",
        "fallthrough", "for", "func", "go", "goto", "if", "import", "interface", "map",
        "package", "range", "return", "select", "struct", "switch", "type", "var",
    }
)  # fmt: skip


def camel(snake_name: str) -> str:
    """``spiffe_id`` -> ``SpiffeID``, ``cert_chain_pem`` -> ``CertChainPEM``."""
    words = [w for w in snake_name.split("_") if w]
    out = []
    for word in words:
        if word.lower() in _INITIALISMS:
            out.append(word.upper())
        else:
            out.append(word[:1].upper() + word[1:])
    name = "".join(out)
    if not name or not name[0].isalpha():
        name = "X" + name
    return name


def field_name(f: m.Field) -> str:
    return camel(f.name)


def type_name(qualified_name: str) -> str:
    return qualified_name.replace(".", "")


def enum_const(enum: m.Enum, value: m.EnumValue) -> str:
    return type_name(enum.qualified_name) + camel(value.short_name.lower())


def client_name(service: m.Service) -> str:
    return (service.name.removesuffix("Service") or service.name) + "Client"


def package_name(proto_package: str) -> str:
    """``secinfra.v1`` -> ``secinfrav1``; ``secinfra.kitchensink.v1`` -> ``kitchensinkv1``."""
    parts = proto_package.split(".")
    if len(parts) >= 2 and re.fullmatch(r"v[0-9]+(alpha[0-9]*|beta[0-9]*)?", parts[-1]):
        name = parts[-2] + parts[-1]
    else:
        name = parts[-1]
    name = re.sub(r"[^a-z0-9]", "", name.lower())
    if not name or name in _GO_KEYWORDS or not name[0].isalpha():
        raise CodegenError(f"proto package {proto_package!r} gives no usable Go package name")
    return name


def comment(text: str, indent: str = "") -> str:
    """``text`` as ``//`` comment lines (empty when there is no text)."""
    if not text.strip():
        return ""
    lines = text.rstrip().split("\n")
    return "\n".join(f"{indent}// {line}".rstrip() for line in lines) + "\n"


def go_string(text: str) -> str:
    """A Go interpreted string literal."""
    out = ['"']
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def first_paragraph(text: str) -> str:
    return " ".join(text.strip().split("\n\n")[0].split())


_SCALARS = {
    **dict.fromkeys(m.INT32_TYPES, "int32"),
    **dict.fromkeys(m.UINT32_TYPES, "uint32"),
    **dict.fromkeys(m.INT64_TYPES, "int64"),
    **dict.fromkeys(m.UINT64_TYPES, "uint64"),
    "double": "float64",
    "float": "float32",
    "bool": "bool",
    "string": "string",
    "bytes": "[]byte",
}


class _Types:
    """Go type expressions for fields; records which imports a file needs."""

    def __init__(self, api: m.Api) -> None:
        self.api = api
        self.uses_time = False

    def base(self, t: m.TypeRef) -> str:
        if t.kind is m.Kind.SCALAR:
            return _SCALARS[t.scalar]
        if t.kind is m.Kind.TIMESTAMP:
            self.uses_time = True
            return "time.Time"
        if t.kind is m.Kind.STRUCT:
            return "map[string]any"
        if t.kind is m.Kind.ENUM:
            return type_name(self.api.enum(t.ref).qualified_name)
        return type_name(self.api.message(t.ref).qualified_name)

    def field_type(self, f: m.Field, where: str) -> str:
        t = f.type
        if f.map_key is not None:
            key = f.map_key
            if key.kind is not m.Kind.SCALAR or key.scalar in ("bool", "bytes", "double", "float"):
                raise CodegenError(f"{where}: Go target: map keys of type {key.scalar} unsupported")
            if t.is_64bit or t.kind is m.Kind.TIMESTAMP or (t.scalar in ("double", "float")):
                raise CodegenError(
                    f"{where}: Go target: maps of {t.scalar or t.kind.value} values are unsupported"
                )
            value = self.base(t)
            if t.kind is m.Kind.MESSAGE:
                value = "*" + value
            return f"map[{self.base(key)}]{value}"
        if f.repeated:
            if t.is_64bit:
                return "Int64s" if t.scalar in m.INT64_TYPES else "Uint64s"
            value = self.base(t)
            if t.kind is m.Kind.MESSAGE:
                value = "*" + value
            return "[]" + value
        value = self.base(t)
        if f.nullable and t.kind is not m.Kind.STRUCT:
            return "*" + value
        return value

    @staticmethod
    def tag(f: m.Field) -> str:
        """Scalars and enums are always encoded (as Python's to_json does);
        what can be nil (pointers, lists, maps, bytes, Struct) is left out
        when nil, never sent as null."""
        opts = ""
        t = f.type
        if (
            f.repeated
            or f.map_key is not None
            or f.nullable
            or t.kind is m.Kind.STRUCT
            or (t.kind is m.Kind.SCALAR and t.scalar == "bytes")
        ):
            opts += ",omitempty"
        if t.is_64bit and not f.repeated and f.map_key is None:
            opts += ",string"
        return f'`json:"{f.json_name}{opts}"`'


@dataclass(frozen=True)
class _FieldView:
    name: str
    type: str
    tag: str
    doc: str
    timestamp: str  # "", "one" or "list": needs UTC normalisation on encode
    bytes: str  # "", "one" or "list": redacted from String()
    secret: str  # "", "one", "ptr" or "list": a credential, redacted from String()


def _check_unique(names: dict[str, str], name: str, what: str, where: str) -> None:
    if name in names:
        raise CodegenError(f"{where}: {what} maps to the Go name {name}, as does {names[name]}")
    names[name] = what


def _models(api: m.Api, file: m.File, package: str) -> str:
    types = _Types(api)
    enums = []
    top: dict[str, str] = {}
    for e in file.enums:
        name = type_name(e.qualified_name)
        _check_unique(top, name, e.full_name, file.path)
        values = []
        for v in e.values:
            const = enum_const(e, v)
            _check_unique(top, const, f"{e.full_name}.{v.name}", file.path)
            values.append(
                {
                    "const": const,
                    "number": v.number,
                    "wire": go_string(v.wire_name),
                    "doc": comment(v.comment, "\t"),
                }
            )
        enums.append(
            {
                "name": name,
                "lower": name[:1].lower() + name[1:],
                "doc": comment(e.comment or f"{name} is the enum {e.full_name}."),
                "members": values,
                "zero": enum_const(e, e.zero),
            }
        )
    messages = []
    for msg in file.messages:
        name = type_name(msg.qualified_name)
        _check_unique(top, name, msg.full_name, file.path)
        seen: dict[str, str] = {}
        fields = []
        for f in msg.fields:
            fname = field_name(f)
            where = f"{file.path}: {msg.full_name}.{f.name}"
            _check_unique(seen, fname, f.name, f"{file.path}: {msg.full_name}")
            if fname in _METHODS:
                raise CodegenError(f"{where}: the Go field {fname} clashes with a method")
            is_ts = f.type.kind is m.Kind.TIMESTAMP and f.map_key is None
            is_bytes = f.type.kind is m.Kind.SCALAR and f.type.scalar == "bytes"
            is_secret = (
                f.type.kind is m.Kind.SCALAR
                and f.type.scalar == "string"
                and f.name in m.SENSITIVE_STRING_FIELDS
                and f.map_key is None
            )
            if is_bytes and f.map_key is not None:
                raise CodegenError(f"{where}: Go target: maps of bytes values are unsupported")
            doc = f.comment
            if f.oneof:
                doc = (doc + "\n\n" if doc else "") + f"Member of the oneof {f.oneof}."
            fields.append(
                _FieldView(
                    name=fname,
                    type=types.field_type(f, where),
                    tag=types.tag(f),
                    doc=comment(doc, "\t"),
                    timestamp=("list" if f.repeated else "one") if is_ts else "",
                    bytes=("list" if f.repeated else "one") if is_bytes else "",
                    secret=(
                        ("list" if f.repeated else "ptr" if f.nullable else "one")
                        if is_secret
                        else ""
                    ),
                )
            )
        messages.append(
            {
                "name": name,
                "doc": comment(msg.comment or f"{name} is the message {msg.full_name}."),
                "fields": fields,
                "timestamps": [f for f in fields if f.timestamp],
                "redacted": [f for f in fields if f.bytes or f.secret],
            }
        )
    uses_fmt = any(msg["redacted"] for msg in messages)
    return render(
        "go/models.go.j2",
        header=f"// {HEADER}",
        source=file.path,
        package=package,
        enums=enums,
        messages=messages,
        uses_time=types.uses_time,
        uses_fmt=uses_fmt or bool(enums),
        uses_strconv=bool(enums),
        uses_json=any(msg["timestamps"] for msg in messages),
    )


def _descriptor_var(svc: m.Service, meth: m.Method) -> str:
    return "desc" + (svc.name + meth.name)


def _go_strings(items: tuple[str, ...]) -> str:
    if not items:
        return "nil"
    return "[]string{" + ", ".join(go_string(i) for i in items) + "}"


_IDEMPOTENCY = {
    m.Idempotency.READ_ONLY: "rpc.ReadOnly",
    m.Idempotency.IDEMPOTENT: "rpc.Idempotent",
    m.Idempotency.NON_IDEMPOTENT: "rpc.NonIdempotent",
}
_AUTH = {m.Auth.MTLS: "rpc.AuthMTLS", m.Auth.NONE: "rpc.AuthNone"}


def _method_views(api: m.Api, svc: m.Service) -> list[dict[str, Any]]:
    methods = []
    for meth in svc.methods:
        request = type_name(api.message(meth.request).qualified_name)
        response = type_name(api.message(meth.response).qualified_name)
        cache = "nil"
        if meth.cache is not None and meth.cache.cacheable:
            cache = (
                f"&rpc.CachePolicy{{Resource: {go_string(meth.cache.resource)}, "
                f"KeyField: {go_string(meth.cache.key_field)}}}"
            )
        invalidates = "nil"
        if meth.invalidates is not None:
            invalidates = (
                f"&rpc.Invalidation{{Resource: {go_string(meth.invalidates.resource)}, "
                f"KeyField: {go_string(meth.invalidates.key_field)}}}"
            )
        policy = _policy_text(meth)
        doc = (meth.comment.strip() + "\n\n" if meth.comment.strip() else "") + policy
        methods.append(
            {
                "name": meth.name,
                "var": _descriptor_var(svc, meth),
                "doc": comment(doc, ""),
                "request": request,
                "response": response,
                "service": go_string(svc.full_name),
                "rpc": go_string(meth.name),
                "http_method": go_string(meth.http_method),
                "path": go_string(meth.path.template),
                "path_params": _go_strings(meth.path_params),
                "query_params": _go_strings(meth.query_params),
                "body_fields": _go_strings(meth.body_fields),
                "idempotency": _IDEMPOTENCY[meth.idempotency],
                "auth": _AUTH[meth.auth],
                "cache": cache,
                "invalidates": invalidates,
                "admin": "true" if meth.admin else "false",
                "comment": meth.comment,
                "policy": policy,
            }
        )
    return methods


def _policy_text(meth: m.Method) -> str:
    parts = [
        f"HTTP: {meth.http_method} {meth.path.template}.",
        f"Idempotency: {meth.idempotency.value}.",
        f"Auth: {meth.auth.value}.",
    ]
    if meth.cache is not None and meth.cache.cacheable:
        key = f", keyed by {meth.cache.key_field}" if meth.cache.key_field else ""
        parts.append(f"Cached (family {meth.cache.resource}{key}).")
    if meth.invalidates is not None:
        key = f" {meth.invalidates.key_field}" if meth.invalidates.key_field else ""
        parts.append(f"Invalidates cached {meth.invalidates.resource}{key}.")
    if meth.admin:
        parts.append("Admin only.")
    return " ".join(parts)


def _client(api: m.Api, file: m.File, package: str) -> str:
    services = []
    for svc in file.services:
        services.append(
            {
                "name": client_name(svc),
                "prefix": client_name(svc).removesuffix("Client"),
                "full_name": svc.full_name,
                "doc": comment(
                    (svc.comment.strip() + "\n\n" if svc.comment.strip() else "")
                    + f"{client_name(svc)} calls {svc.full_name}; it is safe for concurrent use."
                ),
                "methods": _method_views(api, svc),
            }
        )
    return render(
        "go/client.go.j2",
        header=f"// {HEADER}",
        source=file.path,
        package=package,
        rpc_import=RPC_IMPORT,
        services=services,
    )


def _package(api: m.Api) -> str:
    packages = {f.package for f in api.files}
    if len(packages) != 1:
        raise CodegenError(f"Go target: expected one proto package, got {sorted(packages)}")
    return package_name(packages.pop())


def _files(api: m.Api) -> dict[str, str]:
    package = _package(api)
    proto_package = api.files[0].package
    files = {
        "doc.go": render(
            "go/doc.go.j2",
            header=f"// {HEADER}",
            package=package,
            proto_package=proto_package,
            sources=[f.path for f in api.files],
        ),
        "wire.go": render("go/wire.go.j2", header=f"// {HEADER}", package=package),
    }
    for file in api.files:
        files[f"{file.stem}.go"] = _models(api, file, package)
        if file.services:
            files[f"{file.stem}_client.go"] = _client(api, file, package)
    return files


def find_gofmt() -> str:
    found = shutil.which("gofmt")
    if found is None:
        raise CodegenError("gofmt not found on PATH (install Go 1.22 or later)")
    return found


def _reference(api: m.Api, package: str) -> str:
    types = _Types(api)
    services = []
    for svc in api.services:
        methods = []
        for view in _method_views(api, svc):
            meth = next(x for x in svc.methods if x.name == view["name"])
            methods.append(
                {
                    "name": meth.name,
                    "signature": (
                        f"func (c *{client_name(svc)}) {meth.name}(ctx context.Context, "
                        f"req *{package}.{view['request']}, opts ...rpc.CallOption) "
                        f"(*{package}.{view['response']}, error)"
                    ),
                    "doc": first_paragraph(meth.comment),
                    "http": f"{meth.http_method} {meth.path.template}",
                    "idempotency": meth.idempotency.value,
                    "auth": meth.auth.value,
                    "cache": (
                        f"cached, family `{meth.cache.resource}`"
                        + (f", key `{meth.cache.key_field}`" if meth.cache.key_field else "")
                        if meth.cache is not None and meth.cache.cacheable
                        else "not cached"
                    ),
                    "invalidates": (
                        f"`{meth.invalidates.resource}`"
                        + (
                            f" by `{meth.invalidates.key_field}`"
                            if meth.invalidates.key_field
                            else ""
                        )
                        if meth.invalidates is not None
                        else ""
                    ),
                }
            )
        services.append(
            {
                "name": svc.full_name,
                "client": client_name(svc),
                "doc": first_paragraph(svc.comment),
                "methods": methods,
            }
        )
    messages = []
    for msg in api.messages:
        messages.append(
            {
                "name": type_name(msg.qualified_name),
                "full_name": msg.full_name,
                "doc": first_paragraph(msg.comment),
                "fields": [
                    {
                        "name": field_name(f),
                        "json": f.json_name,
                        "type": types.field_type(f, msg.full_name),
                        "doc": _cell(first_paragraph(f.comment)),
                    }
                    for f in msg.fields
                ],
            }
        )
    enums = [
        {
            "name": type_name(e.qualified_name),
            "full_name": e.full_name,
            "doc": first_paragraph(e.comment),
            "members": [
                {
                    "const": enum_const(e, v),
                    "wire": v.wire_name,
                    "doc": _cell(first_paragraph(v.comment)),
                }
                for v in e.values
            ],
        }
        for e in api.enums
    ]
    return render(
        "go/reference.md.j2",
        header=f"<!-- {HEADER} -->",
        package=package,
        module=MODULE,
        services=services,
        messages=messages,
        enums=enums,
    )


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("`", "'")


def generate(api: m.Api, layout: Layout) -> list[Output]:
    files = _files(api)
    formatted = format_files(files, [find_gofmt(), "-w"], "gofmt")
    reference = _reference(api, _package(api))
    return [
        Output(layout.sdk_go, formatted, exclusive=True),
        Output(DOCS_DIR, {DOCS_PAGE: reference}, exclusive=False),
    ]
