"""JWK Sets and algorithms: which keys and algorithms a JWT attestor accepts.

``none`` and HMAC (HS*) can never be configured; RSA keys shorter than 2048
bits, private or symmetric key material, and two keys with one ``kid`` are
refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

import jwt

from ._errors import InvalidAttestorConfig

# alg -> (JWK kty, JWK crv or None). Symmetric (HS*) and "none" are absent on
# purpose: they can never be configured.
ASYMMETRIC_ALGORITHMS: dict[str, tuple[str, str | None]] = {
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
_MIN_RSA_BITS: Final = 2048
PRINTABLE_KID_RE: Final = re.compile(r"[A-Za-z0-9._-]{1,128}")
_PRIVATE_JWK_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def is_forbidden(alg: object) -> bool:
    return isinstance(alg, str) and (alg.lower() == "none" or alg.upper().startswith("HS"))


def check_algorithms(algorithms: Sequence[str]) -> tuple[str, ...]:
    if isinstance(algorithms, str) or not algorithms:
        raise InvalidAttestorConfig("allowed_algorithms must be a non-empty list")
    for alg in algorithms:
        if is_forbidden(alg):
            raise InvalidAttestorConfig(f"algorithm {alg!r} is never allowed (no 'none', no HMAC)")
        if alg not in ASYMMETRIC_ALGORITHMS:
            raise InvalidAttestorConfig(
                f"algorithm {alg!r} is not supported; use one of {sorted(ASYMMETRIC_ALGORITHMS)}"
            )
    return tuple(dict.fromkeys(algorithms))


def load_jwks(
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
            kty, crv = ASYMMETRIC_ALGORITHMS[alg]
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
