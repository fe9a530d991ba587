"""The client's response cache for cacheable RPCs.

Secret reads, the trust bundle and authorization checks are cacheable (their
`CachePolicy` says so); their lifetimes come from each response's
``Cache-Control`` header. One `ResponseCache` per client, in memory, LRU-bound
and thread-safe. How the transport uses it for one cacheable call:

.. code-block:: python

    key = request_key(method.service, method.name, request)
    if (entry := cache.fresh(key)) is not None:
        return entry.value                            # the hot path: no request at all
    hit = cache.lookup(key)
    if hit is not None and hit.fresh:
        return hit.entry.value                        # no request at all
    generation = cache.generation                     # before sending
    etag = hit.if_none_match if hit is not None else None
    headers = {"If-None-Match": etag} if etag else {}
    try:
        response = send_with_retries(headers)         # inside SingleFlight.do(key, ...)
    except (Unavailable, Internal, TransportError):   # after retries
        hit = cache.lookup(key)
        if hit is not None and hit.usable_on_error:
            return hit.entry.value                    # and mark the result as stale
        raise
    if response.status == 304 and hit is not None:
        cache.refresh(key, response.headers)
        return hit.entry.value
    cache.store(key, value, response.headers, resource=..., resource_key=...,
                revision=..., secret=..., generation=generation)

Rules:

- An entry is **fresh** while its age is below ``max-age`` (served with no
  request), then **stale** (revalidated with ``If-None-Match``; a 304 makes it
  fresh again), and **usable on error** while its age is below ``max-age +
  stale-if-error`` (served when the server is down or fails after retries).
  ``no-cache`` means "always revalidate"; ``no-store`` means "never store".
  ``private`` is allowed: this is a private cache.
- Keys cover the method and the whole request, never a joined string, so
  two different requests can never share an entry. The call pipeline keys
  by `request_key`: the request model's field values themselves, each
  tagged with its type (spec 7.3.4 allows any collision-free form), which
  costs a fraction of serialising it; a request that is not a dataclass of
  plain values is keyed by `cache_key`, the canonical JSON of spec 7.3.1.
- A client's own successful write invalidates its entries for the resource
  written (`ResponseCache.invalidate`, or `ResponseCache.invalidate_family`
  when the write names no single resource). Fetches that were already in
  flight when a write invalidated their family are not stored
  (``generation``), so they cannot bring back what the write replaced.
- Read-your-writes for authorization: the cache remembers the highest
  revision token the client's writes returned for a family
  (`ResponseCache.record_write_revision`) and bypasses (and drops) entries
  computed at an older revision. Revision tokens are opaque to users; the
  client compares them only with `newer_than`, which reads them as
  (zero-padded) decimal strings. An entry without a revision, or any token
  that does not parse, is bypassed: when in doubt the cache asks the server.
- Secret values live in memory only: nothing here is ever written to disk,
  and entries never show their value in ``repr``. Entries holding secret
  material are marked (``secret``) so callers can treat them with care.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import operator
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar

from ._clock import Clock, SystemClock
from ._headers import header

__all__ = [
    "AGE_HEADER",
    "CACHE_CONTROL_HEADER",
    "DEFAULT_MAX_ENTRIES",
    "ETAG_HEADER",
    "MAX_DELTA_SECONDS",
    "CacheDirectives",
    "CacheEntry",
    "CacheLookup",
    "Freshness",
    "ResponseCache",
    "cache_key",
    "newer_than",
    "parse_cache_control",
    "request_key",
]

DEFAULT_MAX_ENTRIES = 1024
"""Entries a cache holds before it evicts the least recently used."""

MAX_DELTA_SECONDS = 2_147_483_648.0
"""Any larger ``max-age`` or ``stale-if-error`` is read as this (RFC 9111 §1.2.2)."""

CACHE_CONTROL_HEADER = "Cache-Control"
ETAG_HEADER = "ETag"
AGE_HEADER = "Age"

_DIGITS = re.compile(r"[0-9]+")

V = TypeVar("V")


def cache_key(method_name: str, request_json: Mapping[str, Any]) -> str:
    """The cache key of one call: canonical JSON of the method and the whole request.

    ``method_name`` should name the service too (``"secinfra.v1.AuthzService/
    Check"``). Object keys are sorted, there is no whitespace and non-ASCII
    text stays as is, so equal requests give equal keys however they were
    built, and different requests never collide the way joined strings do.
    """
    return json.dumps(
        {"method": method_name, "request": request_json},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )


class _NotPlain(Exception):
    """A request value `request_key` cannot key by value (the canonical JSON will)."""


def request_key(service: str, method: str, request: Any) -> Hashable:
    """The cache key of one call, as `cache_key` but without serialising the request.

    For a request model (a dataclass) of strings, integers, booleans, bytes,
    enums, nested models, sequences and string-keyed maps: the method and
    the request's field values, each value that is not a string or None
    tagged with its type (``True == 1``), sequences and maps tagged as such,
    maps sorted. Equal requests give equal keys and requests that differ in
    any field give different ones, as with canonical JSON (spec 7.3.3),
    since ``to_json`` is a function of those values; nothing mutable is kept.
    Any other request (floats and times included: ``0.0 == -0.0``, equal
    instants in other zones) is keyed by `cache_key` of its ``to_json()``.
    """
    try:
        return (service, method, _plain(request))
    except _NotPlain:
        return cache_key(f"{service}/{method}", request.to_json())


def _plain(value: Any) -> Hashable:
    """``value`` as a hashable, type-tagged key (see `request_key`)."""
    keyer = _KEYERS.get(value.__class__)
    if keyer is None:
        keyer = _keyer_for(value.__class__)
    return keyer(value)


def _tagged(value: Any) -> Hashable:
    return (value.__class__, value)


def _sequence(value: Any) -> Hashable:
    if not value:
        return _EMPTY_SEQUENCE
    return (list, *[v if v.__class__ is str else _plain(v) for v in value])


_EMPTY_SEQUENCE: Final = (list,)


def _mapping(value: Any) -> Hashable:
    if not all(k.__class__ is str for k in value):
        raise _NotPlain
    return (dict, *sorted([(k, v if v.__class__ is str else _plain(v)) for k, v in value.items()]))


#: How each type of value a request held is keyed; dataclasses and enums are added
#: when first seen (`_keyer_for`).
_KEYERS: dict[type, Callable[[Any], Hashable]] = {
    str: lambda value: value,
    type(None): lambda value: value,
    int: _tagged,
    bool: _tagged,
    bytes: _tagged,
    list: _sequence,
    tuple: _sequence,
    dict: _mapping,
}


def _keyer_for(cls: type) -> Callable[[Any], Hashable]:
    """The keyer of an enum or a dataclass, made once per type; `_NotPlain` otherwise.

    A dataclass's keyer is compiled for its fields, as `dataclasses` compiles
    ``__init__`` (only numbered locals go into the source, never a field
    name), since this runs on every cache hit: for fields ``a, b``::

        def key(value):
            v0, v1 = get(value)       # operator.attrgetter("a", "b")
            return (cls, v0 if v0.__class__ is str else plain(v0), ...)
    """
    if isinstance(cls, enum.EnumMeta):
        keyer: Callable[[Any], Hashable] = _tagged
    elif dataclasses.is_dataclass(cls):
        names = [f.name for f in dataclasses.fields(cls)]
        local = [f"v{i}" for i in range(len(names))]
        if not names:
            unpack = ""
        elif len(names) == 1:
            unpack = "v0 = get(value)\n    "
        else:
            unpack = f"{', '.join(local)} = get(value)\n    "
        parts = "".join(f", {v} if {v}.__class__ is str else plain({v})" for v in local)
        source = f"def key(value):\n    {unpack}return (cls{parts})\n"
        scope: dict[str, Any] = {
            "get": operator.attrgetter(*names) if names else None,
            "cls": cls,
            "plain": _plain,
        }
        exec(source, scope)  # noqa: S102 - compiled from numbered locals only
        keyer = scope["key"]
    else:
        raise _NotPlain
    _KEYERS[cls] = keyer
    return keyer


def newer_than(token: str, other: str) -> bool:
    """Whether revision ``token`` is newer than ``other``.

    Tokens are decimal strings that the server zero-pads to one width;
    leading zeros are ignored, so widths may differ. A token that is not a
    non-empty string of ASCII digits raises `ValueError`: callers must then
    assume nothing (the cache bypasses its entries).
    """
    a, b = _revision_digits(token), _revision_digits(other)
    return (len(a), a) > (len(b), b)


def _revision_digits(token: str) -> str:
    if not _DIGITS.fullmatch(token):
        raise ValueError(f"secinfra: cache: revision token {token!r} is not a decimal string")
    return token.lstrip("0")


@dataclass(frozen=True, kw_only=True, slots=True)
class CacheDirectives:
    """What a response's ``Cache-Control`` allows. Times are in seconds."""

    max_age: float | None = None
    """How long the response is fresh; None when the header gives no max-age."""
    stale_if_error: float = 0.0
    """How long past max-age it may still be served when the server fails."""
    no_store: bool = False
    """Never store the response."""
    no_cache: bool = False
    """Store it, but revalidate before every use."""
    private: bool = False
    """Only a private (per-client) cache may store it; this one is."""

    @property
    def freshness_lifetime(self) -> float:
        """Seconds the response is fresh: 0 with ``no-cache`` or without ``max-age``."""
        if self.no_cache or self.max_age is None:
            return 0.0
        return self.max_age


def parse_cache_control(header: str | None) -> CacheDirectives:
    """Read the directives of a ``Cache-Control`` header value.

    Directive names are case-insensitive; values may be quoted; unknown
    directives are ignored; the first occurrence of a directive wins. A
    ``max-age`` that is not delta-seconds counts as 0 (stale at once), an
    invalid ``stale-if-error`` as 0 (RFC 9111 §4.2.1, RFC 5861).
    """
    max_age: float | None = None
    stale_if_error: float | None = None
    flags: set[str] = set()
    for name, value in _directives(header or ""):
        if name == "max-age" and max_age is None:
            max_age = _delta_seconds(value)
        elif name == "stale-if-error" and stale_if_error is None:
            stale_if_error = _delta_seconds(value)
        elif name in {"no-store", "no-cache", "private"}:
            flags.add(name)
    return CacheDirectives(
        max_age=max_age,
        stale_if_error=stale_if_error or 0.0,
        no_store="no-store" in flags,
        no_cache="no-cache" in flags,
        private="private" in flags,
    )


def _directives(header: str) -> list[tuple[str, str | None]]:
    """Split a Cache-Control value into (lowercased name, unquoted value) pairs."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in header:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))

    result: list[tuple[str, str | None]] = []
    for part in parts:
        name, eq, value = part.partition("=")
        name = name.strip().lower()
        if not name:
            continue
        text = value.strip()
        if len(text) >= 2 and text[0] == text[-1] == '"':
            text = re.sub(r"\\(.)", r"\1", text[1:-1])
        result.append((name, text if eq else None))
    return result


def _delta_seconds(value: str | None) -> float:
    if value is None or not _DIGITS.fullmatch(value):
        return 0.0
    return min(float(value), MAX_DELTA_SECONDS)


class Freshness(enum.StrEnum):
    """How an entry may be used now."""

    FRESH = "fresh"
    """Serve it without asking the server."""
    STALE = "stale"
    """Ask the server first (with ``If-None-Match`` when it has an ETag)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class CacheEntry(Generic[V]):
    """One cached response. Ages are measured on the monotonic clock."""

    key: Hashable
    value: V = field(repr=False)
    """The decoded response; opaque to the cache and never shown in ``repr``."""
    etag: str | None
    """The response's ``ETag``, sent back as ``If-None-Match`` to revalidate."""
    stored_at: float
    """Monotonic time the response was received, less its ``Age``."""
    max_age: float
    """Seconds the entry is fresh (0: always revalidate)."""
    stale_if_error: float
    """Seconds past `max_age` it may be served when the server fails."""
    resource: str
    """The resource family ("secret", "authz", "bundle"), for invalidation."""
    resource_key: str
    """The one resource within the family ("" for the family as a whole)."""
    revision: str | None
    """The revision token the response was computed at (authz), if any."""
    secret: bool
    """Whether the value holds secret material (kept in memory only)."""

    def age(self, now: float) -> float:
        """Seconds since the entry was stored, at monotonic time ``now``."""
        return max(0.0, now - self.stored_at)

    def freshness(self, now: float) -> Freshness:
        """`Freshness.FRESH` while the age is below max-age, else `Freshness.STALE`."""
        return Freshness.FRESH if self.age(now) < self.max_age else Freshness.STALE

    def usable_on_error(self, now: float) -> bool:
        """Whether it may stand in for a failed request: age below max-age + stale-if-error."""
        return self.age(now) < self.max_age + self.stale_if_error


@dataclass(frozen=True, kw_only=True, slots=True)
class CacheLookup(Generic[V]):
    """A cache hit and how it may be used, as of the lookup."""

    entry: CacheEntry[V]
    freshness: Freshness
    age: float
    usable_on_error: bool

    @property
    def fresh(self) -> bool:
        """Serve the entry without a request."""
        return self.freshness is Freshness.FRESH

    @property
    def if_none_match(self) -> str | None:
        """The ``If-None-Match`` value to revalidate a stale entry with, if any."""
        return None if self.fresh else self.entry.etag


class ResponseCache(Generic[V]):
    """An in-memory, thread-safe LRU cache of responses. See the module docstring."""

    def __init__(self, *, max_entries: int = DEFAULT_MAX_ENTRIES, clock: Clock | None = None):
        """Hold at most ``max_entries`` responses, aging them on ``clock``."""
        if max_entries < 1:
            raise ValueError("secinfra: cache: max_entries must be at least 1")
        self._max_entries = max_entries
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, CacheEntry[V]] = OrderedDict()
        self._by_resource: dict[tuple[str, str], set[Hashable]] = {}
        self._generation = 0
        self._family_invalidated_at: dict[str, int] = {}
        self._write_revisions: dict[str, str] = {}

    @property
    def max_entries(self) -> int:
        """The bound on the number of entries."""
        return self._max_entries

    @property
    def generation(self) -> int:
        """A counter that every invalidation raises.

        Read it before sending a cacheable request and pass it to `store`:
        if a write invalidated the response's family in the meantime, the
        response may predate the write and is not stored.
        """
        with self._lock:
            return self._generation

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def fresh(self, key: Hashable) -> CacheEntry[V] | None:
        """The entry for ``key`` if it is fresh now, or None; a hit becomes the
        most recently used entry.

        The hot path of a call: `lookup`'s answer for a fresh entry, without
        building a `CacheLookup`. It drops nothing; a None leaves that to `lookup`.
        """
        now = self._clock.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            age = now - entry.stored_at
            if (age if age > 0.0 else 0.0) >= entry.max_age:
                return None
            if self._write_revisions and self._behind_writes(entry.resource, entry.revision):
                return None
            self._entries.move_to_end(key)
            return entry

    def lookup(self, key: Hashable) -> CacheLookup[V] | None:
        """The entry for ``key`` and how it may be used now, or None.

        A hit becomes the most recently used entry. Entries computed before the
        client's latest write (see `record_write_revision`) and entries that
        are neither fresh, usable on error, nor revalidatable (no ETag) are
        dropped and reported as misses.
        """
        now = self._clock.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            usable_on_error = entry.usable_on_error(now)
            freshness = entry.freshness(now)
            useless = freshness is Freshness.STALE and not usable_on_error and entry.etag is None
            if useless or self._behind_writes(entry.resource, entry.revision):
                self._remove(key)
                return None
            self._entries.move_to_end(key)
            return CacheLookup(
                entry=entry,
                freshness=freshness,
                age=entry.age(now),
                usable_on_error=usable_on_error,
            )

    def store(
        self,
        key: Hashable,
        value: V,
        headers: Mapping[str, str],
        *,
        resource: str,
        resource_key: str = "",
        revision: str | None = None,
        secret: bool = False,
        generation: int | None = None,
    ) -> CacheEntry[V] | None:
        """Store a 2xx response under ``key`` as its headers allow; return the entry.

        Returns None, storing nothing (and dropping any older entry for
        ``key``), when ``Cache-Control`` says ``no-store``, when the response
        could never be used (no lifetime, no ``stale-if-error`` and no ETag),
        when it was computed before the client's latest write, or when a
        write invalidated ``resource`` after ``generation`` was read.
        """
        directives = parse_cache_control(header(headers, CACHE_CONTROL_HEADER))
        etag = header(headers, ETAG_HEADER)
        now = self._clock.monotonic()
        with self._lock:
            self._remove(key)
            if directives.no_store:
                return None
            if (
                generation is not None
                and self._family_invalidated_at.get(resource, -1) > generation
            ):
                return None
            if self._behind_writes(resource, revision):
                return None
            max_age = directives.freshness_lifetime
            if max_age <= 0 and directives.stale_if_error <= 0 and etag is None:
                return None
            entry = CacheEntry(
                key=key,
                value=value,
                etag=etag,
                stored_at=now - _age(headers),
                max_age=max_age,
                stale_if_error=directives.stale_if_error,
                resource=resource,
                resource_key=resource_key,
                revision=revision,
                secret=secret,
            )
            self._entries[key] = entry
            self._by_resource.setdefault((resource, resource_key), set()).add(key)
            while len(self._entries) > self._max_entries:
                self._remove(next(iter(self._entries)))
            return entry

    def refresh(self, key: Hashable, headers: Mapping[str, str]) -> CacheEntry[V] | None:
        """Make the entry for ``key`` fresh again after a 304 Not Modified.

        The 304's ``Cache-Control`` and ``ETag``, when present, replace the
        stored ones. Returns the refreshed entry, or None when there is none
        to refresh: the entry is gone (evicted or invalidated meanwhile), the
        304 names a different ETag, or it says ``no-store`` (the entry is
        then dropped). Either way the 304 itself vouches for the value the
        caller revalidated, which it may still return.
        """
        now = self._clock.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            etag = header(headers, ETAG_HEADER)
            if etag is not None and entry.etag is not None and etag != entry.etag:
                return None
            raw = header(headers, CACHE_CONTROL_HEADER)
            max_age, stale_if_error = entry.max_age, entry.stale_if_error
            if raw is not None:
                directives = parse_cache_control(raw)
                if directives.no_store:
                    self._remove(key)
                    return None
                max_age = directives.freshness_lifetime
                stale_if_error = directives.stale_if_error
            refreshed = CacheEntry(
                key=key,
                value=entry.value,
                etag=etag if etag is not None else entry.etag,
                stored_at=now - _age(headers),
                max_age=max_age,
                stale_if_error=stale_if_error,
                resource=entry.resource,
                resource_key=entry.resource_key,
                revision=entry.revision,
                secret=entry.secret,
            )
            self._entries[key] = refreshed
            self._entries.move_to_end(key)
            return refreshed

    def invalidate(self, resource: str, resource_key: str) -> int:
        """Drop every entry for one resource (after the client wrote it); return how many.

        Entries of the family that belong to no single resource (key "") go
        too: they may list or depend on the resource written.
        """
        with self._lock:
            self._bump(resource)
            keys = self._by_resource.get((resource, resource_key), set())
            keys = keys | self._by_resource.get((resource, ""), set())
            for key in keys:
                self._remove(key)
            return len(keys)

    def invalidate_family(self, resource: str) -> int:
        """Drop every entry of a resource family; return how many."""
        with self._lock:
            self._bump(resource)
            keys = [
                k for (family, _), ks in self._by_resource.items() if family == resource for k in ks
            ]
            for key in keys:
                self._remove(key)
            return len(keys)

    def record_write_revision(self, resource: str, token: str) -> None:
        """Remember the revision token a write to ``resource`` returned.

        From now on entries of the family computed at an older revision (or
        whose revision is unknown or does not parse) are bypassed. The
        highest token is kept; a token that cannot be compared replaces the
        one held, so the cache errs towards asking the server.
        """
        with self._lock:
            current = self._write_revisions.get(resource)
            try:
                newer = current is None or newer_than(token, current)
            except ValueError:
                newer = True
            if newer:
                self._write_revisions[resource] = token

    def write_revision(self, resource: str) -> str | None:
        """The revision token remembered for ``resource``'s writes, if any."""
        with self._lock:
            return self._write_revisions.get(resource)

    def clear(self) -> None:
        """Drop every entry (remembered write revisions are kept)."""
        with self._lock:
            self._entries.clear()
            self._by_resource.clear()

    def _behind_writes(self, resource: str, revision: str | None) -> bool:
        # Caller holds the lock.
        mark = self._write_revisions.get(resource)
        if mark is None:
            return False
        if revision is None:
            return True
        try:
            return newer_than(mark, revision)
        except ValueError:
            return True

    def _bump(self, resource: str) -> None:
        # Caller holds the lock.
        self._generation += 1
        self._family_invalidated_at[resource] = self._generation

    def _remove(self, key: Hashable) -> None:
        # Caller holds the lock.
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        index = (entry.resource, entry.resource_key)
        keys = self._by_resource.get(index)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_resource[index]

    def __repr__(self) -> str:
        return f"ResponseCache(entries={len(self)}, max_entries={self._max_entries})"


def _age(headers: Mapping[str, str]) -> float:
    """The response's ``Age`` in seconds (0 when absent or invalid)."""
    value = header(headers, AGE_HEADER)
    return _delta_seconds(value.strip()) if value is not None else 0.0
