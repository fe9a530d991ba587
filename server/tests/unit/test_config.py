from __future__ import annotations

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
