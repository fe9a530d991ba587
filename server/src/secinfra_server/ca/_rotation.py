"""CA rotation as a pure state machine over a list of CA records.

::

    prepare_ca        new CA: prepared   (in the bundle, not signing)
    activate_ca       prepared -> active, previous active -> retiring
                      (retiring: still in the bundle, no longer signing)
    retire_ca         retiring -> retired (out of the bundle), only once no
                      unexpired leaf can chain to it, unless forced

Each function takes the current records and returns new ones (records are
immutable); the caller persists the result and bumps the bundle sequence.
Invalid transitions raise InvalidTransition, an unsafe retirement
RetirementNotSafe (both code failed_precondition).

:func:`plan_automatic_rotation` says which step is due now under a
:class:`RotationPolicy`; a scheduler applies it and plans again.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ._authority import (
    DEFAULT_CA_VALIDITY,
    CAState,
    CertificateAuthority,
    create_root_ca,
)
from ._bundle import DEFAULT_REFRESH_HINT
from ._errors import CAUnavailable, InvalidArgument, InvalidTransition, RetirementNotSafe
from ._issue import DEFAULT_SVID_TTL
from ._keys import DEFAULT_KEY_ALGORITHM, KeyAlgorithm
from ._time import require_aware

CAs = tuple[CertificateAuthority, ...]

_IN_BUNDLE = (CAState.PREPARED, CAState.ACTIVE, CAState.RETIRING)


def trusted_authorities(cas: Sequence[CertificateAuthority]) -> CAs:
    """The CAs to publish in the bundle and to trust: prepared, active, retiring."""
    return tuple(ca for ca in cas if ca.state in _IN_BUNDLE)


def active_authority(cas: Sequence[CertificateAuthority]) -> CertificateAuthority:
    """The one CA that signs; CAUnavailable if there is none."""
    for ca in cas:
        if ca.state is CAState.ACTIVE:
            return ca
    raise CAUnavailable("there is no active CA")


def prepare_ca(
    cas: Sequence[CertificateAuthority],
    *,
    trust_domain: str,
    now: datetime,
    validity: timedelta = DEFAULT_CA_VALIDITY,
    key_algorithm: KeyAlgorithm = DEFAULT_KEY_ALGORITHM,
    ca_id: str | None = None,
) -> CAs:
    """Add a new CA in state ``prepared``; at most one CA may be prepared at a time."""
    for ca in cas:
        if ca.state is CAState.PREPARED:
            raise InvalidTransition(f"CA {ca.id} is already prepared; activate it first")
        if ca.trust_domain != trust_domain:
            raise InvalidArgument(
                f"CA {ca.id} is for trust domain {ca.trust_domain}, not {trust_domain}"
            )
        if ca_id is not None and ca.id == ca_id:
            raise InvalidArgument(f"CA id {ca_id} is already in use")
    new = create_root_ca(
        trust_domain,
        now=now,
        validity=validity,
        key_algorithm=key_algorithm,
        ca_id=ca_id,
        state=CAState.PREPARED,
    )
    return (*cas, new)


def activate_ca(cas: Sequence[CertificateAuthority], ca_id: str, *, now: datetime) -> CAs:
    """Make prepared CA ``ca_id`` active; the previously active CA becomes retiring.

    Timing (has the prepared CA been published long enough for every client to
    trust it?) is the planner's concern; an operator may activate at once.
    """
    now = require_aware(now)
    target = _find(cas, ca_id)
    if target.state is not CAState.PREPARED:
        raise InvalidTransition(
            f"CA {ca_id} is {target.state}; only a prepared CA can be activated"
        )
    if now >= target.not_after:
        raise InvalidTransition(f"CA {ca_id} has expired and cannot be activated")
    result: list[CertificateAuthority] = []
    for ca in cas:
        if ca.id == ca_id:
            ca = dataclasses.replace(ca, state=CAState.ACTIVE, activated_at=now)
        elif ca.state is CAState.ACTIVE:
            ca = dataclasses.replace(ca, state=CAState.RETIRING, retiring_at=now)
        result.append(ca)
    return tuple(result)


def retire_ca(
    cas: Sequence[CertificateAuthority],
    ca_id: str,
    *,
    now: datetime,
    max_leaf_expiry: datetime | None,
    force: bool = False,
) -> CAs:
    """Retire CA ``ca_id`` (remove it from the bundle).

    ``max_leaf_expiry`` is the latest notAfter of leaves it issued (None if it
    issued none). While that is still in the future, retiring would break those
    leaves: RetirementNotSafe, unless ``force`` (e.g. after a key compromise, with
    the leaves revoked anyway).
    """
    now = require_aware(now)
    target = _find(cas, ca_id)
    if target.state is not CAState.RETIRING:
        raise InvalidTransition(f"CA {ca_id} is {target.state}; only a retiring CA can be retired")
    if max_leaf_expiry is not None and not force:
        safe_at = min(require_aware(max_leaf_expiry, "max_leaf_expiry"), target.not_after)
        if now < safe_at:
            raise RetirementNotSafe(
                f"CA {ca_id} still has unexpired leaves until {safe_at.isoformat()}; "
                "retire it after that, or force it"
            )
    return tuple(
        dataclasses.replace(ca, state=CAState.RETIRED, retired_at=now) if ca.id == ca_id else ca
        for ca in cas
    )


class RotationAction(enum.StrEnum):
    PREPARE = "prepare"
    ACTIVATE = "activate"
    RETIRE = "retire"


@dataclass(frozen=True)
class RotationPolicy:
    """When automatic rotation acts.

    prepare_at_fraction: prepare a successor once the active CA has used this
        fraction of its lifetime (default 2/3).
    activation_delay: activate the prepared CA once it has been in the bundle this
        long; at least the bundle refresh hint, so every client trusts it first.
    max_leaf_ttl: the longest leaf TTL the server issues; a retiring CA is safe to
        retire ``max_leaf_ttl`` after it stopped signing (or when it expires).
    ca_validity: lifetime of CAs the scheduler prepares.
    """

    prepare_at_fraction: float = 2 / 3
    activation_delay: timedelta = DEFAULT_REFRESH_HINT
    max_leaf_ttl: timedelta = DEFAULT_SVID_TTL
    ca_validity: timedelta = DEFAULT_CA_VALIDITY

    def __post_init__(self) -> None:
        if not 0 < self.prepare_at_fraction < 1:
            raise InvalidArgument("prepare_at_fraction must be between 0 and 1")
        if self.activation_delay < timedelta(0) or self.max_leaf_ttl <= timedelta(0):
            raise InvalidArgument("rotation delays must not be negative")


@dataclass(frozen=True)
class RotationStep:
    """A due rotation step. ``ca_id`` is None for PREPARE (the CA does not exist yet);
    for RETIRE, ``max_leaf_expiry`` is the policy's bound on its leaves' notAfter."""

    action: RotationAction
    ca_id: str | None
    reason: str
    max_leaf_expiry: datetime | None = None


def plan_automatic_rotation(
    cas: Sequence[CertificateAuthority],
    now: datetime,
    policy: RotationPolicy = RotationPolicy(),
) -> RotationStep | None:
    """The step due at ``now``, or None. Retirements come first, then activation,
    then preparation; apply the step and plan again to catch up."""
    now = require_aware(now)
    for ca in cas:
        if ca.state is CAState.RETIRING:
            stopped = ca.retiring_at if ca.retiring_at is not None else now
            safe_at = min(stopped + policy.max_leaf_ttl, ca.not_after)
            if now >= safe_at:
                return RotationStep(
                    RotationAction.RETIRE,
                    ca.id,
                    "no leaf it issued can still be valid",
                    max_leaf_expiry=safe_at,
                )
    active = next((ca for ca in cas if ca.state is CAState.ACTIVE), None)
    prepared = next((ca for ca in cas if ca.state is CAState.PREPARED), None)
    active_usable = active is not None and now < active.not_after
    if prepared is not None:
        if not active_usable:
            return RotationStep(RotationAction.ACTIVATE, prepared.id, "no usable active CA")
        if now - prepared.prepared_at >= policy.activation_delay:
            return RotationStep(
                RotationAction.ACTIVATE,
                prepared.id,
                "prepared CA has been published for a full refresh interval",
            )
        return None
    if active is None or not active_usable:
        return RotationStep(RotationAction.PREPARE, None, "no usable active CA")
    lifetime = active.not_after - active.not_before
    if now >= active.not_before + lifetime * policy.prepare_at_fraction:
        return RotationStep(
            RotationAction.PREPARE,
            None,
            f"active CA {active.id} has used {policy.prepare_at_fraction:.0%} of its lifetime",
        )
    return None


def _find(cas: Sequence[CertificateAuthority], ca_id: str) -> CertificateAuthority:
    for ca in cas:
        if ca.id == ca_id:
            return ca
    raise InvalidArgument(f"no CA with id {ca_id}")
