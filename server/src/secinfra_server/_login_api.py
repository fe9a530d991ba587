"""People's login: user certificates for a verified OpenID Connect ID token.

``secinfra login`` gets an ID token from the configured provider (authorization
code with PKCE, or the device grant) and enrols with it: IssueCertificate with
``oidc_id_token`` and a CSR made on the workstation. :class:`UserLogin` verifies
the token (:class:`attest.OidcVerifier`), signs a certificate for
``spiffe://<td>/user/...`` that lives ``login.certificate_ttl_seconds`` (never
past the CA), and brings the user's group tuples up to date in the same
transaction that records the certificate, through the authorization engine:
for each configured group the user is in, its tuples are written with the user
(``workload:<user SPIFFE ID>``) as subject; for each they are not in (any more),
those tuples are deleted. So people get access exactly as services do.

A user certificate is not renewed over mTLS (RenewCertificate refuses
``/user/`` IDs): the login session is the certificate, and ``secinfra login``
again gets the next one, as Teleport's ``tsh`` and ``step ssh login`` do.
GetLoginConfig tells the CLI which provider and client to use.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Mapping
from datetime import timedelta

from cryptography.hazmat.primitives import serialization

from . import attest, authz, ca
from ._ca_runtime import IssuedSvid
from ._gen import identity as m
from ._rpc import Handler, RequestContext, ServiceContext
from ._svid_message import svid_message
from .audit import AuditEvent
from .authz import TupleKey
from .config import LoginConfig
from .errors import ApiError
from .policy import WORKLOAD_TYPE, validate_builtin_tuple
from .storage import InTransaction
from .storage.authz_tables import apply_tuple_changes


def group_tuples(login: LoginConfig, user: str) -> dict[str, list[TupleKey]]:
    """Each configured group's tuples for ``user`` (``workload:<SPIFFE ID>``)."""
    tuples: dict[str, list[TupleKey]] = {}
    for group, entries in login.groups.items():
        keys = []
        for entry in entries:
            relation, obj = entry.split()
            keys.append(TupleKey(user, relation, obj))
        tuples[group] = keys
    return tuples


class UserLogin:
    """Issues user certificates for ID tokens, and syncs group tuples."""

    def __init__(self, ctx: ServiceContext, verifier: attest.OidcVerifier | None) -> None:
        self._ctx = ctx
        self._verifier = verifier
        self._login = ctx.config.login

    def handlers(self) -> Mapping[str, Handler]:
        return {"get_login_config": self.get_login_config}

    async def get_login_config(
        self, ctx: RequestContext, req: m.GetLoginConfigRequest
    ) -> m.LoginConfig:
        login = self._login
        if login is None:
            return m.LoginConfig(enabled=False, issuer="", client_id="", scopes=[])
        return m.LoginConfig(
            enabled=True, issuer=login.issuer, client_id=login.client_id, scopes=list(login.scopes)
        )

    async def issue(
        self, ctx: RequestContext, req: m.IssueCertificateRequest
    ) -> m.IssueCertificateResponse:
        """IssueCertificate with ``oidc_id_token``: the caller has checked the CSR."""
        if self._verifier is None or self._login is None:
            raise ApiError(
                "failed_precondition",
                "secinfra: identity: people's login is not configured on this server ([login])",
            )
        login = self._login
        csr = await asyncio.to_thread(ca.load_csr, req.csr_pem or "")
        public_key = csr.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        now = self._ctx.clock.now()
        user = await asyncio.to_thread(
            self._verifier.verify, req.oidc_id_token or "", public_key_der=public_key, now=now
        )
        spiffe_id = str(user.spiffe_id)
        if self._ctx.ca_runtime.is_revoked_id(spiffe_id):
            raise ApiError("permission_denied", f"secinfra: identity: {spiffe_id} is revoked")
        await self._ctx.engine.ensure_bootstrapped()
        subject = f"{WORKLOAD_TYPE}:{spiffe_id}"
        by_group = group_tuples(login, subject)
        writes = [key for group in user.groups for key in by_group.get(group, [])]
        deletes = [
            key
            for group, keys in by_group.items()
            if group not in user.groups
            for key in keys
            if key not in writes
        ]
        answer: list[m.IssueCertificateResponse] = []

        def with_certificate(issued: IssuedSvid) -> InTransaction:
            response = m.IssueCertificateResponse(
                svid=svid_message(issued.certificate, issued.spiffe_id),
                bundle_refresh_hint=self._ctx.config.bundle_refresh_hint_seconds,
            )

            def record(conn: sqlite3.Connection) -> None:
                snapshot = self._ctx.engine.snapshot(conn)
                for key in writes:
                    authz.validate_tuple(snapshot.model, key)
                    validate_builtin_tuple(key)
                change = apply_tuple_changes(conn, writes, deletes)
                self._ctx.audit.chain.append(
                    conn,
                    AuditEvent(
                        actor=spiffe_id,
                        action="identity.login",
                        resource=spiffe_id,
                        outcome="allowed",
                        request_id=ctx.request_id,
                        details={
                            "serial": f"{issued.certificate.serial_number:x}",
                            "via": "oidc",
                            "key_bound": user.key_bound,
                            "groups": list(user.groups),
                            "tuples_written": change.written,
                            "tuples_deleted": change.deleted,
                            "revision": change.revision,
                        },
                    ),
                    now,
                )
                ctx.commit_answer(conn, response)
                answer.append(response)

            return record

        await self._ctx.ca_runtime.sign_workload(
            req.csr_pem or "",
            spiffe_id,
            kind="login",
            also=with_certificate,
            ttl=timedelta(seconds=login.certificate_ttl_seconds),
        )
        return answer[0]
