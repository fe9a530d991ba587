"""The SDK takes no OpenTelemetry dependency (spec 14.5): only secinfra.otel needs it."""

from __future__ import annotations

import datetime
import subprocess
import sys
import textwrap

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

#: Runs in a fresh interpreter in which ``opentelemetry`` cannot be imported,
#: as in an environment installed without the ``otel`` extra.
PROGRAM = textwrap.dedent(
    """
    import importlib.abc
    import sys

    class NoOpenTelemetry(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "opentelemetry" or name.startswith("opentelemetry."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NoOpenTelemetry())

    import secinfra
    import secinfra.cli
    import secinfra.errors
    import secinfra.models
    import secinfra.mtls
    import secinfra.services
    import secinfra.testing

    bundle = secinfra.load_bundle(sys.stdin.read())
    client = secinfra.Client(
        "https://127.0.0.1:1", secinfra.StaticIdentity(bundle), observers=[secinfra.Observer()]
    )
    client.close()
    assert not [m for m in sys.modules if m.startswith("opentelemetry")], sys.modules
    try:
        import secinfra.otel
    except ImportError as exc:
        print(exc)
    else:
        raise AssertionError("secinfra.otel imported without opentelemetry")
    """
)


def _ca_pem() -> str:
    """A self-signed CA certificate: a trust bundle to build a client with."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    now = datetime.datetime.now(datetime.UTC)
    ca = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier("spiffe://otel-optional.test")]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return ca.public_bytes(serialization.Encoding.PEM).decode()


def test_secinfra_imports_and_runs_without_opentelemetry() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM],
        input=_ca_pem(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'secinfra[otel]'" in done.stdout
