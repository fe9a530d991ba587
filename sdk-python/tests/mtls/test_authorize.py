"""SPIFFE ID parsing and the authorizers, as tables."""

from __future__ import annotations

import pytest

from secinfra import mtls

TD = "spiffe://example.org"


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("spiffe://example.org/api", True),
        ("spiffe://example.org", True),
        ("spiffe://example.org/a/b.c-d_e", True),
        ("spiffe://Example.org/api", False),
        ("spiffe://example.org/api/", False),
        ("spiffe://example.org//api", False),
        ("spiffe://example.org/../api", False),
        ("spiffe://example.org/api?x=1", False),
        ("spiffe://user@example.org/api", False),
        ("spiffe://example.org:443/api", False),
        ("https://example.org/api", False),
        ("spiffe:///api", False),
    ],
)
def test_spiffe_ids_parse_by_the_spec(text: str, valid: bool) -> None:
    if valid:
        assert str(mtls.SpiffeId.parse(text)) == text
    else:
        with pytest.raises(ValueError, match="secinfra: mtls"):
            mtls.SpiffeId.parse(text)


def _ok(authorizer: mtls.Authorizer, peer: str) -> bool:
    return authorizer.allows(mtls.SpiffeId.parse(peer))


@pytest.mark.parametrize(
    ("name", "authorizer", "peer", "allowed"),
    [
        ("any", mtls.authorize_any(), f"{TD}/anything", True),
        ("id", mtls.authorize_id(f"{TD}/api"), f"{TD}/api", True),
        ("id-other", mtls.authorize_id(f"{TD}/api"), f"{TD}/api2", False),
        ("id-other-td", mtls.authorize_id(f"{TD}/api"), "spiffe://example.com/api", False),
        ("one-of", mtls.authorize_one_of([f"{TD}/a", f"{TD}/b"]), f"{TD}/b", True),
        ("one-of-other", mtls.authorize_one_of([f"{TD}/a", f"{TD}/b"]), f"{TD}/c", False),
        ("member", mtls.authorize_member_of("example.org"), f"{TD}/x/y", True),
        ("member-scheme", mtls.authorize_member_of(TD), f"{TD}/x", True),
        ("member-other", mtls.authorize_member_of("example.org"), "spiffe://example.com/x", False),
        ("prefix", mtls.authorize_path_prefix("example.org", "/payments"), f"{TD}/payments", True),
        (
            "prefix-below",
            mtls.authorize_path_prefix("example.org", "/payments/"),
            f"{TD}/payments/api",
            True,
        ),
        (
            "prefix-sibling",
            mtls.authorize_path_prefix("example.org", "/payments"),
            f"{TD}/payments-admin",
            False,
        ),
        (
            "prefix-other-td",
            mtls.authorize_path_prefix("example.org", "/payments"),
            "spiffe://evil.org/payments",
            False,
        ),
        (
            "if",
            mtls.authorize_if(lambda p: p.path.endswith("-ro"), expects="a read-only ID"),
            f"{TD}/db-ro",
            True,
        ),
        (
            "if-not",
            mtls.authorize_if(lambda p: p.path.endswith("-ro"), expects="a read-only ID"),
            f"{TD}/db",
            False,
        ),
    ],
)
def test_authorizers(name: str, authorizer: mtls.Authorizer, peer: str, allowed: bool) -> None:
    assert _ok(authorizer, peer) is allowed


def test_an_empty_set_admits_nobody_and_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        mtls.authorize_one_of([])


def test_authorizers_say_what_they_expect() -> None:
    assert mtls.authorize_one_of([f"{TD}/b", f"{TD}/a"]).expects == f"one of {TD}/a, {TD}/b"
    assert mtls.authorize_member_of(TD).expects == "a member of example.org"
