"""The authorization engine: Zanzibar / OpenFGA relationship semantics.

Pure and synchronous: no HTTP, no SQL. Tuples are read through the small
:class:`TupleReader` protocol; :class:`InMemoryTupleStore` implements it.

>>> model = parse_dsl('''
... model
...   schema 1.1
... type user
... type document
...   relations
...     define viewer: [user]
... ''')
>>> store = InMemoryTupleStore([TupleKey("user:anne", "viewer", "document:1")])
>>> check(model, store, TupleKey("user:anne", "viewer", "document:1"))
True
>>> list_objects(model, store, "document", "viewer", "user:anne")
['document:1']
"""

from ._check import (
    MAX_BATCH_CHECK,
    MAX_CORRELATION_ID_LENGTH,
    MAX_DEPTH,
    BatchCheckItem,
    BatchCheckResult,
    Resolver,
    batch_check,
    check,
)
from ._conditions import (
    Condition,
    EvaluationBudget,
    ParameterType,
    TupleCondition,
    parse_parameter_type,
)
from ._dsl import parse_dsl
from ._errors import (
    FAILED_PRECONDITION,
    INVALID_ARGUMENT,
    AuthzError,
    ConditionError,
    ConditionTooComplex,
    ModelError,
    RequestError,
    ResolutionTooComplex,
    TupleError,
)
from ._expand import (
    ComputedLeaf,
    DifferenceNode,
    IntersectionNode,
    TupleToUsersetLeaf,
    UnionNode,
    UsersetTree,
    UsersetTreeNode,
    UsersLeaf,
    expand,
)
from ._list_objects import DEFAULT_MAX_RESULTS, ObjectPage, list_objects, list_objects_page
from ._list_users import UserPage, list_users
from ._model import (
    SCHEMA_VERSION,
    AuthorizationModel,
    ComputedUserset,
    Difference,
    Intersection,
    Relation,
    RelationReference,
    Rewrite,
    This,
    TupleToUserset,
    TypeDefinition,
    Union,
    parse_model,
)
from ._render import render_dsl
from ._store import ContextualReader, InMemoryTupleStore, TupleReader
from ._tuples import ObjectRef, TupleKey, UserRef, parse_object, parse_user, validate_tuple

__all__ = [
    "DEFAULT_MAX_RESULTS",
    "FAILED_PRECONDITION",
    "INVALID_ARGUMENT",
    "MAX_BATCH_CHECK",
    "MAX_CORRELATION_ID_LENGTH",
    "MAX_DEPTH",
    "SCHEMA_VERSION",
    "AuthorizationModel",
    "AuthzError",
    "BatchCheckItem",
    "BatchCheckResult",
    "ComputedLeaf",
    "ComputedUserset",
    "Condition",
    "ConditionError",
    "ConditionTooComplex",
    "ContextualReader",
    "Difference",
    "DifferenceNode",
    "EvaluationBudget",
    "InMemoryTupleStore",
    "Intersection",
    "IntersectionNode",
    "ModelError",
    "ObjectPage",
    "ObjectRef",
    "ParameterType",
    "Relation",
    "RelationReference",
    "RequestError",
    "ResolutionTooComplex",
    "Resolver",
    "Rewrite",
    "This",
    "TupleCondition",
    "TupleError",
    "TupleKey",
    "TupleReader",
    "TupleToUserset",
    "TupleToUsersetLeaf",
    "TypeDefinition",
    "Union",
    "UnionNode",
    "UserPage",
    "UserRef",
    "UsersLeaf",
    "UsersetTree",
    "UsersetTreeNode",
    "batch_check",
    "check",
    "expand",
    "list_objects",
    "list_objects_page",
    "list_users",
    "parse_dsl",
    "parse_model",
    "parse_object",
    "parse_parameter_type",
    "parse_user",
    "render_dsl",
    "validate_tuple",
]
