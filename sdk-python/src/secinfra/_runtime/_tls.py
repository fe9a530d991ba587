"""Client-side TLS: contexts built from an identity snapshot, and the server check.

The server is verified twice over: its chain must lead to a CA in the trust
bundle (OpenSSL, during the handshake) and its certificate must carry the
expected SPIFFE ID as its URI SAN (checked right after the handshake, before a
byte of the request is sent). Host names are not checked: SPIFFE IDs are.

The client's private key reaches OpenSSL through an anonymous memory file
(``memfd_create``) that is closed as soon as OpenSSL has read it, so the key is
never written to persistent storage.
"""

from __future__ import annotations

import os
import ssl
from typing import Any

from cryptography import x509
from urllib3.connection import HTTPSConnection
from urllib3.connectionpool import HTTPSConnectionPool

from ._watchdog import watch


class ServerIdentityMismatch(ssl.SSLCertVerificationError):
    """The server's certificate chains to the bundle but is not the expected SPIFFE ID."""


def load_cert_chain_from_memory(context: ssl.SSLContext, chain_pem: bytes, key_pem: bytes) -> None:
    """Load a certificate chain and its private key without touching the disk."""
    fd = os.memfd_create("secinfra-identity", os.MFD_CLOEXEC)
    try:
        data = memoryview(chain_pem + b"\n" + key_pem)
        while data:
            data = data[os.write(fd, data) :]
        path = f"/proc/self/fd/{fd}"
        context.load_cert_chain(certfile=path, keyfile=path)
    finally:
        os.close(fd)


def client_context(
    bundle_pem: str,
    chain_pem: bytes | None = None,
    key_pem: bytes | None = None,
    *,
    server_id: str | None = None,
) -> ssl.SSLContext:
    """A TLS 1.2+ context trusting ``bundle_pem``, presenting the identity if given.

    With ``server_id``, the context's `ssl.SSLObject` connections (asyncio,
    aiohttp) check the server's SPIFFE ID right after the handshake, before a
    byte is written (`check_server_id`); urllib3 connections check it in
    `pool_class` instead.
    """
    context: ssl.SSLContext
    if server_id is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    else:
        checking = _ServerCheckingContext(ssl.PROTOCOL_TLS_CLIENT)
        checking.secinfra_server_id = server_id
        context = checking
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False  # the SPIFFE ID is checked instead
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=bundle_pem)
    if chain_pem is not None and key_pem is not None:
        load_cert_chain_from_memory(context, chain_pem, key_pem)
    return context


def uri_sans(der: bytes) -> list[str]:
    """The URI SANs of a DER certificate."""
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return list(san.get_values_for_type(x509.UniformResourceIdentifier))


def check_server_id(der: bytes | None, expected_server_id: str) -> None:
    """Raise `ServerIdentityMismatch` unless the certificate ``der`` carries
    exactly the URI SAN ``expected_server_id``."""
    found = uri_sans(der) if der else []
    if found != [expected_server_id]:
        raise ServerIdentityMismatch(
            f"secinfra: tls: server presented {found or 'no SPIFFE ID'},"
            f" expected {expected_server_id}"
        )


class _ServerCheckingObject(ssl.SSLObject):
    """An asyncio TLS connection that checks the server's SPIFFE ID after its handshake.

    asyncio's SSL protocol calls ``do_handshake`` until it completes; an
    exception here fails the connection before the request is written.
    """

    def do_handshake(self) -> None:
        super().do_handshake()
        context: Any = self.context
        check_server_id(self.getpeercert(True), context.secinfra_server_id)


class _ServerCheckingContext(ssl.SSLContext):
    """A client context whose `ssl.SSLObject` connections check the server's SPIFFE ID."""

    sslobject_class = _ServerCheckingObject
    secinfra_server_id: str


def pool_class(expected_server_id: str) -> type[HTTPSConnectionPool]:
    """A urllib3 pool whose connections verify the server's SPIFFE ID."""

    class SpiffeConnection(HTTPSConnection):
        def connect(self) -> None:
            super().connect()
            watch(self, sending=False)
            sock: Any = self.sock
            der = sock.getpeercert(binary_form=True) if sock is not None else None
            try:
                check_server_id(der, expected_server_id)
            except ServerIdentityMismatch:
                self.close()
                raise

        def request(self, *args: Any, **kwargs: Any) -> None:
            # A pooled connection is reused without connect(): register here too.
            watch(self, sending=True)
            super().request(*args, **kwargs)

    class SpiffePool(HTTPSConnectionPool):
        ConnectionCls = SpiffeConnection

    return SpiffePool
