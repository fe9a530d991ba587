"""Handlers for secinfra.v1.SecretsService.

Every call is mTLS. The order of checks is the same in every handler: the
name (``invalid_argument``), then the caller's permission (``permission_denied``,
before anything about the secret is looked up, so a denied caller learns
nothing about whether it exists), then the request's other fields, then the
stored state (``not_found``, ``failed_precondition``).

Auditing: a write's audit entry is appended inside the write's own
transaction (both commit or neither does); reads, denials and failed calls go
through the audit queue. Action names are ``secrets.<verb>``, resources
``secret:<name>``; entries never hold a value.

Values are sealed per version (:func:`secinfra_server.crypto.seal`: a fresh
AES-256-GCM data key, wrapped by the KEK, AAD bound to name and version).
Sealing and opening run on the storage threads, never on the event loop.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from ._gen import secrets as m
from ._rpc import Handler, Reply, RequestContext, ServiceContext, none_match
from .audit import AuditEvent
from .crypto import DecryptionError, aad_for_secret, open_, seal
from .errors import ApiError
from .secrets import InvalidSecretName, validate_prefix, validate_secret_name
from .storage import from_ms, to_ms
from .storage import secret_tables as store

log = logging.getLogger("secinfra.secrets")

T = TypeVar("T")

#: Largest value a version may hold, in bytes (DESIGN.md: 64 KiB).
MAX_VALUE_BYTES: Final = 64 * 1024
DEFAULT_MAX_VERSIONS: Final = 10
MAX_MAX_VERSIONS: Final = 100
DEFAULT_CACHE_MAX_AGE_SECONDS: Final = 60
MAX_CACHE_MAX_AGE_SECONDS: Final = 86_400
DEFAULT_STALE_IF_ERROR_SECONDS: Final = 300
MAX_STALE_IF_ERROR_SECONDS: Final = 7 * 86_400
DEFAULT_PAGE_SIZE: Final = 100
MAX_PAGE_SIZE: Final = 1000
#: A list call examines at most this many names (readable or not) before it
#: returns a page, possibly short, with a token to continue from.
MAX_SCANNED_PER_PAGE: Final = 10_000
#: At most this many version numbers in one delete, undelete or destroy call.
MAX_VERSIONS_PER_CALL: Final = 1000
MAX_VERSION: Final = 2**31 - 1
_PREFIX: Final = "secinfra: secrets: "
_ETAG_LABEL: Final = b"secinfra/etag/secret/v1"
_PAGE_TOKEN_VERSION: Final = 1

_STATES: Final[Mapping[str, m.VersionState]] = {
    store.ENABLED: m.VersionState.ENABLED,
    store.DELETED: m.VersionState.DELETED,
    store.DESTROYED: m.VersionState.DESTROYED,
}


def etag_for(name: str, version: int, created_ms: int) -> str:
    """The strong ETag of one version: a hash of name, version and create time.

    Never derived from the value, so it reveals nothing about it; a version's
    value never changes, so the tag changes exactly when a read would return
    another version.
    """
    digest = hashlib.sha256(_ETAG_LABEL)
    for field in (name.encode(), version.to_bytes(8, "big"), created_ms.to_bytes(8, "big")):
        digest.update(len(field).to_bytes(4, "big") + field)
    return f'"{digest.hexdigest()[:32]}"'


def cache_control(row: store.SecretRow) -> str:
    """The Cache-Control value for reads of this secret."""
    return f"private, max-age={row.cache_max_age_s}, stale-if-error={row.stale_if_error_s}"


def encode_page_token(prefix: str, after: str) -> str:
    """An opaque token: where the next page of a list under ``prefix`` starts."""
    doc = json.dumps([_PAGE_TOKEN_VERSION, prefix, after], separators=(",", ":"))
    return base64.urlsafe_b64encode(doc.encode()).decode().rstrip("=")


def decode_page_token(token: str, prefix: str) -> str:
    """The name a page starts after; invalid_argument if the token is not one
    :func:`encode_page_token` made for this prefix."""
    if not token:
        return ""
    bad = ApiError(
        "invalid_argument",
        f"{_PREFIX}page_token is not a token from a previous ListSecrets call with this"
        " prefix; start again without one",
        details={"field": "page_token"},
    )
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        version, token_prefix, after = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise bad from None
    if version != _PAGE_TOKEN_VERSION or token_prefix != prefix or not isinstance(after, str):
        raise bad
    try:
        validate_secret_name(after)
    except InvalidSecretName:
        raise bad from None
    if not after.startswith(prefix):
        raise bad
    return after


@dataclass(frozen=True)
class _PolicyUpdate:
    """Policy fields a write sets; None keeps the stored (or default) value."""

    max_versions: int | None = None
    cache_max_age_s: int | None = None
    stale_if_error_s: int | None = None


def _policy_update(policy: m.SecretPolicy | None) -> _PolicyUpdate:
    if policy is None:
        return _PolicyUpdate()
    checked: list[int | None] = []
    for field, value, limit in (
        ("max_versions", policy.max_versions, MAX_MAX_VERSIONS),
        ("cache_max_age_seconds", policy.cache_max_age_seconds, MAX_CACHE_MAX_AGE_SECONDS),
        ("stale_if_error_seconds", policy.stale_if_error_seconds, MAX_STALE_IF_ERROR_SECONDS),
    ):
        if not 0 <= value <= limit:
            raise ApiError(
                "invalid_argument",
                f"{_PREFIX}policy.{field} must be between 1 and {limit} (0 or unset keeps"
                f" the current value); got {value}",
                details={"field": f"policy.{field}"},
            )
        checked.append(value or None)
    return _PolicyUpdate(*checked)


def _existing_versions(
    conn: sqlite3.Connection, name: str, versions: Sequence[int]
) -> dict[int, store.VersionRow]:
    """The rows of ``versions``; not_found if the secret or any version is missing."""
    if store.get_secret(conn, name) is None:
        raise _not_found(name)
    found = store.versions_by_number(conn, name, versions)
    missing = [v for v in versions if v not in found]
    if missing:
        raise _version_not_found(name, missing)
    return found


def _check_versions(versions: Sequence[int], *, required: bool, rpc: str) -> list[int]:
    if required and not versions:
        raise ApiError(
            "invalid_argument",
            f"{_PREFIX}{rpc} needs the version numbers to act on in versions",
            details={"field": "versions"},
        )
    if len(versions) > MAX_VERSIONS_PER_CALL:
        raise ApiError(
            "invalid_argument",
            f"{_PREFIX}at most {MAX_VERSIONS_PER_CALL} versions per call; got {len(versions)}",
            details={"field": "versions"},
        )
    for version in versions:
        if version < 1:
            raise ApiError(
                "invalid_argument",
                f"{_PREFIX}versions start at 1; got {version}",
                details={"field": "versions"},
            )
    return sorted(set(versions))


def _not_found(name: str) -> ApiError:
    return ApiError("not_found", f"{_PREFIX}secret {name!r} does not exist")


def _version_not_found(name: str, versions: Sequence[int]) -> ApiError:
    listed = ", ".join(str(v) for v in versions)
    noun = "version" if len(versions) == 1 else "versions"
    return ApiError(
        "not_found",
        f"{_PREFIX}secret {name!r} has no {noun} {listed}",
        details={"versions": list(versions)},
    )


def _integrity_failure(
    request_id: str, name: str, version: int, cause: DecryptionError
) -> ApiError:
    """Log a version that failed to decrypt and return the error the client gets.

    A tampered or misplaced row, or a KEK the keyring lacks: the read fails
    loudly and never returns other bytes. The log line names the secret and the
    version actually read (not the 0 of "latest"); the cause holds no key or
    value. The field is ``secret_name``: the log redaction drops ``secret``.
    """
    log.error(
        "secret value failed to decrypt",
        extra={
            "fields": {
                "request_id": request_id,
                "secret_name": name,
                "version": version,
                "error": str(cause),
            }
        },
    )
    return ApiError(
        "internal",
        f"{_PREFIX}the stored value of secret {name!r} failed its integrity check"
        f" and was not returned; the server log has details (request id {request_id})",
    )


def _metadata(row: store.SecretRow, versions: Sequence[store.VersionRow] = ()) -> m.SecretMetadata:
    return m.SecretMetadata(
        name=row.name,
        current_version=row.current_version,
        policy=m.SecretPolicy(
            max_versions=row.max_versions,
            cache_max_age_seconds=row.cache_max_age_s,
            stale_if_error_seconds=row.stale_if_error_s,
        ),
        versions=[
            m.SecretVersionMetadata(
                version=v.version,
                state=_STATES[v.state],
                create_time=from_ms(v.created_ms),
                delete_time=None if v.deleted_ms is None else from_ms(v.deleted_ms),
            )
            for v in versions
        ],
        create_time=from_ms(row.created_ms),
        update_time=from_ms(row.updated_ms),
    )


def _read_metadata(conn: sqlite3.Connection, name: str) -> m.SecretMetadata:
    row = store.get_secret(conn, name)
    if row is None:
        raise _not_found(name)
    return _metadata(row, store.list_versions(conn, name))


@dataclass(frozen=True)
class _Read:
    """What a GetSecret read found: ``value`` is None when If-None-Match matched."""

    row: store.SecretRow
    version: store.VersionRow
    etag: str
    value: bytes | None


class SecretsApi:
    """The SecretsService RPCs."""

    def __init__(self, ctx: ServiceContext) -> None:
        self._storage = ctx.storage
        self._keyring = ctx.keyring
        self._clock = ctx.clock
        self._audit = ctx.audit
        self._policy = ctx.policy

    def handlers(self) -> Mapping[str, Handler]:
        """Handlers by RPC handler name (snake_case)."""
        return {
            "put_secret": self.put_secret,
            "get_secret": self.get_secret,
            "get_secret_metadata": self.get_secret_metadata,
            "list_secrets": self.list_secrets,
            "delete_secret": self.delete_secret,
            "undelete_secret": self.undelete_secret,
            "destroy_secret_versions": self.destroy_secret_versions,
        }

    # -- plumbing ----------------------------------------------------------------------
    async def _authorize(self, ctx: RequestContext, action: str, name: str, *, write: bool) -> str:
        """The caller's SPIFFE ID if it may act on ``name``; else audit and deny."""
        assert ctx.peer is not None
        actor = ctx.peer.spiffe_id
        if write:
            allowed = await self._policy.can_write_secret(actor, name)
        else:
            allowed = await self._policy.can_read_secret(actor, name)
        if not allowed:
            await self._audit.record(
                AuditEvent(actor, action, f"secret:{name}", "denied", ctx.request_id)
            )
            raise ApiError(
                "permission_denied",
                f"{_PREFIX}{actor} may not {'write' if write else 'read'} secret {name!r}",
            )
        return actor

    async def _audited(
        self,
        ctx: RequestContext,
        actor: str,
        action: str,
        resource: str,
        op: Callable[[], Awaitable[T]],
    ) -> T:
        """Run ``op``; a client error it raises is audited (outcome ``error``)."""
        try:
            return await op()
        except ApiError as exc:
            await self._audit.record(
                AuditEvent(actor, action, resource, "error", ctx.request_id, {"code": exc.code})
            )
            raise

    def _event(
        self, ctx: RequestContext, actor: str, action: str, name: str, details: dict[str, Any]
    ) -> AuditEvent:
        return AuditEvent(actor, action, f"secret:{name}", "allowed", ctx.request_id, details)

    # -- RPCs --------------------------------------------------------------------------
    async def put_secret(self, ctx: RequestContext, req: m.PutSecretRequest) -> m.SecretVersionInfo:
        name = validate_secret_name(req.name)
        action = "secrets.put"
        actor = await self._authorize(ctx, action, name, write=True)
        if len(req.value) > MAX_VALUE_BYTES:
            raise ApiError(
                "invalid_argument",
                f"{_PREFIX}a secret value is at most {MAX_VALUE_BYTES} bytes; this one is"
                f" {len(req.value)}",
                details={"field": "value", "max_bytes": MAX_VALUE_BYTES},
            )
        if req.if_version is not None and req.if_version < 0:
            raise ApiError(
                "invalid_argument",
                f"{_PREFIX}if_version must be 0 (must not exist yet) or a version number;"
                f" got {req.if_version}",
                details={"field": "if_version"},
            )
        update = _policy_update(req.policy)
        value = req.value
        if_version = req.if_version
        keyring = self._keyring

        def write(conn: sqlite3.Connection) -> m.SecretVersionInfo:
            now = self._clock.now()
            now_ms = to_ms(now)
            row = store.get_secret(conn, name)
            current = 0 if row is None else row.current_version
            if if_version is not None and if_version != current:
                state = "does not exist" if row is None else f"is at version {current}"
                raise ApiError(
                    "failed_precondition",
                    f"{_PREFIX}check-and-set failed: if_version is {if_version} but secret"
                    f" {name!r} {state}; nothing was written",
                    details={"current_version": current},
                )
            if current >= MAX_VERSION:
                raise ApiError(
                    "failed_precondition",
                    f"{_PREFIX}secret {name!r} has reached the last version number",
                )
            version = current + 1
            merged = store.SecretRow(
                name=name,
                current_version=version,
                max_versions=update.max_versions
                or (row.max_versions if row else DEFAULT_MAX_VERSIONS),
                cache_max_age_s=update.cache_max_age_s
                or (row.cache_max_age_s if row else DEFAULT_CACHE_MAX_AGE_SECONDS),
                stale_if_error_s=update.stale_if_error_s
                or (row.stale_if_error_s if row else DEFAULT_STALE_IF_ERROR_SECONDS),
                created_ms=now_ms if row is None else row.created_ms,
                updated_ms=now_ms,
            )
            if row is None:
                store.insert_secret(conn, merged)
            else:
                store.update_secret(conn, merged)
            box = seal(keyring, value, aad_for_secret(name, version))
            store.insert_version(conn, name, version, box, now_ms)
            pruned = store.prune_versions(conn, name, version - merged.max_versions + 1, now_ms)
            details: dict[str, Any] = {"version": version, "kek_id": box.kek_id}
            if pruned:
                details["destroyed"] = pruned
            self._audit.chain.append(conn, self._event(ctx, actor, action, name, details), now)
            info = m.SecretVersionInfo(name=name, version=version, create_time=from_ms(now_ms))
            ctx.commit_answer(conn, info)
            return info

        async def run() -> m.SecretVersionInfo:
            return await self._storage.write(write)

        return await self._audited(ctx, actor, action, f"secret:{name}", run)

    async def get_secret(self, ctx: RequestContext, req: m.GetSecretRequest) -> Reply:
        name = validate_secret_name(req.name)
        action = "secrets.get"
        actor = await self._authorize(ctx, action, name, write=False)
        if req.version < 0:
            raise ApiError(
                "invalid_argument",
                f"{_PREFIX}version must be a version number, or 0 for the latest; got"
                f" {req.version}",
                details={"field": "version"},
            )
        wanted = req.version
        conditions = ctx.http.headers.getall("If-None-Match", [])
        keyring = self._keyring

        def read(conn: sqlite3.Connection) -> _Read:
            row = store.get_secret(conn, name)
            if row is None:
                raise _not_found(name)
            if wanted:
                found = store.get_version(conn, name, wanted)
                if found is None:
                    raise _version_not_found(name, [wanted])
                if found.state == store.DELETED:
                    raise ApiError(
                        "not_found",
                        f"{_PREFIX}version {wanted} of secret {name!r} is deleted"
                        " (UndeleteSecret restores it)",
                        details={"version": wanted, "state": found.state},
                    )
                if found.state == store.DESTROYED:
                    raise ApiError(
                        "not_found",
                        f"{_PREFIX}version {wanted} of secret {name!r} was destroyed",
                        details={"version": wanted, "state": found.state},
                    )
            else:
                latest = store.latest_enabled_version(conn, name)
                if latest is None:
                    raise ApiError(
                        "not_found",
                        f"{_PREFIX}secret {name!r} has no readable version (every version"
                        " is deleted or destroyed)",
                    )
                found = latest
            etag = etag_for(name, found.version, found.created_ms)
            # Opened even when If-None-Match matches: the tag is derived from
            # metadata, not the ciphertext, so only opening the box shows that
            # the version is still intact. A tampered version fails here and
            # never answers 304 to a client holding its old tag.
            box = store.sealed_value(conn, name, found.version)
            try:
                if box is None:
                    raise DecryptionError(
                        f"version {found.version} is enabled but has no sealed value"
                    )
                value = open_(keyring, box, aad_for_secret(name, found.version))
            except DecryptionError as exc:
                raise _integrity_failure(ctx.request_id, name, found.version, exc) from exc
            if none_match(conditions, etag):
                return _Read(row, found, etag, None)
            return _Read(row, found, etag, value)

        async def run() -> _Read:
            return await self._storage.read(read)

        found = await self._audited(ctx, actor, action, f"secret:{name}", run)
        details: dict[str, Any] = {"version": found.version.version}
        headers = {"ETag": found.etag, "Cache-Control": cache_control(found.row)}
        if found.value is None:
            details["not_modified"] = True
            await self._audit.record(self._event(ctx, actor, action, name, details))
            return Reply(status=304, headers=headers)
        await self._audit.record(self._event(ctx, actor, action, name, details))
        return Reply(
            body=m.Secret(
                name=name,
                version=found.version.version,
                value=found.value,
                create_time=from_ms(found.version.created_ms),
            ),
            headers=headers,
        )

    async def get_secret_metadata(
        self, ctx: RequestContext, req: m.GetSecretMetadataRequest
    ) -> m.SecretMetadata:
        name = validate_secret_name(req.name)
        action = "secrets.get_metadata"
        actor = await self._authorize(ctx, action, name, write=False)

        async def run() -> m.SecretMetadata:
            return await self._storage.read(lambda conn: _read_metadata(conn, name))

        metadata = await self._audited(ctx, actor, action, f"secret:{name}", run)
        await self._audit.record(self._event(ctx, actor, action, name, {}))
        return metadata

    async def list_secrets(
        self, ctx: RequestContext, req: m.ListSecretsRequest
    ) -> m.ListSecretsResponse:
        assert ctx.peer is not None
        actor = ctx.peer.spiffe_id
        prefix = validate_prefix(req.prefix)
        if req.page_size < 0:
            raise ApiError(
                "invalid_argument",
                f"{_PREFIX}page_size must not be negative; got {req.page_size}",
                details={"field": "page_size"},
            )
        page_size = min(req.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        cursor = decode_page_token(req.page_token, prefix)
        batch_size = page_size + 1
        page: list[store.SecretRow] = []
        next_token = ""
        scanned = 0
        while True:
            batch = await self._storage.read(
                functools.partial(store.list_secrets, prefix=prefix, after=cursor, limit=batch_size)
            )
            readable = set(await self._policy.readable_secrets(actor, [r.name for r in batch]))
            full = False
            for row in batch:
                if row.name not in readable:
                    continue
                if len(page) == page_size:
                    full = True  # one more readable name exists: there is a next page
                    break
                page.append(row)
            if full:
                next_token = encode_page_token(prefix, page[-1].name)
                break
            if len(batch) < batch_size:
                break  # no more names under the prefix
            cursor = batch[-1].name
            scanned += len(batch)
            if scanned >= MAX_SCANNED_PER_PAGE:
                next_token = encode_page_token(prefix, cursor)
                break
        await self._audit.record(
            AuditEvent(
                actor,
                "secrets.list",
                f"secret:{prefix}*",
                "allowed",
                ctx.request_id,
                {"returned": len(page)},
            )
        )
        return m.ListSecretsResponse(
            secrets=[_metadata(row) for row in page], next_page_token=next_token
        )

    async def delete_secret(
        self, ctx: RequestContext, req: m.DeleteSecretRequest
    ) -> m.SecretMetadata:
        name = validate_secret_name(req.name)
        action = "secrets.delete"
        actor = await self._authorize(ctx, action, name, write=True)
        requested = _check_versions(req.versions, required=False, rpc="DeleteSecret")

        def write(conn: sqlite3.Connection) -> m.SecretMetadata:
            now = self._clock.now()
            row = store.get_secret(conn, name)
            if row is None:
                raise _not_found(name)
            targets = requested or [row.current_version]
            found = store.versions_by_number(conn, name, targets)
            missing = [v for v in targets if v not in found]
            if missing:
                raise _version_not_found(name, missing)
            changed = [v for v in targets if found[v].state == store.ENABLED]
            for version in changed:
                store.set_deleted(conn, name, version, to_ms(now))
            if changed:
                store.touch_secret(conn, name, to_ms(now))
            details = {"versions": targets, "changed": changed}
            self._audit.chain.append(conn, self._event(ctx, actor, action, name, details), now)
            metadata = _read_metadata(conn, name)
            ctx.commit_answer(conn, metadata)
            return metadata

        return await self._audited(
            ctx, actor, action, f"secret:{name}", lambda: self._storage.write(write)
        )

    async def undelete_secret(
        self, ctx: RequestContext, req: m.UndeleteSecretRequest
    ) -> m.SecretMetadata:
        name = validate_secret_name(req.name)
        action = "secrets.undelete"
        actor = await self._authorize(ctx, action, name, write=True)
        targets = _check_versions(req.versions, required=True, rpc="UndeleteSecret")

        def write(conn: sqlite3.Connection) -> m.SecretMetadata:
            now = self._clock.now()
            found = _existing_versions(conn, name, targets)
            destroyed = [v for v in targets if found[v].state == store.DESTROYED]
            if destroyed:
                raise ApiError(
                    "failed_precondition",
                    f"{_PREFIX}version(s) {', '.join(map(str, destroyed))} of secret {name!r}"
                    " were destroyed and cannot be restored; nothing was changed",
                    details={"destroyed": destroyed},
                )
            changed = [v for v in targets if found[v].state == store.DELETED]
            for version in changed:
                store.set_enabled(conn, name, version)
            if changed:
                store.touch_secret(conn, name, to_ms(now))
            details = {"versions": targets, "changed": changed}
            self._audit.chain.append(conn, self._event(ctx, actor, action, name, details), now)
            metadata = _read_metadata(conn, name)
            ctx.commit_answer(conn, metadata)
            return metadata

        return await self._audited(
            ctx, actor, action, f"secret:{name}", lambda: self._storage.write(write)
        )

    async def destroy_secret_versions(
        self, ctx: RequestContext, req: m.DestroySecretVersionsRequest
    ) -> m.SecretMetadata:
        name = validate_secret_name(req.name)
        action = "secrets.destroy"
        actor = await self._authorize(ctx, action, name, write=True)
        targets = _check_versions(req.versions, required=True, rpc="DestroySecretVersions")

        def write(conn: sqlite3.Connection) -> m.SecretMetadata:
            now = self._clock.now()
            found = _existing_versions(conn, name, targets)
            changed = [v for v in targets if found[v].state != store.DESTROYED]
            if changed:
                store.destroy_versions(conn, name, changed, to_ms(now))
                store.touch_secret(conn, name, to_ms(now))
            details = {"versions": targets, "changed": changed}
            self._audit.chain.append(conn, self._event(ctx, actor, action, name, details), now)
            metadata = _read_metadata(conn, name)
            ctx.commit_answer(conn, metadata)
            return metadata

        return await self._audited(
            ctx, actor, action, f"secret:{name}", lambda: self._storage.write(write)
        )
