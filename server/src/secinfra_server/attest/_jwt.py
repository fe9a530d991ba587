"""JWT attestation: Kubernetes projected service-account tokens.

A :class:`JWTAttestor` is built once from a :class:`JWTAttestorConfig` (issuer,
audiences, where its keys come from, allowed algorithms, leeway, mapping rules).
Building it validates everything an operator could get wrong, so a bad
configuration fails at startup rather than on the first enrolment.
:class:`KubernetesAttestors` holds several (one per cluster) and picks one by
the token's ``iss``.

:func:`verify_jwt` checks, in order: the token is a compact JWS (MalformedJWT);
its ``alg`` is allowed (DisallowedAlgorithm: ``none`` and HS* are never allowed,
whatever the configuration says); its ``kid`` is one of the issuer's keys, after
one rate-limited refresh of a discovered JWK Set (UnknownKeyId); the signature
(BadSignature); the required claims are present (MissingClaim); issuer
(WrongIssuer) and audience (WrongAudience); ``exp``/``nbf``/``iat`` against the
injected ``now`` with leeway (TokenExpired, TokenNotYetValid).

:meth:`JWTAttestor.attest` then needs ``sub`` and ``kubernetes.io``: namespace
and service account are DNS labels and ``sub`` is
``system:serviceaccount:<ns>:<sa>`` (InvalidClaim); a pod, when the token is
bound to one, has a name and uid. The first mapping rule whose namespace and
service-account patterns match gives the SPIFFE ID (NotMapped if none does).
"""

from __future__ import annotations

import fnmatch
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import jwt

from ..ca import InvalidSpiffeId, SpiffeId, validate_trust_domain
from ._errors import (
    BadSignature,
    DisallowedAlgorithm,
    InvalidAttestorConfig,
    InvalidClaim,
    MalformedJWT,
    MissingClaim,
    NotMapped,
    TokenExpired,
    TokenNotYetValid,
    UnknownIssuer,
    UnknownKeyId,
    WrongAudience,
    WrongIssuer,
)
from ._jwks import KeySource, StaticJwks
from ._keys import ASYMMETRIC_ALGORITHMS, PRINTABLE_KID_RE, check_algorithms, is_forbidden
from ._time import require_aware

