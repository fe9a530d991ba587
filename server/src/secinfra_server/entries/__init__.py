"""Registration entries: what a valid entry is, and how a workload matches one.

An entry gives a SPIFFE ID to the workloads on one node (its parent, a node
agent's SPIFFE ID) that show every one of its selectors. :func:`parse_selector`
is the one strict rule for a selector (``unix:uid:1000``); a node agent
reports the same selectors for a caller and serves it the entries whose
selectors it shows all of. The EntriesService (``_entries_api``) stores entries and signs
their SVIDs; this package decides only what is well-formed.
"""

from ._selectors import (
    MAX_SELECTORS,
    SELECTOR_KINDS,
    InvalidSelector,
    Selector,
    parse_selector,
)
from ._validate import MAX_DNS_NAMES, MIN_TTL_SECONDS, InvalidEntry, check_dns_names, check_ttl

__all__ = [
    "MAX_DNS_NAMES",
    "MAX_SELECTORS",
    "MIN_TTL_SECONDS",
    "SELECTOR_KINDS",
    "InvalidEntry",
    "InvalidSelector",
    "Selector",
    "check_dns_names",
    "check_ttl",
    "parse_selector",
]
