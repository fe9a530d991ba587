"""Where the server's keyring comes from: the KEK file, a pending rotation, or env."""

from __future__ import annotations

from pathlib import Path

import pytest

from secinfra_server._kek_rotation import (
    KEK_PREVIOUS_ENV_VAR,
    load_keyring,
    pending_kek_path,
    retired_kek_path,
)
from secinfra_server.config import load_config
from secinfra_server.crypto import KEK_ENV_VAR, Kek, KekError, generate_kek_file


def test_file_kek(tmp_path: Path) -> None:
    kek = generate_kek_file(tmp_path / "kek")
    keyring = load_keyring(load_config(flags={"data_dir": str(tmp_path)}, environ={}), {})
    assert keyring.current == kek
    assert keyring.ids == (kek.id,)


def test_pending_rotation_loads_both_keks(tmp_path: Path) -> None:
    old = generate_kek_file(tmp_path / "kek")
    new = generate_kek_file(pending_kek_path(tmp_path / "kek"))
    keyring = load_keyring(load_config(flags={"data_dir": str(tmp_path)}, environ={}), {})
    assert keyring.current == old
    assert set(keyring.ids) == {old.id, new.id}


def test_retired_keks_are_not_loaded(tmp_path: Path) -> None:
    kek = generate_kek_file(tmp_path / "kek")
    generate_kek_file(retired_kek_path(tmp_path / "kek", "0123456789abcdef"))
    keyring = load_keyring(load_config(flags={"data_dir": str(tmp_path)}, environ={}), {})
    assert keyring.ids == (kek.id,)


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    generate_kek_file(tmp_path / "kek")
    current, older, oldest = Kek.generate(), Kek.generate(), Kek.generate()
    env = {
        KEK_ENV_VAR: current.to_base64(),
        KEK_PREVIOUS_ENV_VAR: f"{older.to_base64()}, ,{oldest.to_base64()}",
    }
    keyring = load_keyring(load_config(flags={"data_dir": str(tmp_path)}, environ={}), env)
    assert keyring.current == current
    assert keyring.ids == (current.id, older.id, oldest.id)


def test_bad_previous_kek_names_its_position_not_its_value(tmp_path: Path) -> None:
    env = {KEK_ENV_VAR: Kek.generate().to_base64(), KEK_PREVIOUS_ENV_VAR: "c2VjcmV0"}
    config = load_config(flags={"data_dir": str(tmp_path)}, environ={})
    with pytest.raises(KekError, match=f"entry 1 of {KEK_PREVIOUS_ENV_VAR}") as caught:
        load_keyring(config, env)
    assert "c2VjcmV0" not in str(caught.value)


def test_missing_kek_file_is_a_clear_error(tmp_path: Path) -> None:
    config = load_config(flags={"data_dir": str(tmp_path)}, environ={})
    with pytest.raises(KekError, match="does not exist"):
        load_keyring(config, {})
