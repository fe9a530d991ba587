"""Test mode: the conformance control API (``--test-hooks``; loopback only).

Off by default and refused on any non-loopback address (see config.validate).
When on, the server also serves ``/_test/...``, callable with the admin
identity only, to:

- **script responses** per RPC: each request to the RPC takes the next step of
  its script (a status with headers and body, an optional delay, a connection
  reset before or after the response headers, or ``pass`` to let the real
  handler answer); an exhausted script lets requests through;
- **read the request log**: every API request with its method, path, RPC,
  headers, client certificate serial, SPIFFE ID and NotAfter, the connection
  it came on (a number per TLS connection), receive time (monotonic seconds
  and wall clock), status, whether a script answered it, and the body as
  received (JSON with every secret-bearing field masked, and a keyed digest
  of the exact bytes);
- **control the CA and the clock**: lower the leaf TTL (down to 2 s), rotate the
  CA now (prepare + activate), reissue the serving certificate, reissue the
  admin identity from the active CA (so that a test can retire the CA that
  signed the old one), alter the next workload certificates on purpose (a
  different SPIFFE ID, a CA in no bundle), and shift the server clock.

Test mode sits above the dispatcher: it is the dispatcher's
:class:`~secinfra_server._http.RequestObserver`, and reaches the rest of the
server only through :class:`TestModeControls`, which the wiring implements.

docs/conformance/control-api.md documents the wire format.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import os
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from . import ca
from ._clock import Clock
from ._gen.routes import ROUTES, Route
from ._http import RequestTrace, peer_der
from ._issuance_faults import IssuanceFault, ServingFault
from ._logging import REDACTED_FIELDS
from .config import ServerConfig, admin_files
from .errors import ApiError

#: The request log keeps at most this many entries (oldest dropped first).
MAX_LOG_ENTRIES: Final = 20_000
MIN_TEST_LEAF_TTL_SECONDS: Final = 2
#: Lifetime of an admin identity reissued by POST /_test/admin-identity.
REISSUED_ADMIN_TTL: Final = timedelta(hours=1)
RESET_MODES: Final = frozenset({"before_headers", "after_headers"})
NEXT_ISSUANCE_FIELDS: Final = frozenset({"spiffe_id", "untrusted_ca", "times"})
SERVING_FAULT_FIELDS: Final = frozenset(
    {"spiffe_id", "extra_uri_sans", "dns_names", "ip_addresses"}
)
_RPC_NAMES: Final = frozenset(route.rpc for route in ROUTES)


@dataclass(frozen=True)
class Step:
    """One scripted answer."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    delay: float = 0.0
    reset: str | None = None
    passthrough: bool = False

    @classmethod
    def parse(cls, data: Any, where: str) -> Step:
        """A step from its JSON form, or invalid_argument naming the bad field."""

        def bad(message: str) -> ApiError:
            return ApiError("invalid_argument", f"secinfra: test hooks: {where}: {message}")

        if not isinstance(data, dict):
            raise bad("a step is a JSON object")
        unknown = set(data) - {"status", "headers", "body", "delay_ms", "reset", "pass"}
        if unknown:
            raise bad(f"unknown fields {sorted(unknown)}")
        status = data.get("status", 200)
        if not isinstance(status, int) or not 200 <= status <= 599:
            raise bad("status must be an integer from 200 to 599")
        headers = data.get("headers", {})
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise bad("headers must map strings to strings")
        delay_ms = data.get("delay_ms", 0)
        if not isinstance(delay_ms, int) or not 0 <= delay_ms <= 60_000:
            raise bad("delay_ms must be an integer from 0 to 60000")
        reset = data.get("reset")
        if reset is not None and reset not in RESET_MODES:
            raise bad(f"reset must be one of {sorted(RESET_MODES)}")
        passthrough = data.get("pass", False)
        if not isinstance(passthrough, bool):
            raise bad("pass must be true or false")
        return cls(status, dict(headers), data.get("body"), delay_ms / 1000, reset, passthrough)


