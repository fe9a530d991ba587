"""Connections and TLS: one request on the wire, from a verified connection.

`HttpTransport` sends one attempt and returns its `HttpAnswer`, or raises
`NoAnswer` (connection refused or reset, timeout) or `ServerRejected` (the
server's chain or SPIFFE ID failed verification). It holds a connection pool
per kind of call (anonymous, mTLS), each built on a TLS context from the
identity source's current snapshot and bundle; connections are TLS 1.2+,
present the identity (mTLS only) and verify the server by bundle and SPIFFE
ID. A rotation closes the idle connections the change made outdated.

No retries, cache or error decoding here: the call pipeline (``_call``)
decides what an answer or a failure means.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3 import PoolManager
from urllib3 import Timeout as Urllib3Timeout
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NameResolutionError,
    NewConnectionError,
    ReadTimeoutError,
)

from .._identity._events import RotationEvent
from .._identity._snapshot import X509Identity
from .._identity._source import IdentitySource
from ._clock import Clock, SystemClock
from ._endpoints import EndpointSet
from ._tls import ServerIdentityMismatch, client_context, pool_class
from ._watchdog import AttemptWatchdog

__all__ = [
    "HttpAnswer",
    "HttpTransport",
    "NoAnswer",
    "ServerRejected",
    "describe_connection_failure",
    "server_rejected",
    "verification_failure",
]

#: Connections kept per pool (one pool per endpoint).
POOL_SIZE: Final = 16
#: Most bytes read from the socket at once while receiving a response body.
BODY_CHUNK: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """What one attempt got back: its status, headers and whole body."""

    status: int
    headers: Mapping[str, str]
    """Looked up case-insensitively."""
    body: bytes


class NoAnswer(Exception):
    """An attempt that got no HTTP answer: connect error, reset, timeout.

    The original error is the ``__cause__``.
    """

    def __init__(self, description: str, *, sent: bool, timeout: bool) -> None:
        super().__init__(description)
        self.description = description
        """What happened, for the call's error message."""
        self.sent = sent
        """The request was, or may have been, sent (when in doubt: True)."""
        self.timeout = timeout
        """The attempt ran out of time."""


class ServerRejected(Exception):
    """The server is not who it must be: its certificate failed verification.

    ``chain`` is True when the chain does not lead to a CA of the bundle (a
    bundle refresh may explain it, spec 10.3) and False when the certificate
    carries another SPIFFE ID (10.3.3: nothing to refresh). ``bundle_pem`` is
    the bundle the connection verified with. The original error is the
    ``__cause__``.
    """

    def __init__(self, description: str, *, chain: bool, bundle_pem: str) -> None:
        super().__init__(description)
        self.description = description
        self.chain = chain
        self.bundle_pem = bundle_pem


class _SpiffeAdapter(HTTPAdapter):
    """A requests adapter bound to one TLS context and one expected server ID."""

    def __init__(self, context: ssl.SSLContext, server_id: str, endpoints: int) -> None:
        self._context = context
        self._server_id = server_id
        # One pool per endpoint, all kept: a move to another endpoint and back
        # must not close the first one's connections (spec 12.1.4).
        super().__init__(pool_connections=endpoints, pool_maxsize=POOL_SIZE, max_retries=0)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **kwargs: Any
    ) -> None:
        self.poolmanager = PoolManager(
            num_pools=connections,
            maxsize=maxsize,
            block=block,
            ssl_context=self._context,
            assert_hostname=False,  # the SPIFFE ID is verified instead
        )
        # https only: the transport refuses other URLs, and a pool for plain
        # http would talk to the server without TLS.
        self.poolmanager.pool_classes_by_scheme = {"https": pool_class(self._server_id)}

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        # Never load a CA file (requests would add the public roots): the
        # context trusts exactly the SPIFFE bundle.
        conn.cert_reqs = "CERT_REQUIRED"
        conn.ca_certs = None
        conn.ca_cert_dir = None


