"""The KEK: file creation, loading, permissions, env source, ids and the keyring."""

from __future__ import annotations

import base64
import errno
import os
import stat
from pathlib import Path

import pytest

from secinfra_server.crypto import (
    KEK_SIZE,
    CryptoError,
    InsecureKekFile,
    Kek,
    KekError,
    Keyring,
    generate_kek_file,
    load_kek,
    load_kek_from_env,
)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def write_key_file(path: Path, content: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(content)
    path.chmod(mode)
    return path


def assert_no_key_material(error: Exception, key: bytes) -> None:
    text = str(error) + repr(error)
    for form in (
        key.hex(),
        base64.b64encode(key).decode(),
        base64.b64encode(key).decode().rstrip("="),
        key.decode("latin-1"),
    ):
        assert form not in text


def test_generate_creates_0600_file_that_loads(tmp_path: Path) -> None:
    path = tmp_path / "kek"
    kek = generate_kek_file(path)
    assert mode_of(path) == 0o600
    assert load_kek(path) == kek
    assert load_kek(path).id == kek.id
    content = path.read_bytes()
    assert content == kek.to_base64().encode() + b"\n"
    assert len(base64.b64decode(content)) == KEK_SIZE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kek"]  # no temp file left


def test_generate_ignores_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        generate_kek_file(tmp_path / "kek")
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "kek") == 0o600


def test_generate_makes_a_new_key_each_time(tmp_path: Path) -> None:
    assert generate_kek_file(tmp_path / "a") != generate_kek_file(tmp_path / "b")


@pytest.mark.parametrize("existing", ["kek-file", "empty-file", "dangling-symlink"])
def test_generate_refuses_to_overwrite(tmp_path: Path, existing: str) -> None:
    path = tmp_path / "kek"
    if existing == "kek-file":
        original = generate_kek_file(path)
        before = path.read_bytes()
    elif existing == "empty-file":
        path.touch()
        before = b""
    else:
        path.symlink_to(tmp_path / "nowhere")
    with pytest.raises(KekError, match="already exists; refusing to overwrite") as info:
        generate_kek_file(path)
    assert info.value.code == "failed_precondition"
    assert info.value.path == path
    if existing == "kek-file":
        assert path.read_bytes() == before
        assert load_kek(path) == original
    elif existing == "empty-file":
        assert path.read_bytes() == before
    else:
        assert not (tmp_path / "nowhere").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize("race", [False, True], ids=["alone", "file-appears-meanwhile"])
def test_generate_without_hard_links_falls_back_to_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, race: bool
) -> None:
    """Some file systems have no hard links: creation still works, and a KEK file
    that appears after the first existence check is still not overwritten."""
    path = tmp_path / "kek"

    def no_links(*args: object, **kwargs: object) -> None:
        if race:
            path.write_text("keep me")
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    if race:
        with pytest.raises(KekError, match="already exists"):
            generate_kek_file(path)
        assert path.read_text() == "keep me"
    else:
        kek = generate_kek_file(path)
        assert mode_of(path) == 0o600
        assert load_kek(path) == kek
    assert [p.name for p in tmp_path.iterdir()] == ["kek"]


def test_generate_into_missing_directory_fails_typed(tmp_path: Path) -> None:
    with pytest.raises(KekError, match="cannot create KEK file"):
        generate_kek_file(tmp_path / "missing" / "kek")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o602, 0o620, 0o666, 0o777])
def test_load_refuses_group_or_other_access(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "kek"
    kek = generate_kek_file(path)
    path.chmod(mode)
    with pytest.raises(InsecureKekFile) as info:
        load_kek(path)
    error = info.value
    assert error.mode == mode
    assert error.path == path
    assert error.code == "failed_precondition"
    assert str(error).startswith("secinfra: crypto: KEK file ")
    assert str(path) in str(error)
    assert f"{mode:04o}" in str(error)
    assert "chmod 600" in str(error)
    assert_no_key_material(error, kek.key)


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_load_accepts_owner_only_modes(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "kek"
    kek = generate_kek_file(path)
    path.chmod(mode)
    assert load_kek(path) == kek


KEY = bytes(range(7, 7 + KEK_SIZE))


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"", "decodes to 0 bytes"),
        (base64.b64encode(KEY[:16]), "decodes to 16 bytes"),
        (base64.b64encode(KEY[:31]), "decodes to 31 bytes"),
        (base64.b64encode(KEY + b"\x01"), "decodes to 33 bytes"),
        (KEY, "encode a raw key with base64"),
        (b"not base64 at all!", "not base64"),
        (base64.b64encode(KEY)[:-1], "not base64"),
        (b"x" * 5000, "too large"),
    ],
    ids=[
        "empty",
        "16-bytes",
        "31-bytes",
        "33-bytes",
        "raw-binary",
        "garbage",
        "bad-padding",
        "huge",
    ],
)
def test_load_rejects_wrong_content(tmp_path: Path, content: bytes, says: str) -> None:
    path = write_key_file(tmp_path / "kek", content)
    with pytest.raises(KekError, match=says) as info:
        load_kek(path)
    assert str(path) in str(info.value)
    assert info.value.path == path
    assert_no_key_material(info.value, KEY)


