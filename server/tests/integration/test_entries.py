"""Registration entries, on each storage backend: admins create, read, list
and delete them; a node (a real enrolled identity over mTLS) gets SVIDs
signed only for its own entries, with the entry's ID, TTL and DNS names;
every other caller is refused, audited; revoking the node stops it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from backends import ON_EACH_BACKEND
from cryptography import x509

from .harness import Client, RunningServer, audit_actions, csr_pem, enrol, new_key

TD = "spiffe://secinfra.local"
NODE = f"{TD}/node/a"
OTHER_NODE = f"{TD}/node/b"
BILLING = f"{TD}/billing"


def _entry(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "spiffe_id": BILLING,
        "parent_id": NODE,
        "selectors": [{"type": "unix", "value": "uid:1000"}],
        "ttl_seconds": 120,
        "dns_names": ["billing.internal"],
    }
    return {**body, **overrides}


def _node(server: RunningServer, tmp_path: Path, path: str) -> Client:
    identity = enrol(server, tmp_path / path.strip("/").replace("/", "-"), path)
    return Client(server.port, server.bundle_pem(), identity, tmp_path / f"c{path}")


@ON_EACH_BACKEND
def test_node_signs_only_for_its_entries(
    server: RunningServer, admin: Client, tmp_path: Path
) -> None:
    created = admin.request("POST", "/v1/entries", _entry())
    assert created.status == 200, created.body
    entry = created.json()
    assert len(entry["id"]) == 32
    assert entry["selectors"] == [{"type": "unix", "value": "uid:1000"}]
    assert admin.request("GET", f"/v1/entries/{entry['id']}").json() == entry
    listed = admin.request("GET", f"/v1/entries?parent_id={NODE}").json()
    assert listed == {"entries": [entry], "next_page_token": ""}

    node = _node(server, tmp_path, "/node/a")
    other = _node(server, tmp_path, "/node/b")
    assert node.request("GET", "/v1/node/entries").json() == {"entries": [entry]}
    assert other.request("GET", "/v1/node/entries").json() == {"entries": []}

    key = new_key()
    signed = node.request("POST", f"/v1/entries/{entry['id']}:sign", {"csr_pem": csr_pem(key)})
    assert signed.status == 200, signed.body
    svid = signed.json()["svid"]
    assert svid["spiffe_id"] == BILLING
    cert = x509.load_pem_x509_certificate(svid["cert_chain_pem"].encode())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(u) for u in sans.get_values_for_type(x509.UniformResourceIdentifier)] == [BILLING]
    assert sans.get_values_for_type(x509.DNSName) == ["billing.internal"]
    # The entry's TTL (plus the 60 s backdating of NotBefore).
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime == timedelta(seconds=180)
    assert cert.public_key() == key.public_key()

    refused = other.request("POST", f"/v1/entries/{entry['id']}:sign", {"csr_pem": csr_pem(key)})
    assert refused.status == 403, refused.body
    assert refused.code == "permission_denied"
    # A node is not an admin: it cannot see or write entries.
    assert node.request("GET", "/v1/entries").status == 403
    assert node.request("POST", "/v1/entries", _entry(parent_id=OTHER_NODE)).status == 403

    deleted = admin.request("DELETE", f"/v1/entries/{entry['id']}")
    assert deleted.json() == entry
    gone = node.request("POST", f"/v1/entries/{entry['id']}:sign", {"csr_pem": csr_pem(key)})
    assert gone.status == 403, gone.body
    assert admin.request("DELETE", f"/v1/entries/{entry['id']}").status == 404
    assert node.request("GET", "/v1/node/entries").json() == {"entries": []}

    resource = f"entry:{entry['id']}"
    # Reads are queued, writes commit with their change: compare as a multiset.
    actions = sorted((a, o) for a, r, o in audit_actions(server) if r == resource)
    assert actions == sorted(
        [
            ("entries.create_entry", "allowed"),
            ("entries.get_entry", "allowed"),
            ("entries.sign_workload_svid", "allowed"),
            ("entries.sign_workload_svid", "denied"),
            ("entries.delete_entry", "allowed"),
            ("entries.sign_workload_svid", "denied"),
            ("entries.delete_entry", "error"),
        ]
    )
    for client in (node, other):
        client.close()


@ON_EACH_BACKEND
def test_revoked_node_is_evicted(server: RunningServer, admin: Client, tmp_path: Path) -> None:
    entry = admin.request("POST", "/v1/entries", _entry()).json()
    node = _node(server, tmp_path, "/node/a")
    sign = f"/v1/entries/{entry['id']}:sign"
    assert node.request("POST", sign, {"csr_pem": csr_pem(new_key())}).status == 200
    revoked = admin.request("POST", "/v1/revocations", {"spiffe_id": NODE, "reason": "stolen"})
    assert revoked.status == 200, revoked.body
    node.close()
    refused = node.request("POST", sign, {"csr_pem": csr_pem(new_key())})
    assert refused.status == 401, refused.body
    # Nor can it renew its node SVID: it must be attested again.
    renew = node.request("POST", "/v1/identity:renew", {"csr_pem": csr_pem(new_key())})
    assert renew.status == 401, renew.body
    node.close()


@ON_EACH_BACKEND
def test_list_pages_and_duplicates(server: RunningServer, admin: Client) -> None:
    ids = []
    for uid in range(5):
        body = _entry(selectors=[{"type": "unix", "value": f"uid:{uid}"}])
        created = admin.request("POST", "/v1/entries", body)
        assert created.status == 200, created.body
        ids.append(created.json()["id"])
    duplicate = admin.request(
        "POST", "/v1/entries", _entry(selectors=[{"type": "unix", "value": "uid:3"}])
    )
    assert duplicate.status == 409, duplicate.body
    assert duplicate.code == "already_exists"
    seen: list[str] = []
    token = ""
    while True:
        page = admin.request("GET", f"/v1/entries?page_size=2&page_token={token}").json()
        assert len(page["entries"]) <= 2
        seen += [e["id"] for e in page["entries"]]
        token = page["next_page_token"]
        if not token:
            break
    assert seen == ids


#: (name, request fields that break a rule, the error's field): one server for all.
BAD_ENTRIES: list[tuple[str, dict[str, Any], str]] = [
    ("no-selectors", {"selectors": []}, "selectors"),
    ("unknown-selector", {"selectors": [{"type": "unix", "value": "user:root"}]}, "selectors[0]"),
    ("uid-not-decimal", {"selectors": [{"type": "unix", "value": "uid:-1"}]}, "selectors[0]"),
    ("uid-leading-zero", {"selectors": [{"type": "unix", "value": "uid:01"}]}, "selectors[0]"),
    ("uid-too-big", {"selectors": [{"type": "unix", "value": "uid:4294967295"}]}, "selectors[0]"),
    ("relative-path", {"selectors": [{"type": "unix", "value": "path:bin/x"}]}, "selectors[0]"),
    ("dotdot-path", {"selectors": [{"type": "unix", "value": "path:/a/../x"}]}, "selectors[0]"),
    ("short-sha", {"selectors": [{"type": "unix", "value": "sha256:abc"}]}, "selectors[0]"),
    ("upper-ns", {"selectors": [{"type": "k8s", "value": "ns:Prod"}]}, "selectors[0]"),
    (
        "twice",
        {"selectors": [{"type": "unix", "value": "gid:1"}, {"type": "unix", "value": "gid:1"}]},
        "selectors",
    ),
    ("foreign-td", {"spiffe_id": "spiffe://other.example/billing"}, "spiffe_id"),
    ("reserved", {"spiffe_id": f"{TD}/secinfra/server"}, "spiffe_id"),
    ("no-parent", {"parent_id": ""}, "parent_id"),
    ("own-parent", {"parent_id": BILLING}, "parent_id"),
    ("ttl-too-long", {"ttl_seconds": 10**6}, "ttl_seconds"),
    ("bad-dns", {"dns_names": ["Billing Internal"]}, "dns_names[0]"),
]


def test_bad_entry_is_refused_and_changes_nothing(server: RunningServer, admin: Client) -> None:
    for name, overrides, field in BAD_ENTRIES:
        refused = admin.request("POST", "/v1/entries", _entry(**overrides))
        assert refused.status == 400, (name, refused.body)
        error = refused.json()["error"]
        assert error["code"] == "invalid_argument", name
        assert error["details"]["field"] == field, (name, error)
    assert admin.request("GET", "/v1/entries").json()["entries"] == []


def test_node_tuple_cannot_be_written_directly(server: RunningServer, admin: Client) -> None:
    tuple_ = {
        "user": f"workload:{OTHER_NODE}",
        "relation": "node",
        "object": "registration_entry:" + "0" * 32,
    }
    refused = admin.request("POST", "/v1/authz/tuples:write", {"writes": [tuple_]})
    assert refused.status == 400, refused.body
    assert "EntriesService" in refused.json()["error"]["message"]
