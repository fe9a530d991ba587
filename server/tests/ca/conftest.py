"""Shared fixtures for the CA and attestation tests: a fixed clock, CAs, workload
keys, and an ``openssl`` runner. No private key is committed; all are generated."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from secinfra_server.ca import CAState, CertificateAuthority, create_root_ca

TRUST_DOMAIN = "example.org"
NOW = datetime(2031, 5, 4, 12, 0, tzinfo=UTC)
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"

Openssl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def now() -> datetime:
    return NOW


@pytest.fixture(scope="session")
def ca() -> CertificateAuthority:
    """An active CA for example.org, created at NOW, valid one year."""
    return create_root_ca(TRUST_DOMAIN, now=NOW, state=CAState.ACTIVE, ca_id="test-ca")


@pytest.fixture(scope="session")
def other_ca() -> CertificateAuthority:
    """A second, unrelated CA for the same trust domain (a 'foreign' CA)."""
    return create_root_ca(TRUST_DOMAIN, now=NOW, state=CAState.ACTIVE, ca_id="other-ca")


@pytest.fixture(scope="session")
def workload_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def openssl() -> Openssl:
    """Run ``openssl <args>``; returns the completed process (never raises)."""

    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [OPENSSL, *map(str, args)], capture_output=True, text=True, timeout=30, check=False
        )

    return run
