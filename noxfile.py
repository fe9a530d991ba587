"""The one entry point for every build, test, codegen and docs job.

Run ``bash scripts/test.sh`` for the whole suite from a fresh clone, or a single
session with ``nox -s <name>``; arguments after ``--`` go to the tool the session
runs (``nox -s tests-server -- -k bundle``). Every Python dependency is installed
with ``-c constraints.txt``, so versions are pinned in one place.
"""

from __future__ import annotations

from pathlib import Path

import nox

ROOT = Path(__file__).parent
CONSTRAINTS = str(ROOT / "constraints.txt")
PYTHON = "3.11"

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.error_on_missing_interpreters = True
# `nox` with no -s runs the whole suite except the codegen writer (the drift
# check `nox -s codegen -- --check` runs first in scripts/test.sh).
nox.options.sessions = [
    "lint",
    "tests-codegen",
    "tests-server",
    "tests-server-otel",
    "tests-python",
    "tests-interop-python",
    "tests-go",
    "tests-interop-go",
    "tests-proxy",
    "tests-agent",
    "tests-java",
    "tests-ruby",
    "conformance",
    "docs",
]

TEST_TOOLS = ("pytest", "pytest-asyncio", "pytest-timeout")
DOC_TOOLS = ("sphinx", "furo", "myst-parser", "sphinx-design")


