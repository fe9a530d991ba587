"""The CLI keeps the server's init-time admin identity alive: renewal past half-life.

``secinfra-server init`` writes a short-lived admin certificate and key
(``<data dir>/admin/cert.pem``, ``key.pem``; 8 h by default). When a ``secinfra``
command that used those files (``--cert``/``--key``) has succeeded and the
certificate is past half its lifetime, :func:`renew_files` renews it over the
same mTLS connection with a new key made here, and replaces both files
(0600, each in one rename, the key first). Only that identity
(``spiffe://<td>/secinfra/admin``) is renewed this way: workload identities
belong to the SDKs and the agent, which renew their own. Once it has expired
nothing can renew it; ``secinfra-server init`` on the server host issues a new
one (break-glass, docs/operations/hardening.md).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from ._client import Client
from ._identity._file_sink import replace_file
from ._identity._keys import build_csr, new_private_key, private_key_pem
from ._identity._snapshot import X509Identity, parse_identity

__all__ = ["ADMIN_PATH", "renew_files", "renewal_due"]

#: The SPIFFE ID path of the admin identity ``secinfra-server init`` writes.
ADMIN_PATH: Final = "/secinfra/admin"
#: Mode of the renewed files, as ``init`` writes them.
PRIVATE_MODE: Final = 0o600


def renewal_due(identity: X509Identity, now: datetime) -> bool:
    """Whether ``identity`` is the init-time admin identity, past half its
    lifetime and not yet expired (an expired one cannot authenticate a renewal)."""
    if urlsplit(identity.spiffe_id).path != ADMIN_PATH:
        return False
    halfway = identity.issued_at + (identity.not_after - identity.issued_at) / 2
    return halfway <= now < identity.not_after


def renew_files(client: Client, cert_path: Path, key_path: Path, now: datetime) -> X509Identity:
    """Renew the client's identity for a new key and write it over the files.

    Raises the client's :class:`~secinfra.errors.SecinfraError` if the server
    refuses, ``OSError`` if a file cannot be replaced (the key may then be new
    while the certificate is not: run the command again, or ``init``).
    """
    key = new_private_key()
    answer = client.identity.renew_certificate(csr_pem=build_csr(key))
    assert answer.svid is not None
    chain = answer.svid.cert_chain_pem.encode()
    key_pem = private_key_pem(key)
    renewed = parse_identity(chain, key_pem, received_at=now)
    # Key first, as init does: a reader that reloads on a new certificate finds its key.
    replace_file(key_path, key_pem, PRIVATE_MODE)
    replace_file(cert_path, chain, PRIVATE_MODE)
    return renewed
