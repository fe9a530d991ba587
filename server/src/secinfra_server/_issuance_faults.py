"""Deliberately bad workload certificates, for test mode only.

The conformance suite must see a client refuse a certificate it should not
install: a renewal answer whose SPIFFE ID differs from the client's (spec
9.3.3) and a certificate that does not chain to the trust bundle (8.7.4). A
real CA never gives either, so test mode arms an :class:`IssuanceFault` on the
CA run-time state and the next few workload issuances come out wrong on
purpose. The certified public key is always the CSR's: the client can install
the certificate with its own key, and only the property under test is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import ca


@dataclass
class IssuanceFault:
    """How the next ``remaining`` workload certificates are altered.

    Mutable on purpose: the CA run-time state counts ``remaining`` down as it
    signs, and gives a count back when signing fails (only successful
    answers are altered).
    """

    #: The URI SAN to certify instead of the caller's, or None to keep the caller's.
    spiffe_id: str | None
    #: A throwaway CA that is in no bundle (key in memory only), or None to
    #: sign with the active CA.
    untrusted_ca: ca.CertificateAuthority | None
    remaining: int


@dataclass(frozen=True)
class ServingFault:
    """A deliberately wrong serving certificate (POST /_test/server-certificate/rotate).

    The conformance suite must see a client refuse a server that presents
    another SPIFFE ID or more than one URI SAN (spec 8.5.2, 10.3.3), and accept
    one whose DNS and IP names do not match the URL (8.5.3). Only the named
    property is wrong: the key is the server's own new key.
    """

    #: The URI SAN instead of the server ID, or None to keep the server ID.
    spiffe_id: ca.SpiffeId | None = None
    #: More URI SANs after the first.
    extra_uris: tuple[str, ...] = ()
    #: DNS and IP SANs instead of the listen addresses, or None to keep those.
    dns_names: tuple[str, ...] | None = None
    ip_addresses: tuple[str, ...] | None = None
