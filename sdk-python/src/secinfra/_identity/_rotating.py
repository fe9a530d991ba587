"""A rotating identity: enrolment, renewal, re-enrolment and bundle refresh.

The private key is generated in this process (ECDSA P-256) and never leaves
it: the server signs a CSR. :class:`RotatingIdentity` enrols, renews at half
the lifetime minus a jitter of up to 10 % (with a new key each time), retries
failed renewals with backoff until expiry, re-enrols after expiry when its
attestation can be used again (a JWT provider; a join token is single-use),
refreshes the trust bundle at its refresh hint (conditionally, on the last
bundle's ETag), and tells subscribers. The certificate and key always change
together, as one snapshot; a new certificate is installed only if it is an
X509-SVID for the new key, chains to the trust bundle (after one refresh) and,
for a renewal, names the current SPIFFE ID. When to do each is decided by
``secinfra._runtime._rotation`` (pure timing, per `RotationPolicy`).

`RotationRules` keeps the schedule and the checks, and writes enrolment,
renewal, bundle refresh and each rotation step once, as generators that
yield the RPC they need (`IdentityRpc`) and get its answer back;
`RotatingIdentity` performs them with threads and the sync IdentityClient,
``secinfra.aio.AsyncRotatingIdentity`` with asyncio and the async one.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Generator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from cryptography.hazmat.primitives.asymmetric import ec

from .._rpc import CallOptions
from .._runtime._clock import Clock, SystemClock
from .._runtime._rotation import (
    DEFAULT_ROTATION_POLICY,
    RotationPolicy,
    bundle_refresh_time,
    bundle_retry_time,
    reenrol_retry_time,
    renewal_retry_delay,
    renewal_time,
)
from .._runtime._steps import run_steps
from ..errors import IdentityExpired, SecinfraError
from ._bundle import TrustBundle, bundle_from_wire, chains_to_bundle, server_id_for
from ._events import EventDispatcher, RotationEvent, RotationKind, Subscriber
from ._keys import build_csr, new_private_key, private_key_pem
from ._snapshot import X509Identity, parse_identity

if TYPE_CHECKING:
    from .._gen.identity_client import IdentityClient

__all__ = ["IdentityRpc", "JwtProvider", "Reenrol", "RotatingIdentity", "RotationRules"]

log = logging.getLogger("secinfra.identity")

#: After an unexpected error in a rotation step, the thread waits this long.
STEP_FAILURE_DELAY_SECONDS: Final = 1.0
#: The rotation thread never sleeps longer than this at once (stays responsive).
MAX_SLEEP_SECONDS: Final = 60.0
#: Nor shorter: a step that is due again at once must not spin.
MIN_SLEEP_SECONDS: Final = 0.05

JwtProvider = Callable[[], str]
"""Returns a fresh JWT attestation for each enrolment (a reusable attestation)."""


@dataclass(frozen=True, slots=True)
class IdentityRpc:
    """Call IdentityService's ``method`` (the client method's name) with ``kwargs``;
    the outcome is its response, or its `SecinfraError` thrown in."""

    method: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reenrol:
    """Join the re-enrolment in flight, or start one, and wait for it to end;
    the outcome is the new identity, or the enrolment's error thrown in."""


#: A generator of rotation steps returning ``T``.
RotationSteps = Generator[IdentityRpc | Reenrol, Any, Any]


