"""A SPIFFE ID, parsed and validated by the SPIFFE ID specification.

Authorizers compare parsed IDs, never raw strings, so that
``spiffe://td/a`` and a look-alike such as ``spiffe://td/a/`` or
``spiffe://TD/a`` cannot be confused: anything the specification does not
allow is refused when it is parsed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = ["SpiffeId", "trust_domain_name"]

SCHEME: Final = "spiffe://"
#: Trust domain names: lowercase letters, digits, dots, dashes and underscores.
_TRUST_DOMAIN: Final = re.compile(r"[a-z0-9._-]+")
#: Path segments: letters, digits, dots, dashes and underscores.
_SEGMENT: Final = re.compile(r"[A-Za-z0-9._-]+")


@dataclass(frozen=True, order=True)
class SpiffeId:
    """``spiffe://<trust_domain><path>``; ``path`` is ``""`` or starts with ``/``."""

    trust_domain: str
    path: str

    @classmethod
    def parse(cls, text: str) -> SpiffeId:
        """The SPIFFE ID in ``text``; ValueError if it is not a valid one."""
        if not text.startswith(SCHEME):
            raise ValueError(f"secinfra: mtls: not a SPIFFE ID (no spiffe:// scheme): {text!r}")
        rest = text[len(SCHEME) :]
        trust_domain, slash, path = rest.partition("/")
        if not _TRUST_DOMAIN.fullmatch(trust_domain):
            raise ValueError(f"secinfra: mtls: not a valid SPIFFE trust domain in {text!r}")
        if slash:
            for segment in path.split("/"):
                if not _SEGMENT.fullmatch(segment) or segment in (".", ".."):
                    raise ValueError(f"secinfra: mtls: not a valid SPIFFE ID path in {text!r}")
        return cls(trust_domain, slash + path)

    def member_of(self, trust_domain: str) -> bool:
        """Whether this ID belongs to ``trust_domain`` (a name or ``spiffe://name``)."""
        return self.trust_domain == trust_domain_name(trust_domain)

    def __str__(self) -> str:
        return f"{SCHEME}{self.trust_domain}{self.path}"


def trust_domain_name(text: str) -> str:
    """The trust domain name in ``text``: ``example.org`` or ``spiffe://example.org``."""
    name = text[len(SCHEME) :] if text.startswith(SCHEME) else text
    if not _TRUST_DOMAIN.fullmatch(name):
        raise ValueError(f"secinfra: mtls: not a valid SPIFFE trust domain: {text!r}")
    return name
