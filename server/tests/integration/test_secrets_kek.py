"""KEK rotation: `secinfra-server kek rotate`, resuming after a crash, KEK from env."""

from __future__ import annotations

import base64
import json
import sqlite3
import stat
import uuid
from pathlib import Path

import pytest

from secinfra_server import _kek_rotation as rotation
from secinfra_server.cli import main
from secinfra_server.config import load_config
from secinfra_server.crypto import (
    KEK_ENV_VAR,
    DecryptionError,
    Kek,
    Keyring,
    SealedBox,
    aad_for_ca_key,
    aad_for_secret,
    load_kek,
    open_,
)

from .harness import Client, RunningServer, verified_audit_rows

SECRETS = {f"svc/{n}": f"value-{n}".encode() * (n + 1) for n in range(7)}


def _admin(server: RunningServer, tmp: Path) -> Client:
    return Client(server.port, server.bundle_pem(), server.admin, tmp / "admin-client")


def _write_secrets(data: Path, tmp: Path) -> None:
    server = RunningServer(data).start()
    try:
        admin = _admin(server, tmp)
        for name, value in SECRETS.items():
            for version_value in (b"old " + value, value):
                response = admin.request(
                    "PUT",
                    f"/v1/secrets/{name}",
                    {"value": base64.b64encode(version_value).decode()},
                    headers={"Idempotency-Key": str(uuid.uuid4())},
                )
                assert response.status == 200, response.body
        admin.request("POST", "/v1/secrets/svc/0:destroy", {"versions": [1]})
        admin.close()
    finally:
        server.stop()


def _read_back(data: Path, tmp: Path) -> None:
    server = RunningServer(data).start()
    try:
        admin = _admin(server, tmp)
        for name, value in SECRETS.items():
            response = admin.request("GET", f"/v1/secrets/{name}")
            assert response.status == 200, response.body
            assert base64.b64decode(response.json()["value"]) == value
        old = admin.request("GET", "/v1/secrets/svc/3?version=1")
        assert base64.b64decode(old.json()["value"]) == b"old " + SECRETS["svc/3"]
        assert admin.request("PUT", "/v1/secrets/svc/new", {"value": "AA=="}).status == 200
        admin.close()
    finally:
        server.stop()


def _kek_ids(data: Path) -> dict[str, set[str]]:
    conn = sqlite3.connect(data / "secinfra.db")
    try:
        return {
            table: {str(k) for (k,) in conn.execute(f"SELECT DISTINCT {column} FROM {table}")}
            for table, column in (
                ("secret_versions", "kek_id"),
                ("cas", "key_kek_id"),
                ("idempotency", "kek_id"),
            )
        }
    finally:
        conn.close()


def _assert_only(data: Path, kek: Kek) -> None:
    ids = _kek_ids(data)
    assert ids["secret_versions"] == {kek.id, "None"}  # "None": the destroyed version
    assert ids["cas"] == {kek.id}
    assert ids["idempotency"] <= {kek.id, "None"}


def _kek_entries(data: Path) -> list[tuple[str, dict[str, object]]]:
    """(action, details) of the kek commands' audit entries, after verifying the chain."""
    rows = verified_audit_rows(
        data,
        "SELECT action, details FROM audit_log WHERE actor = ? ORDER BY seq",
        (rotation.KEK_ACTOR,),
    )
    return [(str(action), json.loads(details)) for action, details in rows]


def _assert_old_kek_opens_nothing(data: Path, old: Kek, new: Kek) -> None:
    """Check with the crypto package directly: every row opens under the new KEK,
    and the old KEK cannot unwrap any data key, even when told it is the right one."""
    conn = sqlite3.connect(data / "secinfra.db")
    rows = [
        (aad_for_secret(name, version), kek_id, wrapped, ciphertext)
        for name, version, kek_id, wrapped, ciphertext in conn.execute(
            "SELECT name, version, kek_id, wrapped_key, ciphertext FROM secret_versions"
            " WHERE ciphertext IS NOT NULL"
        )
    ] + [
        (aad_for_ca_key(ca_id), kek_id, wrapped, ciphertext)
        for ca_id, kek_id, wrapped, ciphertext in conn.execute(
            "SELECT id, key_kek_id, key_wrapped, key_ciphertext FROM cas"
        )
    ]
    conn.close()
    assert len(rows) >= len(SECRETS) * 2
    for aad, kek_id, wrapped, ciphertext in rows:
        assert kek_id == new.id
        open_(Keyring(new), SealedBox(kek_id, bytes(wrapped), bytes(ciphertext)), aad)
        with pytest.raises(DecryptionError):
            open_(Keyring(old), SealedBox(old.id, bytes(wrapped), bytes(ciphertext)), aad)


