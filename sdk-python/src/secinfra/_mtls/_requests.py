"""A ``requests`` transport adapter for service-to-service mTLS.

``session.mount("https://", MtlsAdapter(client_context(source, authorizer)))``:
every new connection of the session's pool then presents the source's
current snapshot and authorizes the server by SPIFFE ID. Host names are not
checked, and no CA file is loaded (requests would add the public roots):
the context trusts exactly the source's bundle.
"""

from __future__ import annotations

import ssl
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3 import PoolManager

__all__ = ["MtlsAdapter"]


class MtlsAdapter(HTTPAdapter):
    """Mount on a `requests.Session` for ``https://`` URLs; ``context`` from `client_context`."""

    def __init__(self, context: ssl.SSLContext, **kwargs: Any) -> None:
        self._context = context
        super().__init__(**kwargs)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        self.poolmanager = PoolManager(
            num_pools=connections,
            maxsize=maxsize,
            block=block,
            ssl_context=self._context,
            assert_hostname=False,  # the authorizer checks the SPIFFE ID instead
            **pool_kwargs,
        )

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        if cert is not None:
            raise ValueError("secinfra: mtls: the client certificate comes from the context")
        conn.cert_reqs = "CERT_REQUIRED"
        conn.ca_certs = None
        conn.ca_cert_dir = None