def install(session: nox.Session, *requirements: str) -> None:
    """Install requirements pinned by constraints.txt (the one shared helper)."""
    session.install("-c", CONSTRAINTS, *requirements)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check and mypy --strict on all Python code."""
    install(
        session,
        "ruff",
        "mypy",
        "types-protobuf",
        "types-requests",
        "types-PyYAML",
        "types-jsonschema",
        "jsonschema",
        "PyYAML",
        *TEST_TOOLS,
        "-e",
        "codegen",
        "-e",
        "server[otel]",
        "-e",
        "sdk-python[aio,otel]",
    )
    session.run("ruff", "check", ".", *session.posargs)
    session.run("ruff", "format", "--check", ".")
    session.run(
        "mypy",
        "codegen/src",
        "server/src",
        "sdk-python/src",
        "conformance/runner",
        "sdk-python/conformance/client.py",
        "sdk-python/conformance/aio_client.py",
    )


@nox.session(python=PYTHON)
def codegen(session: nox.Session) -> None:
    """Regenerate every generated file; `-- --check` fails on any drift instead."""
    install(session, "ruff", "-e", "codegen")
    session.run("python", "-m", "secinfra_codegen", "--root", str(ROOT), *session.posargs)


@nox.session(name="tests-codegen", python=PYTHON)
def tests_codegen(session: nox.Session) -> None:
    """Generator tests: model building, kitchen-sink goldens, OpenAPI validity."""
    install(session, *TEST_TOOLS, "ruff", "mypy", "openapi-spec-validator", "-e", "codegen")
    session.run("pytest", "codegen/tests", *session.posargs)


@nox.session(name="tests-server", python=PYTHON)
def tests_server(session: nox.Session) -> None:
    """Reference server tests against real TLS on loopback, real SQLite files and a
    real PostgreSQL: the tests start a throwaway cluster with initdb (Debian's
    postgresql, installed with apt when missing) and fail, not skip, if it
    cannot start. Includes the schema-driven fuzz run (server/tests/fuzz,
    schemathesis), bounded to a few minutes, and the chaos test
    (server/tests/chaos: three replicas under the Python SDK's load, SIGKILLs).
    People's login runs against Dex, a real OpenID provider (dex_binary).

    Without the `otel` extra, and a test fails if OpenTelemetry is importable
    anyway: the whole suite is the proof that the server needs none of it
    (server/tests/tracing skips here; tests-server-otel runs it)."""
    # The Python SDK too: the chaos test drives the replicas with it.
    install(session, *TEST_TOOLS, "spiffe", "schemathesis", "-e", "server", "-e", "sdk-python")
    session.run("bash", str(ROOT / "scripts" / "ensure-postgresql.sh"), external=True)
    session.run(
        "pytest",
        "server/tests",
        *session.posargs,
        env={
            "SECINFRA_REQUIRE_POSTGRES": "1",
            "SECINFRA_REQUIRE_NO_OTEL": "1",
            "SECINFRA_DEX": dex_binary(session),
        },
    )


def dex_binary(session: nox.Session) -> str:
    """The Dex OpenID provider the login tests start (server/tests/integration/
    test_login_dex.py): scripts/ensure-dex.sh builds it once from the Go module
    proxy, pinned by interop/dex/go.mod and go.sum, into .cache/dex/<version>/."""
    out = session.run("bash", str(ROOT / "scripts" / "ensure-dex.sh"), external=True, silent=True)
    return str(out).strip().splitlines()[-1]


@nox.session(name="tests-server-otel", python=PYTHON)
def tests_server_otel(session: nox.Session) -> None:
    """The server with its `otel` extra: the tracing tests (spans from a real
    server on loopback into the SDK's in-memory exporter, and over OTLP/HTTP),
    which must not skip; the server with OpenTelemetry blocked in a child
    process; and the unit tests with OpenTelemetry present."""
    install(session, *TEST_TOOLS, "-e", "server[otel]")
    session.run("bash", str(ROOT / "scripts" / "ensure-postgresql.sh"), external=True)
    session.run(
        "pytest",
        "server/tests/tracing",
        "server/tests/integration/test_tracing_absent.py",
        "server/tests/unit",
        *session.posargs,
        env={"SECINFRA_REQUIRE_POSTGRES": "1", "SECINFRA_REQUIRE_OTEL": "1"},
    )


@nox.session(name="tests-python", python=PYTHON)
def tests_python(session: nox.Session) -> None:
    """Python SDK tests: unit, and integration against a real reference server;
    secinfra.otel's with OpenTelemetry's SDK (in-memory exporter and reader)."""
    install(
        session,
        *TEST_TOOLS,
        "opentelemetry-sdk",
        "-e",
        "sdk-python[aio,completion,otel]",
        "-e",
        "server",
    )
    session.run("pytest", "sdk-python/tests", *session.posargs)


@nox.session(name="tests-interop-python", python=PYTHON)
def tests_interop_python(session: nox.Session) -> None:
    """secinfra.mtls against py-spiffe, with its own requirements so the SDK stays lean."""
    install(
        session,
        *TEST_TOOLS,
        "-r",
        "interop/py-spiffe/requirements.txt",
        "-e",
        "sdk-python",
        "-e",
        "server",
    )
    session.run("pytest", "interop/py-spiffe", *session.posargs)


def reference_server(session: nox.Session) -> dict[str, str]:
    """The environment that points an SDK's integration tests at a real server.

    scripts/ensure-server.sh installs the server into .venv-server (pinned) on
    first use and prints its path; SECINFRA_REQUIRE_SERVER=1 makes a test that
    cannot find it fail instead of skip.
    """
    out = session.run(
        "bash", str(ROOT / "scripts" / "ensure-server.sh"), external=True, silent=True
    )
    return {
        "SECINFRA_REFERENCE_SERVER": str(out).strip().splitlines()[-1],
        "SECINFRA_REQUIRE_SERVER": "1",
    }


def go_checks(session: nox.Session, module: Path, env: dict[str, str]) -> None:
    """gofmt, go vet and the race-enabled tests (posargs: what to test) of one Go module."""
    session.chdir(module)
    unformatted = session.run("gofmt", "-l", ".", external=True, silent=True)
    if unformatted:
        session.error(f"gofmt would reformat:\n{unformatted}")
    session.run("go", "vet", "./...", external=True)
    session.run(
        "go", "test", "-race", "-count=1", *(session.posargs or ["./..."]), external=True, env=env
    )


@nox.session(name="tests-go", python=False)
def tests_go(session: nox.Session) -> None:
    """Go SDK: gofmt, go vet and the race-enabled tests (examples included).

    sdk-go/otel, the OpenTelemetry integration, is a module of its own
    (OpenTelemetry pinned in its go.mod and go.sum, so the SDK itself stays
    standard-library only): vetted and tested after the SDK, unless posargs
    name what to test.
    """
    env = reference_server(session)
    go_checks(session, ROOT / "sdk-go", env)
    if not session.posargs:
        session.chdir(ROOT / "sdk-go" / "otel")
        session.run("go", "vet", "./...", external=True)
        session.run("go", "test", "-race", "-count=1", "./...", external=True, env=env)


@nox.session(name="tests-interop-go", python=False)
def tests_interop_go(session: nox.Session) -> None:
    """The Go SDK's mTLS configs against go-spiffe v2 tlsconfig, both ways.

    interop/go-spiffe is a module of its own (go-spiffe pinned in its go.mod
    and go.sum), so the SDK itself stays standard-library only.
    """
    go_checks(session, ROOT / "interop" / "go-spiffe", reference_server(session))


@nox.session(name="tests-proxy", python=False)
def tests_proxy(session: nox.Session) -> None:
    """secinfra-proxy (proxy/, a module of its own on the Go SDK): gofmt, go vet and the
    race-enabled tests, which run the built proxy against a real reference server."""
    go_checks(session, ROOT / "proxy", reference_server(session))


@nox.session(name="tests-agent", python=PYTHON)
def tests_agent(session: nox.Session) -> None:
    """secinfra-agent (agent/, a Go module of its own: gRPC and go-spiffe pinned in
    its go.mod and go.sum): gofmt, go vet, and the race-enabled tests. agent/test
    builds the real binary and runs it against the reference server, with
    go-spiffe v2's workloadapi and py-spiffe's client (installed here, pinned) as
    workloads; as root it also runs clients under other uids (about a minute)."""
    install(session, "spiffe")
    env = {
        **reference_server(session),
        "SECINFRA_AGENT_TEST_PYTHON": str(Path(session.bin) / "python"),
    }
    session.chdir(ROOT / "agent")
    unformatted = session.run("gofmt", "-l", ".", external=True, silent=True)
    if unformatted:
        session.error(f"gofmt would reformat:\n{unformatted}")
    session.run("go", "vet", "./...", external=True)
    session.run(
        "go", "test", "-race", "-count=1", *(session.posargs or ["./..."]), external=True, env=env
    )


@nox.session(name="tests-java", python=False)
def tests_java(session: nox.Session) -> None:
    """Java SDK and its OpenTelemetry artifact: compile, JUnit 5 tests and Javadoc (warnings fail).

    The SDK is installed into the local Maven repository so that ``otel/`` (the separate artifact
    ``dev.secinfra:secinfra-otel``, spec 14.5) builds against this SDK, not a published one.
    """
    env = reference_server(session)
    session.chdir(ROOT / "sdk-java")
    session.run("mvn", "-B", "-ntp", "install", *session.posargs, external=True, env=env)
    session.run(
        "mvn",
        "-B",
        "-ntp",
        "-f",
        "otel/pom.xml",
        "verify",
        # A -Dtest=... meant for the SDK's tests selects none here: not a failure.
        "-Dsurefire.failIfNoSpecifiedTests=false",
        *session.posargs,
        external=True,
        env=env,
    )


@nox.session(name="tests-ruby", python=False)
def tests_ruby(session: nox.Session) -> None:
    """Ruby SDK: installs Debian's ruby and ruby-minitest when missing, then rake test."""
    session.run("bash", str(ROOT / "scripts" / "ensure-ruby.sh"), external=True)
    env = reference_server(session)
    session.chdir(ROOT / "sdk-ruby")
    session.run("rake", "test", *session.posargs, external=True, env=env)


@nox.session(python=PYTHON)
def conformance(session: nox.Session) -> None:
    """Test the conformance runner, then run the suite (default: every SDK in its table);
    without arguments, then the cross-language mTLS matrix (docs/conformance/mtls-matrix.md)."""
    install(
        session,
        *TEST_TOOLS,
        "PyYAML",
        "jsonschema",
        "requests",
        "-e",
        "sdk-python[aio]",
        "-e",
        "server",
    )
    # Replica cases (setup.replicas) run on a throwaway PostgreSQL cluster.
    session.run("bash", str(ROOT / "scripts" / "ensure-postgresql.sh"), external=True)
    session.run("pytest", "conformance/tests")
    session.run("python", "-m", "conformance.runner", *session.posargs)
    if not session.posargs:  # the full run: the 16-pair mTLS matrix too
        session.run("python", "-m", "conformance.runner", "--mtls-matrix")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Sphinx site (docs/) with warnings as errors, then run the quickstart page.

    autodoc needs the SDK installed; the conformance matrix page shows
    reports/conformance/conformance.json when the conformance session has
    written one, else the committed snapshot. docs/tests runs every command
    and quickstart program of docs/quickstart.md against a real dev server.
    """
    install(session, *DOC_TOOLS, *TEST_TOOLS, "-e", "sdk-python[aio,otel]", "-e", "server")
    # The architecture page's pictures need Graphviz's dot (apt when missing).
    session.run("bash", str(ROOT / "scripts" / "ensure-graphviz.sh"), external=True)
    session.run(
        "sphinx-build",
        "-W",
        "--keep-going",
        "-b",
        "html",
        "docs",
        "docs/_build/html",
        *session.posargs,
    )
    session.run("pytest", "docs/tests")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Server hot paths and load, replicas on PostgreSQL, SDK calls, per-SDK mTLS benchmarks
    and secinfra-proxy against HAProxy (JSON); not part of the test run."""
    # py-spy records the server in server_load.py --profile (benchmarks/README.md).
    install(session, "-e", "sdk-python", "-e", "server", "py-spy")
    # server_replicas.py starts a throwaway PostgreSQL, as the server tests do.
    session.run("bash", str(ROOT / "scripts" / "ensure-postgresql.sh"), external=True)
    out = ROOT / "reports" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    for name in (
        "server_hot_paths",
        "server_load",
        "server_replicas",
        "sdk_python_calls",
        "mtls_python",
    ):
        script = f"benchmarks/{name}.py"
        session.run("python", script, "--out", str(out / f"{name}.json"), *session.posargs)
    session.run(
        "go",
        "-C",
        "benchmarks/mtls-go",
        "run",
        ".",
        "--out",
        str(out / "mtls_go.json"),
        *session.posargs,
        external=True,
    )
    session.run(
        "ruby",
        "-I",
        "sdk-ruby/lib",
        "benchmarks/sdk_ruby_mtls.rb",
        "--out",
        str(out / "sdk_ruby_mtls.json"),
        *session.posargs,
        external=True,
    )
    session.run("bash", "benchmarks/sdk_go_calls.sh", "--out", f"{out}/sdk_go.json", external=True)
    session.run("bash", "benchmarks/proxy_bench.sh", str(out / "proxy.json"), external=True)
    session.run(
        "ruby",
        "-I",
        "sdk-ruby/lib",
        "benchmarks/sdk_ruby_calls.rb",
        "--out",
        str(out / "sdk_ruby_calls.json"),
        *session.posargs,
        external=True,
    )
    session.run(
        "bash",
        str(ROOT / "benchmarks" / "sdk_java_mtls.sh"),
        "--out",
        str(out / "sdk_java_mtls.json"),
        *session.posargs,
        external=True,
    )
    session.run(
        "bash",
        str(ROOT / "benchmarks" / "sdk_java_calls.sh"),
        "--out",
        str(out / "sdk_java_calls.json"),
        *session.posargs,
        external=True,
    )
