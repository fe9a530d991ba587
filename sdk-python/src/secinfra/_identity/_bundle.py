"""The trust bundle: the CAs a client trusts, from the server's SPIFFE bundle.

Parsing (spec 10.1: the first ``x5c`` certificate of each ``x509-svid``
entry, or plain PEM), the server's SPIFFE ID derived from the trust domain,
and chain verification against the bundle (8.7.4), which the rotating
identity runs on every certificate it is issued or renewed.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from .._runtime._rotation import DEFAULT_BUNDLE_REFRESH
from ..errors import SecinfraError

if TYPE_CHECKING:
    from .._gen.identity import TrustBundle as WireBundle

__all__ = [
    "SERVER_ID_PATH",
    "TrustBundle",
    "bundle_from_wire",
    "chains_to_bundle",
    "load_bundle",
    "server_id_for",
]

#: The path of the server's SPIFFE ID in every trust domain.
SERVER_ID_PATH: Final = "/secinfra/server"


@dataclass(frozen=True)
class TrustBundle:
    """The CAs the client trusts, from the server's SPIFFE bundle."""

    pem: str
    sequence: int
    refresh_hint: float
    etag: str | None = None


def load_bundle(data: str | bytes) -> TrustBundle:
    """A trust bundle from PEM certificates or a SPIFFE bundle (JWK Set JSON)."""
    text = data.decode() if isinstance(data, bytes) else data
    if text.lstrip().startswith("{"):
        doc = json.loads(text)
        return _bundle_from_entries(
            ((key.get("use"), key.get("x5c") or []) for key in doc.get("keys", [])),
            sequence=int(doc.get("spiffe_sequence", 0)),
            refresh_hint=float(doc.get("spiffe_refresh_hint", DEFAULT_BUNDLE_REFRESH)),
        )
    certs = x509.load_pem_x509_certificates(text.encode())
    # Canonical PEM, so that a bundle read from a file and the same CAs fetched
    # from the server compare equal (no spurious "bundle changed").
    pem = "".join(cert.public_bytes(serialization.Encoding.PEM).decode() for cert in certs)
    return TrustBundle(pem=pem, sequence=0, refresh_hint=DEFAULT_BUNDLE_REFRESH)


def bundle_from_wire(wire: WireBundle) -> TrustBundle:
    """A trust bundle from the GetTrustBundle answer."""
    return _bundle_from_entries(
        ((key.use, key.x5c) for key in wire.keys),
        sequence=wire.spiffe_sequence,
        refresh_hint=wire.spiffe_refresh_hint,
    )


def _bundle_from_entries(
    entries: Iterable[tuple[object, Sequence[str]]], *, sequence: int, refresh_hint: float
) -> TrustBundle:
    """The X.509 authorities of SPIFFE bundle entries: for each ``x509-svid``
    entry the FIRST certificate of ``x5c`` (SPIFFE trust-domain bundle spec:
    further ones are ignored). A bundle without any authority is refused."""
    pems = []
    for use, x5c in entries:
        if use != "x509-svid" or not x5c:
            continue
        cert = x509.load_der_x509_certificate(base64.b64decode(x5c[0]))
        pems.append(cert.public_bytes(serialization.Encoding.PEM).decode())
    if not pems:
        raise SecinfraError("secinfra: identity: the trust bundle holds no X.509 authority")
    return TrustBundle(pem="".join(pems), sequence=sequence, refresh_hint=refresh_hint)


def server_id_for(bundle: TrustBundle) -> str:
    """``spiffe://<trust domain>/secinfra/server``, the trust domain read from the CAs."""
    for cert in x509.load_pem_x509_certificates(bundle.pem.encode()):
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            continue
        for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
            if uri.startswith("spiffe://"):
                return uri.rstrip("/") + SERVER_ID_PATH
    raise SecinfraError("secinfra: identity: the trust bundle names no SPIFFE trust domain")


def chains_to_bundle(chain_pem: bytes, bundle: TrustBundle, now: datetime) -> bool:
    """Whether the chain's leaf verifies, through the chain's own intermediates,
    to a CA of ``bundle`` that is valid at ``now`` (spec 8.7.4)."""
    certs = x509.load_pem_x509_certificates(chain_pem)
    roots = x509.load_pem_x509_certificates(bundle.pem.encode())
    current, rest = certs[0], certs[1:]
    while True:
        if any(_directly_issued(current, ca, now) for ca in roots):
            return True
        parent = next((c for c in rest if _directly_issued(current, c, now)), None)
        if parent is None:
            return False
        current, rest = parent, [c for c in rest if c is not parent]


def _directly_issued(cert: x509.Certificate, issuer: x509.Certificate, now: datetime) -> bool:
    if cert.issuer != issuer.subject:
        return False
    if not issuer.not_valid_before_utc <= now <= issuer.not_valid_after_utc:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
