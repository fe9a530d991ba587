"""Each SDK's conformance client: how to build it and how to start it.

Commands are argv lists run from the repository root. ``build`` steps run
once, in order, before the SDK's first case (compile the client, install a
toolchain that may be missing); a failing step fails the run with its output.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[2]


class BuildError(Exception):
    """A build step of an SDK's conformance client failed."""


@dataclass(frozen=True)
class Sdk:
    """One column of the matrix."""

    name: str
    command: tuple[str, ...]
    """Starts the conformance client (docs/conformance/adapter-protocol.md)."""
    build: tuple[tuple[str, ...], ...] = ()
    """Steps that make ``command`` runnable; each must be safe to repeat."""
    directory: str = ""
    """The SDK's folder (its README lists departures); default ``sdk-<name>``.
    Two columns can share one: the Python SDK's sync and asyncio clients."""
    in_mtls_matrix: bool = True
    """Whether the mTLS matrix (``--mtls-matrix`` without ``--sdk``) pairs it:
    False for a column whose mtls ops use another column's TLS stack."""

    @property
    def folder(self) -> str:
        """The SDK's folder, relative to the repository root."""
        return self.directory or f"sdk-{self.name}"


SDKS: Final[dict[str, Sdk]] = {
    sdk.name: sdk
    for sdk in (
        Sdk("python", (sys.executable, str(ROOT / "sdk-python" / "conformance" / "client.py"))),
        # The same package's asyncio client (secinfra.aio), a column of its own.
        Sdk(
            "python-aio",
            (sys.executable, str(ROOT / "sdk-python" / "conformance" / "aio_client.py")),
            directory="sdk-python",
            # Its mtls ops use secinfra.mtls, the python column's contexts: its
            # pairs would repeat python's (docs/conformance/mtls-matrix.md).
            in_mtls_matrix=False,
        ),
        Sdk(
            "go",
            (str(ROOT / "sdk-go" / "bin" / "secinfra-conformance"),),
            build=(("go", "-C", "sdk-go", "build", "-o", "bin/", "./cmd/secinfra-conformance"),),
        ),
        Sdk(
            "ruby",
            ("ruby", str(ROOT / "sdk-ruby" / "bin" / "secinfra-conformance")),
            build=(
                ("bash", "scripts/ensure-ruby.sh"),
                ("ruby", "-c", "sdk-ruby/bin/secinfra-conformance"),
            ),
        ),
        Sdk(
            "java",
            (
                "java",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
                "-cp",
                ":".join(
                    str(ROOT / "sdk-java" / "target" / part)
                    for part in ("conformance", "classes", "lib/*")
                ),
                "dev.secinfra.conformance.ConformanceClient",
            ),
            build=(
                ("mvn", "-B", "-ntp", "-q", "-f", "sdk-java/pom.xml", "-DskipTests", "package"),
                (
                    "javac",
                    "-d",
                    "sdk-java/target/conformance",
                    "-cp",
                    "sdk-java/target/classes:sdk-java/target/lib/*",
                    # The generated protocol records (gen/) compile from here as needed.
                    "-sourcepath",
                    "sdk-java/conformance/src",
                    "sdk-java/conformance/src/dev/secinfra/conformance/ConformanceClient.java",
                ),
            ),
        ),
    )
}


def build(sdk: Sdk) -> None:
    """Run ``sdk``'s build steps; raise `BuildError` with the output of a failed one."""
    for step in sdk.build:
        proc = subprocess.run(  # noqa: S603 - fixed argv from the table above
            step, cwd=ROOT, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            output = (proc.stdout + proc.stderr)[-4000:]
            raise BuildError(f"{sdk.name}: build step {' '.join(step)} failed:\n{output}")
