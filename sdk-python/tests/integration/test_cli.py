"""The ``secinfra`` command line against the real reference server.

Each command runs in-process through ``secinfra.cli.main`` (what the console
script calls); stdout and stderr come from capsys. Exit codes: 0 ok, 1 API or
transport error, 2 usage or configuration, 3 ``authz check`` denied.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import stat
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from secinfra.cli import build_parser, main
from secinfra.models import RelationshipCondition, TupleKey
from secinfra.testing import ReferenceServer

from .support import TRUST_DOMAIN

ENV_VARS = (
    "SECINFRA_SERVER",
    "SECINFRA_BUNDLE",
    "SECINFRA_CERT",
    "SECINFRA_KEY",
    "SECINFRA_IDENTITY_DIR",
    "SECINFRA_JOIN_TOKEN",
)


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> object:
        return json.loads(self.out)

    def one_line_error(self) -> str:
        """The error message; fails unless it is exactly one ``secinfra: ...`` line."""
        assert self.err.startswith("secinfra: "), self.err
        assert self.err.count("\n") == 1, self.err
        assert self.err.endswith("\n"), self.err
        assert "secinfra: secinfra:" not in self.err
        return self.err


Run = Callable[..., Result]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def admin_flags(server: ReferenceServer) -> list[str]:
    admin = server.data_dir / "admin"
    return [
        "--server",
        server.url,
        "--bundle",
        str(admin / "bundle.pem"),
        "--cert",
        str(admin / "cert.pem"),
        "--key",
        str(admin / "key.pem"),
    ]


def runner(capsys: pytest.CaptureFixture[str], flags: list[str]) -> Run:
    def run(*args: str) -> Result:
        code = main([*args, *flags])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def as_admin(server: ReferenceServer, capsys: pytest.CaptureFixture[str]) -> Run:
    """Run a command with the admin identity (flags after the command)."""
    return runner(capsys, admin_flags(server))


@pytest.fixture
def enrolled(
    server: ReferenceServer, unique: str, tmp_path: Path, as_admin: Run
) -> tuple[str, Path]:
    """(SPIFFE ID, identity dir) of a workload enrolled with ``secinfra enrol``."""
    spiffe_id = f"spiffe://{TRUST_DOMAIN}/{unique}"
    out = tmp_path / "identity"
    token = server.join_token(spiffe_id)
    result = as_admin("enrol", "--join-token", token, "--out", str(out))
    assert result.code == 0, result.err
    return spiffe_id, out


@pytest.fixture
def as_workload(
    server: ReferenceServer, capsys: pytest.CaptureFixture[str], enrolled: tuple[str, Path]
) -> Run:
    return runner(capsys, ["--server", server.url, "--identity-dir", str(enrolled[1])])


# -- identity ----------------------------------------------------------------------------------
def test_whoami_shows_the_admin(as_admin: Run) -> None:
    human = as_admin("whoami")
    assert human.code == 0
    assert f"spiffe://{TRUST_DOMAIN}/secinfra/admin" in human.out
    assert "admin      yes" in human.out

    doc = as_admin("whoami", "--json").json()
    assert isinstance(doc, dict)
    assert set(doc) == {"spiffe_id", "serial", "not_after", "admin"}
    assert doc["admin"] is True


def test_enrol_writes_files_and_the_identity_dir_works(
    enrolled: tuple[str, Path], as_workload: Run
) -> None:
    spiffe_id, out = enrolled
    modes = {n: stat.S_IMODE(os.stat(out / n).st_mode) for n in ("cert.pem", "key.pem")}
    assert modes == {"cert.pem": 0o600, "key.pem": 0o600}
    assert (out / "bundle.pem").read_text().startswith("-----BEGIN CERTIFICATE-----")

    doc = as_workload("whoami", "--json").json()
    assert isinstance(doc, dict)
    assert doc["spiffe_id"] == spiffe_id
    assert doc["admin"] is False


def test_enrol_prints_no_key_and_json_names_the_files(
    server: ReferenceServer, unique: str, tmp_path: Path, as_admin: Run
) -> None:
    token = server.join_token(f"spiffe://{TRUST_DOMAIN}/{unique}")
    result = as_admin("--json", "enrol", "--join-token", token, "--out", str(tmp_path))
    assert result.code == 0
    doc = result.json()
    assert isinstance(doc, dict)
    assert doc["key_file"] == str(tmp_path / "key.pem")
    assert "PRIVATE KEY" not in result.out + result.err
    assert token not in result.out + result.err


def test_enrol_with_a_used_token_fails_with_exit_1(
    server: ReferenceServer, unique: str, tmp_path: Path, as_admin: Run
) -> None:
    token = server.join_token(f"spiffe://{TRUST_DOMAIN}/{unique}")
    assert as_admin("enrol", "--join-token", token, "--out", str(tmp_path / "a")).code == 0
    again = as_admin("enrol", "--join-token", token, "--out", str(tmp_path / "b"))
    assert again.code == 1
    assert token not in again.one_line_error()


# -- secrets -----------------------------------------------------------------------------------
def test_secrets_put_get_list_metadata_delete(
    as_admin: Run, unique: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"{unique}/db/password"
    put = as_admin("secrets", "put", name, "--value", "s3cret-one")
    assert (put.code, put.out) == (0, f"wrote {name} version 1\n")
    assert "s3cret-one" not in put.out + put.err

    value_file = tmp_path / "value"
    value_file.write_bytes(b"from-file")
    put_json = as_admin("secrets", "put", name, "--from-file", str(value_file), "--json")
    assert put_json.json() == {
        "name": name,
        "version": 2,
        "create_time": put_json.json()["create_time"],  # type: ignore[index]
    }

    assert as_admin("secrets", "get", name).out == "from-file"  # raw: no newline added
    one = as_admin("secrets", "get", name, "--version", "1", "--json").json()
    assert isinstance(one, dict)
    assert (one["version"], one["value"]) == (1, "czNjcmV0LW9uZQ==")  # base64

    listed = as_admin("secrets", "list", unique, "--json").json()
    assert isinstance(listed, dict)
    assert [s["name"] for s in listed["secrets"]] == [name]
    human = as_admin("secrets", "list", unique)
    assert human.out.splitlines()[0].split() == ["NAME", "VERSION", "UPDATED"]
    assert "from-file" not in human.out

    meta = as_admin("secrets", "metadata", name, "--json").json()
    assert isinstance(meta, dict)
    assert meta["current_version"] == 2
    assert "from-file" not in as_admin("secrets", "metadata", name).out

    deleted = as_admin("secrets", "delete", name, "--versions", "1", "--json").json()
    assert isinstance(deleted, dict)
    states = {v["version"]: v["state"] for v in deleted["versions"]}
    assert states == {1: "deleted", 2: "enabled"}
    gone = as_admin("secrets", "get", name, "--version", "1")
    assert gone.code == 1
    gone.one_line_error()


def test_secrets_get_writes_raw_bytes(
    server: ReferenceServer, unique: str, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    name = f"{unique}/binary"
    value = bytes(range(256))
    with server.admin_client() as admin:
        admin.secrets.put_secret(name=name, value=value)
    assert main(["secrets", "get", name, *admin_flags(server)]) == 0
    assert capsysbinary.readouterr().out == value


def test_secrets_put_reads_stdin_and_checks_the_version(
    as_admin: Run, unique: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    name = f"{unique}/cas"
    stdin = tmp_path / "stdin"
    stdin.write_bytes(b"piped\n")
    with stdin.open("rb") as piped:
        monkeypatch.setattr("sys.stdin", _BinaryStdin(piped))
        assert as_admin("secrets", "put", name, "--if-version", "0").code == 0
    assert as_admin("secrets", "get", name).out == "piped\n"

    conflict = as_admin("secrets", "put", name, "--value", "x", "--if-version", "0")
    assert conflict.code == 1
    assert "x" not in conflict.one_line_error().split(": ", 1)[1].split()


class _BinaryStdin:
    """A non-interactive stdin whose ``buffer`` is a file."""

    def __init__(self, file: object) -> None:
        self.buffer = file

    def isatty(self) -> bool:
        return False


def test_a_workload_reads_only_what_it_was_granted(
    server: ReferenceServer, enrolled: tuple[str, Path], as_admin: Run, as_workload: Run
) -> None:
    spiffe_id, _ = enrolled
    name = spiffe_id.rsplit("/", 1)[1] + "/token"
    assert as_admin("secrets", "put", name, "--value", "v").code == 0

    denied = as_workload("secrets", "get", name)
    assert denied.code == 1
    assert "may not read" in denied.one_line_error()

    server.grant(spiffe_id, "reader", f"secret:{name}")
    assert as_workload("secrets", "get", name).out == "v"


# -- authz -------------------------------------------------------------------------------------
def test_authz_check_exits_3_when_denied_and_0_when_allowed(as_admin: Run, unique: str) -> None:
    user = f"workload:spiffe://{TRUST_DOMAIN}/{unique}"
    obj = f"secret:{unique}/x"
    denied = as_admin("authz", "check", user, "reader", obj)
    assert (denied.code, denied.out) == (3, "denied\n")

    written = as_admin("authz", "write", "--tuple", user, "reader", obj, "--json").json()
    assert isinstance(written, dict)
    revision = written["revision"]

    allowed = as_admin("authz", "check", user, "reader", obj, "--at-least-as-fresh", revision)
    assert (allowed.code, allowed.out) == (0, "allowed\n")
    doc = as_admin("authz", "check", user, "reader", obj, "--json").json()
    assert isinstance(doc, dict)
    assert doc["allowed"] is True

    assert as_admin("authz", "write", "--delete", user, "reader", obj).code == 0
    again = as_admin("--json", "authz", "check", user, "reader", obj)
    assert again.code == 3
    assert again.json() == {"allowed": False, "revision": again.json()["revision"]}  # type: ignore[index]


BUILT_IN_TYPES = {"workload", "group", "system", "folder", "secret", "registration_entry"}
MODEL_DSL = """model
  schema 1.1

