"""The rest of an entry's rules: its SVID lifetime and DNS names."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

#: An entry's SVIDs live at least this long (0 means the server's leaf TTL).
MIN_TTL_SECONDS: Final = 60
MAX_DNS_NAMES: Final = 16
_DNS_NAME: Final = re.compile(
    r"(?=.{1,253}$)(\*\.)?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
)


class InvalidEntry(ValueError):
    """An entry field breaks its rule; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check_ttl(ttl_seconds: int, *, leaf_ttl_seconds: int, test_mode: bool) -> None:
    """``ttl_seconds`` is 0 or from :data:`MIN_TTL_SECONDS` (1 in test mode) to
    the server's leaf TTL: an entry cannot outlive what the server grants."""
    low = 1 if test_mode else MIN_TTL_SECONDS
    if ttl_seconds != 0 and not low <= ttl_seconds <= leaf_ttl_seconds:
        raise InvalidEntry(
            "ttl_seconds",
            f"ttl_seconds must be 0 (the server's leaf TTL) or from {low} to"
            f" {leaf_ttl_seconds} (the server's leaf TTL)",
        )


def check_dns_names(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` if each is a lowercase DNS name (A-labels, optionally ``*.``),
    none repeated, at most :data:`MAX_DNS_NAMES`."""
    if len(names) > MAX_DNS_NAMES:
        raise InvalidEntry("dns_names", f"at most {MAX_DNS_NAMES} dns_names")
    for index, name in enumerate(names):
        if not _DNS_NAME.fullmatch(name):
            raise InvalidEntry(
                f"dns_names[{index}]",
                f"dns_names[{index}] {name!r} is not a lowercase DNS name (A-labels,"
                " optionally a leading '*.')",
            )
    if len(set(names)) != len(names):
        raise InvalidEntry("dns_names", "dns_names lists a name twice")
    return tuple(names)
