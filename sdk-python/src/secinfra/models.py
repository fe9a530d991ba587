"""Every message and enum of the API (generated from ``api/secinfra/v1``).

Request and response types of the service clients, for building arguments
such as :class:`TupleKey` and for type annotations::

    from secinfra.models import TupleKey

    client.authz.write_tuples(writes=[TupleKey(user=..., relation="reader", object=...)])
"""

from ._gen import authz as _authz
from ._gen import entries as _entries
from ._gen import errors as _errors
from ._gen import identity as _identity
from ._gen import secrets as _secrets
from ._gen.authz import *  # noqa: F403
from ._gen.entries import *  # noqa: F403
from ._gen.errors import *  # noqa: F403
from ._gen.identity import *  # noqa: F403
from ._gen.secrets import *  # noqa: F403

__all__ = sorted(
    {*_authz.__all__, *_entries.__all__, *_errors.__all__, *_identity.__all__, *_secrets.__all__}
)
