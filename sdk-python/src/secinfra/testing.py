"""Helpers for testing code that uses secinfra.

- :class:`ReferenceServer` starts the real reference server (the
  ``secinfra-server`` package must be installed) on a free loopback port, in
  test mode, with a fresh data directory, and gives you its admin identity,
  join tokens, and the conformance control API.
- :class:`FakeClock` is a clock you move by hand; pass it as ``clock=``.
- :class:`StaticIdentity` serves a fixed identity without a server round trip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from ._client import Client
from ._identity._static import StaticIdentity
from ._runtime._clock import FakeClock

__all__ = ["FakeClock", "ReferenceServer", "StaticIdentity"]

STARTUP_TIMEOUT_SECONDS: Final = 60.0
#: The server's last log lines kept, to explain a failed start.
STDERR_LINES_KEPT: Final = 200


class ReferenceServer:
    """A reference server subprocess in test mode on 127.0.0.1.

    ::

        with ReferenceServer() as server:
            client = server.enrol("spiffe://secinfra.local/my-service")
            ...
    """

    def __init__(self, *, data_dir: str | Path | None = None, **settings: Any) -> None:
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="secinfra-test-"))
        self._settings = {"test_hooks": True, **settings}
        self._process: subprocess.Popen[str] | None = None
        self.url = ""
        self._stderr_lines: deque[str] = deque(maxlen=STDERR_LINES_KEPT)

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> ReferenceServer:
        """Init the data dir and start serving; returns once the server is up."""
        args = [sys.executable, "-m", "secinfra_server.cli"]
        flags = ["--data-dir", str(self.data_dir), "--host", "127.0.0.1", "--port", "0"]
        for name, value in self._settings.items():
            flag = "--" + name.replace("_", "-")
            if value is True:
                flags.append(flag)
            elif value not in (False, None):
                flags += [flag, str(value)]
        # Fixed argv: this interpreter, the server module, our own flags.
        init = subprocess.run([*args, "init", *flags], capture_output=True, text=True)  # noqa: S603
        if init.returncode != 0:
            raise RuntimeError(
                f"secinfra: testing: reference server init failed ({init.returncode}):\n"
                + init.stderr[-4000:]
            )
        self._process = subprocess.Popen(  # noqa: S603
            [*args, "serve", *flags],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.url = ""
        ready = threading.Event()
        threading.Thread(target=self._read_logs, args=(ready,), daemon=True).start()
        if not ready.wait(STARTUP_TIMEOUT_SECONDS) or not self.url:
            self.stop()
            raise RuntimeError(
                "secinfra: testing: the reference server did not start:\n"
                + "".join(list(self._stderr_lines)[-20:])
            )
        return self

    def _read_logs(self, ready: threading.Event) -> None:
        """Drain the server's stderr (so it never blocks) and find its URL."""
        assert self._process is not None
        assert self._process.stderr is not None
        for line in self._process.stderr:
            self._stderr_lines.append(line)
            if not ready.is_set() and line.startswith("{"):
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if record.get("message") == "serving" and record.get("url"):
                    self.url = str(record["url"])
                    ready.set()
        ready.set()  # the server exited: start() stops waiting and reports it

    def stop(self) -> None:
        """SIGTERM the server and wait for it (graceful shutdown)."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)

    def kill(self) -> None:
        """SIGKILL the server (crash tests)."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(10)

    def restart(self) -> None:
        """Stop and start again on a new port with the same data dir."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop and remove a data dir this object created."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> ReferenceServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- identities ----------------------------------------------------------------------
    @property
    def bundle_file(self) -> Path:
        """The trust bundle written by init (PEM)."""
        return self.data_dir / "admin" / "bundle.pem"

    def admin_client(self, **kwargs: Any) -> Client:
        """A client using the admin identity written by init."""
        admin = self.data_dir / "admin"
        return Client.from_files(
            self.url,
            cert_file=admin / "cert.pem",
            key_file=admin / "key.pem",
            bundle_file=self.bundle_file,
            **kwargs,
        )

    def join_token(self, spiffe_id: str, ttl_seconds: int = 600) -> str:
        """A new one-time join token for ``spiffe_id``."""
        with self.admin_client() as admin:
            return admin.identity.create_join_token(
                spiffe_id=spiffe_id, ttl_seconds=ttl_seconds
            ).token

    def enrol(self, spiffe_id: str, **kwargs: Any) -> Client:
        """A client enrolled as ``spiffe_id`` with a fresh join token."""
        return Client.enrol(
            self.url, join_token=self.join_token(spiffe_id), bundle_file=self.bundle_file, **kwargs
        )

    def grant(self, spiffe_id: str, relation: str, obj: str) -> str:
        """Write the tuple ``workload:<spiffe_id> <relation> <obj>``; returns the revision."""
        from ._gen.authz import TupleKey

        with self.admin_client() as admin:
            answer = admin.authz.write_tuples(
                writes=[TupleKey(user=f"workload:{spiffe_id}", relation=relation, object=obj)]
            )
            return answer.revision

    # -- the conformance control API -------------------------------------------------------
    def control(self, method: str, path: str, body: Any = None) -> Any:
        """Call ``/_test/...`` with the admin identity; returns the JSON answer."""
        import requests

        admin = self.data_dir / "admin"
        with requests.Session() as session:
            # Ignore REQUESTS_CA_BUNDLE and proxy variables: they would replace
            # the trust bundle (a session's ``verify`` loses to the environment)
            # or send loopback traffic to a proxy.
            session.trust_env = False
            # The control API is a test tool: verify the chain; the server's
            # SPIFFE ID is checked by the SDK proper, not here.
            answer = session.request(
                method,
                self.url + path,
                json=body,
                timeout=30,
                cert=(str(admin / "cert.pem"), str(admin / "key.pem")),
                verify=str(self.bundle_file),
            )
        answer.raise_for_status()
        return answer.json()

    def script(self, rpc: str, *steps: dict[str, Any]) -> None:
        """Queue scripted responses for an RPC (see docs/conformance/control-api.md)."""
        self.control("POST", "/_test/scripts", {"rpc": rpc, "steps": list(steps)})

    def requests_log(self, rpc: str | None = None) -> list[dict[str, Any]]:
        """The server's request log (optionally one RPC's)."""
        suffix = f"?rpc={rpc}" if rpc else ""
        return list(self.control("GET", "/_test/requests" + suffix)["requests"])

    def wait_until(self, predicate: Any, timeout: float = 10.0) -> bool:
        """Poll ``predicate()`` until it is true or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return bool(predicate())
