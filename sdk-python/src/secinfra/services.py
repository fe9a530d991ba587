"""The service clients: one class per API service, one method per RPC.

A :class:`secinfra.Client` holds one of each (``client.secrets``,
``client.authz``, ``client.identity``, ``client.entries``); they are listed here for their
methods and for type annotations, not to be built by hand::

    from secinfra.services import SecretsClient

    def load_password(secrets: SecretsClient) -> bytes:
        return secrets.get_secret(name="payments/db/password").value

Every method takes keyword arguments only (the request's fields, plus
``call_options=`` for per-call settings) and returns the response message
from :mod:`secinfra.models`; errors are :mod:`secinfra.errors`. The classes
are generated from ``api/secinfra/v1`` (``nox -s codegen``).

A :class:`secinfra.aio.Client` holds the ``Async`` classes: the same
methods, as coroutines (``await client.secrets.get_secret(...)``).
"""

from ._gen.authz_aio_client import AsyncAuthzClient
from ._gen.authz_client import AuthzClient
from ._gen.entries_aio_client import AsyncEntriesClient
from ._gen.entries_client import EntriesClient
from ._gen.identity_aio_client import AsyncIdentityClient
from ._gen.identity_client import IdentityClient
from ._gen.secrets_aio_client import AsyncSecretsClient
from ._gen.secrets_client import SecretsClient

__all__ = [
    "AsyncAuthzClient",
    "AsyncEntriesClient",
    "AsyncIdentityClient",
    "AsyncSecretsClient",
    "AuthzClient",
    "EntriesClient",
    "IdentityClient",
    "SecretsClient",
]