class RotationRules:
    """The state, schedule and checks of a rotating identity, with no I/O.

    Shared by `RotatingIdentity` (threads) and ``secinfra.aio``'s
    `AsyncRotatingIdentity` (asyncio): each performs the generators' steps
    with its own IdentityService client and runs the loop its own way.
    """

    def __init__(
        self,
        bundle: TrustBundle,
        *,
        join_token: str | None = None,
        jwt: str | JwtProvider | None = None,
        server_id: str | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        rotation_policy: RotationPolicy = DEFAULT_ROTATION_POLICY,
    ) -> None:
        """``rotation_policy`` says when to renew, retry and refresh (spec 9, 10)."""
        if (join_token is None) == (jwt is None):
            raise ValueError("secinfra: identity: give exactly one of join_token or jwt")
        self._join_token = join_token
        self._jwt: JwtProvider | None = (lambda: jwt) if isinstance(jwt, str) else jwt
        self._bundle = bundle
        self._server_id = server_id or server_id_for(bundle)
        self._clock = clock or SystemClock()
        self._rng = rng or random.SystemRandom()
        self._policy = rotation_policy
        self._lock = threading.RLock()
        self._identity: X509Identity | None = None
        self._renew_at: datetime | None = None
        self._failures = 0
        self._bundle_due: datetime = self._clock.now()
        self._expired_reported = False
        self._events = EventDispatcher()
        self._start_driver()

    def _start_driver(self) -> None:
        """The driver's own state (its client, loop, re-enrolment flight)."""

    @property
    def rotation_policy(self) -> RotationPolicy:
        """When this source renews, retries and refreshes."""
        return self._policy

    # -- IdentitySource --------------------------------------------------------------
    @property
    def server_id(self) -> str:
        return self._server_id

    def identity(self) -> X509Identity | None:
        with self._lock:
            return self._identity

    def bundle(self) -> TrustBundle:
        with self._lock:
            return self._bundle

    def _valid_identity(self) -> X509Identity | None:
        """The current identity if still valid; None when a re-enrolment must
        give one (after `expired` is reported); `IdentityExpired` when none can."""
        with self._lock:
            identity = self._identity
            if identity is not None and self._clock.now() < identity.not_after:
                return identity
            if self._jwt is None:
                raise IdentityExpired(
                    "secinfra: identity: the certificate expired and could not be renewed;"
                    " a join token cannot re-enrol (configure a JWT attestation, or enrol"
                    " again with a new token)"
                )
        if identity is not None:
            self._report_expired(identity)  # before re-enrolling: expired, then enrolled
        return None

    def _reenrolled(self, current: X509Identity) -> X509Identity:
        """The identity a re-enrolment gave a waiting caller, checked."""
        if self._clock.now() >= current.not_after:
            raise IdentityExpired(
                "secinfra: identity: re-enrolment returned an already expired certificate"
                " (is this machine's clock right?)"
            )
        return current

    def subscribe(self, callback: Subscriber) -> None:
        self._events.add(callback)

    # -- enrolment, renewal, bundle ----------------------------------------------------
    def _set_identity(
        self, chain_pem: str, key: ec.EllipticCurvePrivateKey, *, renewing: X509Identity | None
    ) -> RotationSteps:
        """Check a new certificate and install it with its key as the snapshot.

        ``renewing`` is the identity a renewal replaces (None for enrolment).
        A certificate that fails a check raises, naming the check, and is
        not installed: the current snapshot stays (spec 8.7.4, 9.3.3).
        """
        identity = parse_identity(
            chain_pem.encode(), private_key_pem(key), received_at=self._clock.now()
        )
        if renewing is not None and identity.spiffe_id != renewing.spiffe_id:
            raise SecinfraError(
                f"secinfra: identity: renewal refused: the new certificate is for"
                f" {identity.spiffe_id}, not {renewing.spiffe_id} (the SPIFFE ID must not"
                " change); the current certificate stays in use"
            )
        if not chains_to_bundle(identity.chain_pem, self.bundle(), self._clock.now()):
            # Signed by a CA this client has not fetched yet (a CA rotation it
            # slept through): one refresh, then refuse (spec 8.7.4).
            yield from self._fetch_bundle()
            if not chains_to_bundle(identity.chain_pem, self.bundle(), self._clock.now()):
                raise SecinfraError(
                    "secinfra: identity: the new certificate does not chain to the trust bundle"
                    " (checked again after a bundle refresh); it is not installed"
                )
        with self._lock:
            self._identity = identity
            self._renew_at = renewal_time(
                identity.issued_at, identity.not_after, self._rng, self._policy
            )
            self._failures = 0
            self._expired_reported = False
        return identity

    def _enrol(self) -> RotationSteps:
        key = new_private_key()
        if self._join_token is not None:
            token, self._join_token = self._join_token, None  # single use
            answer = yield IdentityRpc(
                "issue_certificate", {"csr_pem": build_csr(key), "join_token": token}
            )
        else:
            assert self._jwt is not None
            answer = yield IdentityRpc(
                "issue_certificate", {"csr_pem": build_csr(key), "jwt": self._jwt()}
            )
        assert answer.svid is not None
        identity = yield from self._set_identity(answer.svid.cert_chain_pem, key, renewing=None)
        log.info("enrolled", extra={"spiffe_id": identity.spiffe_id, "serial": identity.serial})
        self._events.emit(RotationEvent(RotationKind.ENROLLED, identity, self.bundle()))

    def _renew(self, current: X509Identity | None) -> RotationSteps:
        key = new_private_key()
        answer = yield IdentityRpc("renew_certificate", {"csr_pem": build_csr(key)})
        assert answer.svid is not None
        identity = yield from self._set_identity(answer.svid.cert_chain_pem, key, renewing=current)
        self._events.emit(RotationEvent(RotationKind.RENEWED, identity, self.bundle()))

    def _fetch_bundle(self) -> RotationSteps:
        # Always reaches the server (spec 7.12.2), conditional on the ETag of
        # the last bundle fetched (10.2.2): a 304 answers with that bundle, so
        # the held one stays, and it counts as a successful fetch. The cache
        # keeps that bundle and its ETag even on a client created with
        # use_cache=False, whose own calls never read it.
        wire = yield IdentityRpc(
            "get_trust_bundle", {"call_options": CallOptions(use_cache=True, revalidate=True)}
        )
        fetched = bundle_from_wire(wire)
        with self._lock:
            self._bundle_due = bundle_refresh_time(
                self._clock.now(), fetched.refresh_hint, self._policy
            )
            held = self._bundle.sequence
            if fetched.sequence <= held:
                # Only a higher sequence replaces the held bundle (spec 10.4.1):
                # the same one is unchanged (10.4.3), and an older one (a
                # rollback, a replica that lags behind, or none given: 0) is
                # ignored, so its CAs are not trusted.
                if fetched.sequence < held:
                    log.warning(
                        "secinfra: identity: ignoring trust bundle sequence %d older than %d",
                        fetched.sequence,
                        held,
                    )
                return
            changed = fetched.pem != self._bundle.pem
            self._bundle = fetched
        if changed:
            self._events.emit(RotationEvent(RotationKind.BUNDLE_UPDATED, self.identity(), fetched))

    # -- the background loop ---------------------------------------------------------
    def _step(self) -> RotationSteps:
        """Renew, report expiry and refresh the bundle as due; seconds until the next step."""
        now = self._clock.now()
        with self._lock:
            identity, renew_at, bundle_due = self._identity, self._renew_at, self._bundle_due
        if identity is not None and now >= identity.not_after:
            yield from self._on_expired(identity)
        elif renew_at is not None and now >= renew_at:
            yield from self._try_renew(identity)
        if now >= bundle_due:
            try:
                yield from self._fetch_bundle()
            except SecinfraError as exc:
                log.warning("secinfra: identity: bundle refresh failed: %s", exc)
                with self._lock:
                    self._bundle_due = bundle_retry_time(
                        self._clock.now(), self._bundle.refresh_hint, self._policy
                    )
        with self._lock:
            wake = min(
                t
                for t in (self._renew_at, self._bundle_due, self._identity_expiry())
                if t is not None
            )
        return (wake - self._clock.now()).total_seconds()

    def _identity_expiry(self) -> datetime | None:
        identity = self._identity
        return None if identity is None or self._expired_reported else identity.not_after

    def _try_renew(self, identity: X509Identity | None) -> RotationSteps:
        try:
            yield from self._renew(identity)
        except SecinfraError as exc:
            with self._lock:
                self._failures += 1
                failures = self._failures
                not_after = identity.not_after if identity else self._clock.now()
                delay = renewal_retry_delay(
                    failures,
                    self._rng,
                    now=self._clock.now(),
                    not_after=not_after,
                    policy=self._policy,
                )
                self._renew_at = self._clock.now() + timedelta(seconds=delay)
            log.warning("secinfra: identity: renewal failed (%d in a row): %s", failures, exc)
            self._events.emit(
                RotationEvent(RotationKind.RENEWAL_FAILED, identity, self.bundle(), exc)
            )

    def _on_expired(self, identity: X509Identity) -> RotationSteps:
        # Spec 9.7.5: `expired` once per expired certificate, with or without a
        # reusable attestation; then re-enrol (and keep trying) if there is one.
        self._report_expired(identity)
        if self._jwt is None:
            return
        try:
            # Joins a caller's re-enrolment if one is in flight (spec 9.7.2).
            yield Reenrol()
        except SecinfraError as exc:
            log.warning("secinfra: identity: re-enrolment failed: %s", exc)
            with self._lock:
                self._renew_at = reenrol_retry_time(self._clock.now(), self._policy)

    def _report_expired(self, identity: X509Identity) -> None:
        """Emit `expired` for ``identity``, once, unless a newer identity replaced it."""
        with self._lock:
            if self._expired_reported or self._identity is not identity:
                return
            self._expired_reported = True
            if self._jwt is None:
                self._renew_at = None  # nothing left to try in the background
        self._events.emit(
            RotationEvent(
                RotationKind.EXPIRED,
                identity,
                self.bundle(),
                IdentityExpired("secinfra: identity: the certificate expired"),
            )
        )

    @staticmethod
    def _step_failure_delay() -> float:
        """How long the loop waits after an unexpected error in a step."""
        return STEP_FAILURE_DELAY_SECONDS

    @staticmethod
    def _loop_delay(delay: float) -> float:
        """How long the loop sleeps before its next step, ``delay`` clamped."""
        return min(max(delay, MIN_SLEEP_SECONDS), MAX_SLEEP_SECONDS)

    @staticmethod
    def _reenrolment_failed(exc: SecinfraError) -> IdentityExpired:
        return IdentityExpired(
            f"secinfra: identity: the certificate expired and re-enrolment failed: {exc}"
        )

    @staticmethod
    def _still_reenrolling() -> TimeoutError:
        return TimeoutError(
            "secinfra: identity: the certificate expired and the re-enrolment is still running"
        )

    @staticmethod
    def _unattached() -> SecinfraError:
        return SecinfraError("secinfra: identity: attach() an IdentityClient first")


