"""Service-to-service mTLS: TLS contexts on the client's rotating identity.

Public on purpose. ::

    from secinfra import mtls

    context = mtls.server_context(client.source, mtls.authorize_id("spiffe://td/billing"))
    # ... serve with it; in a handler:
    caller = mtls.peer_id(connection)

Every handshake presents the source's current snapshot and verifies the
peer against its current bundle, the X509-SVID rules and an authorizer;
there is no default authorizer. See docs/mtls/python.md.
"""

from ._mtls._authorize import (
    Authorizer,
    authorize_any,
    authorize_id,
    authorize_if,
    authorize_member_of,
    authorize_one_of,
    authorize_path_prefix,
)
from ._mtls._context import MtlsObject, MtlsSocket, client_context, peer_id, server_context
from ._mtls._requests import MtlsAdapter
from ._mtls._spiffe_id import SpiffeId
from ._mtls._verify import PeerRefused

__all__ = [
    "Authorizer",
    "MtlsAdapter",
    "MtlsObject",
    "MtlsSocket",
    "PeerRefused",
    "SpiffeId",
    "authorize_any",
    "authorize_id",
    "authorize_if",
    "authorize_member_of",
    "authorize_one_of",
    "authorize_path_prefix",
    "client_context",
    "peer_id",
    "server_context",
]
