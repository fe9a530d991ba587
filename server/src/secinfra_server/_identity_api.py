"""Handlers for secinfra.v1.IdentityService.

Enrolment (IssueCertificate) is the one write reachable without a client
certificate: it is authorised by a one-time join token or a JWT attestation,
never by anything in the CSR. Every other write needs mTLS, and admin RPCs need
the admin relation.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final, Generic, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from . import attest, ca
from ._ca_runtime import CaRuntime, IssuedSvid
from ._clock import Clock
from ._enrolment_guard import EnrolmentGuard, source_of
from ._gen import identity as m
from ._handler_audit import AdminPolicy, AuditedHandlers
from ._login_api import UserLogin
from ._rate_limit import retry_after_seconds
from ._rpc import Handler, Reply, RequestContext, none_match
from ._svid_message import svid_message
from .audit import AuditLog
from .config import ServerConfig
from .errors import ApiError
from .policy import RevocationTarget, leaves_an_admin, unexpired_leaves
from .storage import InTransaction, LiftedRevocation, Storage, StoredJoinToken, from_ms, to_ms
from .storage import identity_tables as tables

log = logging.getLogger("secinfra.identity")

MAX_JOIN_TOKEN_TTL_SECONDS: Final = 86400
#: SPIFFE ID paths under this prefix belong to the server itself.
RESERVED_PATH_PREFIX: Final = "/secinfra/"
SERIAL_PATTERN: Final = re.compile(r"[0-9a-f]{1,40}")
#: The audit reason of a failed enrolment, by the attestation error it failed with.
ATTESTATION_FAILURE_REASONS: Final[Mapping[type[attest.AttestationError], str]] = {
    attest.MalformedJoinToken: "malformed_token",
    attest.JoinTokenRevoked: "revoked_token",
    attest.UnknownJoinToken: "unknown_token",
    attest.JoinTokenMismatch: "wrong_secret",
    attest.JoinTokenExpired: "expired_token",
    attest.JoinTokenUsed: "used_token",
    attest.MalformedJWT: "malformed_jwt",
    attest.DisallowedAlgorithm: "jwt_disallowed_algorithm",
    attest.UnknownKeyId: "jwt_unknown_key",
    attest.BadSignature: "jwt_bad_signature",
    attest.UnknownIssuer: "jwt_unknown_issuer",
    attest.WrongIssuer: "jwt_wrong_issuer",
    attest.WrongAudience: "jwt_wrong_audience",
    attest.TokenExpired: "jwt_expired",
    attest.TokenNotYetValid: "jwt_not_yet_valid",
    attest.MissingClaim: "jwt_missing_claim",
    attest.InvalidClaim: "jwt_invalid_claim",
    attest.NotMapped: "jwt_not_mapped",
    attest.WrongNonce: "oidc_wrong_nonce",
    attest.KeysUnavailable: "jwt_keys_unavailable",
}
#: Reasons that are a wrong guess at a join token id: they charge the id's bucket.
GUESS_REASONS: Final = frozenset(
    {"unknown_token", "revoked_token", "wrong_secret", "expired_token", "used_token"}
)
_TOKEN_ID_PATTERN: Final = re.compile(r"sjt_([0-9a-f]{32})\.")

T = TypeVar("T")


def is_reserved_path(path: str) -> bool:
    """Whether a SPIFFE ID path belongs to the server (``/secinfra`` and below)."""
    return (path.rstrip("/") + "/").startswith(RESERVED_PATH_PREFIX)


def _state(value: str) -> m.CaState:
    return m.CaState(value)


def _in_order(*steps: InTransaction) -> InTransaction:
    """One ``also`` hook running ``steps`` in order, in the write's transaction."""

    def run(conn: sqlite3.Connection) -> None:
        for step in steps:
            step(conn)

    return run


