"""The mTLS tests' own CA: X509-SVIDs, good and deliberately bad, and a source to rotate.

Fixtures are named for what they hold (a leaf with two URI SANs, a CA leaf,
an expired leaf); keys live in memory only.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from secinfra import TrustBundle, X509Identity
from secinfra._identity._events import Subscriber
from secinfra._identity._snapshot import parse_identity

TRUST_DOMAIN = "mtls.test"
PEM = serialization.Encoding.PEM
_serials = itertools.count(1)


@dataclass(frozen=True)
class Leaf:
    """A certificate chain and its key, as PEM."""

    chain_pem: bytes
    key_pem: bytes


class TestCA:
    """A root CA of one trust domain that issues X509-SVIDs."""

    __test__ = False

    def __init__(self, trust_domain: str = TRUST_DOMAIN) -> None:
        self.trust_domain = trust_domain
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        # A name of its own (as a real CA rotation makes): OpenSSL finds issuers by name.
        name = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, f"{trust_domain} test CA {next(_serials)}")]
        )
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.UniformResourceIdentifier(f"spiffe://{trust_domain}")]
                ),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(PEM).decode()

    def issue(
        self,
        *uris: str,
        ca: bool = False,
        not_after: dt.datetime | None = None,
    ) -> Leaf:
        """A leaf for ``uris`` (normally one SPIFFE ID), valid for an hour unless told."""
        now = dt.datetime.now(dt.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "workload")]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=2))
            .not_valid_after(not_after or now + dt.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(_key_usage(ca=ca), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris]),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return Leaf(cert.public_bytes(PEM), key_pem)

    def identity(self, spiffe_id: str) -> X509Identity:
        """A valid snapshot for ``spiffe_id``."""
        leaf = self.issue(spiffe_id)
        return parse_identity(leaf.chain_pem, leaf.key_pem, received_at=dt.datetime.now(dt.UTC))


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


class SwappableSource:
    """An identity source whose snapshot and bundle a test replaces (renewal, CA rotation)."""

    def __init__(self, identity: X509Identity, *cas: TestCA) -> None:
        self._lock = threading.Lock()
        self._identity = identity
        self._bundle = bundle_of(*cas)
        self.server_id = f"spiffe://{cas[0].trust_domain}/secinfra/server"

    def renew(self, identity: X509Identity) -> None:
        with self._lock:
            self._identity = identity

    def trust(self, *cas: TestCA) -> None:
        with self._lock:
            self._bundle = bundle_of(*cas)

    def identity(self) -> X509Identity | None:
        with self._lock:
            return self._identity

    def ensure_identity(self, timeout: float | None = None) -> X509Identity:
        with self._lock:
            return self._identity

    def bundle(self) -> TrustBundle:
        with self._lock:
            return self._bundle

    def refresh_bundle(self) -> bool:
        return False

    def subscribe(self, callback: Subscriber) -> None:
        pass


def bundle_of(*cas: TestCA) -> TrustBundle:
    return TrustBundle(pem="".join(ca.pem for ca in cas), sequence=len(cas), refresh_hint=60.0)
