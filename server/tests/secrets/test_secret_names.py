"""Secret names, folders and list prefixes."""

from __future__ import annotations

import re

import pytest

from secinfra_server.secrets import (
    MAX_NAME_LENGTH,
    NAME_PATTERN,
    InvalidSecretName,
    folders_of,
    validate_prefix,
    validate_secret_name,
)

DESIGN_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*$")

VALID_NAMES = [
    "a",
    "0",
    "token",
    "payments/db/password",
    "payments/db-primary/password_v2",
    "a.b_c-d",
    "v1.2.3",
    "backup..old",  # '..' inside a segment is an ordinary segment, not traversal
    "a/b/c/d/e/f/g",
    "a1/2b/3.c",
    "x-",
    "x_",
    "x.",
    "a" * MAX_NAME_LENGTH,
    "/".join(["ab"] * 85) + "/a",  # 256 characters across many segments
]


@pytest.mark.parametrize("name", VALID_NAMES)
def test_valid_names(name: str) -> None:
    assert validate_secret_name(name) is name
    assert DESIGN_PATTERN.match(name)
    assert len(name) <= MAX_NAME_LENGTH


INVALID_NAMES = [
    # (id, name, exact reason)
    ("empty", "", "must not be empty"),
    ("257-chars", "a" * 257, "is 257 characters long; the limit is 256"),
    ("300-chars", "a/" * 150, "is 300 characters long; the limit is 256"),
    ("dotdot-segment", "a/../b", "must not contain '..' as a path segment"),
    ("dotdot-alone", "..", "must not contain '..' as a path segment"),
    ("dotdot-last", "a/..", "must not contain '..' as a path segment"),
    ("dot-segment", "a/./b", "must not contain '.' as a path segment"),
    ("dot-alone", ".", "must not contain '.' as a path segment"),
    ("double-slash", "a//b", "must not contain '//' (an empty segment)"),
    ("trailing-slash", "payments/", "must not end with '/'"),
    ("leading-slash", "/payments", "must not start with '/'"),
    ("slash-alone", "/", "must not start with '/'"),
    ("uppercase", "Payments/DB", "must be lowercase (did you mean 'payments/db'?)"),
    ("uppercase-no-hint", "A B", "must be lowercase"),
    ("nul", "a\x00b", "must not contain control characters (found '\\x00' at position 1)"),
    ("newline-at-end", "a\n", "must not contain control characters (found '\\n' at position 1)"),
    ("tab", "a\tb", "must not contain control characters (found '\\t' at position 1)"),
    ("del", "a\x7f", "must not contain control characters (found '\\x7f' at position 1)"),
    ("c1-control", "a\x85", "must not contain control characters (found '\\x85' at position 1)"),
    (
        "unicode-letter",
        "caf\u00e9",
        "must not contain 'é' (at position 3); allowed are a-z, 0-9, '.', '_', '-', "
        "and '/' between segments",
    ),
    ("unicode-uppercase", "\u00c9t\u00e9", "must not contain 'É' (at position 0)"),
    ("kelvin-sign", "\u212aey", "must not contain '\u212a' (at position 0)"),
    ("fullwidth", "\uff41", "must not contain '\uff41' (at position 0)"),
    ("rtl-override", "a\u202eb", "must not contain '\\u202e' (at position 1)"),
    ("zero-width-space", "a\u200bb", "must not contain '\\u200b' (at position 1)"),
    ("space", "my secret", "must not contain ' ' (at position 2)"),
    ("backslash", "a\\b", "must not contain '\\\\' (at position 1)"),
    ("colon", "db:password", "must not contain ':' (at position 2)"),
    ("hidden-file", ".env", "segment '.env' must start with a lowercase letter or digit, not '.'"),
    ("hidden-segment", "a/.git", "segment '.git' must start with a lowercase letter or digit"),
    ("dash-start", "-rf", "segment '-rf' must start with a lowercase letter or digit, not '-'"),
    ("underscore-start", "a/_b", "segment '_b' must start with a lowercase letter or digit"),
]


