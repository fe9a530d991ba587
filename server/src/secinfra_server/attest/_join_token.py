"""One-time join tokens.

A token reads ``sjt_<id>.<secret>``: ``id`` is 32 lowercase hex characters (128
random bits, the storage key, not secret) and ``secret`` is 43 base64url characters
(256 random bits). Storage keeps only the SHA-256 of the secret, the SPIFFE ID the
token grants, its expiry and when it was used; the token itself is shown once, to
the admin who created it.

:func:`verify_join_token` does not mark the token used. The caller must do that
atomically in storage and treat a lost race as "already used", e.g.::

    UPDATE join_tokens SET used_at = :now WHERE id = :id AND used_at IS NULL
    -- exactly one row updated, or the token was used concurrently: reject
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ..ca import SpiffeId
from ._errors import (
    InvalidArgument,
    JoinTokenExpired,
    JoinTokenMismatch,
    JoinTokenRevoked,
    JoinTokenUsed,
    MalformedJoinToken,
    UnknownJoinToken,
)
from ._time import require_aware

JOIN_TOKEN_PREFIX = "sjt_"
DEFAULT_JOIN_TOKEN_TTL = timedelta(hours=1)
"""Join tokens are short-lived (DESIGN: short TTL, single use)."""

_ID_BYTES = 16
_SECRET_BYTES = 32
_TOKEN_RE = re.compile(r"sjt_(?P<id>[0-9a-f]{32})\.(?P<secret>[A-Za-z0-9_-]{43})")
_MAX_TOKEN_CHARS = 128
_DUMMY_HASH = hashlib.sha256(b"secinfra: no such join token").digest()


@dataclass(frozen=True)
class JoinTokenRecord:
    """What storage keeps for a join token. Its repr never shows the hash."""

    id: str
    secret_sha256: bytes = field(repr=False)
    spiffe_id: SpiffeId
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    #: Revoked by an admin: refused like an unknown token.
    revoked: bool = False

    @property
    def used(self) -> bool:
        return self.used_at is not None

    def mark_used(self, now: datetime) -> JoinTokenRecord:
        """A copy marked used at ``now`` (storage must still update atomically)."""
        return dataclasses.replace(self, used_at=require_aware(now))


def generate_join_token(
    spiffe_id: SpiffeId | str,
    *,
    now: datetime,
    ttl: timedelta = DEFAULT_JOIN_TOKEN_TTL,
) -> tuple[str, JoinTokenRecord]:
    """Create a join token granting ``spiffe_id``; return ``(token, record)``.

    Show ``token`` to the admin once and store only ``record``.
    """
    now = require_aware(now)
    if ttl <= timedelta(0):
        raise InvalidArgument("join token ttl must be positive")
    if isinstance(spiffe_id, str):
        spiffe_id = SpiffeId.parse(spiffe_id)
    token_id = secrets.token_hex(_ID_BYTES)
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    record = JoinTokenRecord(
        id=token_id,
        secret_sha256=_hash_secret(secret),
        spiffe_id=spiffe_id,
        created_at=now,
        expires_at=now + ttl,
    )
    return f"{JOIN_TOKEN_PREFIX}{token_id}.{secret}", record


def join_token_id(token: str) -> str:
    """The id part of a join token (to look it up or log it); MalformedJoinToken if
    the token is not shaped ``sjt_<id>.<secret>``."""
    return _split(token)[0]


def verify_join_token(
    token: str,
    lookup: Callable[[str], JoinTokenRecord | None],
    now: datetime,
) -> JoinTokenRecord:
    """Check ``token`` against the record ``lookup(id)`` returns; return the record.

    Order: shape (MalformedJoinToken), id known (UnknownJoinToken), secret matches
    in constant time (JoinTokenMismatch), not revoked (JoinTokenRevoked, which
    reads like an unknown token), not used (JoinTokenUsed), not expired
    (JoinTokenExpired). Only a holder of the secret learns whether a token is used
    or expired. The caller then marks the token used, atomically.
    """
    now = require_aware(now)
    token_id, secret = _split(token)
    record = lookup(token_id)
    presented = _hash_secret(secret)
    if record is None:
        hmac.compare_digest(presented, _DUMMY_HASH)  # same work as a real miss
        raise UnknownJoinToken("join token is not known")
    if not hmac.compare_digest(presented, record.secret_sha256):
        raise JoinTokenMismatch("join token is not valid")
    if record.revoked:
        raise JoinTokenRevoked("join token is not known")
    if record.used:
        raise JoinTokenUsed("join token was already used")
    if now >= record.expires_at:
        raise JoinTokenExpired("join token has expired")
    return record


def _split(token: str) -> tuple[str, str]:
    if not isinstance(token, str) or len(token) > _MAX_TOKEN_CHARS:
        raise MalformedJoinToken("join token is malformed")
    match = _TOKEN_RE.fullmatch(token)
    if match is None:
        raise MalformedJoinToken("join token is malformed; expected sjt_<id>.<secret>")
    return match["id"], match["secret"]


def _hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("ascii")).digest()
