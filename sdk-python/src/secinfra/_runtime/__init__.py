"""The hand-written runtime that generated service clients call.

Generated code is thin: a client method builds its request model and hands it,
with the RPC's `MethodDescriptor`, to a `Transport`. Policy (retries, caching,
identity) lives behind that interface, never in generated code.
"""

from ._descriptor import (
    Auth,
    CachePolicy,
    CallOptions,
    Idempotency,
    Invalidation,
    MethodDescriptor,
    RequestMessage,
    ResponseMessage,
    Transport,
)

__all__ = [
    "Auth",
    "CachePolicy",
    "CallOptions",
    "Idempotency",
    "Invalidation",
    "MethodDescriptor",
    "RequestMessage",
    "ResponseMessage",
    "Transport",
]
