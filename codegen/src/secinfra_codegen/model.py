"""The language-neutral API model every target renders from.

The front end (`secinfra_codegen.loader`) builds it from a protoc descriptor set
and validates it; targets only read it. Everything is a frozen dataclass, so a
target cannot change what another target sees.

Names: ``full_name`` is the proto full name without the leading dot
(``secinfra.v1.Secret.Version``); ``qualified_name`` drops the package
(``Secret.Version``). JSON names are the proto field names.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class Kind(enum.Enum):
    """What a field's value (or a map key/value) is on the wire."""

    SCALAR = "scalar"
    ENUM = "enum"
    MESSAGE = "message"
    TIMESTAMP = "timestamp"  # google.protobuf.Timestamp: RFC 3339 string
    STRUCT = "struct"  # google.protobuf.Struct: a JSON object


# Proto scalar type names, as written in .proto files.
INT32_TYPES = frozenset({"int32", "sint32", "sfixed32"})
UINT32_TYPES = frozenset({"uint32", "fixed32"})
INT64_TYPES = frozenset({"int64", "sint64", "sfixed64"})
UINT64_TYPES = frozenset({"uint64", "fixed64"})
INTEGER_TYPES = INT32_TYPES | UINT32_TYPES | INT64_TYPES | UINT64_TYPES
SCALAR_TYPES = INTEGER_TYPES | {"double", "float", "bool", "string", "bytes"}
#: String fields that hold credentials (join tokens, JWTs, ID tokens): every
#: target's string form of a message redacts them, as it does bytes fields
#: (spec 8.7.7, 11.6.2). Matched by proto field name.
SENSITIVE_STRING_FIELDS = frozenset({"token", "join_token", "jwt", "oidc_id_token"})


@dataclass(frozen=True)
class TypeRef:
    """The type of one value: a scalar, an enum, a message or a well-known type."""

    kind: Kind
    scalar: str = ""  # proto scalar name when kind is SCALAR
    ref: str = ""  # full name when kind is ENUM or MESSAGE

    @property
    def is_integer(self) -> bool:
        return self.kind is Kind.SCALAR and self.scalar in INTEGER_TYPES

    @property
    def is_64bit(self) -> bool:
        """Travels as a JSON string (int64, uint64, fixed64 and friends)."""
        return self.kind is Kind.SCALAR and self.scalar in INT64_TYPES | UINT64_TYPES


@dataclass(frozen=True)
class Field:
    """One message field. ``type`` is the element type for repeated fields and
    the value type for maps (``map_key`` is then set)."""

    name: str
    json_name: str
    number: int
    type: TypeRef
    repeated: bool
    map_key: TypeRef | None
    optional: bool  # proto3 `optional`: explicit presence
    oneof: str | None  # name of the (real, non-synthetic) oneof group
    comment: str

    @property
    def is_map(self) -> bool:
        return self.map_key is not None

    @property
    def is_list(self) -> bool:
        return self.repeated and self.map_key is None

    @property
    def nullable(self) -> bool:
        """Absent means None rather than the proto3 zero value."""
        if self.repeated:
            return False
        return (
            self.optional
            or self.oneof is not None
            or self.type.kind in (Kind.MESSAGE, Kind.TIMESTAMP, Kind.STRUCT)
        )


@dataclass(frozen=True)
class Oneof:
    name: str
    fields: tuple[str, ...]  # field names, in declaration order
    comment: str


@dataclass(frozen=True)
class Message:
    full_name: str
    qualified_name: str
    file: str  # proto file path the message is declared in
    fields: tuple[Field, ...]
    oneofs: tuple[Oneof, ...]
    comment: str

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)


@dataclass(frozen=True)
class EnumValue:
    name: str  # proto name: ERROR_CODE_PERMISSION_DENIED
    short_name: str  # prefix stripped: PERMISSION_DENIED
    wire_name: str  # on the wire: permission_denied
    number: int
    comment: str


@dataclass(frozen=True)
class Enum:
    full_name: str
    qualified_name: str
    file: str
    values: tuple[EnumValue, ...]
    comment: str

    @property
    def zero(self) -> EnumValue:
        """The proto3 default (number 0), which unknown strings map to."""
        return next(v for v in self.values if v.number == 0)


class Idempotency(enum.Enum):
    READ_ONLY = "read_only"
    IDEMPOTENT = "idempotent"
    NON_IDEMPOTENT = "non_idempotent"


class Auth(enum.Enum):
    MTLS = "mtls"
    NONE = "none"


@dataclass(frozen=True)
class CachePolicy:
    cacheable: bool
    resource: str
    key_field: str


@dataclass(frozen=True)
class Invalidation:
    resource: str
    key_field: str


@dataclass(frozen=True)
class PathVariable:
    field: str
    multi_segment: bool  # `{field=**}`: one or more segments, may contain '/'


@dataclass(frozen=True)
class PathTemplate:
    """A parsed `secinfra.v1.rpc` path such as ``/v1/secrets/{name=**}:metadata``.

    ``parts`` alternates literal text and variables in order.
    """

    template: str
    parts: tuple[str | PathVariable, ...]
    verb: str  # the `:verb` suffix without the colon, or ""

    @property
    def variables(self) -> tuple[PathVariable, ...]:
        return tuple(p for p in self.parts if isinstance(p, PathVariable))


@dataclass(frozen=True)
class Example:
    """An RPC's worked example (``Rpc.example``): request and response as parsed
    JSON, placeholders and abbreviations left as written."""

    request: Any
    response: Any


@dataclass(frozen=True)
class Method:
    name: str
    snake_name: str
    service: str  # service full name
    request: str  # message full name
    response: str  # message full name
    http_method: str
    path: PathTemplate
    idempotency: Idempotency
    auth: Auth
    cache: CachePolicy | None
    invalidates: Invalidation | None
    admin: bool
    path_params: tuple[str, ...]
    query_params: tuple[str, ...]
    body_fields: tuple[str, ...]
    comment: str
    example: Example | None = None


@dataclass(frozen=True)
class Service:
    full_name: str
    name: str
    file: str
    methods: tuple[Method, ...]
    comment: str


@dataclass(frozen=True)
class File:
    """One proto file of the wire API."""

    path: str  # as given to protoc: secinfra/v1/secrets.proto
    package: str
    stem: str  # secrets
    messages: tuple[Message, ...]  # nested ones flattened, in declaration order
    enums: tuple[Enum, ...]
    services: tuple[Service, ...]
    imports: tuple[str, ...]  # other wire-API files this one refers to
    comment: str


@dataclass(frozen=True)
class Api:
    """Every wire-API file, with lookups across files."""

    files: tuple[File, ...]

    def message(self, full_name: str) -> Message:
        for f in self.files:
            for m in f.messages:
                if m.full_name == full_name:
                    return m
        raise KeyError(full_name)

    def enum(self, full_name: str) -> Enum:
        for f in self.files:
            for e in f.enums:
                if e.full_name == full_name:
                    return e
        raise KeyError(full_name)

    def file(self, path: str) -> File:
        for f in self.files:
            if f.path == path:
                return f
        raise KeyError(path)

    @property
    def messages(self) -> tuple[Message, ...]:
        return tuple(m for f in self.files for m in f.messages)

    @property
    def enums(self) -> tuple[Enum, ...]:
        return tuple(e for f in self.files for e in f.enums)

    @property
    def services(self) -> tuple[Service, ...]:
        return tuple(s for f in self.files for s in f.services)
