"""JWT attestation of Kubernetes projected service-account tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from secinfra_server.attest import (
    AttestationError,
    BadSignature,
    DisallowedAlgorithm,
    InvalidAttestorConfig,
    InvalidClaim,
    JWTAttestor,
    JWTAttestorConfig,
    MalformedJWT,
    MissingClaim,
    TokenExpired,
    TokenNotYetValid,
    UnknownKeyId,
    WrongAudience,
    WrongIssuer,
)
from secinfra_server.ca import SpiffeId

ISSUER = "https://kubernetes.default.svc.cluster.local"
AUDIENCE = "secinfra"


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def jwks(rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    rsa_jwk = RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True)
    ec_jwk = ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True)
    return {"keys": [{**rsa_jwk, "kid": "rsa-1", "use": "sig"}, {**ec_jwk, "kid": "ec-1"}]}


@pytest.fixture(scope="module")
def config(jwks: dict[str, Any]) -> JWTAttestorConfig:
    return JWTAttestorConfig(
        issuer=ISSUER, audiences=(AUDIENCE, "other"), jwks=jwks, trust_domain="example.org"
    )


@pytest.fixture(scope="module")
def attestor(config: JWTAttestorConfig) -> JWTAttestor:
    return JWTAttestor(config)


def claims_for(now: datetime, **overrides: Any) -> dict[str, Any]:
    t = int(now.timestamp())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": [AUDIENCE],
        "sub": "system:serviceaccount:prod:web",
        "exp": t + 600,
        "nbf": t - 10,
        "iat": t - 10,
        "kubernetes.io": {
            "namespace": "prod",
            "pod": {"name": "web-0", "uid": "p-uid"},
            "serviceaccount": {"name": "web", "uid": "sa-uid-1"},
        },
    }
    for name, value in overrides.items():
        claims[name.replace("_io", ".io")] = value
    return {k: v for k, v in claims.items() if v is not DROP}


DROP: Any = object()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    head = _b64(json.dumps(header).encode())
    body = _b64(json.dumps(claims).encode())
    return f"{head}.{body}.{_b64(signature)}"


class Keys:
    def __init__(self, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey) -> None:
        self.rsa = rsa_key
        self.ec = ec_key

    def rs256(self, claims: dict[str, Any], kid: str | None = "rsa-1") -> str:
        headers = {"kid": kid} if kid is not None else {}
        return jwt.encode(claims, self.rsa, algorithm="RS256", headers=headers)

    def es256(self, claims: dict[str, Any], kid: str = "ec-1") -> str:
        return jwt.encode(claims, self.ec, algorithm="ES256", headers={"kid": kid})


@pytest.fixture(scope="module")
def keys(rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey) -> Keys:
    return Keys(rsa_key, ec_key)


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_valid_token(attestor: JWTAttestor, keys: Keys, now: datetime, alg: str) -> None:
    claims = claims_for(now)
    token = keys.rs256(claims) if alg == "RS256" else keys.es256(claims)
    result = attestor.attest(token, now=now)
    assert result.spiffe_id == SpiffeId.parse("spiffe://example.org/ns/prod/sa/web")
    assert (result.namespace, result.service_account) == ("prod", "web")
    assert result.service_account_uid == "sa-uid-1"
    assert result.expires_at.timestamp() == claims["exp"]


def test_single_string_audience_and_custom_template(
    jwks: dict[str, Any], keys: Keys, now: datetime
) -> None:
    attestor = JWTAttestor(
        JWTAttestorConfig(
            issuer=ISSUER,
            audiences=("other", AUDIENCE),
            jwks=jwks,
            trust_domain="prod.example",
            spiffe_id_template="spiffe://{trust_domain}/k8s/{namespace}/{service_account}",
        )
    )
    token = keys.es256(claims_for(now, aud=AUDIENCE))
    assert str(attestor.attest(token, now=now).spiffe_id) == "spiffe://prod.example/k8s/prod/web"


def _impostor_signed(keys: Keys, now: datetime) -> str:
    impostor = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(claims_for(now), impostor, algorithm="ES256", headers={"kid": "ec-1"})


def _tampered_payload(keys: Keys, now: datetime) -> str:
    head, _, sig = keys.rs256(claims_for(now)).split(".")
    evil = claims_for(now, sub="system:serviceaccount:kube-system:admin")
    evil["kubernetes.io"]["namespace"] = "kube-system"
    return f"{head}.{_b64(json.dumps(evil).encode())}.{sig}"


def _hs256_with_public_key(keys: Keys, now: datetime) -> str:
    """The classic algorithm-confusion attack: HMAC keyed with the RSA public key."""
    public_pem = keys.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "kid": "rsa-1", "typ": "JWT"}
    unsigned = _unsigned(header, claims_for(now)).rsplit(".", 1)[0]
    signature = hmac.new(public_pem, unsigned.encode(), hashlib.sha256).digest()
    return f"{unsigned}.{_b64(signature)}"


TokenFactory = Callable[[Keys, datetime], str]

FAILURES: list[tuple[str, TokenFactory, timedelta, type[AttestationError], str]] = [
    (
        "wrong-issuer",
        lambda k, n: k.rs256(claims_for(n, iss="https://evil")),
        timedelta(0),
        WrongIssuer,
        "issuer",
    ),
    (
        "wrong-audience",
        lambda k, n: k.rs256(claims_for(n, aud=["vault"])),
        timedelta(0),
        WrongAudience,
        "audience",
    ),
    ("bad-signature", _impostor_signed, timedelta(0), BadSignature, "signature"),
    ("tampered-payload", _tampered_payload, timedelta(0), BadSignature, "signature"),
    (
        "expired",
        lambda k, n: k.rs256(claims_for(n)),
        timedelta(seconds=631),
        TokenExpired,
        "expired",
    ),
    (
        "not-yet-valid-nbf",
        lambda k, n: k.rs256(claims_for(n, nbf=int(n.timestamp()) + 120)),
        timedelta(0),
        TokenNotYetValid,
        "nbf",
    ),
    (
        "issued-in-future-iat",
        lambda k, n: k.rs256(claims_for(n, iat=int(n.timestamp()) + 120)),
        timedelta(0),
        TokenNotYetValid,
        "iat",
    ),
    (
        "alg-none",
        lambda k, n: _unsigned({"alg": "none", "kid": "rsa-1"}, claims_for(n)),
        timedelta(0),
        DisallowedAlgorithm,
        "'none'",
    ),
    (
        "alg-none-uppercase",
        lambda k, n: _unsigned({"alg": "NONE", "kid": "rsa-1"}, claims_for(n)),
        timedelta(0),
        DisallowedAlgorithm,
        "not allowed",
    ),
    (
        "alg-hs256-key-confusion",
        _hs256_with_public_key,
        timedelta(0),
        DisallowedAlgorithm,
        "'HS256'",
    ),
    (
        "alg-not-configured",
        lambda k, n: jwt.encode(
            claims_for(n),
            ec.generate_private_key(ec.SECP384R1()),
            algorithm="ES384",
            headers={"kid": "ec-1"},
        ),
        timedelta(0),
        DisallowedAlgorithm,
        "'ES384'",
    ),
    (
        "alg-does-not-fit-key",
        lambda k, n: jwt.encode(claims_for(n), k.rsa, algorithm="RS256", headers={"kid": "ec-1"}),
        timedelta(0),
        DisallowedAlgorithm,
        "cannot verify",
    ),
    (
        "unknown-kid",
        lambda k, n: k.rs256(claims_for(n), kid="rsa-2"),
        timedelta(0),
        UnknownKeyId,
        "'rsa-2'",
    ),
    (
        "missing-kid",
        lambda k, n: k.rs256(claims_for(n), kid=None),
        timedelta(0),
        UnknownKeyId,
        "key id",
    ),
    (
        "sub-mismatch",
        lambda k, n: k.rs256(claims_for(n, sub="system:serviceaccount:prod:admin")),
        timedelta(0),
        InvalidClaim,
        "sub",
    ),
    (
        "exp-not-a-number",
        lambda k, n: k.rs256(claims_for(n, exp="tomorrow")),
        timedelta(0),
        InvalidClaim,
        "exp",
    ),
    (
        "kubernetes-claim-not-object",
        lambda k, n: k.rs256(claims_for(n, kubernetes_io="prod")),
        timedelta(0),
        InvalidClaim,
        "kubernetes.io",
    ),
]


def _without(claim: str) -> TokenFactory:
    return lambda k, n: k.rs256(claims_for(n, **{claim: DROP}))


def _in_namespace(namespace: str) -> TokenFactory:
    sub = f"system:serviceaccount:{namespace}:web"
    return lambda k, n: k.rs256(claims_for(n, sub=sub, kubernetes_io=_k8s(namespace=namespace)))


FAILURES += [
    (
        f"missing-{claim}",
        _without(claim),
        timedelta(0),
        MissingClaim,
        claim.replace("_io", ".io"),
    )
    for claim in ("iss", "aud", "sub", "exp", "nbf", "iat", "kubernetes_io")
]


def _k8s(namespace: Any = "prod", name: Any = "web", uid: Any = "u") -> dict[str, Any]:
    account = {k: v for k, v in {"name": name, "uid": uid}.items() if v is not DROP}
    claim: dict[str, Any] = {"namespace": namespace, "serviceaccount": account}
    return {k: v for k, v in claim.items() if v is not DROP}


FAILURES += [
    (
        "missing-namespace",
        lambda k, n: k.rs256(claims_for(n, kubernetes_io=_k8s(namespace=DROP))),
        timedelta(0),
        MissingClaim,
        "namespace",
    ),
    (
        "missing-serviceaccount-name",
        lambda k, n: k.rs256(claims_for(n, kubernetes_io=_k8s(name=DROP))),
        timedelta(0),
        MissingClaim,
        "serviceaccount.name",
    ),
    (
        "missing-serviceaccount-uid",
        lambda k, n: k.rs256(claims_for(n, kubernetes_io=_k8s(uid=DROP))),
        timedelta(0),
        MissingClaim,
        "serviceaccount.uid",
    ),
    (
        "missing-serviceaccount",
        lambda k, n: k.rs256(claims_for(n, kubernetes_io={"namespace": "prod"})),
        timedelta(0),
        MissingClaim,
        "serviceaccount",
    ),
]
FAILURES += [
    (
        f"namespace-{label}",
        _in_namespace(ns),
        timedelta(0),
        InvalidClaim,
        "DNS label",
    )
    for label, ns in (
        ("uppercase", "Prod"),
        ("dot-dot", ".."),
        ("slash", "a/b"),
        ("too-long", "a" * 64),
        ("leading-dash", "-a"),
        ("dots", "a.b"),
    )
]
FAILURES += [
    (
        "sa-name-with-slash",
        lambda k, n: k.rs256(
            claims_for(
                n, sub="system:serviceaccount:prod:x/../y", kubernetes_io=_k8s(name="x/../y")
            )
        ),
        timedelta(0),
        InvalidClaim,
        "DNS label",
    ),
    ("empty", lambda k, n: "", timedelta(0), MalformedJWT, "empty"),
    ("not-a-jwt", lambda k, n: "hello", timedelta(0), MalformedJWT, "compact"),
    ("garbage-header", lambda k, n: "e30x.e30.e30", timedelta(0), MalformedJWT, "header"),
    (
        "payload-not-json",
        lambda k, n: jwt.api_jws.encode(
            b"not json", k.rsa, algorithm="RS256", headers={"kid": "rsa-1"}
        ),
        timedelta(0),
        MalformedJWT,
        "decoded",
    ),
]


@pytest.mark.parametrize(
    ("make", "shift", "error", "fragment"),
    [pytest.param(m, s, e, f, id=name) for name, m, s, e, f in FAILURES],
)
def test_rejected(
    attestor: JWTAttestor,
    keys: Keys,
    now: datetime,
    make: TokenFactory,
    shift: timedelta,
    error: type[AttestationError],
    fragment: str,
) -> None:
    token = make(keys, now)
    with pytest.raises(error) as caught:
        attestor.attest(token, now=now + shift)
    exc = caught.value
    assert fragment in str(exc)
    assert str(exc).startswith("secinfra: attest: ")
    expected = "invalid_argument" if isinstance(exc, MalformedJWT) else "unauthenticated"
    assert exc.code == expected
    # Never the token (nor its signature) in the message, repr or cause chain.
    texts = [str(exc), repr(exc)]
    cause = exc.__cause__
    while cause is not None:
        texts += [str(cause), repr(cause)]
        cause = cause.__cause__
    for part in [token, *[p for p in token.split(".") if len(p) > 16]]:
        if part:
            assert all(part not in text for text in texts)


@pytest.mark.parametrize(
    ("shift", "ok"),
    [
        pytest.param(timedelta(seconds=600 + 29), True, id="exp-within-leeway"),
        pytest.param(timedelta(seconds=600 + 30), False, id="exp-at-leeway"),
    ],
)
def test_leeway(
    attestor: JWTAttestor, keys: Keys, now: datetime, shift: timedelta, ok: bool
) -> None:
    token = keys.rs256(claims_for(now))
    if ok:
        attestor.attest(token, now=now + shift)
    else:
        with pytest.raises(TokenExpired):
            attestor.attest(token, now=now + shift)


def test_nbf_within_leeway(attestor: JWTAttestor, keys: Keys, now: datetime) -> None:
    future = int(now.timestamp()) + 20
    attestor.attest(keys.rs256(claims_for(now, nbf=future, iat=future)), now=now)


# --- configuration ----------------------------------------------------------------


def _rsa_private_jwk() -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {**RSAAlgorithm.to_jwk(key, as_dict=True), "kid": "leaked"}


def _short_rsa_jwk() -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    return {**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "short"}


CONFIG_ERRORS: list[tuple[str, dict[str, Any], str]] = [
    ("alg-none", {"allowed_algorithms": ("RS256", "none")}, "never allowed"),
    ("alg-hs256", {"allowed_algorithms": ("HS256",)}, "never allowed"),
    ("alg-unknown", {"allowed_algorithms": ("XY999",)}, "not supported"),
    ("no-algorithms", {"allowed_algorithms": ()}, "non-empty"),
    ("empty-issuer", {"issuer": ""}, "issuer"),
    ("no-audiences", {"audiences": ()}, "audiences"),
    ("audience-as-str", {"audiences": "secinfra"}, "audiences"),
    ("negative-leeway", {"leeway": timedelta(seconds=-1)}, "leeway"),
    ("bad-trust-domain", {"trust_domain": "Example.org"}, "trust domain"),
    (
        "template-unknown-field",
        {"spiffe_id_template": "spiffe://{trust_domain}/{node}"},
        "placeholders",
    ),
    (
        "template-format-spec",
        {"spiffe_id_template": "spiffe://{trust_domain}/{namespace!r}"},
        "placeholders",
    ),
    (
        "template-other-trust-domain",
        {"spiffe_id_template": "spiffe://evil.org/{namespace}"},
        "trust domain",
    ),
    (
        "template-invalid-id",
        {"spiffe_id_template": "spiffe://{trust_domain}//{namespace}"},
        "valid SPIFFE ID",
    ),
    ("jwks-empty", {"jwks": {"keys": []}}, "non-empty"),
    ("jwks-not-a-set", {"jwks": {"kty": "RSA"}}, "non-empty"),
    ("jwks-key-without-kid", {"jwks": "strip-kid"}, "no 'kid'"),
    ("jwks-duplicate-kid", {"jwks": "duplicate-kid"}, "two keys"),
    ("jwks-private-key", {"jwks": "private"}, "private"),
    ("jwks-short-rsa", {"jwks": "short-rsa"}, "shorter than 2048"),
    (
        "jwks-symmetric-key",
        {"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]}},
        "symmetric",
    ),
    ("jwks-no-usable-key", {"jwks": "ec-only", "allowed_algorithms": ("RS256",)}, "no signing key"),
]


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [pytest.param(o, f, id=name) for name, o, f in CONFIG_ERRORS],
)
def test_config_errors(
    config: JWTAttestorConfig, jwks: dict[str, Any], overrides: dict[str, Any], fragment: str
) -> None:
    special = overrides.get("jwks")
    if special == "strip-kid":
        overrides["jwks"] = {"keys": [{k: v for k, v in jwks["keys"][0].items() if k != "kid"}]}
    elif special == "duplicate-kid":
        overrides["jwks"] = {"keys": [jwks["keys"][0], jwks["keys"][0]]}
    elif special == "private":
        overrides["jwks"] = {"keys": [_rsa_private_jwk()]}
    elif special == "short-rsa":
        overrides["jwks"] = {"keys": [_short_rsa_jwk()]}
    elif special == "ec-only":
        overrides["jwks"] = {"keys": [jwks["keys"][1]]}
    fields = {**config.__dict__, **overrides}
    with pytest.raises(InvalidAttestorConfig, match=fragment) as caught:
        JWTAttestor(JWTAttestorConfig(**fields))
    assert caught.value.code == "invalid_argument"


def test_config_repr_hides_jwks(config: JWTAttestorConfig) -> None:
    assert "keys" not in repr(config)


def test_jwk_alg_member_pins_algorithm(jwks: dict[str, Any], keys: Keys, now: datetime) -> None:
    pinned = {"keys": [{**jwks["keys"][0], "alg": "PS256"}, jwks["keys"][1]]}
    attestor = JWTAttestor(
        JWTAttestorConfig(
            issuer=ISSUER,
            audiences=(AUDIENCE,),
            jwks=pinned,
            trust_domain="example.org",
            allowed_algorithms=("RS256", "PS256", "ES256"),
        )
    )
    with pytest.raises(DisallowedAlgorithm):
        attestor.attest(keys.rs256(claims_for(now)), now=now)
    token = jwt.encode(claims_for(now), keys.rsa, algorithm="PS256", headers={"kid": "rsa-1"})
    assert attestor.attest(token, now=now).service_account == "web"
