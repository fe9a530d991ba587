"""The CA at run time: the ``ca`` package's CAs loaded from storage, kept hot in memory.

Holds the decrypted CAs, and caches everything derived from them that the hot
paths need: the rendered trust bundle (body + ETag), the SVID verifier, and the
revocation deny-list. Each is rebuilt only when its source changes, so a
request pays for one dictionary lookup and a few comparisons, never for
parsing CA certificates or reading the database.

On SQLite one server process owns the file and every change goes through this
object, so the in-memory state is the database's state. On PostgreSQL several
replicas share the database: the server reloads the CAs
(:meth:`CaRuntime.refresh_cas`) and the deny-list
(:meth:`CaRuntime.refresh_revocations`) when its change feed reports another
replica's change (within one second, see docs/operations/postgresql.md); the
published CRLs are stored, so all replicas serve the same ones; and
every change of the CA set is compare-and-set against the database, so a
replica whose copy is behind re-plans from the database's state instead of
overwriting another's rotation step.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from . import ca
from ._clock import Clock
from ._issuance_faults import IssuanceFault, ServingFault
from ._metrics import Metrics
from ._tracing import NO_TRACING, Tracing
from .audit import AuditChain, AuditEvent
from .config import ServerConfig
from .crypto import Keyring, SealedBox, aad_for_ca_key, open_, seal
from .errors import ApiError
from .storage import (
    InTransaction,
    IssuedCertificate,
    LiftedRevocation,
    Storage,
    StoredCa,
    StoredRevocation,
    crl_tables,
    to_ms,
)

log = logging.getLogger("secinfra.ca")

#: Parsed client certificates kept, keyed by DER bytes (parsing is the costly part).
PEER_CACHE_SIZE: Final = 4096
SERVER_KEY_CURVE: Final = ec.SECP256R1()
#: How long a published CRL is valid (its nextUpdate); it is re-signed at half.
CRL_VALIDITY: Final = timedelta(hours=1)
#: The audit actor of automatic CA rotation steps.
SCHEDULER_ACTOR: Final = "secinfra-server/scheduler"
#: Tries of one CA change whose plan another replica's change made stale.
CA_CHANGE_ATTEMPTS: Final = 3

TrustListener = Callable[[], Awaitable[None]]


class _CaStateMoved(Exception):
    """The CA set in the database is not the one a change was planned from."""


@dataclass(frozen=True)
class ServerIdentity:
    """The server's serving certificate and key (the key lives in memory only)."""

    chain_pem: bytes
    key_pem: bytes
    not_before: datetime
    not_after: datetime
    #: When it was signed. NotBefore is backdated for clock skew, so lifetimes
    #: (and the half-life renewal point) are measured from here.
    issued_at: datetime

    @property
    def renew_at(self) -> datetime:
        """Half-way between issue and expiry."""
        return self.issued_at + (self.not_after - self.issued_at) / 2


@dataclass(frozen=True)
class IssuedSvid:
    """A signed workload certificate and the SPIFFE ID it certifies."""

    certificate: x509.Certificate
    spiffe_id: str


@functools.lru_cache(maxsize=PEER_CACHE_SIZE)
def _parse_der(der: bytes) -> x509.Certificate:
    return x509.load_der_x509_certificate(der)


def _ms(moment: datetime | None) -> int | None:
    return None if moment is None else to_ms(moment)


def _signature(authority: ca.CertificateAuthority) -> tuple[Any, ...]:
    """What tells two copies of the CA set apart, at the database's millisecond
    precision (the keys themselves compare by identity)."""
    return (
        authority.id,
        str(authority.state),
        _ms(authority.prepared_at),
        _ms(authority.activated_at),
        _ms(authority.retiring_at),
        _ms(authority.retired_at),
    )


def _signature_of_row(row: StoredCa) -> tuple[Any, ...]:
    return (
        row.id,
        row.state,
        _ms(row.prepared_at),
        _ms(row.activated_at),
        _ms(row.retiring_at),
        _ms(row.retired_at),
    )


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


