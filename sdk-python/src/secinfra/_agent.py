"""``secinfra agent``: enrol, keep a file sink current, run a command after changes.

The file sink itself (atomic snapshots, modes, one writer per directory)
is ``secinfra._identity._file_sink``; this module is the CLI's long-running
process around it.
"""

from __future__ import annotations

import logging
import subprocess
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from ._identity._events import RotationEvent, RotationKind
from ._identity._file_sink import FileSink
from ._identity._snapshot import X509Identity
from .errors import SecinfraError

__all__ = ["LOG_FIELDS", "Agent", "CommandRunner", "jwt_file_provider", "log_event", "utc_text"]

log = logging.getLogger("secinfra.agent")
#: The fields the agent's log records carry beside the message (``extra``).
LOG_FIELDS: Final = ("event", "spiffe_id", "serial", "not_after", "bundle_sequence", "error")

#: How long ``secinfra agent --exec`` lets the command run by default.
DEFAULT_EXEC_TIMEOUT_SECONDS: Final = 30.0


# -- the command run after each change ------------------------------------------------------
class CommandRunner:
    """Runs a command (no shell) after changes, in its own thread, one run at a time.

    Changes that arrive while the command runs are folded into one more run
    afterwards, so a slow command never blocks rotation and never piles up.
    A failing, missing or timed-out command is logged; nothing else happens.
    """

    def __init__(
        self, argv: Sequence[str], *, timeout: float = DEFAULT_EXEC_TIMEOUT_SECONDS
    ) -> None:
        if not argv:
            raise ValueError("secinfra: agent: the command to run is empty")
        self._argv = list(argv)
        self._timeout = timeout
        self._pending = threading.Event()
        self._stopping = threading.Event()
        self.runs = 0
        """Completed runs (whatever their outcome)."""
        self._thread = threading.Thread(target=self._loop, name="secinfra-agent-exec", daemon=True)
        self._thread.start()

    def trigger(self, *_: object) -> None:
        """Ask for one more run (after the current one, if one is running)."""
        self._pending.set()

    def close(self) -> None:
        """Start no new run; wait for a running one (bounded by its timeout)."""
        self._stopping.set()
        self._pending.set()
        self._thread.join(self._timeout + 5)

    def _loop(self) -> None:
        while True:
            self._pending.wait()
            if self._stopping.is_set():
                return
            self._pending.clear()
            self._run_once()

    def _run_once(self) -> None:
        name = self._argv[0]
        try:
            # A fixed argv from the operator's own command line; never a shell.
            result = subprocess.run(  # noqa: S603
                self._argv,
                stdin=subprocess.DEVNULL,
                timeout=self._timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            log.error("secinfra: agent: %s did not finish in %g s (killed)", name, self._timeout)
        except OSError as exc:
            log.error("secinfra: agent: cannot run %s: %s", name, exc)
        else:
            if result.returncode != 0:
                log.error("secinfra: agent: %s exited with status %d", name, result.returncode)
            else:
                log.info("secinfra: agent: ran %s", name)
        self.runs += 1


# -- the agent ------------------------------------------------------------------------------
#: The agent re-checks that the files match the client's identity this often,
#: so a failed write (disk full) is repaired without waiting for a rotation.
SYNC_INTERVAL_SECONDS: Final = 5.0


def jwt_file_provider(path: str | Path) -> Callable[[], str]:
    """A JWT provider that reads ``path`` on every enrolment (projected
    service-account tokens are rewritten by the kubelet)."""
    file = Path(path)

    def read() -> str:
        try:
            return file.read_text().strip()
        except OSError as exc:
            raise SecinfraError(
                f"secinfra: agent: cannot read the JWT file {file}: {exc.strerror}"
            ) from exc

    return read


def _log_identity(kind: str, identity: X509Identity | None) -> None:
    if identity is None:
        return
    log.info(
        "secinfra: agent: %s: %s serial %s, valid until %s",
        kind,
        identity.spiffe_id,
        identity.serial,
        utc_text(identity.not_after),
        extra={
            "event": kind,
            "spiffe_id": identity.spiffe_id,
            "serial": identity.serial,
            "not_after": utc_text(identity.not_after),
        },
    )


def utc_text(moment: datetime) -> str:
    """The CLI's one timestamp format: UTC, to the second (``2026-12-06T21:40:07Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def log_event(event: RotationEvent) -> None:
    """One log line per rotation event, with its facts as fields (``extra``) for
    ``secinfra agent --json``. Never the key or the certificate."""
    kind = event.kind.value
    if event.kind in (RotationKind.ENROLLED, RotationKind.RENEWED):
        _log_identity(kind, event.identity)
    elif event.kind is RotationKind.BUNDLE_UPDATED:
        log.info(
            "secinfra: agent: bundle_updated: trust bundle sequence %d",
            event.bundle.sequence,
            extra={"event": kind, "bundle_sequence": event.bundle.sequence},
        )
    else:  # renewal_failed, expired
        log.warning(
            "secinfra: agent: %s: %s",
            kind,
            event.error,
            extra={"event": kind, "error": str(event.error)},
        )


class Agent:
    """``secinfra agent``: enrol, then keep ``out`` current until ``stop`` is set.

    The sink takes the directory *before* enrolling, so a directory that
    cannot be used never costs a single-use join token.
    """

    def __init__(
        self,
        url: str,
        *,
        out: str | Path,
        bundle_file: str | Path,
        join_token: str | None = None,
        jwt_file: str | Path | None = None,
        exec_argv: Sequence[str] = (),
        exec_timeout: float = DEFAULT_EXEC_TIMEOUT_SECONDS,
        sync_interval: float = SYNC_INTERVAL_SECONDS,
    ) -> None:
        if (join_token is None) == (jwt_file is None):
            raise ValueError("secinfra: agent: give exactly one of a join token or a JWT file")
        self._url = url
        self._out = Path(out)
        self._bundle_file = Path(bundle_file)
        self._join_token = join_token
        self._jwt_file = jwt_file
        self._exec_argv = list(exec_argv)
        self._exec_timeout = exec_timeout
        self._sync_interval = sync_interval
        self.runner: CommandRunner | None = None

    def run(self, stop: threading.Event) -> int:
        """Enrol and keep the files current until ``stop`` is set; the exit status.

        Raises :class:`~secinfra.errors.SecinfraError` if enrolment fails and
        :class:`SinkError` if the directory cannot be used. Returns 1 if the
        certificate expired and cannot be re-enrolled (a join token is single
        use), else 0.
        """
        from ._client import Client

        expired = threading.Event()
        runner = (
            CommandRunner(self._exec_argv, timeout=self._exec_timeout) if self._exec_argv else None
        )
        self.runner = runner
        try:
            with FileSink(self._out, on_write=runner.trigger if runner else None) as sink:
                jwt = jwt_file_provider(self._jwt_file) if self._jwt_file is not None else None
                client = Client.enrol(
                    self._url,
                    join_token=self._join_token,
                    jwt=jwt,
                    bundle_file=self._bundle_file,
                )
                with client:
                    sink.attach(client.source)
                    _log_identity("enrolled", client.source.identity())

                    def on_event(event: RotationEvent) -> None:
                        log_event(event)
                        if event.kind is RotationKind.EXPIRED and jwt is None:
                            expired.set()
                            stop.set()

                    client.on_rotation(sink)
                    client.on_rotation(on_event)
                    sink.sync()  # events before we subscribed: the enrolment itself
                    while not stop.wait(self._sync_interval):
                        try:
                            sink.sync()
                        except Exception:
                            log.exception("secinfra: agent: writing %s failed", self._out)
        finally:
            if runner is not None:
                runner.close()
        if expired.is_set():
            log.error(
                "secinfra: agent: the certificate expired and a join token cannot re-enrol;"
                " start again with a new token (or use --jwt-file)"
            )
            return 1
        return 0
