"""Front end: descriptor set -> validated `model.Api`.

Rules enforced here (each failure names the element):

- every service, RPC, message, field, oneof, enum and enum value has a comment
  (leading, or trailing when there is no leading one): it is the API reference;
- every RPC is unary and sets ``(secinfra.v1.rpc)`` with an HTTP method, a path
  template and a non-UNSPECIFIED idempotency;
- path variables name top-level, singular string or integer fields of the
  request (``{x=**}`` only string fields), each at most once;
- fields not bound in the path travel in the query string for GET and DELETE,
  so they must be scalars, enums or timestamps (or repeated ones);
- only the well-known types google.protobuf.Timestamp and Struct are used;
- cache key fields and invalidation key fields name request fields;
- an RPC's example (``Rpc.example``) is JSON that names only fields of its
  request and response messages, each value of the field's JSON type.

Files that declare custom options (``extend google.protobuf.*Options``) and no
services, such as options.proto, describe the API rather than being part of
it: they get no models.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from google.protobuf import descriptor_pb2 as d

from . import model as m
from .errors import ValidationError
from .naming import enum_short_name, snake
from .protoc import DescriptorSet

FDP = d.FieldDescriptorProto

_SCALARS: dict[int, str] = {
    FDP.TYPE_DOUBLE: "double",
    FDP.TYPE_FLOAT: "float",
    FDP.TYPE_INT64: "int64",
    FDP.TYPE_UINT64: "uint64",
    FDP.TYPE_INT32: "int32",
    FDP.TYPE_FIXED64: "fixed64",
    FDP.TYPE_FIXED32: "fixed32",
    FDP.TYPE_BOOL: "bool",
    FDP.TYPE_STRING: "string",
    FDP.TYPE_BYTES: "bytes",
    FDP.TYPE_UINT32: "uint32",
    FDP.TYPE_SFIXED32: "sfixed32",
    FDP.TYPE_SFIXED64: "sfixed64",
    FDP.TYPE_SINT32: "sint32",
    FDP.TYPE_SINT64: "sint64",
}

_WELL_KNOWN = {
    "google.protobuf.Timestamp": m.Kind.TIMESTAMP,
    "google.protobuf.Struct": m.Kind.STRUCT,
}

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
QUERY_METHODS = frozenset({"GET", "DELETE"})

# Source-info path numbers (descriptor.proto field numbers).
_FILE_MESSAGE, _FILE_ENUM, _FILE_SERVICE = 4, 5, 6
_MSG_FIELD, _MSG_NESTED, _MSG_ENUM, _MSG_ONEOF = 2, 3, 4, 8
_ENUM_VALUE = 2
_SERVICE_METHOD = 2

_VARIABLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(=\*\*)?\}")
_LITERAL = re.compile(r"[A-Za-z0-9._~-]+")
_VERB = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")


def clean_comment(text: str) -> str:
    """Strip a protoc comment: drop a `/**` doc-star, dedent, trim."""
    lines = [line.rstrip() for line in text.split("\n")]
    if lines and lines[0].startswith("*"):
        lines[0] = lines[0][1:]
    return textwrap.dedent("\n".join(lines)).strip()


def parse_path(template: str) -> m.PathTemplate:
    """Parse an rpc path template; raise ValueError saying what is wrong."""
    if not template.startswith("/"):
        raise ValueError("must start with '/'")
    main, verb = template, ""
    last_close = template.rfind("}")
    colon = template.find(":", last_close + 1)
    if colon != -1:
        main, verb = template[:colon], template[colon + 1 :]
        if "/" in verb:
            raise ValueError("':verb' must end the path")
        if not _VERB.fullmatch(verb):
            raise ValueError(f"bad ':verb' suffix {verb!r}")
    parts: list[str | m.PathVariable] = []
    pos = 0
    for match in _VARIABLE.finditer(main):
        literal = main[pos : match.start()]
        if not literal.endswith("/"):
            raise ValueError(f"variable {match.group(0)} must fill a whole segment")
        end = match.end()
        if end < len(main) and main[end] != "/":
            raise ValueError(f"variable {match.group(0)} must fill a whole segment")
        parts.append(literal)
        parts.append(m.PathVariable(match.group(1), match.group(2) is not None))
        pos = end
    parts.append(main[pos:])
    if main.endswith("/") and main != "/":
        raise ValueError("must not end with '/'")
    for index, part in enumerate(parts):
        if isinstance(part, str):
            if "{" in part or "}" in part:
                raise ValueError("variables must be '{field}' or '{field=**}' (snake_case field)")
            if ":" in part:
                raise ValueError("':' is only allowed before the final verb")
            segments = part.split("/")[1:]
            if index < len(parts) - 1:
                segments = segments[:-1]  # the empty piece before a variable
            for segment in segments:
                if not _LITERAL.fullmatch(segment):
                    raise ValueError(f"bad path segment {segment!r}")
    names = [p.field for p in parts if isinstance(p, m.PathVariable)]
    if len(set(names)) != len(names):
        raise ValueError("a variable appears twice")
    if sum(1 for p in parts if isinstance(p, m.PathVariable) and p.multi_segment) > 1:
        raise ValueError("at most one '{field=**}' variable")
    return m.PathTemplate(template=template, parts=tuple(p for p in parts if p != ""), verb=verb)


def is_options_file(f: d.FileDescriptorProto) -> bool:
    return bool(f.extension) and not f.service


@dataclass
class _Ctx:
    """Per-file state while walking one FileDescriptorProto."""

    proto: d.FileDescriptorProto
    comments: dict[tuple[int, ...], str]
    problems: list[str]
    map_entries: dict[str, d.DescriptorProto] = field(default_factory=dict)

    def comment(self, path: tuple[int, ...], element: str) -> str:
        text = self.comments.get(path, "")
        if not text:
            self.problems.append(
                f"{self.proto.name}: {element} has no comment (comments are the API reference text)"
            )
        return text


def _comments(f: d.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    out: dict[tuple[int, ...], str] = {}
    for loc in f.source_code_info.location:
        text = clean_comment(loc.leading_comments)
        if not text:
            text = clean_comment(loc.trailing_comments)
        if text:
            out[tuple(loc.path)] = text
    return out


class Loader:
    """Build the model for the wire-API files of one descriptor set."""

    def __init__(self, ds: DescriptorSet) -> None:
        self.ds = ds
        self.problems: list[str] = []
        by_name = {f.name: f for f in ds.files}
        self.wire_files = [
            by_name[name] for name in ds.inputs if not is_options_file(by_name[name])
        ]
        wire = {f.name for f in self.wire_files}
        # full name -> (kind, file) for every type the wire API may reference
        self.types: dict[str, tuple[str, str]] = {}
        self.foreign: dict[str, str] = {}  # type in a non-wire file -> its file
        for f in ds.files:
            for kind, full in _all_types(f):
                if f.name in wire:
                    self.types[full] = (kind, f.name)
                else:
                    self.foreign[full] = f.name

    def load(self) -> m.Api:
        files = tuple(self._file(f) for f in self.wire_files)
        stems: dict[str, str] = {}
        for f in files:
            if f.stem in stems:
                self.problems.append(
                    f"{f.path}: file name clashes with {stems[f.stem]} (generated "
                    "modules are named after the file)"
                )
            stems[f.stem] = f.path
        if self.problems:
            raise ValidationError(self.problems)
        return m.Api(files=files)

    # -- files, messages, enums ------------------------------------------------

    def _file(self, f: d.FileDescriptorProto) -> m.File:
        ctx = _Ctx(proto=f, comments=_comments(f), problems=self.problems)
        messages: list[m.Message] = []
        enums: list[m.Enum] = []
        for msg in f.message_type:
            self._collect_maps(ctx, msg, f.package)
        for i, msg in enumerate(f.message_type):
            self._message(ctx, msg, (_FILE_MESSAGE, i), "", messages, enums)
        for i, en in enumerate(f.enum_type):
            enums.append(self._enum(ctx, en, (_FILE_ENUM, i), ""))
        services = tuple(self._service(ctx, s, (_FILE_SERVICE, i)) for i, s in enumerate(f.service))
        wire_names = {w.name for w in self.wire_files}
        imports = tuple(dep for dep in f.dependency if dep in wire_names)
        return m.File(
            path=f.name,
            package=f.package,
            stem=PurePosixPath(f.name).stem,
            messages=tuple(messages),
            enums=tuple(enums),
            services=services,
            imports=imports,
            comment=ctx.comments.get((12,), ""),  # leading comment of `syntax`
        )

    def _collect_maps(self, ctx: _Ctx, msg: d.DescriptorProto, scope: str) -> None:
        full = f"{scope}.{msg.name}" if scope else msg.name
        if msg.options.map_entry:
            ctx.map_entries[full] = msg
        for nested in msg.nested_type:
            self._collect_maps(ctx, nested, full)

    def _message(
        self,
        ctx: _Ctx,
        msg: d.DescriptorProto,
        path: tuple[int, ...],
        outer: str,
        messages: list[m.Message],
        enums: list[m.Enum],
    ) -> None:
        if msg.options.map_entry:
            return
        qualified = f"{outer}.{msg.name}" if outer else msg.name
        full = _join(ctx.proto.package, qualified)
        comment = ctx.comment(path, f"message {full}")
        real_oneofs = [
            i
            for i, _ in enumerate(msg.oneof_decl)
            if not any(
                fd.HasField("oneof_index") and fd.oneof_index == i and fd.proto3_optional
                for fd in msg.field
            )
        ]
        fields = tuple(
            self._field(ctx, msg, fd, (*path, _MSG_FIELD, i), full)
            for i, fd in enumerate(msg.field)
        )
        oneofs = tuple(
            m.Oneof(
                name=msg.oneof_decl[i].name,
                fields=tuple(f.name for f in fields if f.oneof == msg.oneof_decl[i].name),
                comment=ctx.comment(
                    (*path, _MSG_ONEOF, i), f"oneof {full}.{msg.oneof_decl[i].name}"
                ),
            )
            for i in real_oneofs
        )
        messages.append(
            m.Message(
                full_name=full,
                qualified_name=qualified,
                file=ctx.proto.name,
                fields=fields,
                oneofs=oneofs,
                comment=comment,
            )
        )
        for i, nested in enumerate(msg.nested_type):
            self._message(ctx, nested, (*path, _MSG_NESTED, i), qualified, messages, enums)
        for i, en in enumerate(msg.enum_type):
            enums.append(self._enum(ctx, en, (*path, _MSG_ENUM, i), qualified))

    def _field(
        self,
        ctx: _Ctx,
        msg: d.DescriptorProto,
        fd: d.FieldDescriptorProto,
        path: tuple[int, ...],
        owner: str,
    ) -> m.Field:
        element = f"field {owner}.{fd.name}"
        comment = ctx.comment(path, element)
        repeated = fd.label == FDP.LABEL_REPEATED
        map_key: m.TypeRef | None = None
        type_ref = self._type(fd, element)
        entry = ctx.map_entries.get(fd.type_name.lstrip("."))
        if fd.type == FDP.TYPE_MESSAGE and entry is not None:
            key_fd, value_fd = entry.field[0], entry.field[1]
            map_key = self._type(key_fd, element + " (map key)")
            type_ref = self._type(value_fd, element + " (map value)")
        oneof: str | None = None
        if fd.HasField("oneof_index") and not fd.proto3_optional:
            oneof = msg.oneof_decl[fd.oneof_index].name
        return m.Field(
            name=fd.name,
            json_name=fd.name,
            number=fd.number,
            type=type_ref,
            repeated=repeated,
            map_key=map_key,
            optional=fd.proto3_optional,
            oneof=oneof,
            comment=comment,
        )

    def _type(self, fd: d.FieldDescriptorProto, element: str) -> m.TypeRef:
        if fd.type in _SCALARS:
            return m.TypeRef(m.Kind.SCALAR, scalar=_SCALARS[fd.type])
        full = fd.type_name.lstrip(".")
        if full in _WELL_KNOWN:
            return m.TypeRef(_WELL_KNOWN[full], ref=full)
        if fd.type == FDP.TYPE_GROUP:
            self.problems.append(f"{element}: groups are not supported")
        elif full.startswith("google.protobuf."):
            self.problems.append(
                f"{element}: well-known type {full} is not supported (only "
                "google.protobuf.Timestamp and google.protobuf.Struct)"
            )
        elif full in self.foreign:
            self.problems.append(
                f"{element}: refers to {full} from {self.foreign[full]}, which is "
                "not part of the wire API"
            )
        kind = m.Kind.ENUM if fd.type == FDP.TYPE_ENUM else m.Kind.MESSAGE
        return m.TypeRef(kind, ref=full)

    def _enum(
        self, ctx: _Ctx, en: d.EnumDescriptorProto, path: tuple[int, ...], outer: str
    ) -> m.Enum:
        qualified = f"{outer}.{en.name}" if outer else en.name
        full = _join(ctx.proto.package, qualified)
        comment = ctx.comment(path, f"enum {full}")
        values: list[m.EnumValue] = []
        seen: dict[str, str] = {}
        for i, v in enumerate(en.value):
            short = enum_short_name(en.name, v.name)
            wire = short.lower()
            if wire in seen:
                self.problems.append(
                    f"enum {full}: values {seen[wire]} and {v.name} share the wire name {wire!r}"
                )
            seen[wire] = v.name
            values.append(
                m.EnumValue(
                    name=v.name,
                    short_name=short,
                    wire_name=wire,
                    number=v.number,
                    comment=ctx.comment((*path, _ENUM_VALUE, i), f"enum value {full}.{v.name}"),
                )
            )
        if not any(v.number == 0 for v in values):
            self.problems.append(f"enum {full}: needs a value with number 0")
        return m.Enum(
            full_name=full,
            qualified_name=qualified,
            file=ctx.proto.name,
            values=tuple(values),
            comment=comment,
        )

    # -- services ----------------------------------------------------------------

    def _service(
        self, ctx: _Ctx, svc: d.ServiceDescriptorProto, path: tuple[int, ...]
    ) -> m.Service:
        full = _join(ctx.proto.package, svc.name)
        comment = ctx.comment(path, f"service {full}")
        methods = []
        for i, md in enumerate(svc.method):
            method = self._method(ctx, md, (*path, _SERVICE_METHOD, i), full)
            if method is not None:
                methods.append(method)
        return m.Service(
            full_name=full,
            name=svc.name,
            file=ctx.proto.name,
            methods=tuple(methods),
            comment=comment,
        )

    def _method(
        self,
        ctx: _Ctx,
        md: d.MethodDescriptorProto,
        path: tuple[int, ...],
        service: str,
    ) -> m.Method | None:
        element = f"RPC {service}.{md.name}"
        comment = ctx.comment(path, element)
        problems: list[str] = []
        if md.client_streaming or md.server_streaming:
            problems.append("streaming RPCs are not supported")
        request_name = md.input_type.lstrip(".")
        response_name = md.output_type.lstrip(".")
        for role, name in (("request", request_name), ("response", response_name)):
            if self.types.get(name, ("", ""))[0] != "message":
                problems.append(
                    f"{role} type {name} must be a message of the wire API (not a well-known type)"
                )
        opt = self.ds.rpc_option(md)
        if opt is None:
            problems.append(
                "missing option (secinfra.v1.rpc) = { method: ... path: ... idempotency: ... }"
            )
        if problems:
            self.problems.extend(f"{element}: {p}" for p in problems)
            return None
        assert opt is not None
        request = _find_message(self.ds.files, request_name)
        req_fields = {f.name: f for f in request.field}

        http_method = opt.method
        if http_method not in HTTP_METHODS:
            problems.append(
                f"option method {http_method!r} must be one of {', '.join(HTTP_METHODS)}"
            )
        template: m.PathTemplate | None = None
        if not opt.path:
            problems.append("option path is empty")
        else:
            try:
                template = parse_path(opt.path)
            except ValueError as exc:
                problems.append(f"option path {opt.path!r}: {exc}")
        if opt.idempotency == 0:
            problems.append("option idempotency must be set (not IDEMPOTENCY_UNSPECIFIED)")

        path_params: list[str] = []
        for var in template.variables if template else ():
            fd = req_fields.get(var.field)
            where = f"path variable {{{var.field}}}"
            if fd is None:
                problems.append(f"{where} names no field of {request_name}")
                continue
            if fd.label == FDP.LABEL_REPEATED:
                problems.append(f"{where}: {request_name}.{fd.name} is repeated")
                continue
            scalar = _SCALARS.get(fd.type, "")
            if var.multi_segment and scalar != "string":
                problems.append(f"{where}: a '=**' variable needs a string field")
            elif scalar != "string" and scalar not in m.INTEGER_TYPES:
                problems.append(f"{where}: {request_name}.{fd.name} must be a string or integer")
            path_params.append(var.field)

        rest = [f for f in request.field if f.name not in path_params]
        query: list[str] = []
        body: list[str] = []
        if http_method in QUERY_METHODS:
            for fd in rest:
                entry_like = fd.type == FDP.TYPE_MESSAGE and fd.type_name.lstrip(".") not in (
                    "google.protobuf.Timestamp",
                )
                if entry_like:
                    problems.append(
                        f"field {request_name}.{fd.name} would travel in the query "
                        f"string of a {http_method}, which only carries scalars, "
                        "enums and timestamps"
                    )
                query.append(fd.name)
        else:
            body = [f.name for f in rest]

        cache: m.CachePolicy | None = None
        if opt.HasField("cache") and opt.cache.cacheable:
            cache = m.CachePolicy(True, opt.cache.resource, opt.cache.key_field)
            if not cache.resource:
                problems.append("option cache.resource is empty")
            if opt.idempotency != 1:
                problems.append("only IDEMPOTENCY_READ_ONLY RPCs may be cacheable")
            if cache.key_field and cache.key_field not in req_fields:
                problems.append(
                    f"option cache.key_field {cache.key_field!r} names no field of {request_name}"
                )
        invalidates: m.Invalidation | None = None
        if opt.HasField("invalidates"):
            invalidates = m.Invalidation(opt.invalidates.resource, opt.invalidates.key_field)
            if not invalidates.resource:
                problems.append("option invalidates.resource is empty")
            if invalidates.key_field and invalidates.key_field not in req_fields:
                problems.append(
                    f"option invalidates.key_field {invalidates.key_field!r} names no "
                    f"field of {request_name}"
                )
        example: m.Example | None = None
        if opt.HasField("example"):
            example = self._example(opt.example, request_name, response_name, problems)
        if problems or template is None:
            self.problems.extend(f"{element}: {p}" for p in problems)
            return None
        return m.Method(
            name=md.name,
            snake_name=snake(md.name),
            service=service,
            request=request_name,
            response=response_name,
            http_method=http_method,
            path=template,
            idempotency=_IDEMPOTENCY[opt.idempotency],
            auth=m.Auth.NONE if opt.auth == 2 else m.Auth.MTLS,
            cache=cache,
            invalidates=invalidates,
            admin=opt.admin,
            path_params=tuple(path_params),
            query_params=tuple(query),
            body_fields=tuple(body),
            comment=comment,
            example=example,
        )

    def _example(
        self, opt: Any, request_name: str, response_name: str, problems: list[str]
    ) -> m.Example | None:
        """Parse ``Rpc.example``; its JSON must name only fields of the messages."""
        parsed: list[Any] = []
        for role, text, message in (
            ("request", opt.request, request_name),
            ("response", opt.response, response_name),
        ):
            try:
                value = json.loads(text)
            except ValueError as exc:
                problems.append(f"option example.{role} is not JSON: {exc}")
                return None
            problems.extend(
                f"option example.{role}: {p}"
                for p in _example_problems(self.ds.files, message, value, role)
            )
            parsed.append(value)
        return m.Example(request=parsed[0], response=parsed[1])


_IDEMPOTENCY = {
    1: m.Idempotency.READ_ONLY,
    2: m.Idempotency.IDEMPOTENT,
    3: m.Idempotency.NON_IDEMPOTENT,
}


def _join(package: str, name: str) -> str:
    return f"{package}.{name}" if package else name


def _all_types(f: d.FileDescriptorProto) -> Iterator[tuple[str, str]]:
    def walk(msg: d.DescriptorProto, scope: str) -> Iterator[tuple[str, str]]:
        full = _join(scope, msg.name)
        yield "message", full
        for nested in msg.nested_type:
            yield from walk(nested, full)
        for en in msg.enum_type:
            yield "enum", _join(full, en.name)

    for msg in f.message_type:
        yield from walk(msg, f.package)
    for en in f.enum_type:
        yield "enum", _join(f.package, en.name)


def _is_stand_in(value: Any) -> bool:
    """A placeholder (``${...}``) or an abbreviation (ends in ``…``) in an example."""
    return isinstance(value, str) and (
        (value.startswith("${") and value.endswith("}")) or value.endswith("\u2026")
    )


def _example_problems(
    files: Sequence[d.FileDescriptorProto], message: str, value: Any, where: str
) -> Iterator[str]:
    """What in an example's JSON value does not fit ``message``'s fields."""
    if _is_stand_in(value):
        return
    if not isinstance(value, dict):
        yield f"{where}: {message} needs a JSON object"
        return
    fields = {f.name: f for f in _find_message(files, message).field}
    for name, item in value.items():
        fd = fields.get(name)
        if fd is None:
            yield f"{where}: {message} has no field {name!r}"
            continue
        yield from _example_value_problems(files, fd, item, f"{where}.{name}")


def _example_value_problems(
    files: Sequence[d.FileDescriptorProto], fd: Any, value: Any, where: str
) -> Iterator[str]:
    if _is_stand_in(value):
        return
    target = fd.type_name.lstrip(".")
    entry = None
    if fd.type == FDP.TYPE_MESSAGE and target not in _WELL_KNOWN:
        entry = _find_message(files, target)
    if entry is not None and entry.options.map_entry:
        if not isinstance(value, dict):
            yield f"{where}: a map needs a JSON object"
            return
        for key, item in value.items():
            yield from _example_value_problems(files, entry.field[1], item, f"{where}.{key}")
        return
    if fd.label == FDP.LABEL_REPEATED:
        if not isinstance(value, list):
            yield f"{where}: a repeated field needs a JSON array"
            return
        for index, item in enumerate(value):
            yield from _example_single_problems(files, fd, item, f"{where}.{index}")
        return
    yield from _example_single_problems(files, fd, value, where)


def _example_single_problems(
    files: Sequence[d.FileDescriptorProto], fd: Any, value: Any, where: str
) -> Iterator[str]:
    if _is_stand_in(value):
        return
    target = fd.type_name.lstrip(".")
    if fd.type == FDP.TYPE_MESSAGE:
        if target == "google.protobuf.Struct":
            ok = isinstance(value, dict)
        elif target == "google.protobuf.Timestamp":
            ok = isinstance(value, str)
        else:
            yield from _example_problems(files, target, value, where)
            return
    elif fd.type == FDP.TYPE_BOOL:
        ok = isinstance(value, bool)
    elif fd.type == FDP.TYPE_ENUM:
        en = _find_enum(files, target)
        names = [enum_short_name(en.name, v.name).lower() for v in en.value]
        if value not in names:
            yield f"{where}: {value!r} is not one of {', '.join(names)} (the wire names)"
        return
    elif fd.type in (FDP.TYPE_STRING, FDP.TYPE_BYTES):
        ok = isinstance(value, str)
    elif _SCALARS.get(fd.type, "") in m.INT64_TYPES | m.UINT64_TYPES:
        ok = isinstance(value, str)  # no 64-bit integer travels as a JSON number
    else:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok:
        yield f"{where}: {type(value).__name__} does not fit the field's type"


def _find_message(files: Sequence[d.FileDescriptorProto], full: str) -> Any:
    def walk(msg: d.DescriptorProto, scope: str) -> d.DescriptorProto | None:
        name = _join(scope, msg.name)
        if name == full:
            return msg
        for nested in msg.nested_type:
            found = walk(nested, name)
            if found is not None:
                return found
        return None

    for f in files:
        for msg in f.message_type:
            found = walk(msg, f.package)
            if found is not None:
                return found
    raise KeyError(full)


def _find_enum(files: Sequence[d.FileDescriptorProto], full: str) -> Any:
    def walk(enums: Sequence[Any], messages: Sequence[Any], scope: str) -> Any:
        for en in enums:
            if _join(scope, en.name) == full:
                return en
        for msg in messages:
            found = walk(msg.enum_type, msg.nested_type, _join(scope, msg.name))
            if found is not None:
                return found
        return None

    for f in files:
        found = walk(f.enum_type, f.message_type, f.package)
        if found is not None:
            return found
    raise KeyError(full)


def load_api(ds: DescriptorSet) -> m.Api:
    """Validate the descriptor set and build the model; raise ValidationError."""
    return Loader(ds).load()
