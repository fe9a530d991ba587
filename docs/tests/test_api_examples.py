"""Sends every RPC's example in the API reference to a real server.

The examples live in the ``example`` field of each RPC's ``(secinfra.v1.rpc)``
option and reach ``docs/api/openapi.json`` through codegen; the reference page
shows them with a curl command. This test starts one reference server (test
mode, a temporary data directory), sends the examples in the order of the API
files over real mTLS as the admin identity ``init`` wrote (with no client
certificate for the RPCs that need none), and compares each answer with the
example's response (``api_examples.mismatches`` says how).

Between examples the test does what any client does, never what the examples
say: after an answer that lists the CAs it trusts the CAs listed, and once a
new CA is active it renews its own certificate, so the examples that follow
still reach the server after the old CA is retired.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

ROOT: Final = Path(__file__).resolve().parents[2]
DOCUMENT: Final = ROOT / "docs" / "api" / "openapi.json"
sys.path.insert(0, str(ROOT / "docs" / "_ext"))

import api_examples as ex  # noqa: E402

from secinfra.testing import ReferenceServer  # noqa: E402

HTTP_METHODS: Final = ("get", "put", "post", "delete", "patch")
REQUEST_TIMEOUT_SECONDS: Final = 30


def operations(document: Mapping[str, Any]) -> dict[str, tuple[str, str, Mapping[str, Any]]]:
    """RPC name -> (method, path, operation), for every operation of the document."""
    found: dict[str, tuple[str, str, Mapping[str, Any]]] = {}
    for path, item in document["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                spec = item[method]
                found[spec["operationId"].partition("_")[2]] = (method, path, spec)
    return found


def fresh_csr() -> tuple[str, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    pem = csr.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()
    return pem, key


class Runner:
    """Sends examples to one server, each after the examples it refers to."""

    def __init__(self, server: ReferenceServer, document: Mapping[str, Any]) -> None:
        self.server = server
        self.ops = operations(document)
        self.dir = server.data_dir / "examples"
        self.dir.mkdir()
        admin = server.data_dir / "admin"
        self.cert = admin / "cert.pem"
        self.key = admin / "key.pem"
        self.trust = admin / "bundle.pem"
        self.answers: dict[str, Any] = {}
        self.order: list[str] = []
        self._active_ca = ""

    def resolve(self, name: str) -> Any:
        if name == "csr_pem":
            return fresh_csr()[0]
        return ex.lookup(name, self.answers, {})

    def run(self, rpc: str, request: Any | None = None) -> Any:
        """The answer to ``rpc``'s example (or ``request``), sending it first if
        it has not been sent; examples it refers to are sent before it."""
        if rpc in self.answers:
            return self.answers[rpc]
        method, path, spec = self.ops[rpc]
        if request is None:
            request = spec[ex.EXTENSION]["request"]
        for name in ex.placeholders(request):
            referred = name.partition(".")[0]
            if referred in self.ops and referred != rpc:
                self.run(referred)
        sent = ex.substitute(request, self.resolve)
        http = ex.http_request(method, path, spec, sent)
        answer = self._send(http, mtls=bool(spec.get("security")), spec=spec)
        self.answers[rpc] = answer
        self.order.append(rpc)
        self._after(answer)
        return answer

    def _send(self, http: ex.HttpRequest, *, mtls: bool, spec: Mapping[str, Any]) -> Any:
        headers = {}
        if spec.get("x-secinfra-idempotency") != "read_only":
            headers["Idempotency-Key"] = str(uuid.uuid4())
        response = requests.request(
            http.method,
            self.server.url.rstrip("/") + http.target,
            json=http.body,
            headers=headers,
            cert=(str(self.cert), str(self.key)) if mtls else None,
            verify=str(self.trust),
            timeout=REQUEST_TIMEOUT_SECONDS,
        )
        if response.status_code != 200:
            raise AssertionError(
                f"{spec['operationId']}: {http.method} {http.target} answered"
                f" {response.status_code}: {response.text[:500]}"
            )
        return response.json()

    def _after(self, answer: Any) -> None:
        """Keep this client's trust and certificate current across a CA rotation."""
        if not isinstance(answer, Mapping) or "authorities" not in answer:
            return
        live = [a for a in answer["authorities"] if a.get("state") != "retired"]
        self.trust.write_text("".join(a["certificate_pem"] for a in live), encoding="utf-8")
        active = next((a["id"] for a in live if a.get("state") == "active"), "")
        if self._active_ca and active != self._active_ca:
            self._renew()
        self._active_ca = active

    def _renew(self) -> None:
        pem, key = fresh_csr()
        method, path, spec = self.ops["RenewCertificate"]
        http = ex.http_request(method, path, spec, {"csr_pem": pem})
        answer = self._send(http, mtls=True, spec=spec)
        self.cert = self.dir / f"cert-{len(self.order)}.pem"
        self.key = self.dir / f"key-{len(self.order)}.pem"
        self.cert.write_text(answer["svid"]["cert_chain_pem"], encoding="utf-8")
        self.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        self.key.chmod(0o600)