@dataclass
class LogEntry:
    """One API request as the server saw it."""

    seq: int
    received_monotonic: float
    received_at: str
    method: str
    path: str
    rpc: str | None
    headers: dict[str, str]
    #: The request target exactly as sent on the request line: the path as
    #: encoded (not decoded, not normalised) and the query string.
    target: str = ""
    #: The body's JSON as received, every field named as holding a secret
    #: (``value``, ``join_token``, ``jwt``, ...: the log formatter's list)
    #: replaced by ``MASKED``; None for no body or one that is not JSON.
    body: Any = None
    #: HMAC-SHA256 of the body's exact bytes under a key made at start and
    #: never shown: equal bodies have equal digests, and a low-entropy
    #: secret cannot be guessed from one. None when no body was read.
    body_digest: str | None = None
    connection: int | None = None
    client_serial: str | None = None
    client_spiffe_id: str | None = None
    client_not_after: str | None = None
    client_issuer: str | None = None
    status: int | None = None
    #: Monotonic seconds when the server finished with the request (its
    #: response sent or the connection aborted); None while it is in flight.
    finished_monotonic: float | None = None
    scripted: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "received_monotonic": self.received_monotonic,
            "received_at": self.received_at,
            "method": self.method,
            "path": self.path,
            "target": self.target,
            "body": self.body,
            "body_digest": self.body_digest,
            "rpc": self.rpc,
            "headers": self.headers,
            "connection": self.connection,
            "client_serial": self.client_serial,
            "client_spiffe_id": self.client_spiffe_id,
            "client_not_after": self.client_not_after,
            "client_issuer": self.client_issuer,
            "status": self.status,
            "finished_monotonic": self.finished_monotonic,
            "scripted": self.scripted,
        }


#: What a secret-bearing field's value becomes in the request log.
MASKED: Final = "<masked>"


