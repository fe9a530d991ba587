"""secinfra Python SDK: mTLS workload identity, secrets and authorization checks.

::

    import secinfra

    client = secinfra.Client.enrol(
        "https://127.0.0.1:8443", join_token=TOKEN, bundle_file=".dev/data/admin/bundle.pem"
    )
    print(client.secrets.get_secret(name="payments/db/password").value)

Public on purpose: this package's names below, :mod:`secinfra.errors` and
:mod:`secinfra.testing`. Everything prefixed ``_`` is private.
"""

__version__ = "0.1.0"

from ._agent import FileSink
from ._client import Client, ClientSettings
from ._identity import RotatingIdentity, StaticIdentity, build_csr, load_bundle, new_private_key
from ._rpc import CallOptions
from ._runtime._meta import Captured, ResponseMeta, capture
from ._runtime._retry import RetryPolicy
from ._runtime._source import (
    IdentitySource,
    RotationEvent,
    RotationKind,
    TrustBundle,
    X509Identity,
)

__all__ = [
    "CallOptions",
    "Captured",
    "Client",
    "ClientSettings",
    "FileSink",
    "IdentitySource",
    "ResponseMeta",
    "RetryPolicy",
    "RotatingIdentity",
    "RotationEvent",
    "RotationKind",
    "StaticIdentity",
    "TrustBundle",
    "X509Identity",
    "__version__",
    "build_csr",
    "capture",
    "load_bundle",
    "new_private_key",
]