def sequence(document: Mapping[str, Any]) -> list[str]:
    """RPC names in the order of the API files."""
    ops = operations(document)
    return sorted(ops, key=lambda rpc: ops[rpc][2].get(ex.EXTENSION, {}).get("sequence", 0))


@pytest.fixture(scope="module")
def document() -> Mapping[str, Any]:
    loaded: Mapping[str, Any] = json.loads(DOCUMENT.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def runner(document: Mapping[str, Any]) -> Iterator[Runner]:
    with ReferenceServer() as server:
        yield Runner(server, document)


def test_every_rpc_has_an_example(document: Mapping[str, Any]) -> None:
    ops = operations(document)
    missing = [rpc for rpc, (_, _, spec) in ops.items() if ex.EXTENSION not in spec]
    assert not missing, f"RPCs without an example in their (secinfra.v1.rpc) option: {missing}"


def test_every_example_answers_as_the_reference_shows(
    document: Mapping[str, Any], runner: Runner
) -> None:
    problems: list[str] = []
    for rpc in sequence(document):
        _, _, spec = runner.ops[rpc]
        answer = runner.run(rpc)
        expected = spec[ex.EXTENSION]["response"]
        problems += [f"{rpc}: {line}" for line in ex.mismatches(expected, answer, runner.resolve)]
    assert not problems, "\n".join(problems)


# The rules the check above relies on, on small inputs.

GET_SECRET: Final = {
    "parameters": [
        {"name": "name", "in": "path", "x-secinfra-multi-segment": True},
        {"name": "version", "in": "query"},
    ]
}
REVOKE_TOKEN: Final = {"parameters": [{"name": "id", "in": "path"}]}


def test_requests_bind_path_query_and_body_as_the_spec_says() -> None:
    # 2.2.1/2.2.2/2.2.5: upper-case hex, '/' kept only in a multi-segment value.
    get = ex.http_request("get", "/v1/secrets/{name}", GET_SECRET, {"name": "a/b c", "version": 2})
    assert get == ex.HttpRequest("GET", "/v1/secrets/a/b%20c?version=2", None)
    one = ex.http_request("delete", "/v1/join-tokens/{id}", REVOKE_TOKEN, {"id": "a/b"})
    assert one.target == "/v1/join-tokens/a%2Fb"
    post = ex.http_request("post", "/v1/x", {"requestBody": {}}, {"a": 1})
    assert post == ex.HttpRequest("POST", "/v1/x", {"a": 1})
    with pytest.raises(ex.ExampleError, match="fields b have nowhere to go"):
        ex.http_request("get", "/v1/x", {"parameters": []}, {"b": 1})
    with pytest.raises(ex.ExampleError, match="needs"):
        ex.http_request("get", "/v1/secrets/{name}", GET_SECRET, {})


def test_a_placeholder_stays_readable_in_the_curl_call() -> None:
    http = ex.http_request("delete", "/v1/join-tokens/{id}", REVOKE_TOKEN, {"id": "${T.id}"})
    command = ex.curl(http, mtls=True, idempotency="idempotent")
    assert command.splitlines() == [
        "curl -sS --cacert bundle.pem -X DELETE \\",
        "  --cert cert.pem --key key.pem \\",
        '  -H "Idempotency-Key: $(uuidgen)" \\',
        "  'https://localhost:8443/v1/join-tokens/${T.id}'",
    ]
    anonymous = ex.curl(
        ex.HttpRequest("GET", "/v1/bundle", None), mtls=False, idempotency="read_only"
    )
    assert anonymous == "curl -sS --cacert bundle.pem -X GET \\\n  https://localhost:8443/v1/bundle"


def test_answers_are_compared_field_by_field() -> None:
    def resolve(name: str) -> Any:
        return ex.lookup(name, {"Put": {"items": [{"id": "7"}]}}, {})

    expected = {
        "id": "${Put.items.0.id}",
        "pem": "-----BEGIN\nMIIB\u2026",
        "tree": "\u2026",
        "at": "2026-01-01T00:00:00Z",
        "n": 1,
        "list": [True],
    }
    same = {
        "id": "7",
        "pem": "-----BEGIN\nMIIC...",
        "tree": {"any": "thing"},
        "at": "2027-05-05T10:00:00.123Z",
        "n": 1,
        "list": [True],
    }
    assert ex.mismatches(expected, same, resolve) == []
    wrong = {**same, "id": "8", "n": 1.0, "at": "yesterday", "list": [True, False], "extra": 0}
    del wrong["pem"]
    assert ex.mismatches(expected, wrong, resolve) == [
        "the answer: no field 'pem' in the answer",
        "the answer: the answer has 'extra' = 0, the example does not",
        "id: '8' is not ${Put.items.0.id} ('7')",
        "at: 'yesterday' is not an RFC 3339 timestamp",
        "n: 1.0, the example says 1",
        "list: 2 items, the example has 1",
    ]
    with pytest.raises(ex.ExampleError, match="no answer of Get yet"):
        ex.lookup("Get.id", {}, {})


def test_the_reference_shows_request_curl_response_and_what_placeholders_mean() -> None:
    import openapi_operations as oo

    spec = {
        "parameters": [{"name": "id", "in": "path"}],
        "security": [{"mutualTLS": []}],
        ex.EXTENSION: {
            "sequence": 3,
            "request": {"id": "${CreateJoinToken.join_token.id}"},
            "response": {"id": "${CreateJoinToken.join_token.id}", "token": "sjt_\u2026"},
        },
    }
    op = oo.Operation(
        method="DELETE",
        path="/v1/join-tokens/{id}",
        operation_id="IdentityService_RevokeJoinToken",
        summary="Revokes.",
        tag="IdentityService",
        idempotency="idempotent",
        cache="",
        caller="admin",
    )
    text = [node.astext() for node in oo.example_nodes(spec, op)]
    assert text[:3] == ["Example", "Request:", '{\n  "id": "${CreateJoinToken.join_token.id}"\n}']
    assert text[3] == "With curl:"
    assert text[4].endswith(
        "'https://localhost:8443/v1/join-tokens/${CreateJoinToken.join_token.id}'"
    )
    assert text[5:7] == [
        "Response:",
        '{\n  "id": "${CreateJoinToken.join_token.id}",\n  "token": "sjt_\u2026"\n}',
    ]
    assert [line for line in text[7].splitlines() if line] == [
        "${CreateJoinToken.join_token.id}: join_token → id in the answer of the"
        " CreateJoinToken example",
        "A value ending in \u2026 is shortened here.",
    ]
    assert oo.example_nodes({}, op) == []
