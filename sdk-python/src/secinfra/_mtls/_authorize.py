"""Authorizers: which verified peers may connect.

An `Authorizer` runs after the peer's certificate has passed every X509-SVID
rule, on its parsed SPIFFE ID. There is no default: a server or client
context is built only with an authorizer, and accepting any peer of the
trust bundle is spelled out as `authorize_any`. Each authorizer says what it
expects, so a refusal names both the peer and the rule it failed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ._spiffe_id import SpiffeId, trust_domain_name

__all__ = [
    "Authorizer",
    "authorize_any",
    "authorize_id",
    "authorize_if",
    "authorize_member_of",
    "authorize_one_of",
    "authorize_path_prefix",
]


@dataclass(frozen=True)
class Authorizer:
    """A decision on a verified peer's SPIFFE ID, and what it expects (for refusals).

    Build one with the ``authorize_*`` functions.
    """

    allows: Callable[[SpiffeId], bool]
    """True if the peer may connect."""
    expects: str
    """What a peer must be, as said in a refusal: ``spiffe://td/api``, ``a member of td``."""


def authorize_any() -> Authorizer:
    """Any peer whose certificate chains to the trust bundle and is an X509-SVID.

    The bundle holds one trust domain, so this admits every workload of it:
    use it only where that is really meant.
    """
    return Authorizer(lambda _peer: True, "any SPIFFE ID of the trust bundle")


def authorize_id(spiffe_id: str | SpiffeId) -> Authorizer:
    """Exactly one SPIFFE ID."""
    wanted = _parse(spiffe_id)
    return Authorizer(lambda peer: peer == wanted, str(wanted))


def authorize_one_of(spiffe_ids: Iterable[str | SpiffeId]) -> Authorizer:
    """Any SPIFFE ID of a set (an empty set is refused: it would admit nobody)."""
    wanted = frozenset(_parse(one) for one in spiffe_ids)
    if not wanted:
        raise ValueError("secinfra: mtls: authorize_one_of needs at least one SPIFFE ID")
    listed = ", ".join(sorted(str(one) for one in wanted))
    return Authorizer(lambda peer: peer in wanted, f"one of {listed}")


def authorize_member_of(trust_domain: str) -> Authorizer:
    """Any SPIFFE ID of ``trust_domain`` (``example.org`` or ``spiffe://example.org``)."""
    name = trust_domain_name(trust_domain)
    return Authorizer(lambda peer: peer.trust_domain == name, f"a member of {name}")


def authorize_path_prefix(trust_domain: str, prefix: str) -> Authorizer:
    """SPIFFE IDs of ``trust_domain`` whose path is ``prefix`` or lies below it.

    Whole segments are compared: ``/payments`` admits ``/payments`` and
    ``/payments/api``, never ``/payments-admin``.
    """
    name = trust_domain_name(trust_domain)
    base = SpiffeId.parse(f"spiffe://{name}{prefix.rstrip('/')}").path

    def allows(peer: SpiffeId) -> bool:
        if peer.trust_domain != name:
            return False
        return peer.path == base or peer.path.startswith(base + "/")

    return Authorizer(allows, f"spiffe://{name}{base}/... (a path under {base or '/'})")


def authorize_if(predicate: Callable[[SpiffeId], bool], *, expects: str) -> Authorizer:
    """A custom rule: ``predicate(peer)`` returns True to admit the peer.

    ``expects`` says what the rule wants, for refusals. A predicate that
    raises refuses the peer.
    """
    return Authorizer(predicate, expects)


def _parse(spiffe_id: str | SpiffeId) -> SpiffeId:
    return spiffe_id if isinstance(spiffe_id, SpiffeId) else SpiffeId.parse(spiffe_id)