class _Answer(Generic[T]):
    """The last step of a write: build the call's answer from what the
    transaction sees and commit it with the write (``RequestContext.commit_answer``);
    the handler then returns exactly that answer."""

    def __init__(self, ctx: RequestContext, build: Callable[[sqlite3.Connection], T]) -> None:
        self._ctx = ctx
        self._build = build
        self._value: T | None = None

    def __call__(self, conn: sqlite3.Connection) -> None:
        value = self._build(conn)
        self._ctx.commit_answer(conn, value)
        self._value = value

    @property
    def value(self) -> T:
        """The committed answer (only once the write returned)."""
        assert self._value is not None, "the write did not run its answer step"
        return self._value


def _status_in(conn: sqlite3.Connection) -> m.CaStatus:
    """The CA status as the open transaction sees it (after its change)."""
    return m.CaStatus(
        authorities=[
            m.CertificateAuthority(
                id=row.id,
                state=_state(row.state),
                certificate_pem=row.cert_pem,
                not_before=row.not_before,
                not_after=row.not_after,
                leaves_expire_by=row.leaves_expire_by,
            )
            for row in tables.read_cas(conn)
        ],
        bundle_sequence=tables.read_bundle_sequence(conn),
    )


class IdentityApi(AuditedHandlers):
    """The IdentityService RPCs."""

    audit_prefix = "identity"

    def __init__(
        self,
        *,
        config: ServerConfig,
        ca_runtime: CaRuntime,
        storage: Storage,
        clock: Clock,
        admin: AdminPolicy,
        jwt_attestor: attest.KubernetesAttestors | None,
        audit: AuditLog,
        enrolment_guard: EnrolmentGuard,
        user_login: UserLogin | None = None,
    ) -> None:
        self._user_login = user_login
        self._audit = audit
        self._guard = enrolment_guard
        self._config = config
        self._ca_runtime = ca_runtime
        self._storage = storage
        self._clock = clock
        self._admin = admin
        self._jwt = jwt_attestor
        #: Serialises revocations, so two admins revoking themselves at once
        #: cannot each count the other as the admin that remains.
        self._revocation_lock = asyncio.Lock()

    def handlers(self) -> Mapping[str, Handler]:
        """Handlers by RPC handler name (snake_case)."""
        return {
            "issue_certificate": self.issue_certificate,
            "renew_certificate": self.renew_certificate,
            "get_caller_identity": self.get_caller_identity,
            "get_trust_bundle": self.get_trust_bundle,
            "get_crl": self.get_crl,
            "revoke": self.revoke,
            "list_revocations": self.list_revocations,
            "lift_revocation": self.lift_revocation,
            "create_join_token": self.create_join_token,
            "list_join_tokens": self.list_join_tokens,
            "revoke_join_token": self.revoke_join_token,
            "get_ca_status": self.get_ca_status,
            "prepare_ca_rotation": self.prepare_ca_rotation,
            "activate_ca": self.activate_ca,
            "retire_ca": self.retire_ca,
        }

    # -- enrolment and renewal -------------------------------------------------------
    async def issue_certificate(
        self, ctx: RequestContext, req: m.IssueCertificateRequest
    ) -> m.IssueCertificateResponse:
        """Enrol: rate-limited by source address and join token id, every
        failure audited (see :mod:`secinfra_server._enrolment_guard`)."""
        source = source_of(ctx.http.remote)
        token_id = public_token_id(req.join_token)
        wait = self._guard.admit(source)
        if wait:
            raise await self._rate_limited(ctx, source, token_id, "source", wait)
        # Whether this id was throttled on arrival: the right secret still
        # enrols (the holder is never locked out), a wrong one is answered 429.
        token_wait = self._guard.token_wait(token_id) if token_id is not None else 0.0
        try:
            response = await self._issue(ctx, req)
        except Exception as exc:
            reason, outcome = _failure_reason(exc)
            if reason == "jwt_not_configured" and req.oidc_id_token:
                reason = "login_not_configured"
            if token_wait and reason in GUESS_REASONS:
                raise await self._rate_limited(
                    ctx, source, token_id, "join_token", token_wait
                ) from exc
            if reason in GUESS_REASONS:
                self._guard.failed(token_id)
            await self._audit_failure(ctx, source, token_id, req, reason, outcome)
            raise
        self._guard.succeeded(source)
        return response

    async def _rate_limited(
        self, ctx: RequestContext, source: str, token_id: str | None, limit: str, wait: float
    ) -> ApiError:
        """Audit (aggregated) an attempt refused by a limit; the 429 to raise."""
        seconds = retry_after_seconds(wait)
        details: dict[str, Any] = {"reason": "rate_limited", "limit": limit, "source": source}
        if token_id is not None:
            details["token_id"] = token_id
        event = self._event(ctx, _enrolment_resource(token_id), "denied", **details)
        if await self._guard.audit_refusal(source, event):
            # Like the audit, the log has the first refusal of each window per
            # source; the metrics count every one (code rate_limited).
            log.warning(
                "enrolment rate-limited",
                extra={"fields": {**details, "request_id": ctx.request_id, "retry_after": seconds}},
            )
        what = "from this address" if limit == "source" else "with this join token"
        return ApiError(
            "rate_limited",
            f"secinfra: identity: too many failed enrolment attempts {what};"
            f" retry after {seconds} s",
            details={"limit": limit, "retry_after_seconds": seconds},
            headers={"Retry-After": str(seconds)},
        )

    async def _audit_failure(
        self,
        ctx: RequestContext,
        source: str,
        token_id: str | None,
        req: m.IssueCertificateRequest,
        reason: str,
        outcome: str,
    ) -> None:
        """Write the failed attempt's audit entry before it is answered; never
        the token, its secret or the JWT."""
        via = (
            "join_token"
            if req.join_token
            else "jwt"
            if req.jwt
            else "oidc"
            if req.oidc_id_token
            else "none"
        )
        details: dict[str, Any] = {"reason": reason, "source": source, "via": via}
        if token_id is not None:
            details["token_id"] = token_id
        event = self._event(ctx, _enrolment_resource(token_id), outcome, **details)
        log.info("enrolment refused", extra={"fields": {**details, "request_id": ctx.request_id}})
        try:
            await self._guard.audit_failure(event)
        except Exception as exc:
            log.exception(
                "could not write the audit entry of a failed enrolment",
                extra={"fields": {"request_id": ctx.request_id}},
            )
            raise ApiError(
                "unavailable",
                "secinfra: identity: the server cannot record the attempt now; retry later",
                headers={"Retry-After": "1"},
            ) from exc

    async def _issue(
        self, ctx: RequestContext, req: m.IssueCertificateRequest
    ) -> m.IssueCertificateResponse:
        if not req.csr_pem:
            raise ApiError(
                "invalid_argument",
                "secinfra: identity: csr_pem is required",
                details={"field": "csr_pem"},
            )
        if [bool(req.join_token), bool(req.jwt), bool(req.oidc_id_token)].count(True) != 1:
            raise ApiError(
                "invalid_argument",
                "secinfra: identity: give exactly one attestation: join_token, jwt or"
                " oidc_id_token",
                details={"field": "attestation"},
            )
        if req.oidc_id_token:
            if self._user_login is None:
                raise ApiError(
                    "failed_precondition",
                    "secinfra: identity: people's login is not configured on this server",
                )
            return await self._user_login.issue(ctx, req)
        # Check the CSR before spending a one-time token on it.
        await asyncio.to_thread(ca.load_csr, req.csr_pem)
        now = self._clock.now()
        attestation = "join_token" if req.join_token else "jwt"
        token_id: str | None = None
        if req.join_token:
            token_id, spiffe_id = await self._verify_join_token(req.join_token)
            self._check_enrollable(spiffe_id)
        else:
            if self._jwt is None:
                raise ApiError(
                    "failed_precondition",
                    "secinfra: identity: JWT attestation is not configured on this server",
                )
            # Off the event loop: a discovered JWK Set may be fetched.
            attested = await asyncio.to_thread(self._jwt.attest, req.jwt or "", now=now)
            spiffe_id = str(attested.spiffe_id)
            self._check_enrollable(spiffe_id)
        answer: _Answer[m.IssueCertificateResponse] | None = None

        def with_certificate(issued: IssuedSvid) -> InTransaction:
            nonlocal answer
            response = m.IssueCertificateResponse(
                svid=svid_message(issued.certificate, issued.spiffe_id),
                bundle_refresh_hint=self._config.bundle_refresh_hint_seconds,
            )
            answer = _Answer(ctx, lambda _conn: response)
            event = self._event(ctx, issued.spiffe_id, serial=_serial(issued), via=attestation)
            return _in_order(self._spend(token_id, now), self._with_audit(event), answer)

        issued = await self._ca_runtime.sign_workload(
            req.csr_pem, spiffe_id, kind="issue", also=with_certificate
        )
        serial = _serial(issued)
        log.info(
            "certificate issued",
            extra={"fields": {"spiffe_id": issued.spiffe_id, "serial": serial}},
        )
        assert answer is not None
        return answer.value

    @staticmethod
    def _spend(token_id: str | None, now: datetime) -> InTransaction:
        """Spend the join token (if the call has one) in the transaction that
        records its certificate: only after the CSR, the token and the identity
        checked out, and never without the certificate it paid for."""

        def spend(conn: sqlite3.Connection) -> None:
            if token_id is not None and not tables.spend_join_token(conn, token_id, now):
                raise attest.JoinTokenUsed("join token was already used")

        return spend

    def _check_enrollable(self, spiffe_id: str) -> None:
        """Refuse identities no attestation may grant: the server's own (reserved
        paths), a bare trust domain, a foreign trust domain, or a revoked ID."""
        parsed = ca.SpiffeId.parse(spiffe_id)
        if parsed.trust_domain != self._config.trust_domain or not parsed.path:
            raise ApiError(
                "permission_denied",
                f"secinfra: identity: attestation maps to {spiffe_id}, which is not a workload"
                f" ID in trust domain {self._config.trust_domain!r}",
            )
        if is_reserved_path(parsed.path):
            raise ApiError(
                "permission_denied",
                f"secinfra: identity: attestation maps to {spiffe_id}; paths under"
                f" {RESERVED_PATH_PREFIX} are reserved for the server",
            )
        if self._ca_runtime.is_revoked_id(spiffe_id):
            raise ApiError("permission_denied", f"secinfra: identity: {spiffe_id} is revoked")

    async def _verify_join_token(self, token: str) -> tuple[str, str]:
        """Check a join token without spending it; returns (token id, SPIFFE ID)."""
        token_id = attest.join_token_id(token)
        stored = await self._storage.get_join_token(token_id)
        record = None
        if stored is not None:
            record = attest.JoinTokenRecord(
                id=stored.id,
                secret_sha256=stored.secret_hash,
                spiffe_id=ca.SpiffeId.parse(stored.spiffe_id),
                created_at=stored.created_at,
                expires_at=stored.expires_at,
                used_at=stored.used_at,
                revoked=stored.revoked,
            )
        verified = attest.verify_join_token(token, lambda _id: record, self._clock.now())
        return verified.id, str(verified.spiffe_id)

    async def renew_certificate(
        self, ctx: RequestContext, req: m.RenewCertificateRequest
    ) -> m.RenewCertificateResponse:
        assert ctx.peer is not None
        if not req.csr_pem:
            raise ApiError(
                "invalid_argument",
                "secinfra: identity: csr_pem is required",
                details={"field": "csr_pem"},
            )
        if ca.SpiffeId.parse(ctx.peer.spiffe_id).path.startswith(attest.USER_PATH_PREFIX):
            raise ApiError(
                "permission_denied",
                "secinfra: identity: a user certificate is not renewed; run `secinfra login`"
                " for a new one",
            )
        csr = await asyncio.to_thread(ca.load_csr, req.csr_pem)
        presented = ctx.http.transport.get_extra_info("ssl_object") if ctx.http.transport else None
        der = presented.getpeercert(binary_form=True) if presented is not None else None
        if der is not None:
            current = x509.load_der_x509_certificate(der)
            if current.public_key() == csr.public_key():
                raise ApiError(
                    "invalid_argument",
                    "secinfra: identity: renewal needs a new key; the CSR reuses the current one",
                    details={"field": "csr_pem"},
                )
        answer: _Answer[m.RenewCertificateResponse] | None = None

        def with_certificate(issued: IssuedSvid) -> InTransaction:
            nonlocal answer
            response = m.RenewCertificateResponse(
                svid=svid_message(issued.certificate, issued.spiffe_id)
            )
            answer = _Answer(ctx, lambda _conn: response)
            event = self._event(ctx, issued.spiffe_id, serial=_serial(issued))
            return _in_order(self._with_audit(event), answer)

        # The init-time admin identity renews with its own (short) lifetime.
        admin_ttl = (
            timedelta(seconds=self._config.admin_cert_ttl_seconds)
            if ctx.peer.spiffe_id == self._config.admin_spiffe_id
            else None
        )
        await self._ca_runtime.sign_workload(
            req.csr_pem, ctx.peer.spiffe_id, kind="renew", ttl=admin_ttl, also=with_certificate
        )
        assert answer is not None
        return answer.value

    async def get_caller_identity(
        self, ctx: RequestContext, _req: m.GetCallerIdentityRequest
    ) -> m.GetCallerIdentityResponse:
        assert ctx.peer is not None
        return m.GetCallerIdentityResponse(
            spiffe_id=ctx.peer.spiffe_id,
            serial=ctx.peer.serial,
            not_after=ctx.peer.not_after,
            admin=await self._admin.is_admin(ctx.peer.spiffe_id),
        )

    # -- bundle and CRL ------------------------------------------------------------
    async def get_trust_bundle(self, ctx: RequestContext, _req: m.GetTrustBundleRequest) -> Reply:
        bundle = self._ca_runtime.bundle
        headers = {
            "ETag": bundle.etag,
            "Cache-Control": f"public, max-age={bundle.refresh_hint}",
        }
        if none_match(ctx.http.headers.getall("If-None-Match", []), bundle.etag):
            return Reply(status=304, headers=headers)
        return Reply(raw_json=bundle.body, headers=headers)

    async def get_crl(self, _ctx: RequestContext, _req: m.GetCrlRequest) -> m.GetCrlResponse:
        crls = await self._ca_runtime.crls()
        return m.GetCrlResponse(
            crl_pem="".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in crls),
            next_update=min(c.next_update_utc for c in crls if c.next_update_utc is not None),
        )

    # -- revocation ----------------------------------------------------------------
    async def revoke(self, ctx: RequestContext, req: m.RevokeRequest) -> m.Revocation:
        await self._require_admin(ctx, "revocations")
        serial = (req.serial or "").lower()
        spiffe_id = req.spiffe_id or ""
        if bool(serial) == bool(spiffe_id):
            raise ApiError(
                "invalid_argument",
                "secinfra: identity: give exactly one target: serial or spiffe_id",
                details={"field": "target"},
            )
        if serial:
            if not SERIAL_PATTERN.fullmatch(serial):
                raise ApiError(
                    "invalid_argument",
                    "secinfra: identity: serial must be hexadecimal digits (no 0x prefix),"
                    " as in the certificate",
                    details={"field": "serial"},
                )
            serial = f"{int(serial, 16):x}"  # canonical: no leading zeros
        else:
            ca.SpiffeId.parse(spiffe_id)
        target = f"serial:{serial}" if serial else spiffe_id

        def listed(conn: sqlite3.Connection) -> m.Revocation:
            entry = tables.read_revocation(conn, serial, spiffe_id)
            assert entry is not None, "added in this transaction or before"
            return _revocation(entry)

        answer = _Answer(ctx, listed)
        async with self._revocation_lock:
            # The deny-list as the database has it now, not as this replica's
            # copy had it up to a second ago: another replica may just have
            # revoked the other admin.
            await self._ca_runtime.refresh_revocations()
            await self._refuse_locking_admins_out(
                ctx, RevocationTarget(serial=serial, spiffe_id=spiffe_id), target, req.reason
            )
            await self._ca_runtime.revoke(
                serial=serial,
                spiffe_id=spiffe_id,
                reason=req.reason,
                also=_in_order(
                    self._with_audit(self._event(ctx, target, reason=req.reason)), answer
                ),
            )
        return answer.value

    async def _refuse_locking_admins_out(
        self, ctx: RequestContext, revocation: RevocationTarget, target: str, reason: str
    ) -> None:
        """Refuse (and audit) a revocation after which no admin would hold a
        valid certificate: no admin would be left to lift it, so that would
        lock every admin out for good (see :mod:`secinfra_server.policy._last_admin`)."""
        assert ctx.peer is not None
        revoked = self._ca_runtime.revocations
        now = self._clock.now()
        if await leaves_an_admin(
            self._admin.is_admin,
            caller=ctx.peer,
            target=revocation,
            load_others=lambda: unexpired_leaves(self._storage, now),
            revoked_serials=frozenset(row.serial for row in revoked if row.serial),
            revoked_ids=frozenset(row.spiffe_id for row in revoked if row.spiffe_id),
        ):
            return
        await self._audit.record(
            self._event(ctx, target, "denied", reason=reason, refused="last_admin")
        )
        raise ApiError(
            "failed_precondition",
            f"secinfra: identity: revoking {target} would leave no admin with a valid"
            " certificate, and no admin would be left to lift it; first grant admin to"
            " another identity (system:root#admin) and enrol it, then revoke",
            details={"target": target},
        )

    async def list_revocations(
        self, ctx: RequestContext, _req: m.ListRevocationsRequest
    ) -> m.ListRevocationsResponse:
        await self._require_admin(ctx, "revocations")
        await self._audit.record(self._event(ctx, "revocations"))
        return m.ListRevocationsResponse(
            revocations=[_revocation(row) for row in self._ca_runtime.revocations]
        )

    async def lift_revocation(
        self, ctx: RequestContext, req: m.LiftRevocationRequest
    ) -> m.LiftRevocationResponse:
        """Lift a SPIFFE ID's revocation (audited in the same transaction); the
        certificates it held stay revoked by serial."""
        resource = req.spiffe_id or "revocations"
        await self._require_admin(ctx, resource)
        if not req.spiffe_id:
            raise ApiError(
                "invalid_argument",
                "secinfra: identity: spiffe_id is required: only a SPIFFE ID's revocation can be"
                " lifted (a revoked certificate stays revoked; enrol a new one)",
                details={"field": "spiffe_id"},
            )
        ca.SpiffeId.parse(req.spiffe_id)
        answer: _Answer[m.LiftRevocationResponse] | None = None

        def with_lift(lifted: LiftedRevocation) -> InTransaction:
            nonlocal answer
            response = m.LiftRevocationResponse(
                lifted=_revocation(lifted.lifted),
                serials_kept_revoked=list(lifted.serials_kept_revoked),
            )
            answer = _Answer(ctx, lambda _conn: response)
            event = self._event(
                ctx,
                req.spiffe_id,
                reason=req.reason,
                revoked_reason=lifted.lifted.reason,
                serials_kept_revoked=list(lifted.serials_kept_revoked),
            )
            return _in_order(self._with_audit(event), answer)

        async with self._revocation_lock:
            lifted = await self._ca_runtime.lift_revocation(req.spiffe_id, also=with_lift)
        if lifted is None:
            await self._audit.record(
                self._event(ctx, req.spiffe_id, "error", code="not_found", reason=req.reason)
            )
            raise ApiError(
                "not_found",
                f"secinfra: identity: {req.spiffe_id} is not revoked; nothing to lift",
                details={"spiffe_id": req.spiffe_id},
            )
        log.info(
            "revocation lifted",
            extra={"fields": {"spiffe_id": req.spiffe_id, "request_id": ctx.request_id}},
        )
        assert answer is not None
        return answer.value

    # -- join tokens -----------------------------------------------------------------
    async def create_join_token(
        self, ctx: RequestContext, req: m.CreateJoinTokenRequest
    ) -> m.CreateJoinTokenResponse:
        await self._require_admin(ctx, "join-tokens")
        spiffe_id = ca.SpiffeId.parse(req.spiffe_id)
        if spiffe_id.trust_domain != self._config.trust_domain:
            raise ApiError(
                "invalid_argument",
                f"secinfra: identity: spiffe_id must be in trust domain"
                f" {self._config.trust_domain!r}",
                details={"field": "spiffe_id"},
            )
        if not spiffe_id.path:
            raise ApiError(
                "invalid_argument",
                "secinfra: identity: spiffe_id needs a path (spiffe://<trust domain>/<workload>)",
                details={"field": "spiffe_id"},
            )
        if is_reserved_path(spiffe_id.path):
            raise ApiError(
                "invalid_argument",
                f"secinfra: identity: spiffe_id paths under {RESERVED_PATH_PREFIX} are reserved"
                " for the server",
                details={"field": "spiffe_id"},
            )
        ttl = req.ttl_seconds or self._config.join_token_default_ttl_seconds
        if not 0 < ttl <= MAX_JOIN_TOKEN_TTL_SECONDS:
            raise ApiError(
                "invalid_argument",
                f"secinfra: identity: ttl_seconds must be between 1 and"
                f" {MAX_JOIN_TOKEN_TTL_SECONDS}",
                details={"field": "ttl_seconds"},
            )
        # At the storage's precision (milliseconds), so that this answer shows the
        # same times as every later read of the token.
        now = from_ms(to_ms(self._clock.now()))
        token, record = attest.generate_join_token(spiffe_id, now=now, ttl=timedelta(seconds=ttl))
        stored = StoredJoinToken(
            id=record.id,
            secret_hash=record.secret_sha256,
            spiffe_id=str(record.spiffe_id),
            expires_at=record.expires_at,
            created_at=record.created_at,
        )
        event = self._event(ctx, f"join-token:{record.id}", spiffe_id=stored.spiffe_id)
        response = m.CreateJoinTokenResponse(token=token, join_token=_join_token(stored))
        answer = _Answer(ctx, lambda _conn: response)
        try:
            await self._storage.insert_join_token(
                stored,
                also=_in_order(
                    _refuse_revoked_id(stored.spiffe_id), self._with_audit(event), answer
                ),
            )
        except ApiError as exc:
            await self._audit.record(
                self._event(
                    ctx,
                    f"join-token:{record.id}",
                    "denied",
                    spiffe_id=stored.spiffe_id,
                    code=exc.code,
                )
            )
            raise
        return answer.value

    async def list_join_tokens(
        self, ctx: RequestContext, _req: m.ListJoinTokensRequest
    ) -> m.ListJoinTokensResponse:
        await self._require_admin(ctx, "join-tokens")
        await self._audit.record(self._event(ctx, "join-tokens"))
        rows = await self._storage.list_join_tokens()
        return m.ListJoinTokensResponse(join_tokens=[_join_token(row) for row in rows])

    async def revoke_join_token(
        self, ctx: RequestContext, req: m.RevokeJoinTokenRequest
    ) -> m.JoinToken:
        resource = f"join-token:{req.id}"
        await self._require_admin(ctx, resource)

        def revoked(conn: sqlite3.Connection) -> m.JoinToken:
            row = tables.read_join_token(conn, req.id)
            if row is None:
                # Rolls the write back: there was nothing to revoke.
                raise ApiError(
                    "not_found",
                    "secinfra: identity: no join token with that id",
                    details={"id": req.id},
                )
            return _join_token(row)

        answer = _Answer(ctx, revoked)
        try:
            await self._storage.revoke_join_token(
                req.id, also=_in_order(self._with_audit(self._event(ctx, resource)), answer)
            )
        except ApiError as exc:
            await self._audit.record(self._event(ctx, resource, "error", code=exc.code))
            raise
        return answer.value

    # -- CA rotation -----------------------------------------------------------------
    def _status(self) -> m.CaStatus:
        return m.CaStatus(
            authorities=[
                m.CertificateAuthority(
                    id=a.id,
                    state=_state(str(a.state)),
                    certificate_pem=a.certificate.public_bytes(serialization.Encoding.PEM).decode(),
                    not_before=a.not_before,
                    not_after=a.not_after,
                    leaves_expire_by=self._ca_runtime.leaves_expire_by(a.id),
                )
                for a in self._ca_runtime.authorities
            ],
            bundle_sequence=self._ca_runtime.sequence,
        )

    async def get_ca_status(self, ctx: RequestContext, _req: m.GetCaStatusRequest) -> m.CaStatus:
        await self._require_admin(ctx, "ca")
        await self._audit.record(self._event(ctx, "ca"))
        return self._status()

    async def prepare_ca_rotation(
        self, ctx: RequestContext, _req: m.PrepareCaRotationRequest
    ) -> m.CaStatus:
        await self._require_admin(ctx, "ca")
        answer = _Answer(ctx, _status_in)
        await self._ca_runtime.prepare(
            also=_in_order(self._with_audit(self._event(ctx, "ca:new")), answer)
        )
        return answer.value

    async def activate_ca(self, ctx: RequestContext, _req: m.ActivateCaRequest) -> m.CaStatus:
        await self._require_admin(ctx, "ca")
        answer = _Answer(ctx, _status_in)
        await self._ca_runtime.activate(
            also=_in_order(self._with_audit(self._event(ctx, "ca:prepared")), answer)
        )
        return answer.value

    async def retire_ca(self, ctx: RequestContext, req: m.RetireCaRequest) -> m.CaStatus:
        await self._require_admin(ctx, f"ca:{req.ca_id}")
        if not req.ca_id:
            raise ApiError(
                "invalid_argument",
                "secinfra: ca: ca_id is required",
                details={"field": "ca_id"},
            )
        event = self._event(ctx, f"ca:{req.ca_id}", force=req.force)
        answer = _Answer(ctx, _status_in)
        await self._ca_runtime.retire(
            req.ca_id, force=req.force, also=_in_order(self._with_audit(event), answer)
        )
        return answer.value