@pytest.mark.parametrize(
    "content",
    [
        base64.b64encode(KEY),
        base64.b64encode(KEY) + b"\n",
        b"  " + base64.b64encode(KEY) + b"\r\n\n",
    ],
    ids=["bare", "newline", "surrounding-whitespace"],
)
def test_load_accepts_base64_text(tmp_path: Path, content: bytes) -> None:
    assert load_kek(write_key_file(tmp_path / "kek", content)).key == KEY


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KekError, match="does not exist") as info:
        load_kek(tmp_path / "kek")
    assert info.value.code == "failed_precondition"


def test_load_directory(tmp_path: Path) -> None:
    directory = tmp_path / "kek"
    directory.mkdir(mode=0o700)
    with pytest.raises(KekError, match="not a regular file"):
        load_kek(directory)


def test_load_checks_the_target_of_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "real-kek"
    kek = generate_kek_file(target)
    link = tmp_path / "kek"
    link.symlink_to(target)
    assert load_kek(link) == kek
    target.chmod(0o644)
    with pytest.raises(InsecureKekFile):
        load_kek(link)


@pytest.mark.parametrize(
    ("environ", "says"),
    [
        ({}, "SECINFRA_KEK is not set"),
        ({"SECINFRA_KEK": ""}, "SECINFRA_KEK is not set"),
        ({"SECINFRA_KEK": base64.b64encode(KEY[:16]).decode()}, "decodes to 16 bytes"),
        ({"SECINFRA_KEK": KEY.hex()}, "decodes to 48 bytes"),
        ({"SECINFRA_KEK": "é" * 44}, "not base64"),
    ],
    ids=["unset", "empty", "short", "hex-not-base64", "non-ascii"],
)
def test_env_rejects(environ: dict[str, str], says: str) -> None:
    with pytest.raises(KekError, match=says) as info:
        load_kek_from_env(environ=environ)
    assert info.value.code == "failed_precondition"
    assert info.value.path is None
    assert_no_key_material(info.value, KEY)


def test_env_loads_base64() -> None:
    kek = Kek.generate()
    assert load_kek_from_env(environ={"SECINFRA_KEK": kek.to_base64()}) == kek
    assert load_kek_from_env("OTHER", environ={"OTHER": kek.to_base64() + "\n"}) == kek


def test_env_defaults_to_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    kek = Kek.generate()
    monkeypatch.setenv("SECINFRA_KEK", kek.to_base64())
    assert load_kek_from_env() == kek


def test_file_content_works_as_env_value(tmp_path: Path) -> None:
    kek = generate_kek_file(tmp_path / "kek")
    value = (tmp_path / "kek").read_text()
    assert load_kek_from_env(environ={"SECINFRA_KEK": value}) == kek


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
def test_kek_requires_32_bytes(length: int) -> None:
    with pytest.raises(KekError, match=f"got {length}"):
        Kek(b"\x01" * length)


def test_kek_id_is_stable_short_hex_and_hides_the_key() -> None:
    kek = Kek(KEY)
    assert kek.id == Kek(KEY).id
    assert len(kek.id) == 16
    assert int(kek.id, 16) >= 0
    assert kek.id != Kek.generate().id
    assert KEY.hex()[:16] != kek.id
    for text in (repr(kek), str(kek)):
        assert kek.id in text
        assert KEY.hex() not in text
        assert kek.to_base64() not in text


def test_keyring_holds_current_and_previous() -> None:
    new, old, older = Kek.generate(), Kek.generate(), Kek.generate()
    ring = Keyring(new, previous=[old, older, new, old])
    assert ring.current is new
    assert ring.ids == (new.id, old.id, older.id)
    assert len(ring) == 3
    assert ring.get(old.id) is old
    assert ring.get("0" * 16) is None
    assert older.id in ring
    assert list(ring) == [new, old, older]
    text = repr(ring)
    assert new.id in text
    assert old.id in text
    for kek in (new, old, older):
        assert kek.key.hex() not in text
        assert kek.to_base64() not in text


def test_kek_errors_family() -> None:
    assert issubclass(InsecureKekFile, KekError)
    assert issubclass(KekError, CryptoError)
    assert KekError.code == "failed_precondition"
