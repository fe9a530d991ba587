"""secinfra Python SDK: mTLS workload identity, secrets and authorization checks.

::

    import secinfra

    client = secinfra.Client.enrol(
        "https://127.0.0.1:8443", join_token=TOKEN, bundle_file=".dev/data/admin/bundle.pem"
    )
    print(client.secrets.get_secret(name="payments/db/password").value)

Public on purpose: this package's names below, :mod:`secinfra.errors`,
:mod:`secinfra.models` (the API's messages), :mod:`secinfra.services` (the
service clients' methods), :mod:`secinfra.mtls` (service-to-service mTLS
contexts), :mod:`secinfra.testing` and :mod:`secinfra.otel` (OpenTelemetry
tracing and metrics; ``pip install secinfra[otel]``). Everything prefixed ``_`` is private.
"""

__version__ = "0.1.0"

from ._client import Client, ClientSettings
from ._identity._bundle import TrustBundle, load_bundle
from ._identity._events import RotationEvent, RotationKind
from ._identity._file_sink import FileSink
from ._identity._keys import build_csr, new_private_key
from ._identity._rotating import RotatingIdentity
from ._identity._snapshot import X509Identity
from ._identity._source import IdentitySource
from ._identity._static import StaticIdentity
from ._rpc import CallOptions
from ._runtime._endpoints import EndpointState
from ._runtime._meta import Captured, ResponseMeta, capture
from ._runtime._observer import (
    AttemptFinished,
    AttemptStarted,
    CacheLookup,
    CacheResult,
    CallFinished,
    CallStarted,
    Observer,
)
from ._runtime._retry import RetryPolicy
from ._runtime._rotation import RotationPolicy
from ._runtime._trace_context import TraceContext

__all__ = [
    "AttemptFinished",
    "AttemptStarted",
    "CacheLookup",
    "CacheResult",
    "CallFinished",
    "CallOptions",
    "CallStarted",
    "Captured",
    "Client",
    "ClientSettings",
    "EndpointState",
    "FileSink",
    "IdentitySource",
    "Observer",
    "ResponseMeta",
    "RetryPolicy",
    "RotatingIdentity",
    "RotationEvent",
    "RotationKind",
    "RotationPolicy",
    "StaticIdentity",
    "TraceContext",
    "TrustBundle",
    "X509Identity",
    "__version__",
    "build_csr",
    "capture",
    "load_bundle",
    "new_private_key",
]