def test_rotate_rewraps_every_row_and_swaps_the_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    _write_secrets(data, tmp_path)
    old = load_kek(data / "kek")
    _assert_only(data, old)

    assert main(["kek", "rotate", "--data-dir", str(data), "--batch-rows", "3"]) == 0
    out = capsys.readouterr().out
    new = load_kek(data / "kek")
    assert new != old
    assert f"{old.id} -> {new.id}" in out
    assert not (data / "kek.new").exists()
    retired = data / f"kek.retired-{old.id}"
    assert load_kek(retired) == old
    for path in (data / "kek", retired):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    _assert_only(data, new)
    _assert_old_kek_opens_nothing(data, old, new)
    entries = _kek_entries(data)
    rewraps = [d for action, d in entries if action == "kek.rewrap"]
    assert sum(int(str(d["rows"])) for d in rewraps) == int(out.split("; ")[1].split()[0])
    assert all(d["kek_id"] == new.id and int(str(d["rows"])) <= 3 for d in rewraps)
    assert entries[-1][0] == "kek.rotate"
    assert entries[-1][1]["old_kek_id"] == old.id
    assert entries[-1][1]["new_kek_id"] == new.id
    assert entries[-1][1]["resumed"] is False
    _read_back(data, tmp_path)

    assert main(["kek", "status", "--data-dir", str(data)]) == 0
    status = capsys.readouterr().out
    assert f"current KEK: {new.id}" in status
    assert "NOT LOADED" not in status
    assert old.id not in status


def test_rotate_refuses_while_the_server_runs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = RunningServer(data).start()
    try:
        before = (data / "kek").read_bytes()
        assert main(["kek", "rotate", "--data-dir", str(data)]) == 1
        assert (data / "kek").read_bytes() == before
        assert not (data / "kek.new").exists()
        admin = _admin(server, tmp_path)
        assert admin.request("PUT", "/v1/secrets/still", {"value": "AA=="}).status == 200
        admin.close()
    finally:
        server.stop()


class _Crash(Exception):
    pass


def test_an_interrupted_rotation_serves_every_row_and_resumes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _write_secrets(data, tmp_path)
    old = load_kek(data / "kek")
    config = load_config(flags={"data_dir": str(data)}, environ={})

    def crash_after_first_batch(table: str, done: int) -> None:
        raise _Crash(table)

    with pytest.raises(_Crash):
        rotation.rotate_kek(config, batch_rows=4, environ={}, progress=crash_after_first_batch)
    new = load_kek(data / "kek.new")
    ids = _kek_ids(data)["secret_versions"] - {"None"}
    assert ids == {old.id, new.id}, "half done: rows under both KEKs"
    # The committed batch has its entry; the rotation has none yet.
    assert [(action, d["rows"]) for action, d in _kek_entries(data)] == [("kek.rewrap", 4)]

    # A server started now reads rows wrapped by either KEK (and writes more).
    _read_back(data, tmp_path)

    resumed = rotation.rotate_kek(config, batch_rows=4, environ={})
    assert resumed.resumed
    assert resumed.new_kek_id == new.id
    assert load_kek(data / "kek") == new
    _assert_only(data, new)
    _assert_old_kek_opens_nothing(data, old, new)
    assert _kek_entries(data)[-1][1]["resumed"] is True
    _read_back(data, tmp_path)


def test_kek_from_the_environment_and_rewrap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    _write_secrets(data, tmp_path)
    old = load_kek(data / "kek")
    new = Kek.generate()
    config = load_config(flags={"data_dir": str(data)}, environ={})
    env = {KEK_ENV_VAR: new.to_base64(), rotation.KEK_PREVIOUS_ENV_VAR: old.to_base64()}
    with pytest.raises(rotation.KekRotationError, match="kek rewrap"):
        rotation.rotate_kek(config, environ=env)
    result = rotation.rewrap_database(config, batch_rows=5, environ=env)
    assert result.kek_id == new.id
    assert result.rewrapped["cas"] == 1
    assert result.rewrapped["secret_versions"] == len(SECRETS) * 2 - 1
    rewrapped = [d for action, d in _kek_entries(data) if action == "kek.rewrap"]
    assert sum(int(str(d["rows"])) for d in rewrapped) == result.total
    _assert_only(data, new)
    # The server now runs on the environment's KEK alone; the file is ignored.
    (data / "kek").unlink()
    monkeypatch.setenv(KEK_ENV_VAR, new.to_base64())
    _read_back(data, tmp_path)
    assert not (data / "kek").exists(), "init does not create a KEK file when env holds one"
