"""Enrolment, renewal and the SVIDs they produce, against a real TLS server."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .harness import (
    Client,
    Identity,
    Response,
    RunningServer,
    csr_pem,
    enrol,
    key_pem,
    new_key,
)


def _token(admin: Client, server: RunningServer, path: str = "/workload/a", **extra: object) -> str:
    resp = admin.request(
        "POST",
        "/v1/join-tokens",
        {"spiffe_id": f"spiffe://{server.config.trust_domain}{path}", **extra},
    )
    assert resp.status == 200, resp.body
    return str(resp.json()["token"])


def _issue(anon: Client, token: str, csr: str | None = None) -> Response:
    body = {"csr_pem": csr if csr is not None else csr_pem(new_key()), "join_token": token}
    return anon.request("POST", "/v1/identity:issue", body)


def test_issue_with_join_token_gives_a_valid_svid(
    server: RunningServer, admin: Client, anon: Client, tmp_path: Path
) -> None:
    key = new_key()
    resp = anon.request(
        "POST",
        "/v1/identity:issue",
        {"csr_pem": csr_pem(key), "join_token": _token(admin, server)},
    )
    assert resp.status == 200, resp.body
    svid = resp.json()["svid"]
    assert svid["spiffe_id"] == "spiffe://secinfra.local/workload/a"
    assert resp.headers["request-id"]
    cert = x509.load_pem_x509_certificate(svid["cert_chain_pem"].encode())
    assert cert.public_key() == key.public_key()
    assert f"{cert.serial_number:x}" == svid["serial"]

    # openssl agrees it chains to the bundle, strictly.
    (tmp_path / "bundle.pem").write_text(server.bundle_pem())
    (tmp_path / "leaf.pem").write_text(svid["cert_chain_pem"])
    out = subprocess.run(
        [
            "openssl",
            "verify",
            "-x509_strict",
            "-CAfile",
            tmp_path / "bundle.pem",
            tmp_path / "leaf.pem",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith(": OK")

    # The third-party py-spiffe library accepts it as an X509-SVID.
    from spiffe.svid.x509_svid import X509Svid

    parsed = X509Svid.parse(svid["cert_chain_pem"].encode(), key_pem(key))
    assert str(parsed.spiffe_id) == "spiffe://secinfra.local/workload/a"

    # And the new identity works over mTLS.
    me = Client(
        server.port,
        server.bundle_pem(),
        Identity(svid["cert_chain_pem"].encode(), key_pem(key)),
        tmp_path / "me",
    )
    who = me.request("GET", "/v1/identity:whoami")
    me.close()
    assert who.status == 200
    assert who.json()["spiffe_id"] == "spiffe://secinfra.local/workload/a"
    assert who.json()["admin"] is False


def test_join_token_is_single_use(server: RunningServer, admin: Client, anon: Client) -> None:
    token = _token(admin, server)
    first = anon.request(
        "POST", "/v1/identity:issue", {"csr_pem": csr_pem(new_key()), "join_token": token}
    )
    assert first.status == 200
    again = anon.request(
        "POST", "/v1/identity:issue", {"csr_pem": csr_pem(new_key()), "join_token": token}
    )
    assert again.status == 401
    assert again.code == "unauthenticated"
    assert token not in again.body.decode()


def test_bad_csr_does_not_spend_the_token(
    server: RunningServer, admin: Client, anon: Client
) -> None:
    token = _token(admin, server)
    bad = _issue(anon, token, "not a csr")
    assert bad.status == 400
    assert bad.code == "invalid_argument"
    good = anon.request(
        "POST", "/v1/identity:issue", {"csr_pem": csr_pem(new_key()), "join_token": token}
    )
    assert good.status == 200


_MALFORMED_CSR = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"


def _csr_with_san(key: ec.EllipticCurvePrivateKey) -> str:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier("spiffe://secinfra.local/secinfra/admin")]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _weak_rsa_csr() -> str:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


@pytest.mark.parametrize(
    ("name", "make_csr"),
    [
        (
            "malformed",
            lambda: (
                "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
            ),
        ),
        ("weak-rsa-1024", _weak_rsa_csr),
        ("requests-spiffe-id-san", lambda: _csr_with_san(new_key())),
    ],
)
def test_bad_csrs_are_rejected(
    name: str, make_csr: object, server: RunningServer, admin: Client, anon: Client
) -> None:
    token = _token(admin, server)
    resp = anon.request(
        "POST",
        "/v1/identity:issue",
        {"csr_pem": make_csr(), "join_token": token},  # type: ignore[operator]
    )
    assert resp.status == 400, (name, resp.body)
    assert resp.code == "invalid_argument"
    tokens = admin.request("GET", "/v1/join-tokens").json()["join_tokens"]
    assert all("used_at" not in t for t in tokens), "a rejected CSR must not spend the token"


@pytest.mark.parametrize(
    "token",
    ["sjt_unknown.secretsecretsecretsecretsecretsecretsecret", "garbage", "sjt_"],
)
def test_unknown_or_malformed_tokens(token: str, anon: Client) -> None:
    resp = anon.request(
        "POST", "/v1/identity:issue", {"csr_pem": csr_pem(new_key()), "join_token": token}
    )
    assert resp.status in (400, 401)
    assert resp.code in ("invalid_argument", "unauthenticated")
    assert token not in resp.body.decode() or token == "sjt_"


def test_expired_join_token(server: RunningServer, admin: Client, anon: Client) -> None:
    token = _token(admin, server, ttl_seconds=60)
    from datetime import timedelta

    server.server.clock.shift(timedelta(minutes=5))
    resp = anon.request(
        "POST", "/v1/identity:issue", {"csr_pem": csr_pem(new_key()), "join_token": token}
    )
    assert resp.status == 401
    assert "expired" in resp.json()["error"]["message"]


def test_revoked_join_token(server: RunningServer, admin: Client, anon: Client) -> None:
    token = _token(admin, server)
    token_id = token.split(".")[0].removeprefix("sjt_")
    listed = admin.request("GET", "/v1/join-tokens").json()["join_tokens"]
    ids = [t["id"] for t in listed]
    assert token_id in ids or any(token.startswith(f"sjt_{i}.") for i in ids)
    the_id = next(i for i in ids if token.startswith(f"sjt_{i}."))
    assert admin.request("DELETE", f"/v1/join-tokens/{the_id}").status == 200
    resp = anon.request(
        "POST", "/v1/identity:issue", {"csr_pem": csr_pem(new_key()), "join_token": token}
    )
    assert resp.status == 401


def test_join_tokens_need_admin(server: RunningServer, tmp_path: Path) -> None:
    me = Client(server.port, server.bundle_pem(), enrol(server, tmp_path), tmp_path / "me")
    resp = me.request("POST", "/v1/join-tokens", {"spiffe_id": "spiffe://secinfra.local/x"})
    me.close()
    assert resp.status == 403
    assert resp.code == "permission_denied"


@pytest.mark.parametrize(
    ("spiffe_id", "field"),
    [
        ("spiffe://other.domain/workload", "spiffe_id"),
        ("spiffe://secinfra.local/secinfra/admin", "spiffe_id"),
        ("https://secinfra.local/x", None),
    ],
)
def test_join_token_spiffe_id_rules(spiffe_id: str, field: str | None, admin: Client) -> None:
    resp = admin.request("POST", "/v1/join-tokens", {"spiffe_id": spiffe_id})
    assert resp.status == 400
    assert resp.code == "invalid_argument"


def test_renew_keeps_the_id_and_needs_a_new_key(server: RunningServer, tmp_path: Path) -> None:
    identity = enrol(server, tmp_path)
    me = Client(server.port, server.bundle_pem(), identity, tmp_path / "me")
    same_key = x509.load_pem_x509_certificate(identity.cert_pem)
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    old_key = load_pem_private_key(identity.key_pem, None)
    reuse = me.request("POST", "/v1/identity:renew", {"csr_pem": csr_pem(old_key)})
    assert reuse.status == 400
    new = new_key()
    resp = me.request("POST", "/v1/identity:renew", {"csr_pem": csr_pem(new)})
    me.close()
    assert resp.status == 200, resp.body
    svid = resp.json()["svid"]
    assert svid["spiffe_id"] == "spiffe://secinfra.local/workload/a"
    renewed = x509.load_pem_x509_certificate(svid["cert_chain_pem"].encode())
    assert renewed.public_key() == new.public_key()
    assert renewed.serial_number != same_key.serial_number


def test_renew_needs_mtls(anon: Client) -> None:
    resp = anon.request("POST", "/v1/identity:renew", {"csr_pem": csr_pem(new_key())})
    assert resp.status == 401
    assert resp.code == "unauthenticated"


def test_a_revoked_id_does_not_spend_the_token(
    server: RunningServer, admin: Client, anon: Client
) -> None:
    token = _token(admin, server, "/workload/banned")
    admin.request(
        "POST", "/v1/revocations", {"spiffe_id": "spiffe://secinfra.local/workload/banned"}
    )
    refused = _issue(anon, token)
    assert refused.status == 403
    tokens = admin.request("GET", "/v1/join-tokens").json()["join_tokens"]
    assert all("used_at" not in t for t in tokens)


def test_join_tokens_need_a_workload_path(admin: Client) -> None:
    resp = admin.request("POST", "/v1/join-tokens", {"spiffe_id": "spiffe://secinfra.local"})
    assert resp.status == 400
    assert "needs a path" in resp.json()["error"]["message"]


@pytest.mark.parametrize("serial", ["0xab", "a_b", "-1", "xyz"])
def test_revocation_serials_must_be_plain_hex(serial: str, admin: Client) -> None:
    resp = admin.request("POST", "/v1/revocations", {"serial": serial})
    assert resp.status == 400


def test_revocation_serials_are_canonical(admin: Client) -> None:
    assert admin.request("POST", "/v1/revocations", {"serial": "00AB"}).json()["serial"] == "ab"


def test_a_new_join_token_shows_the_times_every_later_read_shows(
    server: RunningServer, admin: Client
) -> None:
    # Stored in milliseconds: the creating answer must not show more precision
    # than the list (a client comparing the two must see the same token).
    created = admin.request(
        "POST", "/v1/join-tokens", {"spiffe_id": f"spiffe://{server.config.trust_domain}/w/ms"}
    ).json()["join_token"]
    listed = admin.request("GET", "/v1/join-tokens").json()["join_tokens"]
    assert next(t for t in listed if t["id"] == created["id"]) == created
