"""``secinfra login``: a person's OpenID Connect sign-in, for a user certificate.

The OAuth side, as RFC 8252 (native apps) and RFC 8628 (device grant) say:

- **Authorization code with PKCE** (RFC 7636, S256): a loopback redirect
  (``http://127.0.0.1:<free port>/callback``) that this process listens on; the
  URL is printed, a browser opened only when asked. ``state`` is checked in
  constant time; the code is exchanged with the verifier.
- **Device authorization grant** for machines without a browser: the user code
  and verification URL are printed, the token endpoint polled at the interval
  the provider asks for (``slow_down`` adds 5 s).

The key is made here (ECDSA P-256) and never leaves the machine. In the code
flow the ID token's ``nonce`` is :func:`key_nonce` of the CSR's public key, so
the server can tell that the token was issued for this key. No refresh token
is kept: when the certificate expires, log in again (as ``tsh`` and ``step ssh
login`` do). :class:`LoginStore` keeps the key (0600), the certificate, the
trust bundle and a small session file in one directory, each written
atomically.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import os
import secrets
import threading
import time
import webbrowser
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ._identity._file_sink import replace_file

DISCOVERY_PATH: Final = "/.well-known/openid-configuration"
DEVICE_GRANT: Final = "urn:ietf:params:oauth:grant-type:device_code"
#: How long the code flow waits for the browser to come back.
DEFAULT_LOGIN_TIMEOUT_SECONDS: Final = 300.0
HTTP_TIMEOUT_SECONDS: Final = 10.0
SLOW_DOWN_SECONDS: Final = 5
KEY_FILE: Final = "key.pem"
CERT_FILE: Final = "cert.pem"
BUNDLE_FILE: Final = "bundle.pem"
SESSION_FILE: Final = "session.json"


class LoginError(Exception):
    """The sign-in did not complete; the message says what to do."""


def key_nonce(public_key_der: bytes) -> str:
    """base64url (no padding) of SHA-256 of a DER SubjectPublicKeyInfo: the
    nonce that binds an ID token to that key (the server computes the same)."""
    digest = hashlib.sha256(public_key_der).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class Workstation:
    """A fresh key and its CSR; the key stays in this process until stored."""

    key: ec.EllipticCurvePrivateKey
    csr_pem: str
    nonce: str

    @classmethod
    def new(cls) -> Workstation:
        key = ec.generate_private_key(ec.SECP256R1())
        csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
        pem = csr.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()
        spki = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls(key, pem, key_nonce(spki))

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


class Provider:
    """One OpenID provider, found through its discovery document."""

    def __init__(
        self, issuer: str, client_id: str, scopes: list[str], *, verify: str | bool
    ) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self.scopes = scopes
        self._http = requests.Session()
        # Per request, not on the session: REQUESTS_CA_BUNDLE would win over
        # a session's verify (requests #3829).
        self._verify = verify
        document = self._json("GET", issuer.rstrip("/") + DISCOVERY_PATH)
        if document.get("issuer") != issuer:
            raise LoginError(
                f"the provider's discovery document names issuer {document.get('issuer')!r},"
                f" not {issuer!r}"
            )
        self.document = document

    def _endpoint(self, name: str) -> str:
        value = self.document.get(name)
        if not isinstance(value, str) or not value.startswith("https://"):
            raise LoginError(f"the provider has no https {name} in its discovery document")
        return value

    def _json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(
                method, url, timeout=HTTP_TIMEOUT_SECONDS, verify=self._verify, **kwargs
            )
        except requests.RequestException as exc:
            raise LoginError(f"cannot reach the provider at {url}: {type(exc).__name__}") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise LoginError(f"the provider answered {url} with HTTP {response.status_code}")
        if response.status_code >= 400 and "error" not in body:
            raise LoginError(f"the provider answered {url} with HTTP {response.status_code}")
        return body

    # -- authorization code + PKCE, loopback redirect (RFC 8252 7.3) -------------------
    def code_flow(
        self,
        nonce: str,
        *,
        announce: Callable[[str], None],
        open_browser: bool = False,
        timeout: float = DEFAULT_LOGIN_TIMEOUT_SECONDS,
    ) -> str:
        """The ID token, after the user signed in in a browser."""
        verifier = _b64url(secrets.token_bytes(32))
        challenge = _b64url(hashlib.sha256(verifier.encode()).digest())
        state = _b64url(secrets.token_bytes(16))
        with _LoopbackReceiver() as receiver:
            query = {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": receiver.redirect_uri,
                "scope": " ".join(self.scopes),
                "state": state,
                "nonce": nonce,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
            url = f"{self._endpoint('authorization_endpoint')}?{urlencode(query)}"
            announce(url)
            if open_browser:
                webbrowser.open(url)
            params = receiver.wait(timeout)
        if not hmac.compare_digest(params.get("state", "").encode(), state.encode()):
            raise LoginError("the sign-in came back with the wrong state; start again")
        if "error" in params:
            raise LoginError(f"the provider refused the sign-in: {params['error']}")
        code = params.get("code")
        if not code:
            raise LoginError("the sign-in came back without a code")
        tokens = self._json(
            "POST",
            self._endpoint("token_endpoint"),
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": receiver.redirect_uri,
                "client_id": self.client_id,
                "code_verifier": verifier,
            },
        )
        return _id_token(tokens)

    # -- device authorization grant (RFC 8628) -----------------------------------------
    def device_flow(
        self,
        *,
        announce: Callable[[str, str], None],
        timeout: float = DEFAULT_LOGIN_TIMEOUT_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> str:
        """The ID token, after the user approved the code on another device."""
        grant = self._json(
            "POST",
            self._endpoint("device_authorization_endpoint"),
            data={"client_id": self.client_id, "scope": " ".join(self.scopes)},
        )
        if "error" in grant or not isinstance(grant.get("device_code"), str):
            raise LoginError(f"the provider refused the device grant: {grant.get('error')}")
        uri = grant.get("verification_uri_complete") or grant.get("verification_uri", "")
        announce(str(uri), str(grant.get("user_code", "")))
        interval = float(grant.get("interval") or 5)
        deadline = time.monotonic() + min(timeout, float(grant.get("expires_in") or timeout))
        while True:
            tokens = self._json(
                "POST",
                self._endpoint("token_endpoint"),
                data={
                    "grant_type": DEVICE_GRANT,
                    "device_code": grant["device_code"],
                    "client_id": self.client_id,
                },
            )
            error = tokens.get("error")
            if error is None:
                return _id_token(tokens)
            if error == "slow_down":
                interval += SLOW_DOWN_SECONDS
            elif error != "authorization_pending":
                raise LoginError(f"the device sign-in ended: {error}")
            if time.monotonic() + interval > deadline:
                raise LoginError("the device code expired before it was approved; start again")
            sleep(interval)


def _id_token(tokens: Mapping[str, Any]) -> str:
    if "error" in tokens:
        raise LoginError(f"the provider refused the token request: {tokens['error']}")
    token = tokens.get("id_token")
    if not isinstance(token, str) or not token:
        raise LoginError("the provider gave no ID token (is the 'openid' scope allowed?)")
    return token


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _ReceiverServer

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != "/callback":
            self.send_error(404)
            return
        params = {k: v[0] for k, v in parse_qs(parts.query).items()}
        body = b"secinfra: signed in; you can close this window.\n"
        if "error" in params:
            body = b"secinfra: the sign-in failed; see the terminal.\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server.params = params
        self.server.arrived.set()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ReceiverServer(http.server.HTTPServer):
    params: dict[str, str]
    arrived: threading.Event


class _LoopbackReceiver:
    """An HTTP listener on 127.0.0.1 (a free port) for the one redirect."""

    def __enter__(self) -> _LoopbackReceiver:
        self._httpd = _ReceiverServer(("127.0.0.1", 0), _Handler)
        self._httpd.params = {}
        self._httpd.arrived = threading.Event()
        self.redirect_uri = f"http://127.0.0.1:{self._httpd.server_address[1]}/callback"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout: float) -> dict[str, str]:
        if not self._httpd.arrived.wait(timeout):
            raise LoginError(f"no sign-in within {int(timeout)} s; start again")
        return self._httpd.params

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


@dataclass(frozen=True)
class Session:
    """What ``secinfra login`` left: the server and the identity it got."""

    server: str
    spiffe_id: str
    not_after: str


class LoginStore:
    """The login directory: key (0600), certificate, bundle, session."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def key_file(self) -> Path:
        return self.directory / KEY_FILE

    @property
    def cert_file(self) -> Path:
        return self.directory / CERT_FILE

    @property
    def bundle_file(self) -> Path:
        return self.directory / BUNDLE_FILE

    def save(self, key_pem: bytes, cert_pem: str, bundle_pem: bytes, session: Session) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        # The key first: a certificate on disk always has its key beside it.
        replace_file(self.key_file, key_pem, 0o600)
        replace_file(self.cert_file, cert_pem.encode(), 0o644)
        replace_file(self.bundle_file, bundle_pem, 0o644)
        document = json.dumps(session.__dict__, indent=2, sort_keys=True) + "\n"
        replace_file(self.directory / SESSION_FILE, document.encode(), 0o600)

    def session(self) -> Session | None:
        try:
            data = json.loads((self.directory / SESSION_FILE).read_text(encoding="utf-8"))
            return Session(str(data["server"]), str(data["spiffe_id"]), str(data["not_after"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def has_identity(self) -> bool:
        return self.key_file.exists() and self.cert_file.exists()

    def remove(self) -> list[Path]:
        """Delete what login wrote; the files removed."""
        removed = []
        for name in (KEY_FILE, CERT_FILE, BUNDLE_FILE, SESSION_FILE):
            path = self.directory / name
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            removed.append(path)
        return removed


def default_login_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """``$SECINFRA_LOGIN_DIR``, else ``$XDG_CONFIG_HOME/secinfra/login``
    (``~/.config/secinfra/login``)."""
    if environ.get("SECINFRA_LOGIN_DIR"):
        return Path(environ["SECINFRA_LOGIN_DIR"]).expanduser()
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "secinfra" / "login"