class RotatingIdentity(RotationRules):
    """Enrols, then keeps the identity and the trust bundle current in a
    background thread. Call :meth:`start` once (after :meth:`attach`) and
    :meth:`close` when done."""

    def _start_driver(self) -> None:
        self._reenrolment: Future[X509Identity] | None = None
        """The re-enrolment in flight (spec 9.7.2), or the last one, done."""
        self._client: IdentityClient | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._refreshing = threading.local()

    # -- wiring ----------------------------------------------------------------------
    def attach(self, client: IdentityClient) -> None:
        """The IdentityService client (over the transport that uses this source)."""
        self._client = client

    def start(self) -> None:
        """Enrol now (raising on failure), then keep rotating in the background."""
        self._perform(self._enrol())
        self._perform(self._fetch_bundle())
        self._thread = threading.Thread(
            target=self._run, name="secinfra-identity-rotation", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop rotating."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    # -- IdentitySource --------------------------------------------------------------
    def ensure_identity(self, timeout: float | None = None) -> X509Identity:
        """A currently valid identity; after expiry, the result of a re-enrolment.

        One re-enrolment runs at a time, in a thread of its own (spec 9.7.2):
        a caller starts it or joins the one in flight, and waits for it at
        most ``timeout`` seconds (its call's deadline, 5.1.2). Running out of
        time raises `TimeoutError` and leaves the re-enrolment running, so
        the next caller may find it done. `IdentityExpired` only when there
        is no reusable attestation or the re-enrolment failed (9.7.3).
        """
        valid = self._valid_identity()
        if valid is not None:
            return valid
        flight = self._reenrol()
        try:
            current = flight.result(timeout=timeout)
        except TimeoutError:
            raise self._still_reenrolling() from None
        except SecinfraError as exc:
            raise self._reenrolment_failed(exc) from exc
        return self._reenrolled(current)

    def refresh_bundle(self) -> bool:
        if getattr(self._refreshing, "active", False):
            return False  # the bundle fetch itself failed verification: give up
        before = self.bundle()
        self._refreshing.active = True
        try:
            self._perform(self._fetch_bundle())
        except SecinfraError:
            return False
        finally:
            self._refreshing.active = False
        return self.bundle().pem != before.pem

    # -- I/O -------------------------------------------------------------------------
    def _perform(self, steps: RotationSteps) -> Any:
        """Run ``steps`` with the sync IdentityClient, to their result."""
        return run_steps(steps, self._perform_step)

    def _perform_step(self, step: IdentityRpc | Reenrol) -> Any:
        if isinstance(step, Reenrol):
            return self._reenrol().result()
        if self._client is None:
            raise self._unattached()
        return getattr(self._client, step.method)(**step.kwargs)

    def _reenrol(self) -> Future[X509Identity]:
        """The re-enrolment in flight, or a new one started in its own thread.

        A new one starts only when none is running and the identity is still
        expired (a finished one may have just installed a valid certificate).
        """
        with self._lock:
            flight = self._reenrolment
            if flight is not None and not flight.done():
                return flight
            flight = Future()
            current = self._identity
            if current is not None and self._clock.now() < current.not_after:
                flight.set_result(current)
                return flight
            self._reenrolment = flight
        flight.set_running_or_notify_cancel()

        def run() -> None:
            try:
                self._perform(self._enrol())
            except BaseException as exc:  # handed to every waiter, never lost
                flight.set_exception(exc)
                return
            identity = self.identity()
            assert identity is not None
            flight.set_result(identity)

        threading.Thread(target=run, name="secinfra-identity-reenrol", daemon=True).start()
        return flight

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                delay = self._perform(self._step())
            except Exception:
                # Never let the thread die: a dead rotation thread means a
                # certificate that silently expires. Log, wait, try again.
                log.exception("secinfra: identity: rotation step failed")
                delay = self._step_failure_delay()
            self._stop.wait(self._loop_delay(delay))
