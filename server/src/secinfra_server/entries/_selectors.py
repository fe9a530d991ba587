"""Workload selectors: ``(type, value)`` pairs, validated strictly.

=========  ==========================  ==============================================
type       value                       means
=========  ==========================  ==============================================
``unix``   ``uid:<n>``                 the caller's effective user id (decimal)
``unix``   ``gid:<n>``                 the caller's effective group id (decimal)
``unix``   ``path:<absolute path>``    the caller's binary (``/proc/<pid>/exe``)
``unix``   ``sha256:<64 hex digits>``  the SHA-256 of that binary, lowercase
``k8s``    ``ns:<namespace>``          the pod's namespace (a DNS-1123 label)
``k8s``    ``sa:<service account>``    the pod's service account (DNS-1123 subdomain)
=========  ==========================  ==============================================

The Kubernetes selectors are for an agent that learns a pod's namespace and
service account from the kubelet or a projected token; the server validates
and stores them like the others.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

#: At most this many selectors per entry.
MAX_SELECTORS: Final = 16
#: Ids are 32-bit and 2**32 - 1 is (uid_t)-1, "no id".
MAX_ID: Final = 2**32 - 2
MAX_PATH_BYTES: Final = 4096
_DECIMAL: Final = re.compile(r"0|[1-9][0-9]{0,9}")
_SHA256: Final = re.compile(r"[0-9a-f]{64}")
_DNS_LABEL: Final = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN: Final = re.compile(
    r"(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
)


class InvalidSelector(ValueError):
    """A selector breaks its rule; the message says which and how to write it."""


@dataclass(frozen=True, order=True)
class Selector:
    """One selector, ``type`` and ``value`` as in the API (``unix``, ``uid:1000``)."""

    type: str
    value: str

    def __str__(self) -> str:
        return f"{self.type}:{self.value}"


def _id(value: str) -> str | None:
    if not _DECIMAL.fullmatch(value) or int(value) > MAX_ID:
        return f"a decimal id from 0 to {MAX_ID}, no sign or leading zeros"
    return None


def _path(value: str) -> str | None:
    if not value.startswith("/") or "\x00" in value or len(value.encode()) > MAX_PATH_BYTES:
        return f"an absolute path without NUL, at most {MAX_PATH_BYTES} bytes"
    if posixpath.normpath(value) != value or value.startswith("//"):
        return (
            f"a normalised path (no '.', '..', '//' or trailing '/'): {posixpath.normpath(value)}"
        )
    return None


def _pattern(pattern: re.Pattern[str], what: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        return None if pattern.fullmatch(value) else what

    return check


#: The check of each (type, key): None when the value is good, else what it must be.
SELECTOR_KINDS: Final[dict[tuple[str, str], Callable[[str], str | None]]] = {
    ("unix", "uid"): _id,
    ("unix", "gid"): _id,
    ("unix", "path"): _path,
    ("unix", "sha256"): _pattern(_SHA256, "64 lowercase hex digits"),
    ("k8s", "ns"): _pattern(_DNS_LABEL, "a namespace: a DNS-1123 label, lowercase"),
    ("k8s", "sa"): _pattern(_DNS_SUBDOMAIN, "a service account: a DNS-1123 subdomain"),
}
_KNOWN: Final = ", ".join(f"{t}:{k}" for t, k in SELECTOR_KINDS)


def parse_selector(type_: str, value: str) -> Selector:
    """The selector ``type_``/``value``, or :class:`InvalidSelector` naming the rule."""
    key, sep, rest = value.partition(":")
    check = SELECTOR_KINDS.get((type_, key)) if sep else None
    if check is None:
        raise InvalidSelector(
            f"unknown selector {type_}:{key}; known selectors: {_KNOWN}"
            " (value is '<key>:<value>', for example type 'unix', value 'uid:1000')"
        )
    problem = check(rest)
    if problem is not None:
        raise InvalidSelector(f"selector {type_}:{key} needs {problem}")
    return Selector(type_, value)
