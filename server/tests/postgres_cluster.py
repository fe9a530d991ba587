"""A throwaway PostgreSQL cluster for the tests: initdb in a temp dir, a free
loopback port, stopped and removed at the end. No mock database.

When the tests run as root (CI does) PostgreSQL refuses to, so the cluster
belongs to an unprivileged system user (:data:`SYSTEM_USER`, created once) and
initdb/pg_ctl run through ``runuser``. The cluster trades durability for speed
(``fsync = off``): it lives for one test session and is deleted afterwards.
Password authentication is real (scram-sha-256 on TCP), so the tests see the
same DSNs, with passwords, that production does.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import psycopg

SYSTEM_USER: Final = "secinfra-pg"
SUPERUSER: Final = "secinfra"
#: Seconds any one initdb/pg_ctl/useradd step may take.
STEP_TIMEOUT: Final = 120
#: Ports tried before giving up on starting the cluster.
START_ATTEMPTS: Final = 3


class ClusterUnavailable(RuntimeError):
    """PostgreSQL's programs are missing or the cluster did not start."""


def find_bin_dir() -> Path:
    """The directory of initdb: on PATH, else Debian's /usr/lib/postgresql/<ver>/bin
    (the newest version there)."""
    initdb = shutil.which("initdb")
    if initdb is not None:
        return Path(initdb).resolve().parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0,
    )
    if not candidates:
        raise ClusterUnavailable(
            "initdb not found on PATH or under /usr/lib/postgresql/*/bin;"
            " run scripts/ensure-postgresql.sh"
        )
    return Path(candidates[-1]).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(argv: list[str], what: str) -> None:
    try:
        subprocess.run(argv, check=True, capture_output=True, text=True, timeout=STEP_TIMEOUT)
    except subprocess.CalledProcessError as exc:
        raise ClusterUnavailable(f"{what} failed: {exc.stderr.strip() or exc.stdout}") from exc
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ClusterUnavailable(f"{what} failed: {exc}") from exc


def _ensure_system_user() -> None:
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        _run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                SYSTEM_USER,
            ],
            f"creating the system user {SYSTEM_USER}",
        )


class PostgresCluster:
    """One running cluster; :meth:`new_database` hands out empty databases."""

    def __init__(self, root: Path, bin_dir: Path, port: int, password: str) -> None:
        self.root = root
        self.bin_dir = bin_dir
        self.port = port
        self.password = password
        self._as_user: list[str] = ["runuser", "-u", SYSTEM_USER, "--"] if os.geteuid() == 0 else []
        self._databases = 0

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def dsn(self, database: str = "postgres") -> str:
        """A URL DSN with the superuser's password, as an operator would write it."""
        return f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def _pg(self, program: str, *args: str) -> list[str]:
        return [*self._as_user, str(self.bin_dir / program), *args]

    def start(self) -> None:
        """initdb and pg_ctl start (as the unprivileged user when root)."""
        if self._as_user:
            _ensure_system_user()
            os.chown(self.root, pwd.getpwnam(SYSTEM_USER).pw_uid, -1)
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._as_user:
            os.chown(pwfile, pwd.getpwnam(SYSTEM_USER).pw_uid, -1)
        pwfile.chmod(0o600)
        _run(
            self._pg(
                "initdb",
                "--pgdata",
                str(self.data_dir),
                "--username",
                SUPERUSER,
                "--pwfile",
                str(pwfile),
                "--auth-host",
                "scram-sha-256",
                "--auth-local",
                "peer",
                "--encoding",
                "UTF8",
                "--locale",
                "C.UTF-8",
                "--no-sync",
            ),
            "initdb",
        )
        pwfile.unlink()
        # The free port was free when we looked; if another process took it
        # since, try the next free one (a bounded number of times).
        for attempt in range(START_ATTEMPTS):
            try:
                self._pg_ctl_start()
                return
            except ClusterUnavailable:
                if attempt + 1 == START_ATTEMPTS:
                    raise
                self.port = _free_port()

    def _pg_ctl_start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port}"
            f" -c unix_socket_directories={self.root} -c fsync=off"
            " -c full_page_writes=off -c max_connections=200"
        )
        _run(
            self._pg(
                "pg_ctl",
                "start",
                "--pgdata",
                str(self.data_dir),
                "--log",
                str(self.root / "server.log"),
                "--options",
                options,
                "--wait",
                "--timeout",
                "60",
            ),
            "pg_ctl start",
        )

    def stop(self) -> None:
        """pg_ctl stop (fast: the cluster is thrown away)."""
        with contextlib.suppress(ClusterUnavailable):
            _run(
                self._pg("pg_ctl", "stop", "--pgdata", str(self.data_dir), "-m", "fast", "-w"),
                "pg_ctl stop",
            )

    def new_database(self) -> str:
        """Create an empty database; return its DSN."""
        self._databases += 1
        name = f"t{self._databases:05d}"
        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.dsn(name)

    def server_log(self) -> str:
        """The tail of PostgreSQL's own log, for a failure message."""
        log_file = self.root / "server.log"
        return log_file.read_text(errors="replace")[-4000:] if log_file.exists() else ""


@contextlib.contextmanager
def running_cluster() -> Iterator[PostgresCluster]:
    """Start a cluster for the duration of the ``with``; remove it afterwards."""
    bin_dir = find_bin_dir()
    root = Path(tempfile.mkdtemp(prefix="secinfra-pg-"))
    cluster = PostgresCluster(root, bin_dir, _free_port(), secrets.token_urlsafe(18))
    try:
        try:
            cluster.start()
        except ClusterUnavailable as exc:
            raise ClusterUnavailable(f"{exc}\n{cluster.server_log()}") from exc
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