class HttpTransport:
    """Connections to a server's endpoints, verified by SPIFFE ID. Thread-safe.

    ``endpoints`` is one URL, or the client's `EndpointSet` (spec 12): every
    endpoint is verified as the same server (12.1.3) and has a connection
    pool of its own; which endpoint an attempt goes to is the caller's choice.
    """

    def __init__(
        self,
        endpoints: str | EndpointSet,
        source: IdentitySource,
        *,
        clock: Clock | None = None,
    ):
        if isinstance(endpoints, str):
            if urlsplit(endpoints).scheme != "https":
                raise ValueError(
                    "secinfra: transport: the server URL must be https:// (mTLS),"
                    f" got {endpoints!r}"
                )
            endpoints = EndpointSet(endpoints)
        self._endpoints = endpoints
        self._source = source
        self._clock = clock if clock is not None else SystemClock()
        self._lock = threading.Lock()
        self._adapters: dict[bool, tuple[tuple[str | None, str], _SpiffeAdapter]] = {}
        source.subscribe(self._on_rotation)

    @property
    def endpoints(self) -> EndpointSet:
        """The endpoints this transport has pools for."""
        return self._endpoints

    def close(self) -> None:
        """Close every pooled connection."""
        with self._lock:
            adapters = [adapter for _, adapter in self._adapters.values()]
            self._adapters.clear()
        for adapter in adapters:
            adapter.close()

    def send(
        self,
        http_method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes | None,
        *,
        mtls: bool,
        timeout: float,
        endpoint: str | None = None,
        identity: X509Identity | None = None,
    ) -> HttpAnswer:
        """Send one attempt of ``http_method target`` to ``endpoint`` (one of the
        endpoints' URLs; default the home endpoint) and read the whole answer.
        ``target`` (path and query string, already encoded) is sent as is.

        ``timeout`` (seconds) bounds the attempt as a total (spec 5.2.2):
        connect and the response head share it (urllib3's total), the body is
        read in chunks against what is left of it, and a watchdog shuts the
        connection down when the time is up wherever the attempt is (a
        response head sent a byte at a time included). An mTLS attempt
        presents ``identity`` (the call pipeline got it from the source
        within the call's deadline); without one it asks the source for a
        valid identity first (which may raise
        `~secinfra.errors.IdentityExpired`).
        """
        attempt_end = self._clock.monotonic() + timeout
        bundle_pem = ""
        try:
            adapter, bundle_pem = self._adapter(mtls, identity)
            base = endpoint if endpoint is not None else self._endpoints.home
            prepared = requests.Request(
                http_method, base, headers=dict(headers), data=body
            ).prepare()
            # The target goes on the wire as given (spec 2.2.5): requests'
            # URL preparation removes "." and ".." segments (RFC 3986 5.2.4),
            # so a secret named "../x" would reach another resource.
            prepared.url = base + target
            # (requests accepts a urllib3 Timeout as is; its stubs do not say so.)
            with AttemptWatchdog(timeout) as watchdog:
                try:
                    response = adapter.send(
                        prepared,
                        timeout=Urllib3Timeout(total=timeout),  # type: ignore[arg-type]
                        stream=True,
                    )
                    content = _read_body(response, attempt_end, self._clock)
                except (requests.exceptions.RequestException, ssl.SSLError) as exc:
                    if watchdog.fired:
                        raise _watchdog_timeout(watchdog.sent) from exc
                    raise
        except (requests.exceptions.RequestException, ssl.SSLError) as exc:
            rejected = verification_failure(exc)
            if rejected is not None:
                raise server_rejected(rejected, bundle_pem) from exc
            raise _no_answer(exc) from exc
        return HttpAnswer(response.status_code, response.headers, content)

    # -- connections -----------------------------------------------------------------
    def _adapter(self, mtls: bool, identity: X509Identity | None) -> tuple[_SpiffeAdapter, str]:
        """The pool for ``mtls`` calls on ``identity`` (default: the source's
        current one) and the current bundle, and that bundle."""
        if not mtls:
            identity = None
        elif identity is None:
            identity = self._source.ensure_identity()
        bundle = self._source.bundle()
        key = (identity.serial if identity else None, bundle.pem)
        with self._lock:
            held = self._adapters.get(mtls)
            if held is not None and held[0] == key:
                return held[1], bundle.pem
        context = client_context(
            bundle.pem,
            identity.chain_pem if identity else None,
            identity.key_pem if identity else None,
        )
        adapter = _SpiffeAdapter(context, self._source.server_id, len(self._endpoints.urls))
        with self._lock:
            old = self._adapters.get(mtls)
            if old is not None and old[0] == key:
                return old[1], bundle.pem  # another thread built it first: share it
            self._adapters[mtls] = (key, adapter)
        if old is not None:
            old[1].close()  # idle connections of the old identity or trust go now
        return adapter, bundle.pem

    def _on_rotation(self, event: RotationEvent) -> None:
        """Close the idle connections an identity or bundle change made outdated.

        A renewal outdates only the mTLS connections; the anonymous ones (enrolment,
        bundle) present no identity and stay, which also keeps a verified channel to
        fetch a new bundle over when the server starts presenting a new CA.
        """
        identity = event.identity
        wanted: dict[bool, tuple[str | None, str]] = {
            False: (None, event.bundle.pem),
            True: (identity.serial if identity else None, event.bundle.pem),
        }
        with self._lock:
            outdated = [
                self._adapters.pop(mtls)[1]
                for mtls, (key, _) in list(self._adapters.items())
                if key != wanted[mtls]
            ]
        for adapter in outdated:
            adapter.close()


