"""Leaf signing: X509-SVIDs for workloads and for the server itself.

Every leaf gets: subject ``O=secinfra`` (identity lives only in the URI SAN),
exactly one URI SAN (the SPIFFE ID the server decided), basicConstraints cA=false
(critical), keyUsage digitalSignature only (critical), EKU serverAuth+clientAuth,
subject and authority key identifiers, a random 128-bit serial, NotBefore
``now - 60 s`` (never before the CA's) and NotAfter ``min(now + ttl, CA notAfter)``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ._authority import (
    BACKDATE,
    SUBJECT_ORGANIZATION,
    CAState,
    CertificateAuthority,
    random_serial_number,
    signature_hash_for,
)
from ._csr import AllowedPublicKey, check_public_key, load_csr
from ._errors import CAUnavailable, InvalidArgument
from ._spiffeid import SpiffeId
from ._time import require_aware

DEFAULT_SVID_TTL = timedelta(hours=1)
"""Default leaf lifetime (DESIGN: 1 h; test mode may use seconds)."""

SERVER_SPIFFE_PATH = "/secinfra/server"
"""Path of the server's own SPIFFE ID: ``spiffe://<td>/secinfra/server``."""

ADMIN_SPIFFE_PATH = "/secinfra/admin"
"""Path of the admin identity ``init`` creates: ``spiffe://<td>/secinfra/admin``."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_LEAF_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)
_LEAF_EKU = x509.ExtendedKeyUsage(
    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
)


def sign_svid(
    ca: CertificateAuthority,
    csr: bytes | str,
    spiffe_id: SpiffeId | str,
    *,
    ttl: timedelta = DEFAULT_SVID_TTL,
    now: datetime,
    dns_names: Iterable[str] = (),
) -> x509.Certificate:
    """Validate ``csr`` (PEM or DER) and sign an X509-SVID for ``spiffe_id``
    (plus ``dns_names`` as DNS SANs: a registration entry's names).

    Raises an InvalidCSR subclass for a bad CSR, InvalidArgument for a SPIFFE ID
    outside the CA's trust domain, without a path, or equal to the server's own
    ID (``spiffe://<td>/secinfra/server``), or for a non-positive ttl, CAUnavailable if ``ca``
    is not active or has expired.
    """
    request = load_csr(csr)
    extra = _dns_sans(dns_names)
    return _sign_leaf(
        ca, _public_key(request), _workload_id(ca, spiffe_id), extra, ttl=ttl, now=now
    )


def sign_server_svid(
    ca: CertificateAuthority,
    csr: bytes | str,
    *,
    dns_names: Iterable[str] = (),
    ip_addresses: Iterable[IPAddress | str] = (),
    ttl: timedelta = DEFAULT_SVID_TTL,
    now: datetime,
    spiffe_id: SpiffeId | None = None,
    extra_uris: Iterable[str] = (),
) -> x509.Certificate:
    """Sign the server's serving SVID: ``spiffe://<td>/secinfra/server`` plus DNS and
    IP SANs for its listen addresses (SPIFFE peers check the URI, browsers and
    curl the DNS/IP names).

    ``spiffe_id`` (another URI SAN instead of the server ID) and ``extra_uris``
    (more URI SANs) make a wrong serving certificate on purpose: test mode only
    (``_issuance_faults.ServingFault``)."""
    request = load_csr(csr)
    extra: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri) for uri in extra_uris]
    extra += _dns_sans(dns_names)
    for address in ip_addresses:
        try:
            extra.append(x509.IPAddress(ipaddress.ip_address(address)))
        except ValueError as exc:
            raise InvalidArgument("invalid IP address for the server SVID") from exc
    certified = spiffe_id or SpiffeId(ca.trust_domain, SERVER_SPIFFE_PATH)
    return _sign_leaf(ca, _public_key(request), certified, extra, ttl=ttl, now=now)


def build_csr(private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    """A minimal DER CSR (empty subject, no extensions) that :func:`sign_svid`
    accepts; the server uses it for its own serving key, tests for workloads."""
    digest: hashes.SHA256 | hashes.SHA384 = hashes.SHA256()
    if isinstance(private_key, ec.EllipticCurvePrivateKey) and isinstance(
        private_key.curve, ec.SECP384R1
    ):
        digest = hashes.SHA384()
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(private_key, digest)
    )
    return request.public_bytes(serialization.Encoding.DER)


def _dns_sans(dns_names: Iterable[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for name in dns_names:
        if not name or not name.isascii() or any(c.isspace() for c in name):
            raise InvalidArgument("DNS names must be non-empty ASCII (A-labels)")
        names.append(x509.DNSName(name.lower()))
    return names


def _public_key(request: x509.CertificateSigningRequest) -> AllowedPublicKey:
    return check_public_key(request.public_key())


def _workload_id(ca: CertificateAuthority, spiffe_id: SpiffeId | str) -> SpiffeId:
    if isinstance(spiffe_id, str):
        spiffe_id = SpiffeId.parse(spiffe_id)
    if spiffe_id.trust_domain != ca.trust_domain:
        raise InvalidArgument(
            f"SPIFFE ID {spiffe_id} is not in the CA's trust domain {ca.trust_domain}"
        )
    if spiffe_id.path == SERVER_SPIFFE_PATH:
        raise InvalidArgument(
            f"{spiffe_id} is the server's own identity; only sign_server_svid issues it"
        )
    if spiffe_id.is_trust_domain_id:
        raise InvalidArgument("a leaf SPIFFE ID needs a path (spiffe://<td>/...)")
    return spiffe_id


def _sign_leaf(
    ca: CertificateAuthority,
    public_key: AllowedPublicKey,
    spiffe_id: SpiffeId,
    extra_sans: list[x509.GeneralName],
    *,
    ttl: timedelta,
    now: datetime,
) -> x509.Certificate:
    now = require_aware(now)
    if ttl <= timedelta(0):
        raise InvalidArgument("certificate ttl must be positive")
    if ca.state is not CAState.ACTIVE:
        raise CAUnavailable(f"CA {ca.id} is {ca.state}, only an active CA signs")
    not_before = max(now - BACKDATE, ca.not_before)
    not_after = min(now + ttl, ca.not_after)
    if now < ca.not_before:
        raise CAUnavailable(f"CA {ca.id} is not valid yet at {now.isoformat()}")
    if now >= ca.not_after or not_after <= not_before:
        raise CAUnavailable(f"CA {ca.id} has expired")
    sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(str(spiffe_id))]
    sans.extend(extra_sans)
    ca_ski = x509.SubjectKeyIdentifier(ca.subject_key_identifier)
    return (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, SUBJECT_ORGANIZATION)])
        )
        .issuer_name(ca.certificate.subject)
        .public_key(public_key)
        .serial_number(random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_LEAF_KEY_USAGE, critical=True)
        .add_extension(_LEAF_EKU, critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca.private_key, signature_hash_for(ca.private_key))
    )
