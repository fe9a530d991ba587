"""CA rotation: prepare -> activate -> retire, invalid transitions, automatic plan."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from secinfra_server.ca import (
    CAError,
    CAState,
    CAUnavailable,
    CertificateAuthority,
    InvalidArgument,
    InvalidTransition,
    RetirementNotSafe,
    RotationAction,
    RotationPolicy,
    SpiffeId,
    SvidVerifier,
    UntrustedCertificate,
    activate_ca,
    active_authority,
    build_csr,
    parse_bundle,
    plan_automatic_rotation,
    prepare_ca,
    render_bundle,
    retire_ca,
    sign_svid,
    trusted_authorities,
)

TD = "example.org"
WORKLOAD = "spiffe://example.org/ns/prod/sa/web"


def _by_id(cas: Sequence[CertificateAuthority]) -> dict[str, CAState]:
    return {ca.id: ca.state for ca in cas}


def _verifier(cas: Sequence[CertificateAuthority]) -> SvidVerifier:
    return SvidVerifier(ca.certificate for ca in trusted_authorities(cas))


def test_full_rotation(now: datetime, workload_key: ec.EllipticCurvePrivateKey) -> None:
    csr = build_csr(workload_key)
    # Bootstrap: prepare + activate at once (nothing to overlap with yet).
    cas = prepare_ca((), trust_domain=TD, now=now, ca_id="ca1")
    cas = activate_ca(cas, "ca1", now=now)
    old_leaf = sign_svid(active_authority(cas), csr, WORKLOAD, ttl=timedelta(hours=1), now=now)

    # Prepare: published in the bundle, not signing.
    t1 = now + timedelta(minutes=10)
    cas = prepare_ca(cas, trust_domain=TD, now=t1, ca_id="ca2")
    assert _by_id(cas) == {"ca1": CAState.ACTIVE, "ca2": CAState.PREPARED}
    assert active_authority(cas).id == "ca1"
    with pytest.raises(CAUnavailable):
        sign_svid(cas[1], csr, WORKLOAD, now=t1)
    bundle = render_bundle(trusted_authorities(cas), sequence=2)
    assert len(json.loads(bundle.body)["keys"]) == 2

    # Activate: ca2 signs, ca1 retiring (still trusted, no longer signing).
    t2 = t1 + timedelta(minutes=10)
    cas = activate_ca(cas, "ca2", now=t2)
    assert _by_id(cas) == {"ca1": CAState.RETIRING, "ca2": CAState.ACTIVE}
    ca1, ca2 = cas
    assert (ca1.retiring_at, ca2.activated_at) == (t2, t2)
    with pytest.raises(CAUnavailable):
        sign_svid(ca1, csr, WORKLOAD, now=t2)
    new_leaf = sign_svid(active_authority(cas), csr, WORKLOAD, now=t2)
    bundle_certs = parse_bundle(render_bundle(trusted_authorities(cas), sequence=3).body)
    assert set(bundle_certs) == {ca1.certificate, ca2.certificate}
    overlap = SvidVerifier(bundle_certs)
    assert overlap.verify(old_leaf, now=t2) == SpiffeId.parse(WORKLOAD)  # old CA's leaf
    assert overlap.verify(new_leaf, now=t2) == SpiffeId.parse(WORKLOAD)

    # Retire is refused while the old leaf is still valid...
    expiry = old_leaf.not_valid_after_utc
    with pytest.raises(RetirementNotSafe) as caught:
        retire_ca(cas, "ca1", now=t2, max_leaf_expiry=expiry)
    assert caught.value.code == "failed_precondition"
    # ...and allowed once it has expired.
    t3 = expiry + timedelta(seconds=1)
    cas = retire_ca(cas, "ca1", now=t3, max_leaf_expiry=expiry)
    assert _by_id(cas) == {"ca1": CAState.RETIRED, "ca2": CAState.ACTIVE}
    assert cas[0].retired_at == t3
    assert trusted_authorities(cas) == (cas[1],)
    assert parse_bundle(render_bundle(trusted_authorities(cas), sequence=4).body) == [
        ca2.certificate
    ]
    with pytest.raises(UntrustedCertificate):
        _verifier(cas).verify(old_leaf, now=now)
    assert _verifier(cas).verify(new_leaf, now=t2) == SpiffeId.parse(WORKLOAD)


def _rotated(now: datetime) -> tuple[CertificateAuthority, ...]:
    """ca1 retiring, ca2 active, ca3 prepared."""
    cas = prepare_ca((), trust_domain=TD, now=now, ca_id="ca1")
    cas = activate_ca(cas, "ca1", now=now)
    cas = prepare_ca(cas, trust_domain=TD, now=now, ca_id="ca2")
    cas = activate_ca(cas, "ca2", now=now)
    return prepare_ca(cas, trust_domain=TD, now=now, ca_id="ca3")


def test_retire_with_no_leaves_or_forced(now: datetime) -> None:
    cas = _rotated(now)
    assert retire_ca(cas, "ca1", now=now, max_leaf_expiry=None)[0].state is CAState.RETIRED
    forced = retire_ca(cas, "ca1", now=now, max_leaf_expiry=now + timedelta(hours=1), force=True)
    assert forced[0].state is CAState.RETIRED


def test_retire_is_safe_once_the_ca_itself_expired(now: datetime) -> None:
    cas = _rotated(now)
    late = cas[0].not_after + timedelta(seconds=1)
    # A caller's bound beyond the CA's own expiry cannot keep it: leaves die with it.
    retired = retire_ca(cas, "ca1", now=late, max_leaf_expiry=late + timedelta(days=9))
    assert retired[0].state is CAState.RETIRED


def _retired(now: datetime) -> tuple[CertificateAuthority, ...]:
    return retire_ca(_rotated(now), "ca1", now=now, max_leaf_expiry=None)


Transition = Callable[[datetime], object]

INVALID_TRANSITIONS: list[tuple[str, Transition, type[Exception]]] = [
    ("activate-active", lambda t: activate_ca(_rotated(t), "ca2", now=t), InvalidTransition),
    ("activate-retiring", lambda t: activate_ca(_rotated(t), "ca1", now=t), InvalidTransition),
    ("activate-retired", lambda t: activate_ca(_retired(t), "ca1", now=t), InvalidTransition),
    (
        "retire-active",
        lambda t: retire_ca(_rotated(t), "ca2", now=t, max_leaf_expiry=None),
        InvalidTransition,
    ),
    (
        "retire-prepared",
        lambda t: retire_ca(_rotated(t), "ca3", now=t, max_leaf_expiry=None),
        InvalidTransition,
    ),
    (
        "retire-retired",
        lambda t: retire_ca(_retired(t), "ca1", now=t, max_leaf_expiry=None),
        InvalidTransition,
    ),
    ("prepare-twice", lambda t: prepare_ca(_rotated(t), trust_domain=TD, now=t), InvalidTransition),
    (
        "activate-expired",
        lambda t: activate_ca(_rotated(t), "ca3", now=t + timedelta(days=366)),
        InvalidTransition,
    ),
    ("unknown-ca", lambda t: activate_ca(_rotated(t), "nope", now=t), InvalidArgument),
]


@pytest.mark.parametrize(
    ("transition", "error"),
    [pytest.param(tr, err, id=name) for name, tr, err in INVALID_TRANSITIONS],
)
def test_invalid_transitions(now: datetime, transition: Transition, error: type[CAError]) -> None:
    with pytest.raises(error) as caught:
        transition(now)
    expected = "invalid_argument" if error is InvalidArgument else "failed_precondition"
    assert caught.value.code == expected


def test_prepare_refuses_other_trust_domain(now: datetime) -> None:
    cas = prepare_ca((), trust_domain=TD, now=now, ca_id="ca1")
    cas = activate_ca(cas, "ca1", now=now)
    with pytest.raises(InvalidArgument, match="trust domain"):
        prepare_ca(cas, trust_domain="other.org", now=now)
    with pytest.raises(InvalidArgument, match="already in use"):
        prepare_ca(cas, trust_domain=TD, now=now, ca_id="ca1")


def test_no_active_ca(now: datetime) -> None:
    with pytest.raises(CAUnavailable, match="no active CA"):
        active_authority(prepare_ca((), trust_domain=TD, now=now))


# --- automatic plan ---------------------------------------------------------------

DAY = timedelta(days=1)
POLICY = RotationPolicy(
    prepare_at_fraction=2 / 3,
    activation_delay=timedelta(minutes=5),
    max_leaf_ttl=timedelta(hours=1),
    ca_validity=30 * DAY,
)


def _active(now: datetime, ca_id: str = "a") -> tuple[CertificateAuthority, ...]:
    cas = prepare_ca((), trust_domain=TD, now=now, ca_id=ca_id, validity=30 * DAY)
    return activate_ca(cas, ca_id, now=now)


def _scenario(name: str, now: datetime) -> tuple[Sequence[CertificateAuthority], datetime]:
    if name == "empty":
        return (), now
    if name == "prepared-only":
        return prepare_ca((), trust_domain=TD, now=now), now
    if name == "fresh-active":
        return _active(now), now + DAY
    if name == "active-at-two-thirds":
        return _active(now), now + 20 * DAY
    if name == "active-expired":
        return _active(now), now + 31 * DAY
    with_prepared = prepare_ca(_active(now), trust_domain=TD, now=now + 20 * DAY, ca_id="b")
    if name == "prepared-just-published":
        return with_prepared, now + 20 * DAY + timedelta(minutes=4)
    if name == "prepared-published-long-enough":
        return with_prepared, now + 20 * DAY + timedelta(minutes=5)
    rotated = activate_ca(with_prepared, "b", now=now + 20 * DAY)
    if name == "retiring-with-live-leaves":
        return rotated, now + 20 * DAY + timedelta(minutes=59)
    assert name == "retiring-leaves-expired"
    return rotated, now + 20 * DAY + timedelta(hours=1)


@pytest.mark.parametrize(
    ("scenario", "action", "ca_id"),
    [
        ("empty", RotationAction.PREPARE, None),
        ("prepared-only", RotationAction.ACTIVATE, "*"),
        ("fresh-active", None, None),
        ("active-at-two-thirds", RotationAction.PREPARE, None),
        ("active-expired", RotationAction.PREPARE, None),
        ("prepared-just-published", None, None),
        ("prepared-published-long-enough", RotationAction.ACTIVATE, "b"),
        ("retiring-with-live-leaves", None, None),
        ("retiring-leaves-expired", RotationAction.RETIRE, "a"),
    ],
)
def test_plan_automatic_rotation(
    now: datetime, scenario: str, action: RotationAction | None, ca_id: str | None
) -> None:
    cas, at = _scenario(scenario, now)
    step = plan_automatic_rotation(cas, at, POLICY)
    if action is None:
        assert step is None
        return
    assert step is not None
    assert step.action is action
    assert step.reason
    if ca_id != "*":
        assert step.ca_id == ca_id


def test_automatic_rotation_never_strands_a_leaf(
    now: datetime, workload_key: ec.EllipticCurvePrivateKey
) -> None:
    """Drive the planner every 6 hours for 100 days: there is always an active CA,
    and every leaf stays verifiable against the published bundle until it expires."""
    csr = build_csr(workload_key)
    cas: tuple[CertificateAuthority, ...] = ()
    leaves: list[x509.Certificate] = []
    generations = 0
    t = now
    while t < now + 100 * DAY:
        while (step := plan_automatic_rotation(cas, t, POLICY)) is not None:
            if step.action is RotationAction.PREPARE:
                cas = prepare_ca(cas, trust_domain=TD, now=t, validity=POLICY.ca_validity)
                generations += 1
            elif step.action is RotationAction.ACTIVATE:
                assert step.ca_id is not None
                cas = activate_ca(cas, step.ca_id, now=t)
            else:
                assert step.ca_id is not None
                cas = retire_ca(cas, step.ca_id, now=t, max_leaf_expiry=step.max_leaf_expiry)
        verifier = _verifier(cas)
        for leaf in leaves:
            if leaf.not_valid_after_utc >= t:
                verifier.verify(leaf, now=t)
        leaves.append(
            sign_svid(active_authority(cas), csr, WORKLOAD, ttl=timedelta(hours=1), now=t)
        )
        # Check the fresh leaf at the end of its life too, after any rotation step.
        t_end = t + timedelta(minutes=59)
        while (step := plan_automatic_rotation(cas, t_end, POLICY)) is not None:
            if step.action is RotationAction.ACTIVATE:
                assert step.ca_id is not None
                cas = activate_ca(cas, step.ca_id, now=t_end)
            elif step.action is RotationAction.RETIRE:
                assert step.ca_id is not None
                cas = retire_ca(cas, step.ca_id, now=t_end, max_leaf_expiry=step.max_leaf_expiry)
            else:
                cas = prepare_ca(cas, trust_domain=TD, now=t_end, validity=POLICY.ca_validity)
                generations += 1
        _verifier(cas).verify(leaves[-1], now=t_end)
        t += timedelta(hours=6)
    assert generations >= 4
    assert sum(ca.state is CAState.ACTIVE for ca in cas) == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"prepare_at_fraction": 0.0}, id="fraction-zero"),
        pytest.param({"prepare_at_fraction": 1.0}, id="fraction-one"),
        pytest.param({"activation_delay": timedelta(seconds=-1)}, id="negative-delay"),
        pytest.param({"max_leaf_ttl": timedelta(0)}, id="zero-leaf-ttl"),
    ],
)
def test_policy_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidArgument):
        RotationPolicy(**kwargs)  # type: ignore[arg-type]


def test_records_are_immutable(now: datetime) -> None:
    cas = _active(now)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cas[0].state = CAState.RETIRED  # type: ignore[misc]