def _read_body(response: requests.Response, attempt_end: float, clock: Clock) -> bytes:
    """The whole body of a streamed ``response``, read by ``attempt_end`` (monotonic).

    Each socket read may take only the time left in the attempt, so a server
    sending a byte at a time cannot stretch the attempt. Running out of time
    raises `requests.exceptions.ReadTimeout`, a broken connection
    `requests.exceptions.ConnectionError`; either way the connection is closed,
    never returned to the pool.
    """
    raw = response.raw
    chunks: list[bytes] = []
    try:
        while True:
            left = attempt_end - clock.monotonic()
            if left <= 0:
                raise requests.exceptions.ReadTimeout(
                    "the attempt timed out while receiving the response body"
                )
            _set_read_timeout(raw, left)
            try:
                chunk = raw.read1(BODY_CHUNK, decode_content=True)
            except ReadTimeoutError as exc:
                raise requests.exceptions.ReadTimeout(exc) from exc
            except (HTTPError, OSError) as exc:
                raise requests.exceptions.ConnectionError(exc) from exc
            if not chunk:
                break
            chunks.append(chunk)
    except BaseException:
        response.close()
        raise
    release = getattr(raw, "release_conn", None)
    if callable(release):
        release()  # fully read: the connection may serve the next request
    return b"".join(chunks)


def _watchdog_timeout(sent: bool) -> requests.exceptions.Timeout:
    """The failure of an attempt its watchdog ended (spec 5.2.3)."""
    if sent:
        return requests.exceptions.ReadTimeout(
            "the attempt timed out while waiting for the response"
        )
    return requests.exceptions.ConnectTimeout("the attempt timed out while connecting")


def _set_read_timeout(raw: Any, seconds: float) -> None:
    """Bound the next socket read of a streamed urllib3 response to ``seconds``."""
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    settimeout = getattr(sock, "settimeout", None)
    if callable(settimeout):
        settimeout(seconds)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps: requests and urllib3 nest the real error in
    ``args[0]`` and ``reason``; Python chains it in ``__cause__``/``__context__``."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        reason = getattr(current, "reason", None)
        inner = [reason, current.__cause__, current.__context__, *current.args]
        todo.extend(e for e in inner if isinstance(e, BaseException))


def verification_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification error behind ``exc``, if that is what it is."""
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return cause
    return None


def _no_answer(exc: BaseException) -> NoAnswer:
    """How an attempt that got no response ended (what the retry rules need to know)."""
    description = _describe(exc)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return NoAnswer(description, sent=False, timeout=True)
    if isinstance(exc, requests.exceptions.Timeout):
        return NoAnswer(description, sent=True, timeout=True)
    return NoAnswer(description, sent=not _before_sending(exc), timeout=False)


#: How a failed server certificate verification is described (the CLI looks for it
#: to say what to do about a stale bundle).
UNTRUSTED_SERVER: Final = "the server's certificate does not chain to the trust bundle"


def _before_sending(exc: BaseException) -> bool:
    """Whether a connection failure certainly happened before a request byte was sent."""
    for cause in _causes(exc):
        if isinstance(cause, NewConnectionError | ConnectTimeoutError | NameResolutionError):
            return True
        if isinstance(cause, ConnectionRefusedError):
            return True
    return False


def server_rejected(failure: ssl.SSLCertVerificationError, bundle_pem: str) -> ServerRejected:
    """The `ServerRejected` of a failed server verification (both transports)."""
    return ServerRejected(
        _describe(failure),
        chain=not isinstance(failure, ServerIdentityMismatch),
        bundle_pem=bundle_pem,
    )


def describe_connection_failure(failure: BaseException) -> str:
    """How a connection failure reads in a call's error (both transports)."""
    innermost = list(_causes(failure))[-1]
    return f"connection failed ({type(innermost).__name__}: {innermost})"


def _describe(failure: BaseException) -> str:
    if isinstance(failure, requests.exceptions.Timeout):
        return "the attempt timed out"
    if isinstance(failure, ServerIdentityMismatch):
        return str(failure)
    if isinstance(failure, ssl.SSLCertVerificationError):
        reason = failure.verify_message or failure.reason or str(failure)
        return f"{UNTRUSTED_SERVER} ({reason})"
    return describe_connection_failure(failure)
