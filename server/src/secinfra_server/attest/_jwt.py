"""JWT attestation: Kubernetes projected service-account tokens.

A :class:`JWTAttestor` is built once from a :class:`JWTAttestorConfig` (issuer,
audiences, a JWKS as loaded from a file, allowed algorithms, leeway, SPIFFE ID
template). Building it validates everything an operator could get wrong, so a bad
configuration fails at startup rather than on the first enrolment.

:meth:`JWTAttestor.attest` checks, in order: the token is a compact JWS
(MalformedJWT); its ``alg`` is allowed (DisallowedAlgorithm: ``none`` and HS* are
never allowed, whatever the configuration says); its ``kid`` is in the JWKS
(UnknownKeyId); the signature (BadSignature); ``iss``, ``aud``, ``sub``, ``exp``,
``nbf``, ``iat`` and ``kubernetes.io`` are present (MissingClaim); issuer
(WrongIssuer) and audience (WrongAudience); ``exp``/``nbf``/``iat`` against the
injected ``now`` with leeway (TokenExpired, TokenNotYetValid); namespace and
service account are DNS labels and ``sub`` is
``system:serviceaccount:<ns>:<sa>`` (InvalidClaim). The result maps to a SPIFFE ID
through the template.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from ..ca import InvalidSpiffeId, SpiffeId, validate_trust_domain
from ._errors import (
    BadSignature,
    DisallowedAlgorithm,
    InvalidAttestorConfig,
    InvalidClaim,
    MalformedJWT,
    MissingClaim,
    TokenExpired,
    TokenNotYetValid,
    UnknownKeyId,
    WrongAudience,
    WrongIssuer,
)
from ._time import require_aware

DEFAULT_ALGORITHMS = ("RS256", "ES256")
DEFAULT_LEEWAY = timedelta(seconds=30)
DEFAULT_SPIFFE_ID_TEMPLATE = "spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"
KUBERNETES_CLAIM = "kubernetes.io"
MAX_JWT_CHARS = 16 * 1024
REQUIRED_CLAIMS = ("iss", "aud", "sub", "exp", "nbf", "iat", KUBERNETES_CLAIM)

# alg -> (JWK kty, JWK crv or None). Symmetric (HS*) and "none" are absent on
# purpose: they can never be configured.
_ASYMMETRIC_ALGORITHMS: dict[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", "Ed25519"),
}
_MIN_RSA_BITS = 2048
_TEMPLATE_FIELDS = frozenset({"trust_domain", "namespace", "service_account"})
_DNS_LABEL_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_PRINTABLE_KID_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


@dataclass(frozen=True)
class JWTAttestorConfig:
    """Operator configuration for JWT attestation.

    ``jwks`` is the issuer's JWK Set as a dict (``{"keys": [...]}``); every key
    needs a ``kid``. ``spiffe_id_template`` may use ``{trust_domain}``,
    ``{namespace}`` and ``{service_account}``.
    """

    issuer: str
    audiences: tuple[str, ...]
    jwks: Mapping[str, Any] = field(repr=False)
    trust_domain: str
    allowed_algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    leeway: timedelta = DEFAULT_LEEWAY
    spiffe_id_template: str = DEFAULT_SPIFFE_ID_TEMPLATE


@dataclass(frozen=True)
class JWTAttestation:
    """A verified service-account token, mapped to the SPIFFE ID it earns."""

    spiffe_id: SpiffeId
    namespace: str
    service_account: str
    service_account_uid: str
    expires_at: datetime


class JWTAttestor:
    """Verifies projected service-account tokens against one configuration."""

    def __init__(self, config: JWTAttestorConfig) -> None:
        self._config = config
        self._algorithms = _check_algorithms(config.allowed_algorithms)
        if not config.issuer:
            raise InvalidAttestorConfig("issuer must not be empty")
        audiences: object = config.audiences  # a bare str would match per character
        if isinstance(audiences, str) or not audiences:
            raise InvalidAttestorConfig("audiences must be a non-empty list of strings")
        if config.leeway < timedelta(0):
            raise InvalidAttestorConfig("leeway must not be negative")
        try:
            validate_trust_domain(config.trust_domain)
        except InvalidSpiffeId as exc:
            raise InvalidAttestorConfig(f"trust domain: {exc.message}") from exc
        _check_template(config.spiffe_id_template, config.trust_domain)
        self._keys = _load_jwks(config.jwks, self._algorithms)

    @property
    def config(self) -> JWTAttestorConfig:
        return self._config

    def attest(self, token: str, *, now: datetime) -> JWTAttestation:
        """Verify ``token`` at ``now``; raise an AttestationError subclass if it fails."""
        now = require_aware(now)
        config = self._config
        if not isinstance(token, str) or not token or len(token) > MAX_JWT_CHARS:
            raise MalformedJWT("token is empty or too large")
        if token.count(".") != 2:
            raise MalformedJWT("token is not a compact JWS (header.payload.signature)")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise MalformedJWT("token header cannot be decoded") from exc
        key = self._key_for(header)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[key.algorithm_name],
                audience=list(config.audiences),
                issuer=config.issuer,
                options={
                    "require": list(REQUIRED_CLAIMS),
                    "verify_signature": True,
                    "verify_aud": True,
                    "verify_iss": True,
                    # Time claims are checked below against the injected clock.
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.InvalidSignatureError as exc:
            raise BadSignature("token signature does not verify") from exc
        except jwt.InvalidAlgorithmError as exc:
            raise DisallowedAlgorithm("token algorithm is not allowed for its key") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise MissingClaim(f"token lacks the required claim {exc.claim!r}") from exc
        except jwt.InvalidIssuerError as exc:
            raise WrongIssuer(f"token issuer is not {config.issuer!r}") from exc
        except jwt.InvalidAudienceError as exc:
            raise WrongAudience(f"token audience is not one of {list(config.audiences)!r}") from exc
        except jwt.DecodeError as exc:
            raise MalformedJWT("token cannot be decoded") from exc
        except jwt.InvalidKeyError as exc:
            raise BadSignature("token key is not acceptable") from exc
        except jwt.PyJWTError as exc:
            raise InvalidClaim("token claims are not valid") from exc
        expires_at = self._check_times(claims, now)
        return self._map(claims, expires_at)

    def _key_for(self, header: Mapping[str, Any]) -> jwt.PyJWK:
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            shown = f" {alg!r}" if alg in _ASYMMETRIC_ALGORITHMS or _is_forbidden(alg) else ""
            raise DisallowedAlgorithm(
                f"token algorithm{shown} is not allowed; allowed: {list(self._algorithms)}"
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or kid not in self._keys:
            shown = f" {kid!r}" if isinstance(kid, str) and _PRINTABLE_KID_RE.fullmatch(kid) else ""
            raise UnknownKeyId(f"token key id{shown} is not in the configured JWKS")
        key = self._keys[kid].get(alg)
        if key is None:
            raise DisallowedAlgorithm(f"key {kid!r} cannot verify {alg!r} tokens")
        return key

    def _check_times(self, claims: Mapping[str, Any], now: datetime) -> datetime:
        leeway = self._config.leeway.total_seconds()
        current = now.timestamp()
        times: dict[str, float] = {}
        for name in ("exp", "nbf", "iat"):
            value = claims[name]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidClaim(f"token claim {name!r} must be a number")
            times[name] = float(value)
        if times["exp"] <= current - leeway:
            raise TokenExpired("token has expired")
        if times["nbf"] > current + leeway:
            raise TokenNotYetValid("token is not valid yet (nbf)")
        if times["iat"] > current + leeway:
            raise TokenNotYetValid("token was issued in the future (iat)")
        return datetime.fromtimestamp(times["exp"], UTC)

    def _map(self, claims: Mapping[str, Any], expires_at: datetime) -> JWTAttestation:
        k8s = claims[KUBERNETES_CLAIM]
        if not isinstance(k8s, Mapping):
            raise InvalidClaim(f"token claim {KUBERNETES_CLAIM!r} must be an object")
        namespace = _required_str(k8s, "namespace", f"{KUBERNETES_CLAIM}.namespace")
        account = k8s.get("serviceaccount")
        if account is None:
            raise MissingClaim(f"token lacks the claim '{KUBERNETES_CLAIM}.serviceaccount'")
        if not isinstance(account, Mapping):
            raise InvalidClaim(f"token claim '{KUBERNETES_CLAIM}.serviceaccount' must be an object")
        name = _required_str(account, "name", f"{KUBERNETES_CLAIM}.serviceaccount.name")
        uid = _required_str(account, "uid", f"{KUBERNETES_CLAIM}.serviceaccount.uid")
        if _DNS_LABEL_RE.fullmatch(namespace) is None:
            raise InvalidClaim("token namespace is not a valid DNS label")
        if _DNS_LABEL_RE.fullmatch(name) is None:
            raise InvalidClaim("token service account name is not a valid DNS label")
        if claims["sub"] != f"system:serviceaccount:{namespace}:{name}":
            raise InvalidClaim("token 'sub' does not match its kubernetes.io service account")
        try:
            spiffe_id = SpiffeId.parse(
                self._config.spiffe_id_template.format(
                    trust_domain=self._config.trust_domain,
                    namespace=namespace,
                    service_account=name,
                )
            )
        except InvalidSpiffeId as exc:  # pragma: no cover - template checked at startup
            raise InvalidClaim("token does not map to a valid SPIFFE ID") from exc
        return JWTAttestation(
            spiffe_id=spiffe_id,
            namespace=namespace,
            service_account=name,
            service_account_uid=uid,
            expires_at=expires_at,
        )


def _is_forbidden(alg: object) -> bool:
    return isinstance(alg, str) and (alg.lower() == "none" or alg.upper().startswith("HS"))


def _required_str(container: Mapping[str, Any], key: str, path: str) -> str:
    value = container.get(key)
    if value is None:
        raise MissingClaim(f"token lacks the claim {path!r}")
    if not isinstance(value, str) or not value:
        raise InvalidClaim(f"token claim {path!r} must be a non-empty string")
    return value


def _check_algorithms(algorithms: Sequence[str]) -> tuple[str, ...]:
    if isinstance(algorithms, str) or not algorithms:
        raise InvalidAttestorConfig("allowed_algorithms must be a non-empty list")
    for alg in algorithms:
        if _is_forbidden(alg):
            raise InvalidAttestorConfig(f"algorithm {alg!r} is never allowed (no 'none', no HMAC)")
        if alg not in _ASYMMETRIC_ALGORITHMS:
            raise InvalidAttestorConfig(
                f"algorithm {alg!r} is not supported; use one of {sorted(_ASYMMETRIC_ALGORITHMS)}"
            )
    return tuple(dict.fromkeys(algorithms))


def _check_template(template: str, trust_domain: str) -> None:
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise InvalidAttestorConfig("spiffe_id_template is not a valid template") from exc
    for _, field_name, format_spec, conversion in parts:
        if field_name is None:
            continue
        if field_name not in _TEMPLATE_FIELDS or format_spec or conversion:
            raise InvalidAttestorConfig(
                f"spiffe_id_template may only use {sorted(_TEMPLATE_FIELDS)} placeholders"
            )
    try:
        sample = SpiffeId.parse(
            template.format(trust_domain=trust_domain, namespace="ns", service_account="sa")
        )
    except InvalidSpiffeId as exc:
        raise InvalidAttestorConfig(
            f"spiffe_id_template does not give a valid SPIFFE ID: {exc.message}"
        ) from exc
    if sample.trust_domain != trust_domain or sample.is_trust_domain_id:
        raise InvalidAttestorConfig(
            "spiffe_id_template must give a workload ID in the server's trust domain"
        )


def _load_jwks(
    jwks: Mapping[str, Any], algorithms: tuple[str, ...]
) -> dict[str, dict[str, jwt.PyJWK]]:
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(keys, list) or not keys:
        raise InvalidAttestorConfig("jwks must be a JWK Set with a non-empty 'keys' list")
    loaded: dict[str, dict[str, jwt.PyJWK]] = {}
    for index, jwk in enumerate(keys):
        if not isinstance(jwk, Mapping):
            raise InvalidAttestorConfig(f"jwks key {index} is not an object")
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidAttestorConfig(f"jwks key {index} has no 'kid'")
        if kid in loaded:
            raise InvalidAttestorConfig(f"jwks has two keys with kid {kid!r}")
        if _PRIVATE_JWK_MEMBERS & jwk.keys():
            raise InvalidAttestorConfig(f"jwks key {kid!r} holds private or symmetric key material")
        if jwk.get("use", "sig") != "sig":
            continue
        by_alg: dict[str, jwt.PyJWK] = {}
        for alg in algorithms:
            kty, crv = _ASYMMETRIC_ALGORITHMS[alg]
            if jwk.get("kty") != kty or (crv is not None and jwk.get("crv") != crv):
                continue
            if "alg" in jwk and jwk["alg"] != alg:
                continue
            try:
                key = jwt.PyJWK(dict(jwk), algorithm=alg)
            except jwt.PyJWTError as exc:
                raise InvalidAttestorConfig(f"jwks key {kid!r} cannot be loaded") from exc
            if kty == "RSA" and getattr(key.key, "key_size", 0) < _MIN_RSA_BITS:
                raise InvalidAttestorConfig(
                    f"jwks key {kid!r} is shorter than {_MIN_RSA_BITS} bits"
                )
            by_alg[alg] = key
        if by_alg:
            loaded[kid] = by_alg
    if not loaded:
        raise InvalidAttestorConfig("jwks has no signing key usable with the allowed algorithms")
    return loaded
