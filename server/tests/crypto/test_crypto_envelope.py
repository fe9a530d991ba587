"""Envelope encryption: round trips, tamper resistance, AAD binding, KEK rotation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from secinfra_server.crypto import (
    CIPHERTEXT_OVERHEAD,
    FORMAT_VERSION,
    WRAPPED_KEY_SIZE,
    CryptoError,
    DecryptionError,
    Kek,
    Keyring,
    SealedBox,
    aad_for_ca_key,
    aad_for_secret,
    open_,
    rewrap,
    seal,
)

PLAINTEXT = b"postgres://app:hunter2-correct-horse@db.internal:5432/payments"
NAME = "payments/db/password"
AAD = aad_for_secret(NAME, 3)


@pytest.fixture
def kek() -> Kek:
    return Kek.generate()


@pytest.fixture
def keyring(kek: Kek) -> Keyring:
    return Keyring(kek)


@pytest.fixture
def box(keyring: Keyring) -> SealedBox:
    return seal(keyring, PLAINTEXT, AAD)


def flip(data: bytes, index: int, bit: int = 0) -> bytes:
    out = bytearray(data)
    out[index] ^= 1 << bit
    return bytes(out)


def assert_safe(error: DecryptionError, *secrets: bytes) -> None:
    """The message names no key or plaintext bytes, in any common encoding."""
    text = str(error) + repr(error)
    assert text.startswith("secinfra: crypto: cannot ")
    for secret in secrets:
        for form in (secret.hex(), secret.decode("latin-1"), repr(secret)):
            assert form not in text


@pytest.mark.parametrize(
    "plaintext",
    [b"", b"x", PLAINTEXT, bytes(range(256)), b"\x00" * 64 * 1024],
    ids=["empty", "one-byte", "text", "all-byte-values", "64-KiB-of-zeros"],
)
def test_round_trip(keyring: Keyring, plaintext: bytes) -> None:
    box = seal(keyring, plaintext, AAD)
    assert open_(keyring, box, AAD) == plaintext


def test_box_layout(keyring: Keyring, kek: Kek, box: SealedBox) -> None:
    assert box.kek_id == kek.id
    assert box.version == FORMAT_VERSION == 1
    assert box.ciphertext[0] == box.wrapped_key[0] == FORMAT_VERSION
    assert len(box.ciphertext) == len(PLAINTEXT) + CIPHERTEXT_OVERHEAD == len(PLAINTEXT) + 29
    assert len(box.wrapped_key) == WRAPPED_KEY_SIZE == 61
    assert PLAINTEXT not in box.ciphertext
    assert kek.key not in box.wrapped_key


def test_box_repr_hides_bytes(box: SealedBox) -> None:
    assert box.ciphertext.hex() not in repr(box)
    assert box.wrapped_key.hex() not in repr(box)
    assert "ciphertext=<" in repr(box)


def test_each_seal_uses_a_fresh_data_key_and_nonces(keyring: Keyring) -> None:
    first, second = seal(keyring, PLAINTEXT, AAD), seal(keyring, PLAINTEXT, AAD)
    assert first.ciphertext != second.ciphertext
    assert first.wrapped_key != second.wrapped_key
    # Distinct content nonces (bytes 1..12) and wrap nonces.
    assert first.ciphertext[1:13] != second.ciphertext[1:13]
    assert first.wrapped_key[1:13] != second.wrapped_key[1:13]
    # Each wrapped key opens only its own ciphertext: the data keys differ.
    mixed = replace(first, wrapped_key=second.wrapped_key)
    with pytest.raises(DecryptionError):
        open_(keyring, mixed, AAD)


def test_box_is_frozen(box: SealedBox) -> None:
    with pytest.raises(AttributeError):
        box.kek_id = "0" * 16  # type: ignore[misc]


# Every region of both blobs, each with one flipped bit. Offsets are computed per box.
CIPHERTEXT_REGIONS: list[tuple[str, Callable[[SealedBox], int]]] = [
    ("version-byte", lambda b: 0),
    ("nonce-first", lambda b: 1),
    ("nonce-last", lambda b: 12),
    ("body-first", lambda b: 13),
    ("body-last", lambda b: len(b.ciphertext) - 17),
    ("tag-first", lambda b: len(b.ciphertext) - 16),
    ("tag-last", lambda b: len(b.ciphertext) - 1),
]
WRAPPED_KEY_REGIONS: list[tuple[str, Callable[[SealedBox], int]]] = [
    ("version-byte", lambda b: 0),
    ("nonce", lambda b: 5),
    ("encrypted-key", lambda b: 13),
    ("encrypted-key-last", lambda b: 44),
    ("tag", lambda b: 45),
    ("tag-last", lambda b: 60),
]


@pytest.mark.parametrize("bit", [0, 7])
@pytest.mark.parametrize(("region", "offset"), CIPHERTEXT_REGIONS, ids=lambda v: str(v))
def test_flipped_bit_in_ciphertext_fails(
    keyring: Keyring,
    kek: Kek,
    box: SealedBox,
    region: str,
    offset: Callable[[SealedBox], int],
    bit: int,
) -> None:
    tampered = replace(box, ciphertext=flip(box.ciphertext, offset(box), bit))
    with pytest.raises(DecryptionError) as info:
        open_(keyring, tampered, AAD)
    assert_safe(info.value, PLAINTEXT, kek.key)


@pytest.mark.parametrize("bit", [0, 7])
@pytest.mark.parametrize(("region", "offset"), WRAPPED_KEY_REGIONS, ids=lambda v: str(v))
def test_flipped_bit_in_wrapped_key_fails(
    keyring: Keyring,
    kek: Kek,
    box: SealedBox,
    region: str,
    offset: Callable[[SealedBox], int],
    bit: int,
) -> None:
    tampered = replace(box, wrapped_key=flip(box.wrapped_key, offset(box), bit))
    with pytest.raises(DecryptionError) as info:
        open_(keyring, tampered, AAD)
    assert_safe(info.value, PLAINTEXT, kek.key)
    with pytest.raises(DecryptionError):
        rewrap(Keyring(Kek.generate(), [kek]), tampered, AAD)


@pytest.mark.parametrize(
    "aad",
    [
        aad_for_secret("payments/db/passwore", 3),
        aad_for_secret("payments/db", 3),
        aad_for_secret(NAME, 2),
        aad_for_secret(NAME, 4),
        aad_for_ca_key(NAME),
        b"",
        AAD + b"\x00",
        AAD[:-1],
    ],
    ids=[
        "other-name",
        "parent-name",
        "older-version",
        "newer-version",
        "ca-key-context",
        "empty",
        "extended",
        "truncated",
    ],
)
def test_wrong_aad_fails(keyring: Keyring, kek: Kek, box: SealedBox, aad: bytes) -> None:
    with pytest.raises(DecryptionError) as info:
        open_(keyring, box, aad)
    assert_safe(info.value, PLAINTEXT, kek.key)


@pytest.mark.parametrize(
    "swap",
    ["whole-box", "ciphertext-only", "wrapped-key-only"],
)
def test_rows_swapped_between_versions_fail(keyring: Keyring, swap: str) -> None:
    aad_a, aad_b = aad_for_secret(NAME, 1), aad_for_secret(NAME, 2)
    row_a = seal(keyring, b"value of version one", aad_a)
    row_b = seal(keyring, b"value of version two", aad_b)
    if swap == "whole-box":
        moved_to_a = row_b
    elif swap == "ciphertext-only":
        moved_to_a = replace(row_a, ciphertext=row_b.ciphertext)
    else:
        moved_to_a = replace(row_a, wrapped_key=row_b.wrapped_key)
    with pytest.raises(DecryptionError) as info:
        open_(keyring, moved_to_a, aad_a)
    assert b"value of version" not in str(info.value).encode()


def test_rows_swapped_between_names_fail(keyring: Keyring) -> None:
    aad_a, aad_b = aad_for_secret("team-a/token", 1), aad_for_secret("team-b/token", 1)
    row_b = seal(keyring, b"team b's token", aad_b)
    with pytest.raises(DecryptionError):
        open_(keyring, row_b, aad_a)


def test_unknown_kek_fails(box: SealedBox, kek: Kek) -> None:
    other = Keyring(Kek.generate())
    with pytest.raises(DecryptionError) as info:
        open_(other, box, AAD)
    assert kek.id in str(info.value)
    assert "does not hold" in str(info.value)
    assert_safe(info.value, PLAINTEXT, kek.key, other.current.key)


def test_kek_id_relabelled_fails(keyring: Keyring, box: SealedBox) -> None:
    """A row claiming another KEK held by the keyring still fails (auth, not lookup)."""
    second = Kek.generate()
    ring = Keyring(keyring.current, [second])
    with pytest.raises(DecryptionError):
        open_(ring, replace(box, kek_id=second.id), AAD)


@pytest.mark.parametrize(
    ("field", "length"),
    [
        ("ciphertext", 0),
        ("ciphertext", 1),
        ("ciphertext", 13),
        ("ciphertext", CIPHERTEXT_OVERHEAD - 1),
        ("ciphertext", CIPHERTEXT_OVERHEAD),
        ("ciphertext", -1),
        ("wrapped_key", 0),
        ("wrapped_key", 1),
        ("wrapped_key", WRAPPED_KEY_SIZE - 1),
    ],
)
def test_truncated_data_fails(
    keyring: Keyring, kek: Kek, box: SealedBox, field: str, length: int
) -> None:
    if field == "ciphertext":
        tampered = replace(box, ciphertext=box.ciphertext[:length])
    else:
        tampered = replace(box, wrapped_key=box.wrapped_key[:length])
    with pytest.raises(DecryptionError) as info:
        open_(keyring, tampered, AAD)
    assert_safe(info.value, PLAINTEXT, kek.key)


def test_extended_data_fails(keyring: Keyring, box: SealedBox) -> None:
    for tampered in (
        replace(box, ciphertext=box.ciphertext + b"\x00"),
        replace(box, wrapped_key=box.wrapped_key + b"\x00"),
    ):
        with pytest.raises(DecryptionError):
            open_(keyring, tampered, AAD)


def test_decryption_error_code_and_family() -> None:
    assert issubclass(DecryptionError, CryptoError)
    assert DecryptionError.code == "internal"


def test_rotation_rewraps_data_key_only(kek: Kek, box: SealedBox) -> None:
    new = Kek.generate()
    rotating = Keyring(new, previous=[kek])
    rewrapped = rewrap(rotating, box, AAD)
    assert rewrapped.kek_id == new.id != box.kek_id
    assert rewrapped.ciphertext == box.ciphertext
    assert rewrapped.wrapped_key != box.wrapped_key
    # The new keyring opens it, even without the old KEK.
    assert open_(Keyring(new), rewrapped, AAD) == PLAINTEXT
    assert open_(rotating, rewrapped, AAD) == PLAINTEXT
    # The old keyring no longer can.
    with pytest.raises(DecryptionError):
        open_(Keyring(kek), rewrapped, AAD)
    # During the rotation, un-rotated rows still open.
    assert open_(rotating, box, AAD) == PLAINTEXT


def test_rewrap_is_idempotent(kek: Kek, box: SealedBox) -> None:
    rotating = Keyring(Kek.generate(), [kek])
    once = rewrap(rotating, box, AAD)
    assert rewrap(rotating, once, AAD) is once


@pytest.mark.parametrize(
    "case", ["unknown-kek", "wrong-aad", "empty-ciphertext", "unknown-version"]
)
def test_rewrap_failures(kek: Kek, box: SealedBox, case: str) -> None:
    rotating = Keyring(Kek.generate(), [kek])
    aad = AAD
    if case == "unknown-kek":
        rotating = Keyring(Kek.generate())
    elif case == "wrong-aad":
        aad = aad_for_secret(NAME, 4)
    elif case == "empty-ciphertext":
        box = replace(box, ciphertext=b"")
    else:
        box = replace(box, ciphertext=b"\x02" + box.ciphertext[1:])
    with pytest.raises(DecryptionError):
        rewrap(rotating, box, aad)


def test_seal_after_rotation_uses_new_kek(kek: Kek) -> None:
    new = Kek.generate()
    box = seal(Keyring(new, [kek]), PLAINTEXT, AAD)
    assert box.kek_id == new.id


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (("a", 12), ("a1", 2)),
        (("a", 1), ("a", 256)),
        (("", 1), ("\x00", 1)),
        (("payments/db", 1), ("payments/db/", 1)),
    ],
)
def test_secret_aad_is_unambiguous(left: tuple[str, int], right: tuple[str, int]) -> None:
    assert aad_for_secret(*left) != aad_for_secret(*right)


def test_aad_contexts_differ() -> None:
    assert aad_for_secret("ca-1", 0) != aad_for_ca_key("ca-1")
    assert aad_for_ca_key("a") != aad_for_ca_key("b")
    assert aad_for_secret("a", 1) == aad_for_secret("a", 1)


@pytest.mark.parametrize(
    ("version", "error"),
    [(-1, ValueError), (2**63, ValueError), (True, TypeError), ("1", TypeError)],
)
def test_secret_aad_rejects_bad_versions(version: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        aad_for_secret("a", version)  # type: ignore[arg-type]


def test_ca_key_round_trip(keyring: Keyring) -> None:
    der = b"0\x81\x87" + bytes(range(100))
    box = seal(keyring, der, aad_for_ca_key("ca-2031"))
    assert open_(keyring, box, aad_for_ca_key("ca-2031")) == der
    with pytest.raises(DecryptionError):
        open_(keyring, box, aad_for_ca_key("ca-2032"))
