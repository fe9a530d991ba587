"""Where a JWT issuer's signing keys come from: a static JWK Set, or the issuer's
OpenID discovery document.

:class:`StaticJwks` holds a JWK Set given once (e.g. read from a file).
:class:`DiscoveredJwks` reads ``<issuer>/.well-known/openid-configuration``
(OpenID Connect Discovery 1.0 §4), checks that its ``issuer`` is exactly the
configured one (§4.3), and fetches its ``jwks_uri`` over HTTPS. It refreshes
when a token names a ``kid`` it does not hold and when its copy is older than
``max_age``, never more often than ``min_refresh_interval`` (a flood of tokens
with made-up key ids costs the issuer one request per interval), and keeps the
keys it has when a refresh fails. The last good JWK Set is written to
``cache_file`` (atomically, 0600) and read back at start, so a restart while
the issuer is unreachable still verifies tokens signed by known keys.

Both are safe to use from several threads; fetching blocks, so the server calls
the attestor off its event loop.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Final, Protocol

import jwt
import requests

from ._errors import InvalidAttestorConfig, KeysUnavailable
from ._keys import load_jwks

log = logging.getLogger("secinfra.attest")

DISCOVERY_PATH: Final = "/.well-known/openid-configuration"
DEFAULT_MIN_REFRESH_INTERVAL: Final = timedelta(seconds=30)
DEFAULT_MAX_AGE: Final = timedelta(hours=1)
DEFAULT_FETCH_TIMEOUT_SECONDS: Final = 5.0
#: A discovery document or JWK Set larger than this is refused.
MAX_DOCUMENT_BYTES: Final = 512 * 1024

Keys = Mapping[str, Mapping[str, jwt.PyJWK]]


class KeySource(Protocol):
    """An issuer's verification keys, by ``kid`` then algorithm."""

    def keys(self) -> Keys:
        """The keys held now (may fetch them the first time)."""
        ...

    def refresh_for_unknown_kid(self) -> bool:
        """Ask for a refresh because a token named a key not held; True if the
        key set changed (then look again)."""
        ...


class StaticJwks:
    """A JWK Set given once; it never changes."""

    def __init__(self, jwks: Mapping[str, Any], algorithms: tuple[str, ...]) -> None:
        self._keys = load_jwks(jwks, algorithms)

    def keys(self) -> Keys:
        return self._keys

    def refresh_for_unknown_kid(self) -> bool:
        return False


class DiscoveredJwks:
    """An issuer's JWK Set found through its OpenID discovery document."""

    def __init__(
        self,
        issuer: str,
        algorithms: tuple[str, ...],
        *,
        cache_file: Path | None = None,
        ca_file: Path | None = None,
        min_refresh_interval: timedelta = DEFAULT_MIN_REFRESH_INTERVAL,
        max_age: timedelta = DEFAULT_MAX_AGE,
        timeout_seconds: float = DEFAULT_FETCH_TIMEOUT_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not issuer.startswith("https://"):
            raise InvalidAttestorConfig(
                f"issuer {issuer!r}: key discovery needs an https:// issuer URL"
                " (or give a jwks_file)"
            )
        if min_refresh_interval <= timedelta(0) or max_age < min_refresh_interval:
            raise InvalidAttestorConfig(
                "jwks refresh: min_refresh_interval must be positive and at most max_age"
            )
        self._issuer = issuer
        self._algorithms = algorithms
        self._cache_file = cache_file
        self._verify: str | bool = str(ca_file) if ca_file is not None else True
        self._min_interval = min_refresh_interval.total_seconds()
        self._max_age = max_age.total_seconds()
        self._timeout = timeout_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._keys: Keys = {}
        self._fetched_at: float | None = None  # monotonic time of the last good fetch
        self._attempted_at: float | None = None  # of the last attempt, good or not
        self._session = requests.Session()
        self._load_cache()

    @property
    def issuer(self) -> str:
        return self._issuer

    def keys(self) -> Keys:
        with self._lock:
            stale = self._fetched_at is None or (
                self._monotonic() - self._fetched_at >= self._max_age
            )
            if stale:
                self._refresh_locked()
            if not self._keys:
                raise KeysUnavailable(
                    f"the signing keys of issuer {self._issuer!r} cannot be fetched now;"
                    " retry later"
                )
            return self._keys

    def refresh_for_unknown_kid(self) -> bool:
        with self._lock:
            before = self._keys
            self._refresh_locked()
            return self._keys is not before

    def _refresh_locked(self) -> None:
        now = self._monotonic()
        if self._attempted_at is not None and now - self._attempted_at < self._min_interval:
            return
        self._attempted_at = now
        try:
            jwks = self._fetch()
            keys = load_jwks(jwks, self._algorithms)
        except (requests.RequestException, ValueError, InvalidAttestorConfig) as exc:
            # Keep the keys held; the issuer may be restarting or rotating.
            log.warning(
                "jwks refresh failed",
                extra={"fields": {"issuer": self._issuer, "error": _describe(exc)}},
            )
            return
        self._fetched_at = now
        if _kids(keys) != _kids(self._keys):
            log.info(
                "jwks refreshed",
                extra={"fields": {"issuer": self._issuer, "kids": sorted(keys)}},
            )
        self._keys = keys
        self._write_cache(jwks)

    def _fetch(self) -> Mapping[str, Any]:
        document = self._get_json(self._issuer.rstrip("/") + DISCOVERY_PATH)
        if document.get("issuer") != self._issuer:
            raise ValueError("the discovery document's issuer is not the configured issuer")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith("https://"):
            raise ValueError("the discovery document has no https jwks_uri")
        return self._get_json(jwks_uri)

    def _get_json(self, url: str) -> Mapping[str, Any]:
        with self._session.get(
            url,
            timeout=self._timeout,
            verify=self._verify,
            allow_redirects=False,
            stream=True,
            headers={"Accept": "application/json"},
        ) as response:
            response.raise_for_status()
            body = response.raw.read(MAX_DOCUMENT_BYTES + 1, decode_content=True)
        if len(body) > MAX_DOCUMENT_BYTES:
            raise ValueError(f"{url} answered more than {MAX_DOCUMENT_BYTES} bytes")
        value = json.loads(body)
        if not isinstance(value, dict):
            raise ValueError(f"{url} did not answer a JSON object")
        return value

    def _load_cache(self) -> None:
        if self._cache_file is None:
            return
        try:
            cached = json.loads(self._cache_file.read_text(encoding="utf-8"))
            if cached.get("issuer") != self._issuer:
                return
            self._keys = load_jwks(cached["jwks"], self._algorithms)
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, AttributeError, InvalidAttestorConfig):
            log.warning(
                "ignoring an unreadable jwks cache",
                extra={"fields": {"issuer": self._issuer, "file": str(self._cache_file)}},
            )

    def _write_cache(self, jwks: Mapping[str, Any]) -> None:
        if self._cache_file is None:
            return
        payload = json.dumps({"issuer": self._issuer, "jwks": jwks}, sort_keys=True)
        try:
            write_private_file(self._cache_file, payload.encode())
        except OSError as exc:
            log.warning(
                "could not write the jwks cache",
                extra={"fields": {"issuer": self._issuer, "error": exc.strerror}},
            )


def write_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename), mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _kids(keys: Keys) -> frozenset[str]:
    return frozenset(keys)


def _describe(exc: Exception) -> str:
    """A log-safe description: the error's kind and, for HTTP, the status."""
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, ValueError | InvalidAttestorConfig):
        return str(exc)
    return type(exc).__name__
