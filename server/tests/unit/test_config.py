from __future__ import annotations

import re
from pathlib import Path

import pytest

from secinfra_server.config import ConfigError, load_config


def test_sources_in_order(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text('data_dir = "/from/file"\nport = 1\nleaf_ttl_seconds = 600\n')
    config = load_config(
        config_file=file,
        environ={"SECINFRA_PORT": "2", "SECINFRA_LOG_LEVEL": "debug"},
        flags={"port": "3"},
    )
    assert config.data_dir == Path("/from/file")
    assert config.port == 3
    assert config.leaf_ttl_seconds == 600
    assert config.log_level == "debug"


def test_jwt_table(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text(
        'data_dir = "d"\n[jwt]\nissuer = "https://k8s"\n'
        'audiences = ["secinfra"]\njwks_file = "j.json"\n'
    )
    config = load_config(config_file=file, environ={})
    assert config.jwt is not None
    assert config.jwt.audiences == ("secinfra",)


CLUSTERS_TOML = """
data_dir = "d"
[jwt]
issuer = "https://old.k8s"
audiences = ["secinfra"]
jwks_file = "j.json"

[[jwt_issuers]]
name = "prod"
issuer = "https://prod.k8s"
audiences = ["secinfra-prod"]
ca_file = "prod-ca.pem"

[[jwt_issuers.rules]]
namespace = "payments"
service_account = "api-*"
spiffe_id = "spiffe://{trust_domain}/k8s/{cluster}/ns/{namespace}/sa/{service_account}"

[login]
issuer = "https://dex.example"
client_id = "secinfra-cli"
user_claim = "email"

[login.groups]
payments-eng = ["reader secret:payments", "member group:payments"]
"""


def test_several_clusters_and_the_old_jwt_table_together(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text(CLUSTERS_TOML)
    config = load_config(config_file=file, environ={})
    old, prod = config.kubernetes_issuers
    assert (old.name, old.jwks_file) == ("default", Path("j.json"))
    assert (prod.name, prod.jwks_file, prod.ca_file) == ("prod", None, Path("prod-ca.pem"))
    assert prod.rules[0].service_account == "api-*"
    assert config.login is not None
    assert config.login.user_claim == "email"
    assert config.login.groups["payments-eng"] == (
        "reader secret:payments",
        "member group:payments",
    )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (('name = "prod"', 'name = "default"'), "'default' is used twice"),
        (('"https://prod.k8s"', '"https://old.k8s"'), "is configured twice"),
        (('"https://prod.k8s"', '"http://prod.k8s"'), "needs an https:// issuer"),
        (('user_claim = "email"', 'user_claim = "name"'), "login.user_claim"),
        (('"reader secret:payments"', '"reader"'), "is not 'relation type:object'"),
        (('spiffe_id = "spiffe', 'spiffe = "spiffe'), "unknown setting jwt_issuers[0].rules[0]"),
        (('jwks_file = "j.json"', 'jwks_file = "j.json"\nrules = []'), "need [[jwt_issuers]]"),
        (('client_id = "secinfra-cli"', ""), "login: missing client_id"),
    ],
)
def test_cluster_and_login_mistakes_are_named(
    tmp_path: Path, edit: tuple[str, str], message: str
) -> None:
    file = tmp_path / "c.toml"
    file.write_text(CLUSTERS_TOML.replace(*edit))
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(config_file=file, environ={})


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({}, "data_dir is required"),
        ({"data_dir": "d", "port": "x"}, "port: 'x' is not a valid int"),
        ({"data_dir": "d", "port": "70000"}, "not a TCP port"),
        ({"data_dir": "d", "leaf_ttl_seconds": "5"}, "below the minimum of 60"),
        ({"data_dir": "d", "test_hooks": True, "host": "0.0.0.0"}, "non-loopback"),
        ({"data_dir": "d", "log_level": "loud"}, "log_level"),
        ({"data_dir": "d", "bogus": 1}, "unknown setting 'bogus'"),
        ({"data_dir": "d", "max_body_bytes": "0"}, "must be positive"),
        ({"data_dir": "d", "max_connections": "0"}, "max_connections: must be positive"),
        (
            {"data_dir": "d", "max_connections": "10", "max_connections_per_peer": "11"},
            "max_connections_per_peer: 11 exceeds max_connections",
        ),
        ({"data_dir": "d", "tls_handshake_timeout_seconds": "0"}, "tls_handshake_timeout"),
        ({"data_dir": "d", "idle_timeout_seconds": "-1"}, "idle_timeout_seconds: must be"),
        ({"data_dir": "d", "header_timeout_seconds": "soon"}, "not a valid float"),
        ({"data_dir": "d", "join_token_default_ttl_seconds": "90000"}, "between 1 and 86400"),
        ({"data_dir": "d", "trust_domain": "Example.COM"}, "trust_domain"),
        ({"data_dir": "d", "trust_domain": "spiffe://x"}, "trust_domain"),
        ({"data_dir": "d", "dns_names": "ok.example,bad_name!"}, "dns_names"),
    ],
)
def test_bad_settings_are_named(flags: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(flags=flags, environ={})


def test_test_mode_allows_seconds_long_leaves() -> None:
    config = load_config(
        flags={"data_dir": "d", "test_hooks": True, "leaf_ttl_seconds": "2"}, environ={}
    )
    assert config.leaf_ttl_seconds == 2


def test_dev_defaults_rank_below_environment_and_file(tmp_path: Path) -> None:
    defaults = {"data_dir": ".dev/data", "port": 8443, "host": "127.0.0.1"}
    config = load_config(environ={"SECINFRA_PORT": "9000"}, defaults=defaults)
    assert config.port == 9000
    assert config.data_dir == Path(".dev/data")
    file = tmp_path / "c.toml"
    file.write_text('data_dir = "/srv/secinfra"\n')
    assert load_config(config_file=file, environ={}, defaults=defaults).data_dir == Path(
        "/srv/secinfra"
    )


def test_boolean_flags_can_turn_settings_off(tmp_path: Path) -> None:
    from secinfra_server.cli import _parser

    args = _parser().parse_args(["serve", "--data-dir", "d", "--no-ca-auto-rotate"])
    assert args.ca_auto_rotate is False
    args = _parser().parse_args(["serve", "--data-dir", "d"])
    assert args.ca_auto_rotate is None  # not given: lower sources decide
