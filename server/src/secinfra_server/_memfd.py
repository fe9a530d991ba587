"""Load PEM key material into an SSLContext without writing it to disk.

Python's ``SSLContext.load_cert_chain`` only reads files. On Linux an anonymous
memory file (memfd) is a file that lives in RAM only: the key never reaches
persistent storage, and the descriptor is closed as soon as OpenSSL has read it.
"""

from __future__ import annotations

import os
import ssl


def load_cert_chain_from_memory(context: ssl.SSLContext, chain_pem: bytes, key_pem: bytes) -> None:
    """Load a certificate chain and its private key from memory."""
    fd = os.memfd_create("secinfra-identity", os.MFD_CLOEXEC)
    try:
        data = memoryview(chain_pem + b"\n" + key_pem)
        while data:
            data = data[os.write(fd, data) :]
        path = f"/proc/self/fd/{fd}"
        context.load_cert_chain(certfile=path, keyfile=path)
    finally:
        os.close(fd)
