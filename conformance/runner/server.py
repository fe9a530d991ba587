"""The reference server a case runs against, and the runner's admin access to it.

The runner talks to the server with plain HTTPS (``requests`` and the admin
identity ``init`` writes), never through an SDK under test: a broken SDK must
show up as failed cases, not as a broken runner.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlencode

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from requests.adapters import HTTPAdapter

from secinfra_server._gen.routes import ROUTES, Route

from .attestation import JwtIssuer

STARTUP_TIMEOUT_SECONDS: Final = 60.0
CONTROL_TIMEOUT_SECONDS: Final = 30.0
TRUST_DOMAIN: Final = "secinfra.local"
ADMIN_ID: Final = f"spiffe://{TRUST_DOMAIN}/secinfra/admin"
#: Control path that reissues the admin identity (the runner reloads its files).
ADMIN_IDENTITY_PATH: Final = "/_test/admin-identity"
#: Server log lines kept per server (for failure reports and request ids).
LOG_LINES_KEPT: Final = 5000
#: How long a request id check waits for the server's access line to be read.
REQUEST_ID_WAIT_SECONDS: Final = 3.0
#: How long a stopped replica may take to exit (SIGTERM drains its requests).
STOP_WAIT_SECONDS: Final = 40.0
#: The signals a case may stop a replica with.
STOP_SIGNALS: Final = {"KILL": signal.SIGKILL, "TERM": signal.SIGTERM}

ROUTES_BY_RPC: Final[dict[str, Route]] = {route.rpc: route for route in ROUTES}


class ServerError(RuntimeError):
    """The reference server could not be started or refused a control call."""


class Server:
    """A reference server subprocess in test mode on 127.0.0.1."""

    def __init__(
        self,
        settings: dict[str, Any] | None = None,
        *,
        jwt: JwtIssuer | None = None,
        name: str = "a",
        database_dsn: str | None = None,
        kek_from: Path | None = None,
    ) -> None:
        self.settings = dict(settings or {})
        #: JWT attestation: the server trusts this issuer's key ([jwt] in its TOML file).
        self.jwt = jwt
        #: The replica's name in a case (a, b, ...); "a" for a lone server.
        self.name = name
        #: PostgreSQL instead of SQLite (replica cases); passed in the
        #: environment, never on the command line (it holds a password).
        self._database_dsn = database_dsn
        self.data_dir = Path(tempfile.mkdtemp(prefix="secinfra-conformance-"))
        if kek_from is not None:
            # A replica of a running server: the same KEK unseals the CA key and
            # the secrets in the shared database. serve() makes the rest of the
            # data dir (its own admin identity and serving certificate).
            shutil.copyfile(kek_from, self.data_dir / "kek")
            (self.data_dir / "kek").chmod(0o600)
        #: The request log as it was just before a case stopped this replica.
        self._stopped_log: list[dict[str, Any]] | None = None
        self._stop_lock = threading.Lock()
        self.url = ""
        self._process: subprocess.Popen[str] | None = None
        self._lines: deque[str] = deque(maxlen=LOG_LINES_KEPT)
        self._request_ids: set[str] = set()
        self._lock = threading.Lock()
        self._logged = threading.Condition()
        self._session: requests.Session | None = None

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> Server:
        base = [sys.executable, "-m", "secinfra_server.cli"]
        flags = ["--data-dir", str(self.data_dir), "--host", "127.0.0.1", "--port", "0"]
        flags.append("--test-hooks")
        if self.jwt is not None:
            flags += ["--config", str(self.jwt.write_server_config(self.data_dir))]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if self._database_dsn is not None:
            env["SECINFRA_DATABASE_DSN"] = self._database_dsn
            flags.append("--migrate")  # under PostgreSQL's lock: replicas may race
        for name, value in self.settings.items():
            flag = "--" + name.replace("_", "-")
            if value is True:
                flags.append(flag)
            elif value is False:
                flags.append("--no-" + name.replace("_", "-"))
            elif value is not None:
                flags += [flag, str(value)]
        # `serve` initialises the data directory itself (KEK, CA, admin identity)
        # before it logs "serving"; a separate `init` would only cost a start-up.
        self._process = subprocess.Popen(  # noqa: S603
            [*base, "serve", *flags],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        ready = threading.Event()
        threading.Thread(target=self._read_logs, args=(ready,), daemon=True).start()
        if not ready.wait(STARTUP_TIMEOUT_SECONDS) or not self.url:
            self.close()
            raise ServerError("server did not start:\n" + "".join(list(self._lines)[-20:]))
        self._open_session()
        return self

    def _open_session(self) -> None:
        """An HTTPS session with the admin identity as the files hold it now."""
        if self._session is not None:
            self._session.close()
        session = requests.Session()
        session.trust_env = False  # no proxies, no REQUESTS_CA_BUNDLE
        admin = self.data_dir / "admin"
        session.cert = (str(admin / "cert.pem"), str(admin / "key.pem"))
        session.verify = str(admin / "bundle.pem")
        session.mount("https://", _ChainOnly())
        self._session = session

    def _read_logs(self, ready: threading.Event) -> None:
        assert self._process is not None
        assert self._process.stderr is not None
        for line in self._process.stderr:
            with self._lock:
                self._lines.append(line)
            if not line.startswith("{"):
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict):
                continue
            if record.get("message") == "serving" and record.get("url") and not ready.is_set():
                self.url = str(record["url"])
                ready.set()
            request_id = record.get("request_id") or (record.get("fields") or {}).get("request_id")
            if request_id:
                with self._logged:
                    self._request_ids.add(str(request_id))
                    self._logged.notify_all()
        ready.set()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)
        shutil.rmtree(self.data_dir, ignore_errors=True)

    @property
    def kek_path(self) -> Path:
        """The KEK file ``serve`` made in this server's data dir."""
        return self.data_dir / "kek"

    def stop(self, how: str = "KILL") -> None:
        """Stop this replica in the middle of a case (``KILL`` or ``TERM``).

        Its request log is read first and kept, so checks can still see what
        reached it; after a ``TERM`` the server drains its requests, so this
        waits (bounded) for the process to exit either way.
        """
        with self._stop_lock:
            if self._stopped_log is not None or self._process is None:
                return
            self._stopped_log = self.requests_since(0)
            self._process.send_signal(STOP_SIGNALS[how])
            try:
                self._process.wait(STOP_WAIT_SECONDS)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)

    @property
    def stopped(self) -> bool:
        """Whether a case stopped this replica (its log is then the one kept)."""
        return self._stopped_log is not None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        with self._lock:
            return "".join(list(self._lines)[-lines:])

    def issued_request_id(self, request_id: str) -> bool:
        """Whether the server logged a request with this id.

        The server writes its access line as the response goes out and a
        thread reads the lines as they come, so a client can hold an id
        before the line is read: a miss waits for it, bounded by
        `REQUEST_ID_WAIT_SECONDS`.
        """
        deadline = time.monotonic() + REQUEST_ID_WAIT_SECONDS
        with self._logged:
            while request_id not in self._request_ids:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._logged.wait(left)
            return True

    # -- identities ----------------------------------------------------------------
    @property
    def bundle_pem(self) -> str:
        return (self.data_dir / "admin" / "bundle.pem").read_text()

    def join_token(self, spiffe_id: str, ttl_seconds: int = 600) -> str:
        answer = self.admin("CreateJoinToken", {"spiffe_id": spiffe_id, "ttl_seconds": ttl_seconds})
        return str(answer["token"])

    def unusable_join_token(self, spiffe_id: str, kind: str) -> str:
        """A join token the server refuses: ``spent`` (enrolled with once, here),
        ``expired`` (its 1 s TTL has passed) or ``unknown`` (well-formed, never made)."""
        if kind == "unknown":
            return (
                "sjt_"
                + os.urandom(16).hex()
                + "."
                + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
            )
        if kind == "expired":
            token = self.join_token(spiffe_id, ttl_seconds=1)
            time.sleep(1.5)
            return token
        token = self.join_token(spiffe_id)
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([]))
            .sign(key, hashes.SHA256())
        )
        pem = csr.public_bytes(serialization.Encoding.PEM).decode()
        self.admin("IssueCertificate", {"csr_pem": pem, "join_token": token})
        return token

    # -- HTTP ----------------------------------------------------------------------
    def _request(self, method: str, path: str, body: Any = None) -> Any:
        assert self._session is not None, "start() first"
        kwargs: dict[str, Any] = {"timeout": CONTROL_TIMEOUT_SECONDS}
        if body is not None:
            kwargs["data"] = json.dumps(body)
            kwargs["headers"] = {"Content-Type": "application/json"}
        answer = self._session.request(method, self.url + path, **kwargs)
        if answer.status_code >= 400:
            raise ServerError(f"{method} {path}: HTTP {answer.status_code}: {answer.text[:500]}")
        return answer.json() if answer.content else {}

    def control(self, method: str, path: str, body: Any = None) -> Any:
        """A call to the ``/_test/`` control API."""
        if not path.startswith("/_test/"):
            raise ServerError(f"control paths start with /_test/, not {path!r}")
        result = self._request(method, path, body)
        if path == ADMIN_IDENTITY_PATH:
            self._open_session()  # the server rewrote the admin files: use the new ones
        return result

    def admin(self, rpc: str, request: dict[str, Any]) -> Any:
        """An API call as the admin identity; ``request`` is the wire JSON."""
        route = ROUTES_BY_RPC.get(rpc)
        if route is None:
            raise ServerError(f"unknown RPC {rpc!r}")
        path = route.path
        for name in route.path_params:
            value = str(request.get(name, ""))
            if "{" + name + "=**}" in path:
                path = path.replace("{" + name + "=**}", quote(value, safe="/"))
            else:
                path = path.replace("{" + name + "}", quote(value, safe=""))
        rest = {k: v for k, v in request.items() if k not in route.path_params}
        if route.http_method in ("GET", "DELETE"):
            query = urlencode(rest, doseq=True)
            return self._request(route.http_method, path + ("?" + query if query else ""))
        return self._request(route.http_method, path, rest)

    def script(self, rpc: str, steps: list[dict[str, Any]]) -> None:
        self.control("POST", "/_test/scripts", {"rpc": rpc, "steps": steps})

    def last_seq(self) -> int:
        entries = self.requests_since(0)
        return int(entries[-1]["seq"]) if entries else 0

    def requests_since(self, since: int) -> list[dict[str, Any]]:
        """The request log after ``since``; for a stopped replica, as it was kept."""
        kept = self._stopped_log
        if kept is not None:
            return [dict(e) for e in kept if int(e["seq"]) > since]
        return list(self.control("GET", f"/_test/requests?since={since}")["requests"])

    def reset(self) -> None:
        """Forget scripts and the clock shift (between cases sharing this server)."""
        self.control("DELETE", "/_test/scripts")
        self.control("DELETE", "/_test/clock")


def b64(text: str) -> str:
    """A text value as the wire's base64 bytes."""
    return base64.b64encode(text.encode()).decode()


class _ChainOnly(HTTPAdapter):
    """Verifies the server's chain against the bundle, not its host name.

    A case may have the server present DNS and IP names that do not match its
    URL on purpose (spec 8.5.3: clients verify the SPIFFE ID, not the host);
    the runner's own control calls must still reach it.
    """

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["assert_hostname"] = False
        super().init_poolmanager(*args, **kwargs)
