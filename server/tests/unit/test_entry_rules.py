"""Registration entry rules: each selector kind's value, TTL bounds, DNS names."""

from __future__ import annotations

import pytest

from secinfra_server.entries import (
    InvalidEntry,
    InvalidSelector,
    Selector,
    check_dns_names,
    check_ttl,
    parse_selector,
)

GOOD = [
    ("unix", "uid:0"),
    ("unix", "uid:4294967294"),
    ("unix", "gid:1000"),
    ("unix", "path:/usr/bin/billing"),
    ("unix", "path:/"),
    ("unix", "sha256:" + "ab" * 32),
    ("k8s", "ns:payments"),
    ("k8s", "sa:billing.reader"),
]

BAD = [
    ("uid-negative", "unix", "uid:-1", "decimal id"),
    ("uid-hex", "unix", "uid:0x10", "decimal id"),
    ("uid-no-id-marker", "unix", "uid:4294967295", "decimal id"),
    ("uid-empty", "unix", "uid:", "decimal id"),
    ("path-relative", "unix", "path:usr/bin/x", "absolute path"),
    ("path-nul", "unix", "path:/usr/bin/x\x00", "absolute path"),
    ("path-dotdot", "unix", "path:/usr/../bin/x", "normalised"),
    ("path-trailing-slash", "unix", "path:/usr/bin/", "normalised"),
    ("path-double-slash", "unix", "path://usr/bin", "normalised"),
    ("sha-upper", "unix", "sha256:" + "AB" * 32, "64 lowercase hex"),
    ("sha-short", "unix", "sha256:abc", "64 lowercase hex"),
    ("ns-upper", "k8s", "ns:Payments", "DNS-1123 label"),
    ("ns-dot", "k8s", "ns:a.b", "DNS-1123 label"),
    ("sa-underscore", "k8s", "sa:a_b", "DNS-1123 subdomain"),
    ("unknown-key", "unix", "user:root", "unknown selector"),
    ("unknown-type", "docker", "label:x", "unknown selector"),
    ("no-key", "unix", "1000", "unknown selector"),
]


@pytest.mark.parametrize(("type_", "value"), GOOD)
def test_good_selectors_parse_as_written(type_: str, value: str) -> None:
    assert parse_selector(type_, value) == Selector(type_, value)


@pytest.mark.parametrize(("name", "type_", "value", "says"), BAD)
def test_bad_selectors_say_which_rule(name: str, type_: str, value: str, says: str) -> None:
    with pytest.raises(InvalidSelector, match=says):
        parse_selector(type_, value)


@pytest.mark.parametrize(
    ("ttl", "test_mode", "ok"),
    [
        (0, False, True),
        (60, False, True),
        (3600, False, True),
        (59, False, False),
        (3601, False, False),
        (1, True, True),
        (-1, True, False),
    ],
)
def test_ttl_is_zero_or_within_the_leaf_ttl(ttl: int, test_mode: bool, ok: bool) -> None:
    if ok:
        check_ttl(ttl, leaf_ttl_seconds=3600, test_mode=test_mode)
    else:
        with pytest.raises(InvalidEntry) as raised:
            check_ttl(ttl, leaf_ttl_seconds=3600, test_mode=test_mode)
        assert raised.value.field == "ttl_seconds"


def test_dns_names() -> None:
    assert check_dns_names(["billing.internal", "*.billing.internal"]) == (
        "billing.internal",
        "*.billing.internal",
    )
    for names, field in [
        (["Billing.internal"], "dns_names[0]"),
        (["ok.internal", "a..b"], "dns_names[1]"),
        (["x.internal", "x.internal"], "dns_names"),
        ([f"n{i}.internal" for i in range(17)], "dns_names"),
    ]:
        with pytest.raises(InvalidEntry) as raised:
            check_dns_names(names)
        assert raised.value.field == field
