"""Service-to-service mTLS for the application's own connections.

One subject per module; the public names are re-exported by
:mod:`secinfra.mtls`.

- `_spiffe_id`: `SpiffeId`, a parsed and validated SPIFFE ID;
- `_authorize`: `Authorizer` and the ``authorize_*`` constructors;
- `_verify`: the X509-SVID rules on a peer's certificate, and `PeerRefused`;
- `_context`: the server and client `ssl.SSLContext`s built on an identity
  source, and `peer_id`;
- `_requests`: `MtlsAdapter`, a ``requests`` transport adapter.
"""
