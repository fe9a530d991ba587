"""People: verifying OpenID Connect ID tokens for ``secinfra login``.

An :class:`OidcVerifier` checks an ID token (OpenID Connect Core 1.0 §3.1.3.7)
from the one configured provider: signature by a key from the provider's
discovery document, ``iss``, ``aud`` (the CLI's client id; with several
audiences ``azp`` must name it), ``exp``, ``iat`` against the injected clock,
and the nonce. The nonce binds the token to the workstation's key: the CLI sets
it to :func:`key_nonce` of the public key in its CSR, so a token copied from a
browser or a log cannot be used with another key. The device grant (RFC 8628)
carries no nonce; a token without one is accepted only within
``max_unbound_age`` of its ``iat``.

The user maps to ``spiffe://<td>/user/<subject>`` (``user_claim = "sub"``) or,
for ``email`` (which must be verified), ``spiffe://<td>/user/<domain>/<local>``:
a SPIFFE path segment cannot hold ``@``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from ..ca import InvalidSpiffeId, SpiffeId
from ._errors import InvalidClaim, MissingClaim, TokenExpired, WrongAudience, WrongNonce
from ._jwks import KeySource
from ._jwt import Expectations, check_issuer_settings, verify_jwt

ID_TOKEN_CLAIMS: Final = ("iss", "aud", "sub", "exp", "iat")
DEFAULT_MAX_UNBOUND_AGE: Final = timedelta(minutes=5)
USER_PATH_PREFIX: Final = "/user/"
_SEGMENT_RE = re.compile(r"[a-zA-Z0-9._-]{1,255}")


def key_nonce(public_key_der: bytes) -> str:
    """The nonce that binds an ID token to a key: base64url (no padding) of
    SHA-256 of the key's DER SubjectPublicKeyInfo."""
    digest = hashlib.sha256(public_key_der).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True)
class UserIdentity:
    """A verified ID token: who the person is and what they belong to."""

    spiffe_id: SpiffeId
    subject: str
    email: str | None
    groups: tuple[str, ...]
    #: Whether the token's nonce bound it to the CSR's key (code flow).
    key_bound: bool
    token_expires_at: datetime


class OidcVerifier:
    """Verifies ID tokens of one OpenID provider for one OAuth client."""

    def __init__(
        self,
        *,
        issuer: str,
        client_id: str,
        keys: KeySource,
        trust_domain: str,
        user_claim: str = "sub",
        groups_claim: str = "groups",
        algorithms: tuple[str, ...] = ("RS256", "ES256"),
        leeway: timedelta = timedelta(seconds=30),
        max_unbound_age: timedelta = DEFAULT_MAX_UNBOUND_AGE,
    ) -> None:
        self._expect = Expectations(
            issuer=issuer,
            audiences=(client_id,),
            algorithms=check_issuer_settings(issuer, (client_id,), algorithms, leeway),
            leeway=leeway,
            required_claims=ID_TOKEN_CLAIMS,
        )
        self._client_id = client_id
        self._keys = keys
        self._trust_domain = trust_domain
        self._user_claim = user_claim
        self._groups_claim = groups_claim
        self._max_unbound_age = max_unbound_age

    def verify(self, id_token: str, *, public_key_der: bytes, now: datetime) -> UserIdentity:
        """Verify ``id_token`` for the key ``public_key_der`` at ``now``."""
        claims = verify_jwt(id_token, self._keys, self._expect, now=now)
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self._client_id:
            raise WrongAudience("ID token has several audiences and 'azp' is not this client")
        key_bound = self._check_nonce(claims, public_key_der, now)
        subject = _string(claims, "sub")
        email = claims.get("email")
        if email is not None and not isinstance(email, str):
            raise InvalidClaim("ID token claim 'email' must be a string")
        return UserIdentity(
            spiffe_id=self._spiffe_id(subject, claims),
            subject=subject,
            email=email,
            groups=self._groups(claims),
            key_bound=key_bound,
            token_expires_at=datetime.fromtimestamp(float(claims["exp"]), UTC),
        )

    def _check_nonce(self, claims: Mapping[str, Any], public_key_der: bytes, now: datetime) -> bool:
        nonce = claims.get("nonce")
        if nonce is None:
            # The device grant has no nonce: only a fresh token is accepted.
            if now.timestamp() - float(claims["iat"]) > self._max_unbound_age.total_seconds():
                raise TokenExpired(
                    "ID token without a nonce is older than"
                    f" {int(self._max_unbound_age.total_seconds())} s; log in again"
                )
            return False
        if not isinstance(nonce, str) or not hmac.compare_digest(
            nonce.encode(), key_nonce(public_key_der).encode()
        ):
            raise WrongNonce("ID token nonce is not bound to the CSR's public key")
        return True

    def _spiffe_id(self, subject: str, claims: Mapping[str, Any]) -> SpiffeId:
        if self._user_claim == "email":
            email = claims.get("email")
            if email is None:
                raise MissingClaim("ID token lacks the claim 'email' (ask for the email scope)")
            if claims.get("email_verified") is not True:
                raise InvalidClaim("ID token's email is not verified")
            local, _, domain = _string(claims, "email").lower().rpartition("@")
            segments = [domain, local]
        else:
            segments = [subject]
        if not all(_SEGMENT_RE.fullmatch(s) and s not in (".", "..") for s in segments):
            raise InvalidClaim(
                f"ID token's {self._user_claim!r} cannot be a SPIFFE ID path"
                " (letters, digits, '.', '-', '_' only)"
            )
        try:
            return SpiffeId.parse(
                f"spiffe://{self._trust_domain}{USER_PATH_PREFIX}{'/'.join(segments)}"
            )
        except InvalidSpiffeId as exc:
            raise InvalidClaim("ID token does not map to a valid SPIFFE ID") from exc

    def _groups(self, claims: Mapping[str, Any]) -> tuple[str, ...]:
        groups = claims.get(self._groups_claim, [])
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise InvalidClaim(f"ID token claim {self._groups_claim!r} must be a list of strings")
        return tuple(dict.fromkeys(groups))


def _string(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidClaim(f"ID token claim {name!r} must be a non-empty string")
    return value
