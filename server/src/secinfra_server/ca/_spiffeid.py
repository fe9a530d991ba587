"""SPIFFE IDs, validated per the SPIFFE ID specification.

``spiffe://<trust-domain><path>``: the scheme is exactly ``spiffe``; the trust domain
is 1-255 bytes of ``[a-z0-9._-]`` (so no userinfo, port or uppercase); the path is
empty or ``/segment`` repeated, each segment non-empty, not ``.`` or ``..``, made of
``[a-zA-Z0-9._-]`` (so no query, fragment or percent-encoding); 2048 bytes at most.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._errors import InvalidSpiffeId

SCHEME_PREFIX = "spiffe://"
MAX_SPIFFE_ID_BYTES = 2048
MAX_TRUST_DOMAIN_BYTES = 255

_TRUST_DOMAIN_RE = re.compile(r"[a-z0-9._-]+")
_SEGMENT_RE = re.compile(r"[a-zA-Z0-9._-]+")


def validate_trust_domain(name: str) -> str:
    """Return ``name`` if it is a valid trust domain name, else raise InvalidSpiffeId."""
    if not name:
        raise InvalidSpiffeId("trust domain is missing")
    if len(name.encode()) > MAX_TRUST_DOMAIN_BYTES:
        raise InvalidSpiffeId(f"trust domain is longer than {MAX_TRUST_DOMAIN_BYTES} bytes")
    if _TRUST_DOMAIN_RE.fullmatch(name) is None:
        raise InvalidSpiffeId(
            "trust domain characters are limited to lowercase letters, numbers, "
            "dots, dashes, and underscores"
        )
    return name


def _validate_path(path: str) -> str:
    if path == "":
        return path
    if not path.startswith("/"):
        raise InvalidSpiffeId("path must start with '/'")
    for segment in path[1:].split("/"):
        if segment == "":
            if path.endswith("/"):
                raise InvalidSpiffeId("path cannot have a trailing slash")
            raise InvalidSpiffeId("path cannot contain empty segments")
        if segment in (".", ".."):
            raise InvalidSpiffeId("path cannot contain dot segments")
        if _SEGMENT_RE.fullmatch(segment) is None:
            raise InvalidSpiffeId(
                "path segment characters are limited to letters, numbers, dots, "
                "dashes, and underscores"
            )
    return path


@dataclass(frozen=True, slots=True)
class SpiffeId:
    """A validated SPIFFE ID; ``str()`` gives its canonical URI form.

    Build one with :meth:`parse` (from a URI), :meth:`from_segments`, or the
    constructor ``SpiffeId(trust_domain, path)`` where ``path`` is ``""`` (the trust
    domain's own ID) or ``/a/b``. Construction always validates.
    """

    trust_domain: str
    path: str = ""

    def __post_init__(self) -> None:
        validate_trust_domain(self.trust_domain)
        _validate_path(self.path)
        if len(str(self).encode()) > MAX_SPIFFE_ID_BYTES:
            raise InvalidSpiffeId(f"SPIFFE ID is longer than {MAX_SPIFFE_ID_BYTES} bytes")

    @classmethod
    def parse(cls, uri: str) -> SpiffeId:
        """Parse ``spiffe://td/path``; raise InvalidSpiffeId with the rule it breaks."""
        if not isinstance(uri, str):
            raise InvalidSpiffeId("SPIFFE ID must be a string")
        if not uri:
            raise InvalidSpiffeId("SPIFFE ID is empty")
        if len(uri.encode()) > MAX_SPIFFE_ID_BYTES:
            raise InvalidSpiffeId(f"SPIFFE ID is longer than {MAX_SPIFFE_ID_BYTES} bytes")
        if not uri.startswith(SCHEME_PREFIX):
            raise InvalidSpiffeId("scheme is missing or invalid")
        rest = uri[len(SCHEME_PREFIX) :]
        if "?" in rest:
            raise InvalidSpiffeId("SPIFFE ID cannot contain a query")
        if "#" in rest:
            raise InvalidSpiffeId("SPIFFE ID cannot contain a fragment")
        trust_domain, slash, path = rest.partition("/")
        if "@" in trust_domain:
            raise InvalidSpiffeId("trust domain cannot contain userinfo")
        if ":" in trust_domain:
            raise InvalidSpiffeId("trust domain cannot contain a port")
        return cls(trust_domain, slash + path)

    @classmethod
    def from_segments(cls, trust_domain: str, *segments: str) -> SpiffeId:
        """``from_segments("example.org", "ns", "prod")`` -> ``spiffe://example.org/ns/prod``."""
        for segment in segments:
            if "/" in segment:
                raise InvalidSpiffeId("path segment cannot contain '/'")
        return cls(trust_domain, "".join("/" + s for s in segments))

    @classmethod
    def for_trust_domain(cls, trust_domain: str) -> SpiffeId:
        """The trust domain's own ID, ``spiffe://<td>`` (used in CA certificates)."""
        return cls(trust_domain, "")

    @property
    def is_trust_domain_id(self) -> bool:
        """True for ``spiffe://<td>`` (no path); such an ID never names a workload."""
        return self.path == ""

    def member_of(self, trust_domain: str) -> bool:
        return self.trust_domain == trust_domain

    def __str__(self) -> str:
        return f"{SCHEME_PREFIX}{self.trust_domain}{self.path}"