DEFAULT_ALGORITHMS: Final = ("RS256", "ES256")
DEFAULT_LEEWAY: Final = timedelta(seconds=30)
DEFAULT_SPIFFE_ID_TEMPLATE: Final = "spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"
KUBERNETES_CLAIM: Final = "kubernetes.io"
MAX_JWT_CHARS: Final = 16 * 1024
TIME_CLAIMS: Final = ("exp", "nbf", "iat")
REQUIRED_CLAIMS: Final = ("iss", "aud", "sub", "exp", "nbf", "iat", KUBERNETES_CLAIM)
#: Placeholders a mapping rule's SPIFFE ID template may use.
TEMPLATE_FIELDS: Final = frozenset(
    {"trust_domain", "cluster", "namespace", "service_account", "pod"}
)
_DNS_LABEL_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN_RE = re.compile(r"(?=.{1,253}$)[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
_PATTERN_RE = re.compile(r"[a-z0-9*?-]{1,63}")
_SAMPLE = {"cluster": "cluster", "namespace": "ns", "service_account": "sa", "pod": "pod"}


@dataclass(frozen=True)
class MappingRule:
    """Which tokens get which SPIFFE ID: glob patterns (``*``, ``?``) over the
    namespace and service account, and a template over :data:`TEMPLATE_FIELDS`.
    A template using ``{pod}`` matches only tokens bound to a pod."""

    spiffe_id_template: str
    namespace: str = "*"
    service_account: str = "*"

    def matches(self, namespace: str, service_account: str) -> bool:
        return fnmatch.fnmatchcase(namespace, self.namespace) and fnmatch.fnmatchcase(
            service_account, self.service_account
        )

    @property
    def needs_pod(self) -> bool:
        return "pod" in _template_fields(self.spiffe_id_template)


@dataclass(frozen=True, kw_only=True)
class JWTAttestorConfig:
    """Operator configuration for one Kubernetes cluster (one token issuer).

    The keys come from ``jwks`` (a JWK Set as a dict, ``{"keys": [...]}``, every
    key with a ``kid``) or ``key_source`` (e.g. :class:`DiscoveredJwks`). With no
    ``rules``, every service account maps through ``spiffe_id_template``.
    """

    issuer: str
    audiences: tuple[str, ...]
    trust_domain: str
    jwks: Mapping[str, Any] | None = field(default=None, repr=False)
    key_source: KeySource | None = field(default=None, repr=False, compare=False)
    name: str = "default"
    allowed_algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    leeway: timedelta = DEFAULT_LEEWAY
    spiffe_id_template: str = DEFAULT_SPIFFE_ID_TEMPLATE
    rules: tuple[MappingRule, ...] = ()


@dataclass(frozen=True)
class JWTAttestation:
    """A verified service-account token, mapped to the SPIFFE ID it earns."""

    spiffe_id: SpiffeId
    cluster: str
    namespace: str
    service_account: str
    service_account_uid: str
    pod: str | None
    expires_at: datetime


@dataclass(frozen=True)
class Expectations:
    """What :func:`verify_jwt` requires of a token besides its signature."""

    issuer: str
    audiences: tuple[str, ...]
    algorithms: tuple[str, ...]
    leeway: timedelta
    required_claims: tuple[str, ...]


def check_issuer_settings(
    issuer: str, audiences: object, algorithms: Sequence[str], leeway: timedelta
) -> tuple[str, ...]:
    """Validate what every JWT issuer's configuration has; the algorithms, deduplicated."""
    checked = check_algorithms(algorithms)
    if not issuer:
        raise InvalidAttestorConfig("issuer must not be empty")
    if isinstance(audiences, str) or not audiences:  # a bare str would match per character
        raise InvalidAttestorConfig(
            f"issuer {issuer!r}: audiences must be a non-empty list of strings"
        )
    if leeway < timedelta(0):
        raise InvalidAttestorConfig("leeway must not be negative")
    return checked


class JWTAttestor:
    """Verifies projected service-account tokens of one cluster."""

    def __init__(self, config: JWTAttestorConfig) -> None:
        self._config = config
        algorithms = check_issuer_settings(
            config.issuer, config.audiences, config.allowed_algorithms, config.leeway
        )
        try:
            validate_trust_domain(config.trust_domain)
        except InvalidSpiffeId as exc:
            raise InvalidAttestorConfig(f"trust domain: {exc.message}") from exc
        if _DNS_LABEL_RE.fullmatch(config.name) is None:
            raise InvalidAttestorConfig(
                f"cluster name {config.name!r} must be a DNS label (a-z, 0-9, -)"
            )
        self._rules = config.rules or (MappingRule(config.spiffe_id_template),)
        for rule in self._rules:
            _check_rule(rule, config.trust_domain)
        if (config.jwks is None) == (config.key_source is None):
            raise InvalidAttestorConfig(
                f"issuer {config.issuer!r}: give exactly one of jwks or key_source"
            )
        self._keys: KeySource = (
            config.key_source
            if config.key_source is not None
            else StaticJwks(config.jwks or {}, algorithms)
        )
        self._expect = Expectations(
            issuer=config.issuer,
            audiences=tuple(config.audiences),
            algorithms=algorithms,
            leeway=config.leeway,
            required_claims=REQUIRED_CLAIMS,
        )

    @property
    def config(self) -> JWTAttestorConfig:
        return self._config

    def attest(self, token: str, *, now: datetime) -> JWTAttestation:
        """Verify ``token`` at ``now``; raise an AttestationError subclass if it fails."""
        claims = verify_jwt(token, self._keys, self._expect, now=now)
        return self._map(claims)

    def _map(self, claims: Mapping[str, Any]) -> JWTAttestation:
        k8s = claims[KUBERNETES_CLAIM]
        if not isinstance(k8s, Mapping):
            raise InvalidClaim(f"token claim {KUBERNETES_CLAIM!r} must be an object")
        namespace = _required_str(k8s, "namespace", f"{KUBERNETES_CLAIM}.namespace")
        account = _required_map(k8s, "serviceaccount")
        name = _required_str(account, "name", f"{KUBERNETES_CLAIM}.serviceaccount.name")
        uid = _required_str(account, "uid", f"{KUBERNETES_CLAIM}.serviceaccount.uid")
        if _DNS_LABEL_RE.fullmatch(namespace) is None:
            raise InvalidClaim("token namespace is not a valid DNS label")
        if _DNS_LABEL_RE.fullmatch(name) is None:
            raise InvalidClaim("token service account name is not a valid DNS label")
        if claims["sub"] != f"system:serviceaccount:{namespace}:{name}":
            raise InvalidClaim("token 'sub' does not match its kubernetes.io service account")
        pod = None
        if k8s.get("pod") is not None:
            pod_claim = _required_map(k8s, "pod")
            pod = _required_str(pod_claim, "name", f"{KUBERNETES_CLAIM}.pod.name")
            _required_str(pod_claim, "uid", f"{KUBERNETES_CLAIM}.pod.uid")
            if _DNS_SUBDOMAIN_RE.fullmatch(pod) is None:
                raise InvalidClaim("token pod name is not a valid DNS subdomain")
        rule = self._rule_for(namespace, name, pod)
        values = {
            "trust_domain": self._config.trust_domain,
            "cluster": self._config.name,
            "namespace": namespace,
            "service_account": name,
            "pod": pod or "",
        }
        try:
            spiffe_id = SpiffeId.parse(rule.spiffe_id_template.format(**values))
        except InvalidSpiffeId as exc:
            raise InvalidClaim("token does not map to a valid SPIFFE ID") from exc
        return JWTAttestation(
            spiffe_id=spiffe_id,
            cluster=self._config.name,
            namespace=namespace,
            service_account=name,
            service_account_uid=uid,
            pod=pod,
            expires_at=datetime.fromtimestamp(float(claims["exp"]), UTC),
        )

    def _rule_for(self, namespace: str, account: str, pod: str | None) -> MappingRule:
        for rule in self._rules:
            if rule.matches(namespace, account) and (pod is not None or not rule.needs_pod):
                return rule
        raise NotMapped(
            f"no mapping rule of cluster {self._config.name!r} gives service account"
            f" {namespace}/{account} an identity"
        )


class KubernetesAttestors:
    """Several clusters' attestors; a token goes to the one its ``iss`` names."""

    def __init__(self, attestors: Sequence[JWTAttestor]) -> None:
        by_issuer: dict[str, JWTAttestor] = {}
        names: set[str] = set()
        for attestor in attestors:
            config = attestor.config
            if config.issuer in by_issuer:
                raise InvalidAttestorConfig(f"issuer {config.issuer!r} is configured twice")
            if config.name in names:
                raise InvalidAttestorConfig(f"cluster name {config.name!r} is used twice")
            by_issuer[config.issuer] = attestor
            names.add(config.name)
        if not by_issuer:
            raise InvalidAttestorConfig("no JWT issuer is configured")
        self._by_issuer = by_issuer

    @property
    def issuers(self) -> tuple[str, ...]:
        return tuple(self._by_issuer)

    def attest(self, token: str, *, now: datetime) -> JWTAttestation:
        """Verify ``token`` with the attestor of its issuer."""
        _check_shape(token)
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise MalformedJWT("token payload cannot be decoded") from exc
        issuer = unverified.get("iss")
        attestor = self._by_issuer.get(issuer) if isinstance(issuer, str) else None
        if attestor is None:
            # The issuer is not echoed: it is the caller's input, not configuration.
            raise UnknownIssuer("token issuer is not one of the configured issuers")
        return attestor.attest(token, now=now)


def verify_jwt(
    token: str, keys: KeySource, expect: Expectations, *, now: datetime
) -> dict[str, Any]:
    """Verify a JWT's signature and standard claims; its claims if it passes."""
    now = require_aware(now)
    _check_shape(token)
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise MalformedJWT("token header cannot be decoded") from exc
    key = _key_for(header, keys, expect.algorithms)
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key,
            algorithms=[key.algorithm_name],
            audience=list(expect.audiences),
            issuer=expect.issuer,
            options={
                "require": list(expect.required_claims),
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
        raise WrongIssuer(f"token issuer is not {expect.issuer!r}") from exc
    except jwt.InvalidAudienceError as exc:
        raise WrongAudience(f"token audience is not one of {list(expect.audiences)!r}") from exc
    except jwt.DecodeError as exc:
        raise MalformedJWT("token cannot be decoded") from exc
    except jwt.InvalidKeyError as exc:
        raise BadSignature("token key is not acceptable") from exc
    except jwt.PyJWTError as exc:
        raise InvalidClaim("token claims are not valid") from exc
    _check_times(claims, now, expect)
    return claims


def _check_shape(token: object) -> None:
    if not isinstance(token, str) or not token or len(token) > MAX_JWT_CHARS:
        raise MalformedJWT("token is empty or too large")
    if token.count(".") != 2:
        raise MalformedJWT("token is not a compact JWS (header.payload.signature)")


def _key_for(header: Mapping[str, Any], keys: KeySource, algorithms: tuple[str, ...]) -> jwt.PyJWK:
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in algorithms:
        shown = f" {alg!r}" if alg in ASYMMETRIC_ALGORITHMS or is_forbidden(alg) else ""
        raise DisallowedAlgorithm(
            f"token algorithm{shown} is not allowed; allowed: {list(algorithms)}"
        )
    kid = header.get("kid")
    printable = isinstance(kid, str) and PRINTABLE_KID_RE.fullmatch(kid) is not None
    held = keys.keys()
    if not isinstance(kid, str) or kid not in held:
        # The issuer may have rotated its keys: look once more (rate-limited).
        if printable and keys.refresh_for_unknown_kid():
            held = keys.keys()
        if not isinstance(kid, str) or kid not in held:
            shown = f" {kid!r}" if printable else ""
            raise UnknownKeyId(f"token key id{shown} is not one of the issuer's keys")
    key = held[kid].get(alg)
    if key is None:
        raise DisallowedAlgorithm(f"key {kid!r} cannot verify {alg!r} tokens")
    return key


def _check_times(claims: Mapping[str, Any], now: datetime, expect: Expectations) -> None:
    leeway = expect.leeway.total_seconds()
    current = now.timestamp()
    times: dict[str, float] = {}
    for name in TIME_CLAIMS:
        if name not in claims:
            continue
        value = claims[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidClaim(f"token claim {name!r} must be a number")
        times[name] = float(value)
    if "exp" not in times:
        raise MissingClaim("token lacks the required claim 'exp'")
    if times["exp"] <= current - leeway:
        raise TokenExpired("token has expired")
    if times.get("nbf", current) > current + leeway:
        raise TokenNotYetValid("token is not valid yet (nbf)")
    if times.get("iat", current) > current + leeway:
        raise TokenNotYetValid("token was issued in the future (iat)")


def _required_str(container: Mapping[str, Any], key: str, path: str) -> str:
    value = container.get(key)
    if value is None:
        raise MissingClaim(f"token lacks the claim {path!r}")
    if not isinstance(value, str) or not value:
        raise InvalidClaim(f"token claim {path!r} must be a non-empty string")
    return value


def _required_map(k8s: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = k8s.get(key)
    if value is None:
        raise MissingClaim(f"token lacks the claim '{KUBERNETES_CLAIM}.{key}'")
    if not isinstance(value, Mapping):
        raise InvalidClaim(f"token claim '{KUBERNETES_CLAIM}.{key}' must be an object")
    return value


def _template_fields(template: str) -> set[str]:
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise InvalidAttestorConfig("spiffe_id_template is not a valid template") from exc
    found: set[str] = set()
    for _, field_name, format_spec, conversion in parts:
        if field_name is None:
            continue
        if field_name not in TEMPLATE_FIELDS or format_spec or conversion:
            raise InvalidAttestorConfig(
                f"spiffe_id_template may only use {sorted(TEMPLATE_FIELDS)} placeholders"
            )
        found.add(field_name)
    return found


def _check_rule(rule: MappingRule, trust_domain: str) -> None:
    for name, pattern in (("namespace", rule.namespace), ("service_account", rule.service_account)):
        if not isinstance(pattern, str) or _PATTERN_RE.fullmatch(pattern) is None:
            raise InvalidAttestorConfig(
                f"mapping rule {name} {pattern!r} must be a DNS label pattern (a-z, 0-9, -, *, ?)"
            )
    template = rule.spiffe_id_template
    _template_fields(template)
    try:
        sample = SpiffeId.parse(template.format(trust_domain=trust_domain, **_SAMPLE))
    except InvalidSpiffeId as exc:
        raise InvalidAttestorConfig(
            f"spiffe_id_template does not give a valid SPIFFE ID: {exc.message}"
        ) from exc
    if sample.trust_domain != trust_domain or sample.is_trust_domain_id:
        raise InvalidAttestorConfig(
            "spiffe_id_template must give a workload ID in the server's trust domain"
        )
