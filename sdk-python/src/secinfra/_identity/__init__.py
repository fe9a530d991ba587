"""Workload identity, one subject per module (docs/sdk/floor-plan.md).

- `_source`: `IdentitySource`, the interface the transport asks on every
  handshake;
- `_snapshot`: `X509Identity`, a certificate chain and its key as one value;
- `_static`: `StaticIdentity`, an identity from fixed files or values;
- `_rotating`: `RotatingIdentity`, enrolment, renewal, re-enrolment and
  bundle refresh, scheduled by ``secinfra._runtime._rotation``;
- `_bundle`: `TrustBundle`, parsing and chain verification;
- `_keys`: the private key made in this process, and its CSR;
- `_events`: rotation events and the dispatcher that delivers them;
- `_file_sink`: `FileSink`, certificate, key and bundle written atomically.

The public names are re-exported by ``secinfra``.
"""