def public_token_id(token: str | None) -> str | None:
    """The id of a join token shaped ``sjt_<id>.<secret>`` (public: the admin
    API lists it), or None; never any part of the secret."""
    match = _TOKEN_ID_PATTERN.match(token or "")
    return match[1] if match is not None else None


def _refuse_revoked_id(spiffe_id: str) -> InTransaction:
    """Refuse (rolling the write back) a join token for a revoked SPIFFE ID, as
    the database has the deny-list in the token's own transaction."""

    def check(conn: sqlite3.Connection) -> None:
        if tables.read_revocation(conn, "", spiffe_id) is not None:
            raise ApiError(
                "failed_precondition",
                f"secinfra: identity: {spiffe_id} is revoked, so a join token for it could"
                " never enrol; lift the revocation first (LiftRevocation), then create the token",
                details={"field": "spiffe_id", "spiffe_id": spiffe_id},
            )

    return check


def _serial(issued: IssuedSvid) -> str:
    return f"{issued.certificate.serial_number:x}"


def _enrolment_resource(token_id: str | None) -> str:
    return f"join-token:{token_id}" if token_id is not None else "enrolment"


def _failure_reason(exc: Exception) -> tuple[str, str]:
    """The audit reason and outcome of an enrolment that raised ``exc``."""
    if isinstance(exc, attest.AttestationError):
        for kind in type(exc).__mro__:
            reason = ATTESTATION_FAILURE_REASONS.get(kind)
            if reason is not None:
                return reason, "denied"
        return "attestation_rejected", "denied"
    if isinstance(exc, ca.CAError):
        return ("bad_csr" if exc.code == "invalid_argument" else f"csr_{exc.code}"), "denied"
    if isinstance(exc, ApiError):
        reasons = {
            "invalid_argument": "bad_request",
            "permission_denied": "identity_not_enrollable",
            "failed_precondition": "jwt_not_configured",
        }
        return reasons.get(exc.code, exc.code), "denied"
    return "internal", "error"


def _revocation(row: Any) -> m.Revocation:
    return m.Revocation(
        serial=row.serial, spiffe_id=row.spiffe_id, reason=row.reason, revoked_at=row.revoked_at
    )


def _join_token(row: StoredJoinToken) -> m.JoinToken:
    return m.JoinToken(
        id=row.id,
        spiffe_id=row.spiffe_id,
        expires_at=row.expires_at,
        used_at=row.used_at,
        revoked=row.revoked,
    )