def _masked(value: Any) -> Any:
    """``value`` with the value of every field named in REDACTED_FIELDS masked, at any depth."""
    if isinstance(value, dict):
        return {k: MASKED if k in REDACTED_FIELDS else _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


class TestModeControls(Protocol):
    """What test mode may do to the server it runs in: no more than this.

    Defined here, by what the control API needs; the wiring (``server.py``)
    implements it over the CA run-time state, the clock, the access policy and
    the serving certificate.
    """

    @property
    def config(self) -> ServerConfig:
        """The server's settings (trust domain, data dir, CA lifetime)."""
        ...

    @property
    def clock(self) -> Clock:
        """The server clock, which test mode may shift."""
        ...

    @property
    def trusted_pem(self) -> str:
        """PEM of every CA in the trust bundle."""
        ...

    def verify_peer(self, der: bytes | None) -> ca.Peer:
        """Verify a client certificate now, as the dispatcher does."""
        ...

    async def is_admin(self, spiffe_id: str) -> bool:
        """Whether the caller holds the admin relation."""
        ...

    def set_leaf_ttl(self, ttl: timedelta) -> None:
        """New workload certificates live this long."""
        ...

    async def rotate_ca(self) -> int:
        """Prepare and activate a new CA now; returns the bundle sequence."""
        ...

    async def rotate_serving_certificate(self, fault: ServingFault | None = None) -> datetime:
        """Issue and hot-load a new serving certificate (wrong on purpose with
        ``fault``); returns its NotAfter."""
        ...

    async def issue_admin_certificate(self, csr: bytes, ttl: timedelta) -> x509.Certificate:
        """Sign an admin certificate (never altered by an issuance fault)."""
        ...

    def arm_issuance_fault(self, fault: IssuanceFault | None) -> int:
        """Alter the next workload certificates (None: stop); returns how many."""
        ...


class _Trace:
    """The request log's view of one request (a :class:`RequestTrace`)."""

    def __init__(self, hooks: TestHooks, entry: LogEntry, route: Route) -> None:
        self._hooks = hooks
        self._entry = entry
        self._route = route

    def caller_verified(self, peer: ca.Peer) -> None:
        self._entry.client_serial = peer.serial
        self._entry.client_spiffe_id = peer.spiffe_id

    async def substitute(self, request: web.Request) -> web.StreamResponse | None:
        step = self._hooks.next_step(self._route)
        if step is None:
            return None
        self._entry.scripted = True
        if request.can_read_body:
            # A scripted answer comes before the handler reads the body: read
            # it here (aiohttp's size limit holds), so every attempt's body is
            # in the log.
            self.body_received(await request.read())
        return await self._hooks.answer(request, step)

    def body_received(self, raw: bytes) -> None:
        self._entry.body, self._entry.body_digest = self._hooks.describe_body(raw)

    def finished(self, status: int) -> None:
        self._entry.status = status
        self._entry.finished_monotonic = time.monotonic()


class TestHooks:
    """Scripts, the request log and the control endpoints of one server.

    The dispatcher's :class:`~secinfra_server._http.RequestObserver`: it logs
    every routed request and plays scripted answers in the handler's place.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, controls: TestModeControls) -> None:
        self._controls = controls
        self._scripts: dict[str, deque[Step]] = {}
        self._log: deque[LogEntry] = deque(maxlen=MAX_LOG_ENTRIES)
        self._seq = itertools.count(1)
        # One number per TLS connection, keyed by the connection's SSL object
        # (weakly: a closed connection's entry goes with it).
        self._connections: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        self._connection_ids = itertools.count(1)
        self._body_key = os.urandom(32)

    def _connection(self, request: web.Request) -> int | None:
        transport = request.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        if ssl_object is None:
            return None
        number = self._connections.get(ssl_object)
        if number is None:
            number = next(self._connection_ids)
            self._connections[ssl_object] = number
        return number

    # -- used by the dispatcher ------------------------------------------------------
    def request_started(self, request: web.Request, route: Route) -> RequestTrace:
        """Log the request and follow it to its end."""
        return _Trace(self, self.record(request, route), route)

    def record(self, request: web.Request, route: Route | None) -> LogEntry:
        """Log a request as it arrives (status is filled in when it ends).

        The client certificate is read as presented, before (and whether or
        not) it is verified: the log shows a revoked or expired certificate
        too, and a certificate sent where none belongs (an AUTH_NONE call).
        """
        entry = LogEntry(
            seq=next(self._seq),
            received_monotonic=time.monotonic(),
            received_at=self._controls.clock.now().isoformat(),
            method=request.method,
            path=request.path,
            rpc=route.rpc if route is not None else None,
            headers=dict(request.headers),
            target=request.raw_path,
            connection=self._connection(request),
        )
        _describe_client_certificate(entry, request)
        self._log.append(entry)
        return entry

    def describe_body(self, raw: bytes) -> tuple[Any, str]:
        """(the body's JSON with secret-bearing fields masked, or None; its keyed digest)."""
        digest = hmac.new(self._body_key, raw, hashlib.sha256).hexdigest()
        try:
            return (_masked(json.loads(raw)) if raw else None), digest
        except (ValueError, RecursionError):  # not JSON, or nested past what Python parses
            return None, digest

    def next_step(self, route: Route) -> Step | None:
        """The scripted step for this request, or None to let it through."""
        script = self._scripts.get(route.rpc)
        if not script:
            return None
        step = script.popleft()
        return None if step.passthrough else step

    async def answer(self, request: web.Request, step: Step) -> web.StreamResponse:
        """Play a scripted step."""
        if step.delay:
            await asyncio.sleep(step.delay)
        transport = request.transport
        if step.reset == "before_headers":
            if transport is not None:
                transport.abort()
            raise ConnectionResetError("scripted reset before headers")
        body = b"" if step.body is None else json.dumps(step.body).encode()
        if step.reset == "after_headers":
            response = web.StreamResponse(status=step.status, headers=step.headers)
            response.content_length = len(body) + 64  # promise more than is sent
            await response.prepare(request)
            await response.write(body[: len(body) // 2])
            if transport is not None:
                transport.abort()
            raise ConnectionResetError("scripted reset after headers")
        headers = {"Content-Type": "application/json", **step.headers} if body else step.headers
        return web.Response(status=step.status, body=body, headers=headers)

    # -- the control API ---------------------------------------------------------------
    def register(self, app: web.Application) -> None:
        """Add the /_test/ routes."""
        app.router.add_post("/_test/scripts", self._put_script)
        app.router.add_delete("/_test/scripts", self._clear_scripts)
        app.router.add_get("/_test/requests", self._get_requests)
        app.router.add_delete("/_test/requests", self._clear_requests)
        app.router.add_post("/_test/clock", self._shift_clock)
        app.router.add_delete("/_test/clock", self._reset_clock)
        app.router.add_post("/_test/ca/leaf-ttl", self._leaf_ttl)
        app.router.add_post("/_test/ca/rotate", self._rotate_ca)
        app.router.add_post("/_test/server-certificate/rotate", self._rotate_server_cert)
        app.router.add_post("/_test/admin-identity", self._reissue_admin_identity)
        app.router.add_post("/_test/ca/next-issuance", self._arm_issuance_fault)
        app.router.add_delete("/_test/ca/next-issuance", self._clear_issuance_fault)

    async def _admin(self, request: web.Request) -> dict[str, Any]:
        peer = self._controls.verify_peer(peer_der(request))
        if not await self._controls.is_admin(peer.spiffe_id):
            raise ApiError("permission_denied", "secinfra: test hooks: admin identity required")
        if request.method in ("POST", "PUT") and request.can_read_body:
            try:
                data = await request.json()
            except ValueError:
                raise ApiError(
                    "invalid_argument", "secinfra: test hooks: body is not valid JSON"
                ) from None
            if not isinstance(data, dict):
                raise ApiError("invalid_argument", "secinfra: test hooks: body must be an object")
            return data
        return {}

    async def _call(self, request: web.Request, fn: Any) -> web.Response:
        try:
            data = await self._admin(request)
            result = await fn(data)
        except ApiError as exc:
            return web.json_response(exc.envelope(""), status=exc.status)
        return web.json_response(result)

    async def _put_script(self, request: web.Request) -> web.Response:
        async def run(data: dict[str, Any]) -> dict[str, Any]:
            rpc = data.get("rpc")
            if rpc not in _RPC_NAMES:
                raise ApiError(
                    "invalid_argument",
                    f"secinfra: test hooks: rpc must be one of the API's RPC names; got {rpc!r}",
                )
            steps = data.get("steps")
            if not isinstance(steps, list) or not steps:
                raise ApiError(
                    "invalid_argument", "secinfra: test hooks: steps must be a non-empty list"
                )
            parsed = [Step.parse(step, f"steps[{i}]") for i, step in enumerate(steps)]
            self._scripts.setdefault(str(rpc), deque()).extend(parsed)
            return {"rpc": rpc, "queued": len(self._scripts[str(rpc)])}

        return await self._call(request, run)

    async def _clear_scripts(self, request: web.Request) -> web.Response:
        async def run(_data: dict[str, Any]) -> dict[str, Any]:
            self._scripts.clear()
            return {}

        return await self._call(request, run)

    async def _get_requests(self, request: web.Request) -> web.Response:
        async def run(_data: dict[str, Any]) -> dict[str, Any]:
            try:
                since = int(request.query.get("since", "0"))
            except ValueError:
                raise ApiError(
                    "invalid_argument", "secinfra: test hooks: since must be an integer"
                ) from None
            rpc = request.query.get("rpc")
            entries = [
                e.to_json() for e in self._log if e.seq > since and (rpc is None or e.rpc == rpc)
            ]
            return {"requests": entries}

        return await self._call(request, run)

    async def _clear_requests(self, request: web.Request) -> web.Response:
        async def run(_data: dict[str, Any]) -> dict[str, Any]:
            self._log.clear()
            return {}

        return await self._call(request, run)

    async def _shift_clock(self, request: web.Request) -> web.Response:
        async def run(data: dict[str, Any]) -> dict[str, Any]:
            seconds = data.get("shift_seconds")
            if not isinstance(seconds, int | float) or isinstance(seconds, bool):
                raise ApiError(
                    "invalid_argument", "secinfra: test hooks: shift_seconds must be a number"
                )
            self._controls.clock.shift(timedelta(seconds=seconds))
            return {"offset_seconds": self._controls.clock.offset.total_seconds()}

        return await self._call(request, run)

    async def _reset_clock(self, request: web.Request) -> web.Response:
        async def run(_data: dict[str, Any]) -> dict[str, Any]:
            self._controls.clock.reset()
            return {"offset_seconds": 0.0}

        return await self._call(request, run)

    async def _leaf_ttl(self, request: web.Request) -> web.Response:
        async def run(data: dict[str, Any]) -> dict[str, Any]:
            seconds = data.get("seconds")
            if not isinstance(seconds, int) or seconds < MIN_TEST_LEAF_TTL_SECONDS:
                raise ApiError(
                    "invalid_argument",
                    f"secinfra: test hooks: seconds must be an integer >="
                    f" {MIN_TEST_LEAF_TTL_SECONDS}",
                )
            self._controls.set_leaf_ttl(timedelta(seconds=seconds))
            return {"leaf_ttl_seconds": seconds}

        return await self._call(request, run)

    async def _rotate_ca(self, request: web.Request) -> web.Response:
        async def run(_data: dict[str, Any]) -> dict[str, Any]:
            return {"bundle_sequence": await self._controls.rotate_ca()}

        return await self._call(request, run)

    async def _arm_issuance_fault(self, request: web.Request) -> web.Response:
        async def run(data: dict[str, Any]) -> dict[str, Any]:
            fault = await self._parse_issuance_fault(data)
            return {"pending": self._controls.arm_issuance_fault(fault)}

        return await self._call(request, run)

    async def _parse_issuance_fault(self, data: dict[str, Any]) -> IssuanceFault:
        """The fault a POST /_test/ca/next-issuance body asks for, or invalid_argument."""

        def bad(message: str) -> ApiError:
            return ApiError("invalid_argument", f"secinfra: test hooks: next-issuance: {message}")

        unknown = set(data) - NEXT_ISSUANCE_FIELDS
        if unknown:
            raise bad(f"unknown fields {sorted(unknown)}; use {sorted(NEXT_ISSUANCE_FIELDS)}")
        times = data.get("times", 1)
        if not isinstance(times, int) or isinstance(times, bool) or times < 1:
            raise bad("times must be an integer >= 1")
        untrusted = data.get("untrusted_ca", False)
        if not isinstance(untrusted, bool):
            raise bad("untrusted_ca must be true or false")
        spiffe_id = data.get("spiffe_id")
        if spiffe_id is None and not untrusted:
            raise bad('give spiffe_id (the URI SAN to certify), "untrusted_ca": true, or both')
        config = self._controls.config
        if spiffe_id is not None:
            spiffe_id = _workload_spiffe_id(spiffe_id, config.trust_domain, bad)
        untrusted_ca = None
        if untrusted:
            # A fresh CA per call, in memory only: no bundle, no table, no disk.
            untrusted_ca = await asyncio.to_thread(
                ca.create_root_ca,
                config.trust_domain,
                now=self._controls.clock.now(),
                validity=timedelta(days=config.ca_ttl_days),
                state=ca.CAState.ACTIVE,
            )
        return IssuanceFault(spiffe_id=spiffe_id, untrusted_ca=untrusted_ca, remaining=times)

    async def _clear_issuance_fault(self, request: web.Request) -> web.Response:
        async def run(_data: dict[str, Any]) -> dict[str, Any]:
            return {"pending": self._controls.arm_issuance_fault(None)}

        return await self._call(request, run)

    async def _rotate_server_cert(self, request: web.Request) -> web.Response:
        async def run(data: dict[str, Any]) -> dict[str, Any]:
            fault = self._parse_serving_fault(data)
            not_after = await self._controls.rotate_serving_certificate(fault)
            return {"not_after": not_after.isoformat()}

        return await self._call(request, run)

    def _parse_serving_fault(self, data: dict[str, Any]) -> ServingFault | None:
        """The wrong serving certificate a rotate body asks for; None for ``{}`` (a right one)."""

        def bad(message: str) -> ApiError:
            return ApiError(
                "invalid_argument", f"secinfra: test hooks: server-certificate: {message}"
            )

        unknown = set(data) - SERVING_FAULT_FIELDS
        if unknown:
            raise bad(f"unknown fields {sorted(unknown)}; use {sorted(SERVING_FAULT_FIELDS)}")
        if not data:
            return None
        td = self._controls.config.trust_domain
        spiffe_id = data.get("spiffe_id")
        lists: dict[str, tuple[str, ...] | None] = {}
        for name in ("extra_uri_sans", "dns_names", "ip_addresses"):
            value = data.get(name)
            if value is not None and not (
                isinstance(value, list) and all(isinstance(v, str) and v for v in value)
            ):
                raise bad(f"{name} must be a list of non-empty strings")
            lists[name] = None if value is None else tuple(value)
        # _workload_spiffe_id has parsed and checked it: parsing its answer cannot fail.
        return ServingFault(
            spiffe_id=None
            if spiffe_id is None
            else ca.SpiffeId.parse(_workload_spiffe_id(spiffe_id, td, bad)),
            extra_uris=lists["extra_uri_sans"] or (),
            dns_names=lists["dns_names"],
            ip_addresses=lists["ip_addresses"],
        )

    async def _reissue_admin_identity(self, request: web.Request) -> web.Response:
        async def run(_data: dict[str, Any]) -> dict[str, Any]:
            config = self._controls.config
            key = ec.generate_private_key(ec.SECP256R1())
            cert = await self._controls.issue_admin_certificate(
                ca.build_csr(key), REISSUED_ADMIN_TTL
            )
            cert_path, key_path, bundle_path = admin_files(config.data_dir)
            key_pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            # Key first, so a reader that reloads on a new certificate finds its key.
            await asyncio.to_thread(_write_private, key_path, key_pem)
            await asyncio.to_thread(
                _write_private, cert_path, cert.public_bytes(serialization.Encoding.PEM)
            )
            await asyncio.to_thread(
                _write_private, bundle_path, self._controls.trusted_pem.encode()
            )
            return {
                "serial": f"{cert.serial_number:x}",
                "not_after": cert.not_valid_after_utc.isoformat(),
            }

        return await self._call(request, run)


def _workload_spiffe_id(value: Any, trust_domain: str, bad: Callable[[str], ApiError]) -> str:
    """``value`` as a workload SPIFFE ID the CA can sign in ``trust_domain``."""
    if not isinstance(value, str):
        raise bad("spiffe_id must be a string (spiffe://<trust domain>/<path>)")
    try:
        parsed = ca.SpiffeId.parse(value)
    except ca.InvalidSpiffeId as exc:
        raise bad(f"spiffe_id is not a valid SPIFFE ID: {exc}") from exc
    if parsed.trust_domain != trust_domain:
        raise bad(f"spiffe_id must be in the server's trust domain {trust_domain!r}")
    if parsed.is_trust_domain_id:
        raise bad("spiffe_id needs a path (spiffe://<trust domain>/<path>)")
    if parsed.path == ca.SERVER_SPIFFE_PATH:
        raise bad("spiffe_id may not be the server's own identity")
    return str(parsed)


def _write_private(path: Any, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600, atomically (temp file + rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _describe_client_certificate(entry: LogEntry, request: web.Request) -> None:
    """Fill the entry's client_* fields from the certificate the peer presented."""
    der = peer_der(request)
    if der is None:
        return
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return
    entry.client_serial = f"{cert.serial_number:x}"
    entry.client_not_after = cert.not_valid_after_utc.isoformat()
    entry.client_issuer = cert.issuer.rfc4514_string()
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) == 1:
        entry.client_spiffe_id = uris[0]