@pytest.mark.parametrize(
    ("name", "reason"),
    [pytest.param(name, reason, id=case_id) for case_id, name, reason in INVALID_NAMES],
)
def test_invalid_names(name: str, reason: str) -> None:
    with pytest.raises(InvalidSecretName) as info:
        validate_secret_name(name)
    error = info.value
    assert isinstance(error, ValueError)
    assert error.code == "invalid_argument"
    assert error.field == "name"
    assert error.reason.startswith(reason)
    assert str(error).startswith("secinfra: secrets: secret name ")
    assert str(error).endswith(error.reason)
    # The DESIGN.md pattern agrees (fullmatch: '$' would accept a trailing newline).
    assert DESIGN_PATTERN.fullmatch(name) is None or len(name) > MAX_NAME_LENGTH


@pytest.mark.parametrize("name", ["a\x00b", "a\n", "\x1b[31mred", "a\x7f", "a\u202eb"])
def test_messages_never_hold_raw_control_characters(name: str) -> None:
    with pytest.raises(InvalidSecretName) as info:
        validate_secret_name(name)
    message = str(info.value)
    assert message.isprintable()
    assert repr(name) in message


def test_long_names_are_cut_in_messages() -> None:
    with pytest.raises(InvalidSecretName) as info:
        validate_secret_name("a" * 10_000)
    assert len(str(info.value)) < 200
    assert "is 10000 characters long" in str(info.value)


def test_non_string_name() -> None:
    with pytest.raises(InvalidSecretName, match="must be a string, not bytes"):
        validate_secret_name(b"token")  # type: ignore[arg-type]


def test_pattern_is_the_design_pattern() -> None:
    for name in VALID_NAMES:
        assert NAME_PATTERN.fullmatch(name)
    assert NAME_PATTERN.pattern == DESIGN_PATTERN.pattern.strip("^$")


@pytest.mark.parametrize(
    ("name", "folders"),
    [
        ("token", []),
        ("payments/password", ["payments/"]),
        ("payments/db/password", ["payments/", "payments/db/"]),
        ("a/b/c/d", ["a/", "a/b/", "a/b/c/"]),
        ("a.b/c", ["a.b/"]),
    ],
)
def test_folders_of(name: str, folders: list[str]) -> None:
    assert folders_of(name) == folders
    for folder in folders:
        assert name.startswith(folder)
        assert validate_prefix(folder) == folder


@pytest.mark.parametrize("name", ["", "a/", "/a", "a//b", "A/b", "a/../b"])
def test_folders_of_rejects_invalid_names(name: str) -> None:
    with pytest.raises(InvalidSecretName):
        folders_of(name)


@pytest.mark.parametrize(
    "prefix",
    [
        "",
        "p",
        "payments",
        "payments/",
        "payments/d",
        "payments/db/",
        "a" * MAX_NAME_LENGTH,
        "a" * (MAX_NAME_LENGTH - 1) + "/",
    ],
)
def test_valid_prefixes(prefix: str) -> None:
    assert validate_prefix(prefix) is prefix


@pytest.mark.parametrize(
    ("prefix", "reason"),
    [
        ("/", "must not start with '/'"),
        ("/payments", "must not start with '/'"),
        ("payments//", "must not contain '//'"),
        ("a//b/", "must not contain '//'"),
        ("../", "must not contain '..' as a path segment"),
        ("a/./", "must not contain '.' as a path segment"),
        ("Payments/", "must be lowercase (did you mean 'payments/'?)"),
        ("a\x00", "must not contain control characters"),
        ("caf\u00e9/", "must not contain 'é'"),
        (".hidden/", "segment '.hidden' must start with a lowercase letter or digit"),
        ("a" * MAX_NAME_LENGTH + "/", "is 257 characters long; the limit is 256"),
    ],
)
def test_invalid_prefixes(prefix: str, reason: str) -> None:
    with pytest.raises(InvalidSecretName) as info:
        validate_prefix(prefix)
    assert info.value.field == "prefix"
    assert info.value.code == "invalid_argument"
    assert info.value.reason.startswith(reason)
    assert str(info.value).startswith("secinfra: secrets: prefix ")
