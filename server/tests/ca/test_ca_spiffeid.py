"""SpiffeId: parsing and validation per the SPIFFE ID spec, checked against py-spiffe."""

from __future__ import annotations

import pytest
import spiffe
from spiffe.errors import PySpiffeError

from secinfra_server.ca import CAError, InvalidSpiffeId, SpiffeId


@pytest.mark.parametrize(
    ("uri", "trust_domain", "path"),
    [
        ("spiffe://example.org", "example.org", ""),
        ("spiffe://example.org/ns/prod/sa/web", "example.org", "/ns/prod/sa/web"),
        ("spiffe://a-b_c.d9/x.y-z_/A", "a-b_c.d9", "/x.y-z_/A"),
        ("spiffe://td/...", "td", "/..."),
        ("spiffe://td/" + "a" * 2000, "td", "/" + "a" * 2000),
    ],
)
def test_parse_valid(uri: str, trust_domain: str, path: str) -> None:
    spiffe_id = SpiffeId.parse(uri)
    assert (spiffe_id.trust_domain, spiffe_id.path) == (trust_domain, path)
    assert str(spiffe_id) == uri
    assert str(spiffe.SpiffeId(uri)) == uri  # the third-party parser agrees


# (name, uri, message fragment, py-spiffe also rejects it)
INVALID = [
    ("empty", "", "empty", True),
    ("http-scheme", "http://example.org/x", "scheme", True),
    ("uppercase-scheme", "SPIFFE://example.org/x", "scheme", False),  # we are stricter
    ("no-scheme", "example.org/x", "scheme", True),
    ("missing-trust-domain", "spiffe:///x", "trust domain is missing", True),
    ("only-scheme", "spiffe://", "trust domain is missing", True),
    ("uppercase-trust-domain", "spiffe://Example.org/x", "lowercase", False),
    ("port", "spiffe://example.org:8443/x", "port", True),
    ("userinfo", "spiffe://user@example.org/x", "userinfo", True),
    ("query", "spiffe://example.org/x?a=b", "query", True),
    ("fragment", "spiffe://example.org/x#frag", "fragment", True),
    ("trailing-slash", "spiffe://example.org/x/", "trailing slash", True),
    ("root-slash", "spiffe://example.org/", "trailing slash", True),
    ("empty-segment", "spiffe://example.org//x", "empty segments", True),
    ("dot-segment", "spiffe://example.org/./x", "dot segments", True),
    ("dot-dot-segment", "spiffe://example.org/a/../x", "dot segments", True),
    ("percent-encoded", "spiffe://example.org/a%20b", "path segment characters", True),
    ("space", "spiffe://example.org/a b", "path segment characters", True),
    ("too-long", "spiffe://td/" + "a" * 2037, "longer than 2048", False),
    ("trust-domain-too-long", "spiffe://" + "a" * 256 + "/x", "longer than 255", False),
]


@pytest.mark.parametrize(
    ("uri", "fragment", "pyspiffe_rejects"),
    [pytest.param(uri, frag, rej, id=name) for name, uri, frag, rej in INVALID],
)
def test_parse_invalid(uri: str, fragment: str, pyspiffe_rejects: bool) -> None:
    with pytest.raises(InvalidSpiffeId) as caught:
        SpiffeId.parse(uri)
    assert fragment in str(caught.value)
    assert str(caught.value).startswith("secinfra: ca: ")
    assert caught.value.code == "invalid_argument"
    assert isinstance(caught.value, CAError)
    if pyspiffe_rejects:
        with pytest.raises(PySpiffeError):
            spiffe.SpiffeId(uri)


def test_length_limit_counts_bytes() -> None:
    exactly_2048 = "spiffe://td/" + "a" * (2048 - len("spiffe://td/"))
    assert len(str(SpiffeId.parse(exactly_2048))) == 2048
    with pytest.raises(InvalidSpiffeId, match="2048"):
        SpiffeId.parse(exactly_2048 + "a")


def test_value_semantics() -> None:
    a = SpiffeId.parse("spiffe://example.org/ns/prod")
    b = SpiffeId.from_segments("example.org", "ns", "prod")
    assert a == b
    assert hash(a) == hash(b)
    assert a == SpiffeId("example.org", "/ns/prod")
    assert SpiffeId.for_trust_domain("example.org").is_trust_domain_id
    assert not a.is_trust_domain_id
    assert a.member_of("example.org")
    assert not a.member_of("other.org")


@pytest.mark.parametrize(
    ("trust_domain", "segments"),
    [
        pytest.param("example.org", ("a/b",), id="slash-in-segment"),
        pytest.param("example.org", ("",), id="empty-segment"),
        pytest.param("example.org", ("..",), id="dot-dot"),
        pytest.param("Example.org", ("a",), id="uppercase-trust-domain"),
    ],
)
def test_from_segments_validates(trust_domain: str, segments: tuple[str, ...]) -> None:
    with pytest.raises(InvalidSpiffeId):
        SpiffeId.from_segments(trust_domain, *segments)
