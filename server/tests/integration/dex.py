"""Dex, a real OpenID provider, started by the login tests on loopback.

scripts/ensure-dex.sh builds it (pinned, once, into .cache/dex/); the nox
sessions pass its path in SECINFRA_DEX. Dex runs with in-memory storage, HTTPS
with a test CA, its password database (static passwords, with groups) and one
public client: the CLI's, with no redirect URIs listed, so Dex allows any
loopback redirect (RFC 8252) and its device flow.

:class:`Browser` plays the person: it follows Dex's redirects with requests,
posts the password form, and for the device flow enters the user code.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest
import requests

from .harness import free_port
from .jwks_issuer import loopback_tls

ROOT: Final = Path(__file__).resolve().parents[3]
CLIENT_ID: Final = "secinfra-cli"
OTHER_CLIENT_ID: Final = "other-app"
PASSWORD: Final = "password"
#: bcrypt of PASSWORD (cost 10): Dex stores only hashes.
PASSWORD_HASH: Final = "$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W"
USERS: Final = {
    "alice@example.com": {"userID": "alice-0001", "groups": ["payments-eng", "oncall"]},
    "bob@example.com": {"userID": "bob-0002", "groups": []},
}
_FORM_ACTION = re.compile(r'<form[^>]*action="([^"]+)"')


def dex_binary() -> Path:
    """The Dex executable: SECINFRA_DEX, else what ensure-dex.sh builds."""
    given = os.environ.get("SECINFRA_DEX")
    if given:
        return Path(given)
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "ensure-dex.sh")],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if out.returncode != 0:
        pytest.fail(f"cannot build Dex: {out.stderr[-2000:]}")
    return Path(out.stdout.strip().splitlines()[-1])


class Dex:
    """A running Dex; ``issuer`` is its URL, ``ca_file`` the CA of its HTTPS."""

    def __init__(
        self,
        directory: Path,
        *,
        id_token_lifetime: str = "10m",
        users: dict[str, dict[str, Any]] | None = None,
        replaces: Dex | None = None,
    ) -> None:
        """``replaces``: a stopped Dex whose issuer URL and TLS this one takes
        over (a provider restarted with new signing keys and users)."""
        directory.mkdir(parents=True, exist_ok=True)
        if replaces is not None:
            self.tls, port = replaces.tls, replaces.port
        else:
            self.tls, port = loopback_tls(directory / "tls"), free_port()
        self.ca_file, cert, key = self.tls
        self.port = port
        self.issuer = f"https://127.0.0.1:{port}/dex"
        config: dict[str, Any] = {
            "issuer": self.issuer,
            "storage": {"type": "memory"},
            "web": {"https": f"127.0.0.1:{port}", "tlsCert": str(cert), "tlsKey": str(key)},
            "logger": {"level": "warn"},
            "oauth2": {"skipApprovalScreen": True},
            "expiry": {"idTokens": id_token_lifetime, "deviceRequests": "5m"},
            "enablePasswordDB": True,
            "staticPasswords": [
                {
                    "email": email,
                    "hash": PASSWORD_HASH,
                    "username": email.partition("@")[0],
                    "emailVerified": True,
                    **user,
                }
                for email, user in (users or USERS).items()
            ],
            "staticClients": [
                {"id": CLIENT_ID, "name": "secinfra CLI", "public": True},
                {"id": OTHER_CLIENT_ID, "name": "another app", "public": True},
            ],
        }
        # Dex reads YAML, a superset of JSON.
        self.config_file = directory / "dex.json"
        self.config_file.write_text(json.dumps(config))
        self._log = (directory / "dex.log").open("wb")
        self._process = subprocess.Popen(
            [str(dex_binary()), "serve", str(self.config_file)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        url = self.issuer + "/.well-known/openid-configuration"
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"Dex exited: {self.log_text()[-2000:]}")
            try:
                if requests.get(url, verify=str(self.ca_file), timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError("Dex did not become ready within 30 s")

    def log_text(self) -> str:
        self._log.flush()
        return Path(self._log.name).read_text(errors="replace")

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(5)
        self._log.close()


def running_dex(directory: Path, **options: Any) -> Iterator[Dex]:
    dex = Dex(directory, **options)
    try:
        yield dex
    finally:
        dex.stop()


class Browser:
    """The person at the browser, signing in to Dex with a password."""

    def __init__(self, dex: Dex) -> None:
        self._http = requests.Session()
        self._verify = str(dex.ca_file)  # per request: REQUESTS_CA_BUNDLE beats a session's

    def _sign_in(self, page: requests.Response, email: str) -> requests.Response:
        action = _form_action(page)
        return self._http.post(
            action, data={"login": email, "password": PASSWORD}, timeout=10, verify=self._verify
        )

    def sign_in(self, authorization_url: str, email: str) -> requests.Response:
        """Open the authorization URL, sign in; Dex redirects to the loopback
        redirect URI, which requests follows (so the CLI receives the code)."""
        page = self._http.get(authorization_url, timeout=10, verify=self._verify)
        page.raise_for_status()
        return self._sign_in(page, email)

    def approve_device(self, verification_uri: str, email: str) -> requests.Response:
        """Open the device page (user code filled in), submit it, sign in."""
        page = self._http.get(verification_uri, timeout=10, verify=self._verify)
        page.raise_for_status()
        code = re.search(r'name="user_code"[^>]*value="([^"]+)"', page.text)
        assert code is not None, page.text[:2000]
        login = self._http.post(
            _form_action(page), data={"user_code": code.group(1)}, timeout=10, verify=self._verify
        )
        login.raise_for_status()
        return self._sign_in(login, email)


def _form_action(page: requests.Response) -> str:
    found = _FORM_ACTION.search(page.text)
    assert found is not None, f"no form on {page.url}: {page.text[:2000]}"
    return requests.compat.urljoin(page.url, html.unescape(found.group(1)))