class CaRuntime:
    """The server's CA: signing, rotation, the bundle, revocation, peer checks.

    The one owner of the CA state while the server runs (the pure CA logic is in
    :mod:`secinfra_server.ca`, which this drives).
    """

    def __init__(
        self,
        *,
        config: ServerConfig,
        storage: Storage,
        keyring: Keyring,
        clock: Clock,
        metrics: Metrics,
        chain: AuditChain,
        shared: bool = False,
        tracing: Tracing = NO_TRACING,
    ) -> None:
        self._config = config
        #: Every signature is a span (CA id, kind, serial; see ``_tracing``).
        self._tracing = tracing
        self._chain = chain
        #: Other processes write the same database (PostgreSQL replicas), so
        #: what they record must be read back before acting on it.
        self._shared = shared
        self._storage = storage
        self._keyring = keyring
        self._clock = clock
        self._metrics = metrics
        self._lock = asyncio.Lock()
        self._cas: tuple[ca.CertificateAuthority, ...] = ()
        self._leaves_expire_by: dict[str, datetime] = {}
        self._sequence = 0
        self._bundle: ca.RenderedBundle | None = None
        self._trusted_pem = ""
        self._verifier: ca.SvidVerifier | None = None
        self._revocations = ca.RevocationList()
        self._revocation_rows: list[StoredRevocation] = []
        self._listeners: list[TrustListener] = []
        self._crl_cache: (
            tuple[tuple[Any, ...], datetime, list[x509.CertificateRevocationList]] | None
        ) = None
        #: Lifetime of workload certificates; test mode may lower it at run time.
        self.leaf_ttl = timedelta(seconds=config.leaf_ttl_seconds)
        self._fault: IssuanceFault | None = None

    # -- loading -------------------------------------------------------------------
    async def load(self) -> None:
        """Read CAs and the deny-list from storage; create the first CA if none."""
        stored = await self._storage.list_cas()
        if not stored:
            now = self._clock.now()
            first = ca.create_root_ca(
                self._config.trust_domain,
                now=now,
                validity=timedelta(days=self._config.ca_ttl_days),
                state=ca.CAState.ACTIVE,
            )
            first = ca.CertificateAuthority(
                id=first.id,
                certificate=first.certificate,
                private_key=first.private_key,
                state=ca.CAState.ACTIVE,
                prepared_at=now,
                activated_at=now,
            )
            try:
                await self._storage.save_cas([self._to_stored(first)], bump_bundle=False)
                log.info("created the first CA", extra={"fields": {"ca_id": first.id}})
            except sqlite3.IntegrityError:
                # Another replica on the same empty database created its
                # first CA at the same moment (one active CA at a time): use
                # that one.
                log.info("another process created the first CA; using it")
            stored = await self._storage.list_cas()
        self._cas = tuple(self._from_stored(row) for row in stored)
        self._merge_leaves_expire_by(stored)
        self._sequence = await self._storage.bundle_sequence()
        self._revocation_rows = await self._storage.list_revocations()
        self._rebuild_trust()
        self._rebuild_revocations()

    async def refresh_cas(self) -> bool:
        """Reload the CA set and bundle sequence from storage (another replica
        changed them); on a change, rebuild the bundle and verifier and tell
        the trust listeners. Returns whether anything changed."""
        async with self._lock:
            changed = await self._reload_cas()
            if changed:
                for listener in self._listeners:
                    await listener()
            return changed

    async def _reload_cas(self) -> bool:
        stored = await self._storage.list_cas()
        sequence = await self._storage.bundle_sequence()
        self._merge_leaves_expire_by(stored)
        known = {_signature(a) for a in self._cas}
        if {_signature_of_row(row) for row in stored} == known and sequence == self._sequence:
            return False
        self._cas = tuple(self._from_stored(row) for row in stored)
        self._sequence = sequence
        self._rebuild_trust()
        log.info(
            "CA set reloaded (changed on another replica)",
            extra={"fields": {"bundle_sequence": sequence}},
        )
        return True

    def _merge_leaves_expire_by(self, stored: list[StoredCa]) -> None:
        # Every replica records the leaves it signs in the database; the
        # latest expiry per CA is the larger of the database's and our own.
        for row in stored:
            mine = self._leaves_expire_by.get(row.id)
            theirs = row.leaves_expire_by
            if theirs is not None and (mine is None or theirs > mine):
                self._leaves_expire_by[row.id] = theirs

    async def refresh_revocations(self) -> bool:
        """Reload the deny-list from storage (another replica added to it);
        returns whether it changed. The next request on every connection is
        checked against the new list."""
        rows = await self._storage.list_revocations()
        if rows == self._revocation_rows:
            return False
        self._revocation_rows = rows
        self._rebuild_revocations()
        log.info("deny-list reloaded", extra={"fields": {"entries": len(rows)}})
        return True

    def _to_stored(self, authority: ca.CertificateAuthority) -> StoredCa:
        box = seal(self._keyring, authority.private_key_pkcs8_der(), aad_for_ca_key(authority.id))
        return StoredCa(
            id=authority.id,
            state=str(authority.state),
            cert_pem=_pem(authority.certificate),
            key_kek_id=box.kek_id,
            key_wrapped=box.wrapped_key,
            key_ciphertext=box.ciphertext,
            not_before=authority.not_before,
            not_after=authority.not_after,
            prepared_at=authority.prepared_at,
            activated_at=authority.activated_at,
            retiring_at=authority.retiring_at,
            retired_at=authority.retired_at,
        )

    def _from_stored(self, row: StoredCa) -> ca.CertificateAuthority:
        box = SealedBox(
            kek_id=row.key_kek_id, wrapped_key=row.key_wrapped, ciphertext=row.key_ciphertext
        )
        key_der = open_(self._keyring, box, aad_for_ca_key(row.id))
        cert = x509.load_pem_x509_certificate(row.cert_pem.encode())
        return ca.CertificateAuthority.restore(
            id=row.id,
            certificate_der=cert.public_bytes(serialization.Encoding.DER),
            private_key_pkcs8_der=key_der,
            state=row.state,
            prepared_at=row.prepared_at,
            activated_at=row.activated_at,
            retiring_at=row.retiring_at,
            retired_at=row.retired_at,
        )

    def _rebuild_trust(self) -> None:
        trusted = ca.trusted_authorities(self._cas)
        self._bundle = ca.render_bundle(
            trusted,
            sequence=self._sequence,
            refresh_hint=timedelta(seconds=self._config.bundle_refresh_hint_seconds),
        )
        self._trusted_pem = "".join(_pem(authority.certificate) for authority in trusted)
        self._verifier = ca.SvidVerifier(authority.certificate for authority in trusted)
        self._metrics.ca_state.clear()
        for authority in self._cas:
            self._metrics.ca_state.labels(authority.id, str(authority.state)).set(1)
            self._metrics.ca_not_after.labels(authority.id).set(authority.not_after.timestamp())
        self._metrics.bundle_sequence.set(self._sequence)

    def _rebuild_revocations(self) -> None:
        self._revocations = ca.RevocationList.of(
            serials=(int(row.serial, 16) for row in self._revocation_rows if row.serial),
            spiffe_ids=(row.spiffe_id for row in self._revocation_rows if row.spiffe_id),
        )

    def on_trust_change(self, listener: TrustListener) -> None:
        """Call ``listener`` after every change of the CA set (e.g. to reload TLS)."""
        self._listeners.append(listener)

    # -- read-only views -------------------------------------------------------------
    @property
    def authorities(self) -> tuple[ca.CertificateAuthority, ...]:
        """Every CA, newest first."""
        return self._cas

    @property
    def bundle(self) -> ca.RenderedBundle:
        """The rendered trust bundle (body, ETag, sequence)."""
        assert self._bundle is not None, "load() first"
        return self._bundle

    @property
    def trusted_pem(self) -> str:
        """PEM of every CA in the bundle, for the TLS trust store."""
        return self._trusted_pem

    @property
    def sequence(self) -> int:
        """The bundle sequence number."""
        return self._sequence

    def leaves_expire_by(self, ca_id: str) -> datetime | None:
        """Latest expiry of any certificate ``ca_id`` signed."""
        return self._leaves_expire_by.get(ca_id)

    @property
    def revocations(self) -> list[StoredRevocation]:
        """The deny-list, oldest first."""
        return list(self._revocation_rows)

    # -- the per-request check ----------------------------------------------------
    def verify_peer(self, der: bytes | None) -> ca.Peer:
        """Verify a request's client certificate now; raise ApiError(unauthenticated)."""
        if der is None:
            raise ApiError(
                "unauthenticated",
                "secinfra: auth: this call needs a client certificate (mTLS); enrol first",
            )
        if self._verifier is None:
            raise ApiError("unavailable", "secinfra: auth: the CA is not loaded yet")
        try:
            cert = _parse_der(der)
            spiffe_id = self._verifier.verify(
                cert, now=self._clock.now(), revoked=self._revocations
            )
        except ca.CAError as exc:
            raise ApiError("unauthenticated", str(exc)) from exc
        except ValueError as exc:
            raise ApiError(
                "unauthenticated", "secinfra: auth: client certificate cannot be parsed"
            ) from exc
        return ca.Peer(
            spiffe_id=str(spiffe_id),
            serial=f"{cert.serial_number:x}",
            not_after=cert.not_valid_after_utc,
        )

    def is_revoked_id(self, spiffe_id: str) -> bool:
        """Whether a SPIFFE ID is on the deny-list."""
        return any(str(item) == spiffe_id for item in self._revocations.spiffe_ids)

    def signing_problem(self) -> str | None:
        """Why the active CA cannot sign right now, or None when it can.

        For readiness: there is an active CA, it has not expired, and its key
        makes a signature that its certificate's public key verifies (a key that
        does not match its certificate, or that the key store cannot use, fails
        here instead of on the next issuance)."""
        try:
            active = ca.active_authority(self._cas)
        except ca.CAError:
            return "no_active_ca"
        if self._clock.now() >= active.not_after:
            return "ca_expired"
        public_key = active.certificate.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            return "ca_key_unusable"
        probe = b"secinfra readiness probe"
        try:
            signature = active.private_key.sign(probe, ec.ECDSA(hashes.SHA256()))
            public_key.verify(signature, probe, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError, TypeError):
            return "ca_key_unusable"
        return None

    # -- signing -------------------------------------------------------------------
    async def sign(
        self,
        csr_pem: str | bytes,
        spiffe_id: str,
        *,
        kind: str,
        ttl: timedelta | None = None,
        also: Callable[[x509.Certificate], InTransaction] | None = None,
    ) -> x509.Certificate:
        """Sign an SVID with the active CA (leaf TTL unless ``ttl``) and record it,
        so retirement knows when the CA's last leaf expires. ``also(cert)`` commits
        in the recording transaction (the issuance's audit entry)."""
        now = self._clock.now()
        active = ca.active_authority(self._cas)
        ttl = ttl if ttl is not None else self.leaf_ttl
        with self._tracing.signing(active.id, kind, spiffe_id) as span:
            cert = await asyncio.to_thread(
                ca.sign_svid, active, csr_pem, spiffe_id, ttl=ttl, now=now
            )
            span.signed(cert.serial_number)
        await self._record(
            cert, active.id, spiffe_id, now, also=None if also is None else also(cert)
        )
        self._metrics.certificates.labels(kind).inc()
        return cert

    async def sign_workload(
        self,
        csr_pem: str | bytes,
        spiffe_id: str,
        *,
        kind: str,
        ttl: timedelta | None = None,
        also: Callable[[IssuedSvid], InTransaction] | None = None,
        dns_names: tuple[str, ...] = (),
    ) -> IssuedSvid:
        """Sign a workload's SVID (IssueCertificate, RenewCertificate, and
        SignWorkloadSvid with a registration entry's ``ttl`` and ``dns_names``)
        with the leaf TTL unless ``ttl`` (the admin identity's renewals and user
        certificates have their own too).

        The one signing path test mode can alter (see :meth:`arm_issuance_fault`):
        the server's own certificate and the admin identity never come from here.
        The record holds the SPIFFE ID actually certified, under the active CA
        (a throwaway CA is in no table).

        ``also(issued)`` is work that commits in the transaction recording the
        certificate (spending the join token, storing the call's answer): if it
        raises, nothing is recorded and the certificate, which never left the
        process, is dropped.
        """
        now = self._clock.now()
        active = ca.active_authority(self._cas)
        fault = self._take_fault()
        signer = active
        certified = spiffe_id
        if fault is not None:
            signer = fault.untrusted_ca or active
            certified = fault.spiffe_id or spiffe_id
        try:
            with self._tracing.signing(signer.id, kind, certified) as span:
                cert = await asyncio.to_thread(
                    functools.partial(
                        ca.sign_svid,
                        signer,
                        csr_pem,
                        certified,
                        ttl=ttl if ttl is not None else self.leaf_ttl,
                        now=now,
                        dns_names=dns_names,
                    )
                )
                span.signed(cert.serial_number)
            issued = IssuedSvid(certificate=cert, spiffe_id=certified)
            await self._record(
                cert, active.id, certified, now, also=None if also is None else also(issued)
            )
        except BaseException:
            if fault is not None and self._fault is fault:
                fault.remaining += 1  # only successful answers use up the fault
            raise
        self._metrics.certificates.labels(kind).inc()
        return issued

    # -- test mode: deliberately bad workload certificates -------------------------
    def arm_issuance_fault(self, fault: IssuanceFault | None) -> None:
        """Alter the next ``fault.remaining`` workload certificates (None: stop)."""
        self._fault = fault

    @property
    def pending_issuance_faults(self) -> int:
        """How many workload certificates will still be altered."""
        return self._fault.remaining if self._fault is not None else 0

    def _take_fault(self) -> IssuanceFault | None:
        fault = self._fault
        if fault is None or fault.remaining <= 0:
            return None
        fault.remaining -= 1
        return fault

    async def _record(
        self,
        cert: x509.Certificate,
        ca_id: str,
        spiffe_id: str,
        now: datetime,
        *,
        also: InTransaction | None = None,
    ) -> None:
        await self._storage.record_issued(
            IssuedCertificate(
                serial=f"{cert.serial_number:x}",
                spiffe_id=spiffe_id,
                ca_id=ca_id,
                not_after=cert.not_valid_after_utc,
                issued_at=now,
            ),
            also=also,
        )
        previous = self._leaves_expire_by.get(ca_id)
        if previous is None or cert.not_valid_after_utc > previous:
            self._leaves_expire_by[ca_id] = cert.not_valid_after_utc

    async def server_identity(self, fault: ServingFault | None = None) -> ServerIdentity:
        """A fresh serving SVID for this server: new key, signed by the active CA.

        ``fault`` (test mode only) makes it wrong on purpose."""
        now = self._clock.now()
        active = ca.active_authority(self._cas)
        key = ec.generate_private_key(SERVER_KEY_CURVE)
        csr = ca.build_csr(key)
        ips = ["127.0.0.1", "::1"]
        dns_names = list(self._config.dns_names)
        host = self._config.host
        if host not in ("127.0.0.1", "localhost", "::1", "0.0.0.0", "::"):  # noqa: S104
            try:
                ipaddress.ip_address(host)
                ips.append(host)
            except ValueError:
                dns_names.append(host)
        fault = fault or ServingFault()
        cert = ca.sign_server_svid(
            active,
            csr,
            dns_names=dns_names if fault.dns_names is None else fault.dns_names,
            ip_addresses=ips if fault.ip_addresses is None else fault.ip_addresses,
            ttl=timedelta(seconds=self._config.server_cert_ttl_seconds),
            now=now,
            spiffe_id=fault.spiffe_id,
            extra_uris=fault.extra_uris,
        )
        spiffe_id = (
            str(fault.spiffe_id)
            if fault.spiffe_id
            else (f"spiffe://{self._config.trust_domain}{ca.SERVER_SPIFFE_PATH}")
        )
        await self._record(cert, active.id, spiffe_id, now)
        self._metrics.certificates.labels("server").inc()
        return ServerIdentity(
            chain_pem=cert.public_bytes(serialization.Encoding.PEM),
            key_pem=key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            issued_at=now,
        )

    # -- rotation ------------------------------------------------------------------
    async def _change(
        self,
        plan: Callable[[tuple[ca.CertificateAuthority, ...]], tuple[ca.CertificateAuthority, ...]],
        also: InTransaction | None,
    ) -> None:
        """Plan a change of the CA set from our copy and save it, compare-and-set:
        if the database's CA states are not the plan's (another replica changed
        them meanwhile), nothing is written, the copy is reloaded and the change
        planned again from it."""
        async with self._lock:
            for _ in range(CA_CHANGE_ATTEMPTS):
                try:
                    await self._apply(plan(self._cas), also)
                    return
                except _CaStateMoved:
                    await self._reload_cas()
            raise ApiError(
                "unavailable",
                "secinfra: ca: the CA set kept changing on other replicas while this"
                " change was planned; retry",
            )

    async def _apply(
        self, updated: tuple[ca.CertificateAuthority, ...], also: InTransaction | None
    ) -> None:
        before = {authority.id: authority for authority in self._cas}
        changed = [a for a in updated if before.get(a.id) != a]
        bundle_changed = {a.id for a in ca.trusted_authorities(updated)} != {
            a.id for a in ca.trusted_authorities(self._cas)
        }
        planned = {a.id: str(a.state) for a in updated}

        def guarded(conn: sqlite3.Connection) -> None:
            # Runs after the upsert, in its transaction: the table must now
            # hold exactly the planned set, or the plan was made from a copy
            # another replica's change had made stale.
            rows = conn.execute("SELECT id, state FROM cas").fetchall()
            if {str(cid): str(state) for cid, state in rows} != planned:
                raise _CaStateMoved
            if also is not None:
                also(conn)

        self._sequence = await self._storage.save_cas(
            [self._to_stored(a) for a in changed], bump_bundle=bundle_changed, also=guarded
        )
        self._cas = tuple(sorted(updated, key=lambda a: a.prepared_at, reverse=True))
        self._rebuild_trust()
        for listener in self._listeners:
            await listener()

    async def prepare(self, *, also: InTransaction | None = None) -> None:
        """Rotation step 1: a new CA, published but not signing."""

        def plan(cas: tuple[ca.CertificateAuthority, ...]) -> tuple[ca.CertificateAuthority, ...]:
            return ca.prepare_ca(
                cas,
                trust_domain=self._config.trust_domain,
                now=self._clock.now(),
                validity=timedelta(days=self._config.ca_ttl_days),
            )

        await self._change(plan, also)

    async def activate(self, *, also: InTransaction | None = None) -> None:
        """Rotation step 2: the prepared CA signs from now on."""

        def plan(cas: tuple[ca.CertificateAuthority, ...]) -> tuple[ca.CertificateAuthority, ...]:
            prepared = [a for a in cas if a.state is ca.CAState.PREPARED]
            if not prepared:
                raise ApiError(
                    "failed_precondition",
                    "secinfra: ca: no prepared CA to activate; prepare a rotation first",
                )
            return ca.activate_ca(cas, prepared[0].id, now=self._clock.now())

        await self._change(plan, also)

    async def retire(self, ca_id: str, *, force: bool, also: InTransaction | None = None) -> None:
        """Rotation step 3: drop a superseded CA from the bundle."""

        def plan(cas: tuple[ca.CertificateAuthority, ...]) -> tuple[ca.CertificateAuthority, ...]:
            return ca.retire_ca(
                cas,
                ca_id,
                now=self._clock.now(),
                max_leaf_expiry=self._leaves_expire_by.get(ca_id),
                force=force,
            )

        await self._change(plan, also)

    async def run_due_rotation(self) -> bool:
        """Apply the automatic rotation step that is due, if any."""
        policy = ca.RotationPolicy(
            max_leaf_ttl=timedelta(
                seconds=max(self._config.leaf_ttl_seconds, self._config.server_cert_ttl_seconds)
            ),
            activation_delay=timedelta(seconds=self._config.bundle_refresh_hint_seconds),
            ca_validity=timedelta(days=self._config.ca_ttl_days),
        )
        if self._shared:
            # Other replicas sign leaves too: their latest expiry per CA is
            # in the database, and retirement must wait for it.
            self._merge_leaves_expire_by(await self._storage.list_cas())
        now = self._clock.now()
        candidates = list(self._cas)
        while True:
            step = ca.plan_automatic_rotation(candidates, now, policy)
            if step is None:
                return False
            last_leaf = self._leaves_expire_by.get(step.ca_id or "")
            if step.action is not ca.RotationAction.RETIRE or last_leaf is None or last_leaf <= now:
                break
            # A recorded leaf (e.g. the admin's) still chains to this CA: not
            # yet; plan the other steps as if it were not there.
            candidates = [a for a in candidates if a.id != step.ca_id]
        log.info(
            "automatic CA rotation step",
            extra={"fields": {"action": str(step.action), "ca_id": step.ca_id}},
        )
        event = AuditEvent(
            actor=SCHEDULER_ACTOR,
            action=f"ca.{step.action}",
            resource=f"ca:{step.ca_id or 'new'}",
            outcome="allowed",
            request_id="",
            details={"reason": step.reason},
        )

        def also(conn: sqlite3.Connection) -> None:
            self._chain.append(conn, event, self._clock.now())

        if step.action is ca.RotationAction.PREPARE:
            await self.prepare(also=also)
        elif step.action is ca.RotationAction.ACTIVATE:
            await self.activate(also=also)
        else:
            await self.retire(step.ca_id or "", force=False, also=also)
        return True

    # -- revocation ----------------------------------------------------------------
    async def revoke(
        self, *, serial: str, spiffe_id: str, reason: str, also: InTransaction | None = None
    ) -> StoredRevocation:
        """Add to the deny-list; takes effect on the next request of every connection."""
        entry = await self._storage.add_revocation(
            StoredRevocation(
                serial=serial, spiffe_id=spiffe_id, reason=reason, revoked_at=self._clock.now()
            ),
            also=also,
        )
        if entry not in self._revocation_rows:
            self._revocation_rows.append(entry)
            self._rebuild_revocations()
        return entry

    async def lift_revocation(
        self, spiffe_id: str, *, also: Callable[[LiftedRevocation], InTransaction] | None = None
    ) -> LiftedRevocation | None:
        """Lift a SPIFFE ID's revocation (see ``Storage.lift_revocation``): it may
        enrol again; the certificates it held stay refused, now by serial."""
        lifted = await self._storage.lift_revocation(spiffe_id, self._clock.now(), also=also)
        if lifted is not None:
            await self.refresh_revocations()
        return lifted

    async def crls(self) -> list[x509.CertificateRevocationList]:
        """One CRL per CA that signed certificates still in use (active, retiring),
        each listing the revoked serials that CA issued.

        The CRLs are stored, so every replica publishes the same ones: this
        returns the stored CRLs while they are current (made from the whole
        deny-list, for these CAs, less than half their validity ago), else
        signs new ones and stores them, all in one serialized transaction. The
        result is kept in memory until the deny-list, the CAs or the stored
        CRLs change, or half the validity has passed."""
        now = self._clock.now()
        signers = tuple(a for a in self._cas if a.state in (ca.CAState.ACTIVE, ca.CAState.RETIRING))
        key = (tuple(a.id for a in signers), tuple(self._revocation_rows))
        cached = self._crl_cache
        if cached is not None and cached[0] == key and now < cached[1]:
            return cached[2]

        def current(conn: sqlite3.Connection) -> list[crl_tables.StoredCrl] | None:
            stored = crl_tables.stored_crls(conn)
            size = crl_tables.deny_list_size(conn)
            if set(stored) != {a.id for a in signers}:
                return None
            found = [stored[a.id] for a in signers]
            if any(c.revocations != size or now >= c.this_update + CRL_VALIDITY / 2 for c in found):
                return None
            return found

        def publish(conn: sqlite3.Connection) -> list[crl_tables.StoredCrl]:
            found = current(conn)
            if found is not None:
                return found  # another replica published them meanwhile
            size = crl_tables.deny_list_size(conn)
            revoked = crl_tables.revoked_serials(conn, now)
            number = crl_tables.next_crl_number(conn, now)
            made = [
                crl_tables.StoredCrl(
                    ca_id=signer.id,
                    number=number,
                    der=ca.build_crl(
                        signer,
                        [
                            (int(serial, 16), revoked_at)
                            for serial, revoked_at, issuer in revoked
                            # Unknown issuer (not recorded here): listed by every CA.
                            if (issuer or signer.id) == signer.id
                        ],
                        now=now,
                        crl_number=number,
                        next_update=CRL_VALIDITY,
                    ).public_bytes(serialization.Encoding.DER),
                    revocations=size,
                    this_update=now,
                )
                for signer in signers
            ]
            crl_tables.replace_crls(conn, made)
            return made

        rows = await self._storage.read(current)
        if rows is None:
            rows = await self._storage.write(publish)
        crls = [x509.load_der_x509_crl(row.der) for row in rows]
        refresh_at = min(row.this_update for row in rows) + CRL_VALIDITY / 2
        self._crl_cache = (key, refresh_at, crls)
        return crls

    def forget_crls(self) -> None:
        """Drop the CRLs kept in memory (another replica published new ones)."""
        self._crl_cache = None
