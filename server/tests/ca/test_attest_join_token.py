"""Join tokens: format, hashing, single use, constant-time compare, no leaks."""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime, timedelta

import pytest

from secinfra_server.attest import (
    AttestationError,
    InvalidArgument,
    JoinTokenExpired,
    JoinTokenMismatch,
    JoinTokenRecord,
    JoinTokenUsed,
    MalformedJoinToken,
    UnknownJoinToken,
    generate_join_token,
    join_token_id,
    verify_join_token,
)
from secinfra_server.ca import InvalidSpiffeId, SpiffeId

WORKLOAD = "spiffe://example.org/ns/prod/sa/web"
TOKEN_RE = re.compile(r"sjt_([0-9a-f]{32})\.([A-Za-z0-9_-]{43})")


def _store(*records: JoinTokenRecord) -> dict[str, JoinTokenRecord]:
    return {r.id: r for r in records}


def test_generate(now: datetime) -> None:
    token, record = generate_join_token(WORKLOAD, now=now, ttl=timedelta(minutes=10))
    match = TOKEN_RE.fullmatch(token)
    assert match is not None
    token_id, secret = match.groups()
    assert len(secret) * 6 >= 256  # >= 256 bits of entropy, URL-safe
    assert record.id == token_id == join_token_id(token)
    assert record.secret_sha256 == hashlib.sha256(secret.encode()).digest()
    assert record.spiffe_id == SpiffeId.parse(WORKLOAD)
    assert (record.created_at, record.expires_at) == (now, now + timedelta(minutes=10))
    assert not record.used
    assert record.used_at is None
    for text in (repr(record), str(record)):
        assert secret not in text
        assert record.secret_sha256.hex() not in text
        assert "secret_sha256" not in text


def test_tokens_are_unique(now: datetime) -> None:
    tokens = {generate_join_token(WORKLOAD, now=now)[0] for _ in range(50)}
    assert len(tokens) == 50


def test_verify_valid(now: datetime) -> None:
    token, record = generate_join_token(WORKLOAD, now=now)
    store = _store(record)
    assert verify_join_token(token, store.get, now + timedelta(minutes=59)) == record


def _wrong_secret(token: str) -> str:
    head, _, secret = token.partition(".")
    flipped = ("A" if secret[0] != "A" else "B") + secret[1:]
    return f"{head}.{flipped}"


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("unknown-id", UnknownJoinToken),
        ("wrong-secret", JoinTokenMismatch),
        ("expired", JoinTokenExpired),
        ("used", JoinTokenUsed),
        ("used-and-wrong-secret", JoinTokenMismatch),
        ("expired-and-wrong-secret", JoinTokenMismatch),
    ],
)
def test_verify_rejects(now: datetime, case: str, error: type[AttestationError]) -> None:
    token, record = generate_join_token(WORKLOAD, now=now, ttl=timedelta(minutes=5))
    store = _store(record)
    at = now
    presented = token
    if case == "unknown-id":
        store = {}
    if "wrong-secret" in case:
        presented = _wrong_secret(token)
    if case.startswith("expired"):
        at = record.expires_at
    if case.startswith("used"):
        store = _store(record.mark_used(now))
    with pytest.raises(error) as caught:
        verify_join_token(presented, store.get, at)
    _assert_no_leak(caught.value, token, presented)
    assert caught.value.code == "unauthenticated"


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda t: "", id="empty"),
        pytest.param(lambda t: t.removeprefix("sjt_"), id="no-prefix"),
        pytest.param(lambda t: t.replace(".", "", 1), id="no-dot"),
        pytest.param(lambda t: t + "x", id="secret-too-long"),
        pytest.param(lambda t: t[:-1], id="secret-too-short"),
        pytest.param(lambda t: t.upper(), id="uppercase"),
        pytest.param(lambda t: t + "\n", id="trailing-newline"),
        pytest.param(lambda t: t * 3, id="oversized"),
        pytest.param(lambda t: "Bearer " + t, id="with-scheme"),
    ],
)
def test_malformed(now: datetime, make: object) -> None:
    assert callable(make)
    token, record = generate_join_token(WORKLOAD, now=now)
    presented = make(token)
    with pytest.raises(MalformedJoinToken) as caught:
        verify_join_token(presented, _store(record).get, now)
    assert caught.value.code == "invalid_argument"
    _assert_no_leak(caught.value, token, presented)


def _assert_no_leak(error: BaseException, *tokens: str) -> None:
    text = f"{error} {error!r} {error.args}"
    assert str(error).startswith("secinfra: attest: ")
    for token in tokens:
        for needle in (token, token.partition(".")[2]):
            if needle:
                assert needle not in text


def test_compare_is_constant_time(now: datetime, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    token, record = generate_join_token(WORKLOAD, now=now)
    verify_join_token(token, _store(record).get, now)
    assert calls == [(record.secret_sha256, record.secret_sha256)]

    calls.clear()
    with pytest.raises(UnknownJoinToken):
        verify_join_token(token, _store().get, now)
    assert len(calls) == 1  # an unknown id costs the same compare


def test_mark_used(now: datetime) -> None:
    _, record = generate_join_token(WORKLOAD, now=now)
    used = record.mark_used(now + timedelta(seconds=5))
    assert used.used
    assert used.used_at == now + timedelta(seconds=5)
    assert not record.used


@pytest.mark.parametrize(
    ("spiffe_id", "ttl", "error"),
    [
        pytest.param(WORKLOAD, timedelta(0), InvalidArgument, id="zero-ttl"),
        pytest.param("spiffe://example.org/../x", timedelta(hours=1), InvalidSpiffeId, id="bad-id"),
    ],
)
def test_generate_rejects(
    now: datetime, spiffe_id: str, ttl: timedelta, error: type[Exception]
) -> None:
    with pytest.raises(error):
        generate_join_token(spiffe_id, now=now, ttl=ttl)