type document
  relations
    define viewer: [workload]
"""


def test_authz_model_put_and_get(
    own_server: Callable[..., ReferenceServer], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run = runner(capsys, admin_flags(own_server()))  # a new model changes the server
    dsl = tmp_path / "model.fga"
    dsl.write_text(MODEL_DSL)
    put = run("authz", "model", "put", "--dsl", str(dsl))
    assert put.code == 0, put.err
    model_id = put.out.removeprefix("wrote model ").strip()

    current = run("authz", "model", "get", "--json").json()
    assert isinstance(current, dict)
    assert current["id"] == model_id
    assert "type document" in current["dsl"]
    assert run("authz", "model", "get").out.startswith(f"# model {model_id}\n")

    # The same model as JSON (without the built-in types the server adds): the id
    # is a hash of the canonical form, so it is unchanged.
    model = dict(current["model"])
    model["type_definitions"] = [
        t for t in model["type_definitions"] if t["type"] not in BUILT_IN_TYPES
    ]
    as_json = tmp_path / "model.json"
    as_json.write_text(json.dumps(model))
    put_json = run("authz", "model", "put", "--json-file", str(as_json), "--json")
    assert put_json.json() == {"id": model_id}
    assert run("authz", "model", "list").out == f"{model_id}  (current)\n"
    listed = run("authz", "model", "list", "--json").json()
    assert isinstance(listed, dict)
    assert (listed["current_id"], [m["id"] for m in listed["models"]]) == (model_id, [model_id])

    bad = tmp_path / "bad.fga"
    bad.write_text("model\n  schema 1.1\n\ntype workload\n")
    refused = run("authz", "model", "put", "--dsl", str(bad))
    assert refused.code == 1
    assert "built in" in refused.one_line_error()


def test_authz_write_needs_a_tuple(as_admin: Run) -> None:
    result = as_admin("authz", "write")
    assert result.code == 2
    result.one_line_error()


# -- admin -------------------------------------------------------------------------------------
def test_join_token_create_list_revoke(
    as_admin: Run, server: ReferenceServer, unique: str, tmp_path: Path
) -> None:
    spiffe_id = f"spiffe://{TRUST_DOMAIN}/{unique}"
    created = as_admin("join-token", "create", spiffe_id, "--ttl", "120")
    assert created.code == 0
    token = created.out.strip()  # alone on stdout: TOKEN=$(secinfra join-token create ...)
    assert "\n" not in token
    assert spiffe_id in created.err

    doc = as_admin("join-token", "create", spiffe_id, "--json").json()
    assert isinstance(doc, dict)
    assert set(doc) == {"token", "join_token"}
    token_id = doc["join_token"]["id"]

    listed = as_admin("join-token", "list")
    assert token_id in listed.out
    assert token not in listed.out
    assert doc["token"] not in listed.out
    listed_json = as_admin("join-token", "list", "--json").json()
    assert isinstance(listed_json, dict)
    assert token_id in [t["id"] for t in listed_json["join_tokens"]]

    assert as_admin("join-token", "revoke", token_id).code == 0
    refused = as_admin("enrol", "--join-token", doc["token"], "--out", str(tmp_path))
    assert refused.code == 1
    refused.one_line_error()


def test_entry_create_list_show_delete(as_admin: Run, unique: str) -> None:
    spiffe_id = f"spiffe://{TRUST_DOMAIN}/{unique}"
    node = f"spiffe://{TRUST_DOMAIN}/node/{unique}"
    created = as_admin(
        "--json",
        "entry",
        "create",
        "--spiffe-id",
        spiffe_id,
        "--parent-id",
        node,
        "--selector",
        "unix:uid:1000",
        "--selector",
        "unix:path:/usr/bin/billing",
        "--dns-name",
        "billing.internal",
    )
    assert created.code == 0, created.err
    doc = created.json()
    assert isinstance(doc, dict)
    assert doc["selectors"] == [
        {"type": "unix", "value": "path:/usr/bin/billing"},
        {"type": "unix", "value": "uid:1000"},
    ]
    listed = as_admin("entry", "list", "--parent-id", node)
    assert doc["id"] in listed.out
    assert "unix:path:/usr/bin/billing unix:uid:1000" in listed.out
    shown = as_admin("--json", "entry", "show", doc["id"]).json()
    assert shown == doc
    deleted = as_admin("entry", "delete", doc["id"])
    assert deleted.out == f"deleted entry {doc['id']} ({spiffe_id} on {node})\n"
    assert as_admin("entry", "list", "--parent-id", node, "--json").json() == {"entries": []}
    # A selector the server's rules refuse: one line saying which rule.
    bad = as_admin(
        "entry", "create", "--spiffe-id", spiffe_id, "--parent-id", node, "--selector", "unix:uid:x"
    )
    assert bad.code == 1
    assert "uid" in bad.one_line_error()
    # Not TYPE:KEY:VALUE at all: a usage error before any request.
    usage = as_admin(
        "entry", "create", "--spiffe-id", spiffe_id, "--parent-id", node, "--selector", "uid"
    )
    assert usage.code == 2


def test_admin_commands_are_denied_to_a_workload(as_workload: Run) -> None:
    result = as_workload("join-token", "create", f"spiffe://{TRUST_DOMAIN}/x")
    assert result.code == 1
    assert "may not" in result.one_line_error()


def test_revoke_by_serial_locks_the_workload_out(
    as_admin: Run, as_workload: Run, enrolled: tuple[str, Path]
) -> None:
    me = as_workload("whoami", "--json").json()
    assert isinstance(me, dict)
    revoked = as_admin("revoke", "--serial", me["serial"], "--reason", "test", "--json").json()
    assert isinstance(revoked, dict)
    assert revoked["serial"] == me["serial"]

    locked_out = as_workload("whoami")
    assert locked_out.code == 1
    locked_out.one_line_error()


def test_revoke_and_lift_by_spiffe_id(
    as_admin: Run, as_workload: Run, enrolled: tuple[str, Path]
) -> None:
    me = as_workload("whoami", "--json").json()
    assert isinstance(me, dict)
    assert as_admin("revoke", "--spiffe-id", me["spiffe_id"], "--reason", "leak").code == 0
    refused = as_admin("join-token", "create", me["spiffe_id"])
    assert refused.code == 1
    assert "lift the revocation first" in refused.one_line_error()
    lifted = as_admin("lift-revocation", "--spiffe-id", me["spiffe_id"], "--json").json()
    assert isinstance(lifted, dict)
    assert lifted["lifted"]["spiffe_id"] == me["spiffe_id"]
    assert lifted["serials_kept_revoked"] == [me["serial"]]
    assert as_admin("join-token", "create", me["spiffe_id"]).code == 0
    # The certificate it held stays revoked.
    assert as_workload("whoami").code == 1


ADMIN_TTL_SECONDS = 10


def _admin_cert(server: ReferenceServer) -> x509.Certificate:
    return x509.load_pem_x509_certificate((server.data_dir / "admin" / "cert.pem").read_bytes())


def test_the_admin_identity_is_renewed_in_its_files_past_half_life(
    own_server: Callable[..., ReferenceServer], capsys: pytest.CaptureFixture[str]
) -> None:
    """init's admin identity is short-lived; a command that used it past half
    its lifetime renews it (new key, same lifetime) and writes both files back."""
    server = own_server(admin_cert_ttl_seconds=ADMIN_TTL_SECONDS)
    run = runner(capsys, admin_flags(server))
    first = _admin_cert(server)
    first_key = (server.data_dir / "admin" / "key.pem").read_bytes()
    # NotBefore is backdated 60 s: the lifetime counts from 60 s after it.
    halfway = first.not_valid_before_utc.timestamp() + 60 + ADMIN_TTL_SECONDS / 2
    time.sleep(max(0.0, halfway - time.time() + 0.2))

    # A refused renewal leaves the command's result alone and says what to do.
    refusal = {"error": {"code": "permission_denied", "message": "scripted", "request_id": "r"}}
    server.control(
        "POST",
        "/_test/scripts",
        {"rpc": "RenewCertificate", "steps": [{"status": 403, "body": refusal}]},
    )
    warned = run("whoami")
    assert warned.code == 0, warned.err
    assert "could not renew the admin identity" in warned.err
    assert "secinfra-server init" in warned.err
    assert _admin_cert(server).serial_number == first.serial_number

    renewed = run("whoami")
    assert renewed.code == 0, renewed.err
    assert "renewed the admin identity" in renewed.err
    second = _admin_cert(server)
    assert second.serial_number != first.serial_number
    assert (server.data_dir / "admin" / "key.pem").read_bytes() != first_key
    lifetime = second.not_valid_after_utc - second.not_valid_before_utc
    assert lifetime.total_seconds() == 60 + ADMIN_TTL_SECONDS  # the admin TTL, not the leaf's
    for name in ("cert.pem", "key.pem"):
        assert stat.S_IMODE((server.data_dir / "admin" / name).stat().st_mode) == 0o600

    # The renewed files work, and a fresh certificate is left alone.
    again = run("whoami", "--json")
    assert again.code == 0, again.err
    doc = again.json()
    assert isinstance(doc, dict)
    assert doc["serial"] == f"{second.serial_number:x}"
    assert again.err == ""
    assert _admin_cert(server).serial_number == second.serial_number


def test_ca_rotation_steps(
    own_server: Callable[..., ReferenceServer], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    server = own_server()
    flags = admin_flags(server)
    run = runner(capsys, flags)
    before = run("ca", "status", "--json").json()
    assert isinstance(before, dict)
    [old] = before["authorities"]
    assert old["state"] == "active"
    assert run("ca", "status").out.splitlines()[0].split()[:2] == ["CA", "STATE"]

    admin_bundle = server.data_dir / "admin" / "bundle.pem"
    prepare = run("ca", "prepare")
    assert prepare.code == 0, prepare.err
    # The bundle the CLI trusts now holds the new CA too: after activate the
    # server's certificate comes from it (docs/operations/ca.md).
    assert f"updated the trust bundle {admin_bundle}" in prepare.err
    assert admin_bundle.read_text().count("BEGIN CERTIFICATE") == 2
    prepared = run("ca", "status", "--json").json()
    assert isinstance(prepared, dict)
    assert sorted(a["state"] for a in prepared["authorities"]) == ["active", "prepared"]

    activated = run("ca", "activate")
    assert activated.code == 0, activated.err
    assert "retiring" in activated.out

    refused = run("ca", "retire", old["id"])
    assert refused.code == 1  # the admin's certificate still chains to it
    assert "unexpired leaves" in refused.one_line_error()
    retired = run("ca", "retire", old["id"], "--force", "--json").json()
    assert isinstance(retired, dict)
    states = {a["id"]: a["state"] for a in retired["authorities"]}
    assert states[old["id"]] == "retired"


# -- usage and configuration errors --------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["whoami"], "no server"),
        (["whoami", "--server", "https://127.0.0.1:1"], "no identity"),
        (["whoami", "--server", "https://x", "--cert", "c.pem"], "give both --cert and --key"),
        (
            ["whoami", "--server", "http://127.0.0.1:8443"],
            "must be https://host:port (secinfra speaks only mTLS), got 'http://127.0.0.1:8443'",
        ),
        (["whoami", "--server", "127.0.0.1:8443"], "must be https://host:port"),
        (["whoami", "--server", "https://h:port"], "is not a valid URL, got 'https://h:port'"),
        (["whoami", "--server", "https://u:hunter2@h:1"], "must not carry user-info"),
        (["enrol", "--server", "http://h:1", "--bundle", "b", "--out", "d"], "must be https://"),
        (
            ["whoami", "--server", "https://x", "--cert", "/nonexistent/c", "--key", "k"],
            "cannot read the certificate /nonexistent/c",
        ),
        (["secrets"], "required"),
        (["nosuchcommand"], "invalid choice"),
        (["secrets", "get", "x", "--version", "one"], "invalid int value"),
        (["revoke", "--server", "https://x"], "one of the arguments --serial --spiffe-id"),
        (["agent", "--out", "d", "--server", "https://x"], "no trust bundle"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    captured = capsys.readouterr()
    assert message in Result(2, captured.out, captured.err).one_line_error()
    assert captured.out == ""


def test_settings_come_from_the_environment(
    server: ReferenceServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = server.data_dir / "admin"
    monkeypatch.setenv("SECINFRA_SERVER", server.url)
    monkeypatch.setenv("SECINFRA_BUNDLE", str(admin / "bundle.pem"))
    monkeypatch.setenv("SECINFRA_CERT", str(admin / "cert.pem"))
    monkeypatch.setenv("SECINFRA_KEY", str(admin / "key.pem"))
    assert main(["whoami", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["admin"] is True

    # A flag wins over the environment.
    assert main(["--server", "https://127.0.0.1:1", "whoami"]) == 1
    assert "connection" in capsys.readouterr().err


def test_flags_and_environment_merge_per_setting(
    server: ReferenceServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = server.data_dir / "admin"
    monkeypatch.setenv("SECINFRA_SERVER", server.url)
    monkeypatch.setenv("SECINFRA_BUNDLE", str(admin / "bundle.pem"))
    monkeypatch.setenv("SECINFRA_CERT", str(admin / "cert.pem"))
    # The certificate from the environment, the key from its flag.
    assert main(["whoami", "--json", "--key", str(admin / "key.pem")]) == 0
    assert json.loads(capsys.readouterr().out)["admin"] is True

    # --identity-dir sets the form: the environment's certificate is not mixed in.
    monkeypatch.setenv("SECINFRA_KEY", "/nonexistent/key.pem")
    assert main(["whoami", "--json", "--identity-dir", str(admin)]) == 0
    assert json.loads(capsys.readouterr().out)["admin"] is True

    # Both forms in the environment alone are ambiguous: a usage error, not a guess.
    monkeypatch.setenv("SECINFRA_IDENTITY_DIR", str(admin))
    assert main(["whoami"]) == 2
    assert "give either --identity-dir or --cert/--key" in capsys.readouterr().err


def test_an_unreachable_server_exits_1(
    server: ReferenceServer, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = admin_flags(server)
    flags[1] = "https://127.0.0.1:1"
    assert main(["whoami", *flags]) == 1
    err = capsys.readouterr().err
    assert Result(1, "", err).one_line_error().startswith("secinfra: transport: ")


def test_help_and_version_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("secinfra ")
    assert main(["secrets", "put", "--help"]) == 0
    assert "--if-version" in capsys.readouterr().out


# -- every RPC has a command ---------------------------------------------------------------------
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def _timestamps(doc: object) -> list[str]:
    """Every value of a key ending in _time or _at, anywhere in ``doc``."""
    found: list[str] = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key.endswith(("_time", "_at", "not_after", "next_update")) and isinstance(
                value, str
            ):
                found.append(value)
            found.extend(_timestamps(value))
    elif isinstance(doc, list):
        for value in doc:
            found.extend(_timestamps(value))
    return found


def test_secrets_undelete_and_destroy(as_admin: Run, unique: str) -> None:
    name = f"{unique}/db"
    assert as_admin("secrets", "put", name, "--value", "one").code == 0
    assert as_admin("secrets", "put", name, "--value", "two").code == 0
    assert as_admin("secrets", "delete", name, "--versions", "1", "2").code == 0
    undone = as_admin("secrets", "undelete", name, "--versions", "2")
    assert (undone.code, undone.out) == (0, f"undeleted {name}: 2\n")
    assert as_admin("secrets", "get", name, "--version", "2").out == "two"

    destroyed = as_admin("secrets", "destroy", name, "--versions", "1", "--json").json()
    assert isinstance(destroyed, dict)
    states = {v["version"]: v["state"] for v in destroyed["versions"]}
    assert states == {1: "destroyed", 2: "enabled"}
    assert _timestamps(destroyed)
    assert all(TIMESTAMP.match(t) for t in _timestamps(destroyed))
    gone = as_admin("secrets", "undelete", name, "--versions", "1")
    assert gone.code == 1
    gone.one_line_error()
    # Destroying is never implicit.
    assert as_admin("secrets", "destroy", name).code == 2


def test_authz_read_shows_conditions(
    own_server: Callable[..., ReferenceServer], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    server = own_server()
    run = runner(capsys, admin_flags(server))
    dsl = tmp_path / "model.fga"
    dsl.write_text(
        MODEL_DSL.replace("[workload]", "[workload, workload with small]")
        + "\ncondition small(n: int, limit: int) {\n  n < limit\n}\n"
    )
    assert run("authz", "model", "put", "--dsl", str(dsl)).code == 0
    alice = f"workload:spiffe://{TRUST_DOMAIN}/alice"
    small = RelationshipCondition(name="small", context={"limit": 3})
    with server.admin_client() as admin:
        tuple_key = TupleKey(user=alice, relation="viewer", object="document:1", condition=small)
        admin.authz.write_tuples(writes=[tuple_key])
    table = run("authz", "read", "--object", "document:1").out.splitlines()
    assert table[0].split() == ["USER", "RELATION", "OBJECT", "CONDITION"]
    assert table[1].split() == [alice, "viewer", "document:1", "small", '{"limit":3}']
    read = run("authz", "read", "--object", "document:1", "--json").json()
    assert isinstance(read, dict)
    assert read["tuples"][0]["condition"] == {"name": "small", "context": {"limit": 3}}


def test_authz_read_batch_check_list_objects_expand(
    own_server: Callable[..., ReferenceServer], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    server = own_server()
    run = runner(capsys, admin_flags(server))
    dsl = tmp_path / "model.fga"
    dsl.write_text(MODEL_DSL)
    assert run("authz", "model", "put", "--dsl", str(dsl)).code == 0
    alice = f"workload:spiffe://{TRUST_DOMAIN}/alice"
    written = run("authz", "write", "--tuple", alice, "viewer", "document:plan", "--json").json()
    assert isinstance(written, dict)
    revision = written["revision"]

    read = run("authz", "read", "--object", "document:plan", "--json").json()
    assert read == {"tuples": [{"user": alice, "relation": "viewer", "object": "document:plan"}]}
    table = run("authz", "read", "--user", alice).out.splitlines()
    assert table[0].split() == ["USER", "RELATION", "OBJECT"]
    assert table[1].split() == [alice, "viewer", "document:plan"]

    fresh = ["--at-least-as-fresh", revision]
    listed = run("authz", "list-objects", "document", "viewer", alice, *fresh)
    assert (listed.code, listed.out) == (0, "document:plan\n")
    users = run("authz", "list-users", "document:plan", "viewer", "workload", *fresh)
    assert (users.code, users.out) == (0, f"{alice}\n")
    assert run("authz", "list-users", "document:plan", "viewer", "workload", "--json").json() == {
        "users": [alice]
    }
    # More than one page (1000 a page): the command follows next_page_token.
    carol = f"workload:spiffe://{TRUST_DOMAIN}/carol"
    many = [
        TupleKey(user=carol, relation="viewer", object=f"document:d{i:04}") for i in range(1001)
    ]
    with server.admin_client() as admin:
        last = [admin.authz.write_tuples(writes=many[i : i + 500]) for i in range(0, 1001, 500)]
    paged = run(
        "authz",
        "list-objects",
        "document",
        "viewer",
        carol,
        "--at-least-as-fresh",
        last[-1].revision,
        "--json",
    ).json()
    assert paged == {"objects": [k.object for k in many]}

    checks = ["--check", alice, "viewer", "document:plan"]
    allowed = run("authz", "batch-check", *checks, *fresh)
    assert allowed.code == 0, allowed.err
    assert allowed.out.splitlines()[1].split()[-1] == "allowed"
    bob = f"workload:spiffe://{TRUST_DOMAIN}/bob"
    mixed = run("authz", "batch-check", *checks, "--check", bob, "viewer", "document:plan")
    assert mixed.code == 3  # one denied
    doc = run("authz", "batch-check", *checks, "--json").json()
    assert isinstance(doc, dict)
    assert doc["results"]["1"]["allowed"] is True
    assert run("authz", "batch-check").code == 2

    tree = run("authz", "expand", "viewer", "document:plan").json()
    assert alice in json.dumps(tree)


def test_revocations_bundle_and_crl(as_admin: Run, unique: str, tmp_path: Path) -> None:
    spiffe_id = f"spiffe://{TRUST_DOMAIN}/{unique}"
    assert as_admin("revoke", "--spiffe-id", spiffe_id, "--reason", "test").code == 0
    listed = as_admin("revocations", "--json").json()
    assert isinstance(listed, dict)
    [entry] = [r for r in listed["revocations"] if r.get("spiffe_id") == spiffe_id]
    assert TIMESTAMP.match(entry["revoked_at"])
    assert entry["reason"] == "test"
    assert spiffe_id in as_admin("revocations").out
    assert as_admin("lift-revocation", "--spiffe-id", spiffe_id).code == 0

    out = tmp_path / "bundle.pem"
    wrote = as_admin("bundle", "--out", str(out))
    assert wrote.code == 0, wrote.err
    assert out.read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert oct(out.stat().st_mode & 0o777) == "0o644"
    spiffe = as_admin("bundle", "--format", "spiffe").json()
    assert isinstance(spiffe, dict)
    assert spiffe["keys"]
    assert spiffe["spiffe_sequence"] >= 1
    assert as_admin("crl").out.startswith("-----BEGIN X509 CRL-----")
    crl = as_admin("crl", "--json").json()
    assert isinstance(crl, dict)
    assert TIMESTAMP.match(crl["next_update"])


def test_bundle_and_crl_need_no_identity(
    server: ReferenceServer, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = str(server.data_dir / "admin" / "bundle.pem")
    assert main(["bundle", "--server", server.url, "--bundle", bundle]) == 0
    assert capsys.readouterr().out.startswith("-----BEGIN CERTIFICATE-----")
    assert main(["crl", "--server", server.url, "--bundle", bundle]) == 0
    assert "BEGIN X509 CRL" in capsys.readouterr().out


def test_json_timestamps_have_one_format(as_admin: Run, unique: str) -> None:
    created = as_admin("join-token", "create", f"spiffe://{TRUST_DOMAIN}/{unique}", "--json")
    listed = as_admin("join-token", "list", "--json")
    whoami = as_admin("whoami", "--json")
    stamps = [t for r in (created, listed, whoami) for t in _timestamps(r.json())]
    assert len(stamps) >= 3
    assert all(TIMESTAMP.match(t) for t in stamps), stamps


def test_errors_are_json_with_json(as_admin: Run, unique: str) -> None:
    missing = as_admin("secrets", "get", f"{unique}/none", "--json")
    assert missing.code == 1
    assert missing.out == ""
    error = json.loads(missing.err)
    assert set(error) == {"code", "message", "request_id"}
    assert error["code"] == "not_found"
    assert error["request_id"]
    assert "does not exist" in error["message"]

    usage = as_admin("--json", "secrets", "get")
    assert usage.code == 2
    assert json.loads(usage.err)["code"] == "usage"


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_scripts(shell: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    for word in ("batch-check", "list-objects", "undelete", "revocations", "--json-file"):
        assert word in script
    if shell == "bash":
        subprocess.run(["bash", "-n"], input=script, text=True, check=True)


# -- the bundle across a CA rotation -------------------------------------------------------------
def test_an_identity_dir_follows_a_ca_rotation(
    own_server: Callable[..., ReferenceServer], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    server = own_server()
    admin = runner(capsys, admin_flags(server))
    dirs = {}
    for name in ("kept", "stale"):
        dirs[name] = tmp_path / name
        token = server.join_token(f"spiffe://{TRUST_DOMAIN}/{name}")
        assert admin("enrol", "--join-token", token, "--out", str(dirs[name])).code == 0
    assert admin("ca", "prepare").code == 0

    # A run after the bundle's refresh hint passed (file age) refreshes it.
    kept = runner(capsys, ["--server", server.url, "--identity-dir", str(dirs["kept"])])
    past = time.time() - 86400
    os.utime(dirs["kept"] / "bundle.pem", (past, past))
    refreshed = kept("whoami")
    assert refreshed.code == 0, refreshed.err
    assert "updated the trust bundle" in refreshed.err
    assert (dirs["kept"] / "bundle.pem").read_text().count("BEGIN CERTIFICATE") == 2
    assert (dirs["kept"] / "bundle.pem").is_symlink()  # a new snapshot, not a rewrite

    assert admin("ca", "activate").code == 0
    assert kept("whoami").code == 0  # trusts the server's new certificate

    # A directory no run refreshed in time: the error says what to do.
    stale = runner(capsys, ["--server", server.url, "--identity-dir", str(dirs["stale"])])
    failed = stale("whoami")
    assert failed.code == 1
    message = failed.one_line_error()
    assert "does not chain to the trust bundle" in message
    assert f"the bundle in {dirs['stale']}" in message
    assert "secinfra bundle --out" in message


# -- every command, with bad input ---------------------------------------------------------------
def _leaf_commands() -> list[list[str]]:
    """Every runnable command path, read off the parser itself."""
    found: list[list[str]] = []

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> None:
        groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not groups:
            found.append(path)
            return
        for name, child in groups[0].choices.items():
            walk(child, [*path, name])

    walk(build_parser(), [])
    return found


LEAVES = _leaf_commands()


def test_the_walk_sees_every_command() -> None:
    assert len(LEAVES) >= 30
    assert ["authz", "batch-check"] in LEAVES
    assert ["bundle"] in LEAVES


@pytest.mark.parametrize("path", LEAVES, ids=[" ".join(p) for p in LEAVES])
@pytest.mark.parametrize(
    "bad",
    [
        ["--no-such-flag"],
        ["--server", "http://127.0.0.1:1"],
        ["--server", "https://u:hunter2@h:1"],
        ["--cert", "/nonexistent/cert.pem"],
    ],
    ids=["unknown-flag", "http-url", "user-info", "missing-file"],
)
def test_every_command_refuses_bad_input_in_one_line(
    path: list[str], bad: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    args = [*path, *_required_args(path, tmp_path), *bad]
    for as_json in (False, True):
        code = main([*args, "--json"] if as_json and path != ["completion"] else args)
        captured = capsys.readouterr()
        assert code == 2, (args, captured.err)
        assert "Traceback" not in captured.err
        assert "hunter2" not in captured.err
        assert captured.out == ""
        if as_json and path != ["completion"]:
            assert json.loads(captured.err)["code"] == "usage"
        else:
            Result(code, captured.out, captured.err).one_line_error()


def _required_args(path: list[str], tmp_path: Path) -> list[str]:
    """Just enough for the arguments to parse, so the bad input is what fails."""
    positional = {
        ("secrets", "get"): ["a/b"],
        ("secrets", "put"): ["a/b", "--value", "v"],
        ("secrets", "delete"): ["a/b"],
        ("secrets", "metadata"): ["a/b"],
        ("secrets", "undelete"): ["a/b", "--versions", "1"],
        ("secrets", "destroy"): ["a/b", "--versions", "1"],
        ("authz", "check"): ["workload:x", "reader", "secret:a"],
        ("authz", "batch-check"): ["--check", "workload:x", "reader", "secret:a"],
        ("authz", "list-objects"): ["secret", "reader", "workload:x"],
        ("authz", "list-users"): ["secret:a", "reader", "workload"],
        ("authz", "expand"): ["reader", "secret:a"],
        ("authz", "write"): ["--tuple", "workload:x", "reader", "secret:a"],
        ("authz", "model", "put"): ["--dsl", str(tmp_path / "m.fga")],
        ("join-token", "create"): [f"spiffe://{TRUST_DOMAIN}/x"],
        ("join-token", "revoke"): ["id"],
        ("ca", "retire"): ["ca-id"],
        ("revoke",): ["--serial", "01"],
        ("lift-revocation",): ["--spiffe-id", f"spiffe://{TRUST_DOMAIN}/x"],
        ("enrol",): ["--out", str(tmp_path / "id"), "--join-token", "t", "--bundle", "b.pem"],
        ("agent",): ["--out", str(tmp_path / "id"), "--join-token", "t", "--bundle", "b.pem"],
        ("completion",): ["bash"],
    }
    return positional.get(tuple(path), [])
