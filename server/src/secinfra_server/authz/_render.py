"""Render an :class:`AuthorizationModel` in the OpenFGA DSL (schema 1.1).

The inverse of :func:`~secinfra_server.authz.parse_dsl`: for every model the DSL
can express, ``parse_dsl(render_dsl(model)) == model``. Nested operators are
always parenthesised, so the structure of the rewrites survives exactly.

Two things in the JSON format have no DSL spelling: a rewrite with more than
one direct assignment (``this``) and relation names that are DSL keywords
(``or``, ``and``, ``but``, ``not``, ``from``, ``with``). Models that use them
render, but the text does not parse back; keep such models in JSON.
"""

from __future__ import annotations

from ._model import (
    AuthorizationModel,
    ComputedUserset,
    Difference,
    Intersection,
    Relation,
    Rewrite,
    This,
    TupleToUserset,
    Union,
)


def render_dsl(model: AuthorizationModel) -> str:
    """The model in the DSL: header, then each type and its relations in order."""
    lines = ["model", f"  schema {model.schema_version}"]
    for type_def in model.type_definitions:
        lines.append("")
        lines.append(f"type {type_def.name}")
        if type_def.relations:
            lines.append("  relations")
            for rel in type_def.relations:
                lines.append(f"    define {rel.name}: {_expression(rel, rel.rewrite)}")
    for condition in model.conditions:
        params = ", ".join(f"{name}: {ptype}" for name, ptype in condition.parameters)
        lines.append("")
        lines.append(f"condition {condition.name}({params}) {{")
        lines.extend(f"  {line}" for line in condition.expression.splitlines())
        lines.append("}")
    return "\n".join(lines) + "\n"


def _expression(rel: Relation, rewrite: Rewrite) -> str:
    if isinstance(rewrite, This):
        return "[" + ", ".join(str(ref) for ref in rel.directly_related_user_types) + "]"
    if isinstance(rewrite, ComputedUserset):
        return rewrite.relation
    if isinstance(rewrite, TupleToUserset):
        return f"{rewrite.computed_relation} from {rewrite.tupleset}"
    if isinstance(rewrite, Union):
        return " or ".join(_operand(rel, child) for child in rewrite.children)
    if isinstance(rewrite, Intersection):
        return " and ".join(_operand(rel, child) for child in rewrite.children)
    return f"{_operand(rel, rewrite.base)} but not {_operand(rel, rewrite.subtract)}"


def _operand(rel: Relation, rewrite: Rewrite) -> str:
    text = _expression(rel, rewrite)
    if isinstance(rewrite, Union | Intersection | Difference):
        return f"({text})"
    return text
