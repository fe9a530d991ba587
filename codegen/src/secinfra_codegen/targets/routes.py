"""Server route table target: ``routes.py`` in the server's ``_gen`` package.

One `Route` per RPC with a compiled regex for its path template: ``{x}``
matches ``[^/:]+`` (one segment) and ``{x=**}`` matches ``[^:]+`` (secret
names may contain '/', never ':'); a ``:verb`` suffix matches literally.
"""

from __future__ import annotations

import re

from .. import model as m
from ..render import render
from . import HEADER, Layout, Output
from .python import class_name, docstring, module_name, py_tuple, string


def path_regex(template: m.PathTemplate) -> str:
    """The anchored regex for a path template, with one named group per variable."""
    out = ["^"]
    for part in template.parts:
        if isinstance(part, m.PathVariable):
            body = "[^:]+" if part.multi_segment else "[^/:]+"
            out.append(f"(?P<{part.field}>{body})")
        else:
            out.append(re.escape(part))
    if template.verb:
        out.append(re.escape(":" + template.verb))
    out.append("$")
    return "".join(out)


def _raw(pattern: str) -> str:
    if '"' in pattern or pattern.endswith("\\"):
        return string(pattern)
    return f'r"{pattern}"'


def generate(api: m.Api, layout: Layout) -> list[Output]:
    routes = []
    modules: set[str] = set()
    for svc in api.services:
        for meth in svc.methods:
            refs = []
            for full in (meth.request, meth.response):
                msg = api.message(full)
                module = module_name(api.file(msg.file))
                modules.add(module)
                refs.append(f"_{module}.{class_name(msg.qualified_name)}")
            routes.append(
                {
                    "service": string(svc.full_name),
                    "rpc": string(meth.name),
                    "handler": string(meth.snake_name),
                    "http_method": string(meth.http_method),
                    "path": string(meth.path.template),
                    "pattern": _raw(path_regex(meth.path)),
                    "path_params": py_tuple(meth.path_params),
                    "query_params": py_tuple(meth.query_params),
                    "body_fields": py_tuple(meth.body_fields),
                    "idempotency": meth.idempotency.name,
                    "auth": meth.auth.name,
                    "admin": str(meth.admin),
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
                    "request": refs[0],
                    "response": refs[1],
                }
            )
    text = render(
        "routes/routes.py.j2",
        header=f"# {HEADER}",
        doc=docstring(
            "The server's route table: one Route per RPC, from the secinfra.v1.rpc options.\n\n"
            "Path regexes: ``{x}`` matches one segment (``[^/:]+``), ``{x=**}`` one or\n"
            "more (``[^:]+``); captured values are still percent-encoded."
        ),
        routes=routes,
        imports=sorted(modules),
    )
    return [Output(layout.server, {"routes.py": text}, exclusive=True, formatter="python")]
