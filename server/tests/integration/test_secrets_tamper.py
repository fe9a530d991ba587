"""Tampering with the database file: reads fail loudly, never with wrong plaintext."""

from __future__ import annotations

import base64
import json
import logging
import sqlite3
from pathlib import Path

import pytest

from secinfra_server._logging import JsonFormatter

from .harness import Client, Response, RunningServer

VALUES = {"app/one": b"first-secret-value", "app/two": b"second-secret-value"}


def _admin(server: RunningServer, tmp: Path) -> Client:
    return Client(server.port, server.bundle_pem(), server.admin, tmp / "admin-client")


@pytest.fixture
def stopped(tmp_path: Path) -> Path:
    """A data dir holding two secrets, with its server stopped."""
    data = tmp_path / "data"
    server = RunningServer(data).start()
    try:
        admin = _admin(server, tmp_path)
        for name, value in VALUES.items():
            response = admin.request(
                "PUT", f"/v1/secrets/{name}", {"value": base64.b64encode(value).decode()}
            )
            assert response.status == 200, response.body
        admin.close()
    finally:
        server.stop()
    return data


def _read_all(data: Path, tmp: Path) -> dict[str, Response]:
    server = RunningServer(data).start()
    try:
        admin = _admin(server, tmp)
        out = {name: admin.request("GET", f"/v1/secrets/{name}") for name in VALUES}
        admin.close()
        return out
    finally:
        server.stop()


def _assert_fails_loudly(response: Response, name: str) -> None:
    assert response.status == 500, response.body
    error = response.json()["error"]
    assert error["code"] == "internal"
    assert "failed its integrity check" in error["message"]
    assert name in error["message"]
    assert "value" not in response.json()
    for value in VALUES.values():
        assert value not in response.body
        assert base64.b64encode(value) not in response.body


def _flip(blob: bytes, index: int) -> bytes:
    return blob[:index] + bytes([blob[index] ^ 0x01]) + blob[index + 1 :]


def test_untouched_database_reads_back(stopped: Path, tmp_path: Path) -> None:
    responses = _read_all(stopped, tmp_path)
    for name, value in VALUES.items():
        assert base64.b64decode(responses[name].json()["value"]) == value


@pytest.mark.parametrize(
    ("column", "index"),
    [
        ("ciphertext", -1),  # the tag
        ("ciphertext", 20),  # the body
        ("ciphertext", 3),  # the nonce
        ("wrapped_key", 30),
    ],
)
def test_one_flipped_byte_fails_the_read(
    stopped: Path, tmp_path: Path, column: str, index: int
) -> None:
    conn = sqlite3.connect(stopped / "secinfra.db")
    (blob,) = conn.execute(
        f"SELECT {column} FROM secret_versions WHERE name = 'app/one'"
    ).fetchone()
    conn.execute(
        f"UPDATE secret_versions SET {column} = ? WHERE name = 'app/one'",
        (_flip(bytes(blob), index % len(blob)),),
    )
    conn.commit()
    conn.close()
    responses = _read_all(stopped, tmp_path)
    _assert_fails_loudly(responses["app/one"], "app/one")
    assert base64.b64decode(responses["app/two"].json()["value"]) == VALUES["app/two"]


def test_swapped_rows_fail_both_reads(stopped: Path, tmp_path: Path) -> None:
    conn = sqlite3.connect(stopped / "secinfra.db")
    rows = {
        name: (wrapped, ciphertext)
        for name, wrapped, ciphertext in conn.execute(
            "SELECT name, wrapped_key, ciphertext FROM secret_versions"
        )
    }
    for name, other in (("app/one", "app/two"), ("app/two", "app/one")):
        conn.execute(
            "UPDATE secret_versions SET wrapped_key = ?, ciphertext = ? WHERE name = ?",
            (*rows[other], name),
        )
    conn.commit()
    conn.close()
    responses = _read_all(stopped, tmp_path)
    for name in VALUES:
        _assert_fails_loudly(responses[name], name)


def test_a_value_moved_to_another_version_fails(stopped: Path, tmp_path: Path) -> None:
    """The AAD binds the version too: v1's box stored as v2 of the same name fails."""
    conn = sqlite3.connect(stopped / "secinfra.db")
    conn.execute(
        "INSERT INTO secret_versions (name, version, state, kek_id, wrapped_key, ciphertext,"
        " created_ms) SELECT name, 2, state, kek_id, wrapped_key, ciphertext, created_ms + 1"
        " FROM secret_versions WHERE name = 'app/one'"
    )
    conn.execute("UPDATE secrets SET current_version = 2 WHERE name = 'app/one'")
    conn.commit()
    conn.close()
    responses = _read_all(stopped, tmp_path)
    _assert_fails_loudly(responses["app/one"], "app/one")


def _tamper_ciphertext(data: Path, name: str) -> None:
    conn = sqlite3.connect(data / "secinfra.db")
    (blob,) = conn.execute(
        "SELECT ciphertext FROM secret_versions WHERE name = ?", (name,)
    ).fetchone()
    conn.execute(
        "UPDATE secret_versions SET ciphertext = ? WHERE name = ?", (_flip(bytes(blob), -1), name)
    )
    conn.commit()
    conn.close()


@pytest.mark.parametrize("path", ["/v1/secrets/app/one", "/v1/secrets/app/one?version=1"])
def test_a_tampered_version_never_answers_304_to_its_old_etag(
    stopped: Path, tmp_path: Path, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = RunningServer(stopped).start()
    try:
        admin = _admin(server, tmp_path)
        etag = admin.request("GET", path).headers["etag"]
        assert admin.request("GET", path, headers={"If-None-Match": etag}).status == 304
        admin.close()
    finally:
        server.stop()
    _tamper_ciphertext(stopped, "app/one")
    server = RunningServer(stopped).start()
    try:
        admin = _admin(server, tmp_path)
        with caplog.at_level(logging.ERROR, logger="secinfra"):
            response = admin.request("GET", path, headers={"If-None-Match": etag})
        untouched = admin.request("GET", "/v1/secrets/app/two")
        admin.close()
    finally:
        server.stop()
    _assert_fails_loudly(response, "app/one")
    assert base64.b64decode(untouched.json()["value"]) == VALUES["app/two"]
    (record,) = [r for r in caplog.records if r.getMessage() == "secret value failed to decrypt"]
    line = json.loads(JsonFormatter().format(record))
    assert line["secret_name"] == "app/one"
    assert line["version"] == 1  # the version read, also when the request asked for "latest"
    assert line["request_id"] == response.json()["error"]["request_id"]
    for value in VALUES.values():
        assert value.decode() not in json.dumps(line)
