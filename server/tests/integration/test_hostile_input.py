"""Hostile input against a real server over TLS: every answer is a 4xx JSON
envelope with a Request-Id, never a 5xx, plain text or an echo of the request.

Protocol-level cases go over raw TLS sockets, since no HTTP client library
sends what they send. Each case is bounded by the socket timeout.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import ssl
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .harness import Client, RunningServer, csr_pem, new_key

#: Put in every hostile request, so a test can tell whether the answer echoes it.
MARKER = b"HOSTILE-MARKER-7f3a"
DEPTH_LIMIT = 64  # _http.MAX_JSON_DEPTH
SOCKET_TIMEOUT_SECONDS = 10
#: Between the parts of a request sent in pieces.
PAUSE_SECONDS = 0.2


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def _raw_exchange(server: RunningServer, request: bytes, *more: bytes) -> RawResponse:
    """Send ``request`` as-is over TLS (no client certificate), then each of
    ``more`` a moment apart (so the server sees the head before the rest), and
    read the answer until the server closes the connection or its body is
    complete."""
    context = ssl.create_default_context(cadata=server.bundle_pem())
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=SOCKET_TIMEOUT_SECONDS) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(request)
        for part in more:
            time.sleep(PAUSE_SECONDS)
            tls.sendall(part)
        data = b""
        while b"\r\n\r\n" not in data or not _complete(data):
            try:
                chunk = tls.recv(65536)
            except (ConnectionResetError, ssl.SSLEOFError):
                break
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(status, headers, body)


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def _assert_envelope(response: RawResponse, status: int | None = None) -> dict[str, object]:
    assert 400 <= response.status < 500, response
    if status is not None:
        assert response.status == status, response
    assert response.headers["content-type"].startswith("application/json"), response
    error = json.loads(response.body)["error"]
    assert error["request_id"] == response.headers["request-id"]
    assert MARKER not in response.body
    assert MARKER.lower() not in response.body.lower()
    return dict(error)


LONG = b"x" * 9000  # past aiohttp's 8190-byte line and field limits

PROTOCOL_CASES: dict[str, bytes] = {
    "oversized header": (
        b"GET /v1/bundle HTTP/1.1\r\nHost: a\r\nX-Big: " + MARKER + LONG + b"\r\n\r\n"
    ),
    "too many headers": (
        b"GET /v1/bundle HTTP/1.1\r\nHost: a\r\n"
        + b"".join(b"X-H%d: %s\r\n" % (i, MARKER) for i in range(300))
        + b"\r\n"
    ),
    "huge request line": b"GET /v1/" + MARKER + LONG + b" HTTP/1.1\r\nHost: a\r\n\r\n",
    "content-length and transfer-encoding": (
        b"POST /v1/identity:issue HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + MARKER
    ),
    "two content-lengths": (
        b"POST /v1/identity:issue HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n"
        b"Content-Length: 3\r\n\r\n{}" + MARKER
    ),
    "unknown method": b"BR" + MARKER + b"EW /v1/bundle HTTP/1.1\r\nHost: a\r\n\r\n",
    "method with a forbidden byte": b"G@T /v1/bundle HTTP/1.1\r\nHost: a\r\n\r\n",
    "garbage request line": b"\x16\x03\x01 " + MARKER + b" \x00\xff\r\n\r\n",
    "bad version": b"GET /v1/bundle HTTP/9." + MARKER + b"\r\nHost: a\r\n\r\n",
    "header without a colon": b"GET /v1/bundle HTTP/1.1\r\nHost: a\r\n" + MARKER + b"\r\n\r\n",
    "NUL in a header value": b"GET /v1/bundle HTTP/1.1\r\nHost: a\r\nX-A: \x00"
    + MARKER
    + b"\r\n\r\n",
    "bad chunk size": (
        b"POST /v1/identity:issue HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        + MARKER
        + b"\r\n\r\n"
    ),
}


@pytest.mark.parametrize("case", sorted(PROTOCOL_CASES))
def test_requests_aiohttp_refuses_get_the_envelope(case: str, server: RunningServer) -> None:
    response = _raw_exchange(server, PROTOCOL_CASES[case])
    error = _assert_envelope(response)
    assert error["code"] in ("invalid_argument", "method_not_allowed", "not_found")


def test_a_refused_request_says_what_was_wrong_without_quoting_it(server: RunningServer) -> None:
    error = _assert_envelope(_raw_exchange(server, PROTOCOL_CASES["oversized header"]), 400)
    assert error["code"] == "invalid_argument"
    assert "longer than the server accepts" in str(error["message"])


@pytest.mark.parametrize(
    "path",
    ["/v1/secrets/a%0Ab", "/v1/secrets/a%0Db", "/nope%0A", "/v1/nope", "/%0A%0A"],
)
def test_unroutable_paths_get_the_envelope(path: str, server: RunningServer) -> None:
    request = f"GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode()
    error = _assert_envelope(_raw_exchange(server, request))
    assert error["code"] in ("not_found", "invalid_argument", "unauthenticated")


def test_the_server_still_serves_after_hostile_requests(server: RunningServer) -> None:
    for request in PROTOCOL_CASES.values():
        _raw_exchange(server, request)
    ok = _raw_exchange(server, b"GET /v1/bundle HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert ok.status == 200


_CHUNKED_HEAD = b"POST /v1/identity:issue HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"

BODY_CASES: dict[str, tuple[bytes, ...]] = {
    "chunk size broken mid-body": (_CHUNKED_HEAD, b"5\r\n{}   \r\n", b"ZZ" + MARKER + b"\r\n"),
    "chunk cut short": (_CHUNKED_HEAD, b"5\r\n{", b"}  \r\nG" + MARKER + b"\r\n"),
    "body shorter than Content-Length": (
        b"POST /v1/identity:issue HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n",
        b"{}",
    ),
    "body that is not the gzip it claims": (
        b"POST /v1/identity:issue HTTP/1.1\r\nHost: a\r\nContent-Encoding: gzip\r\n"
        b"Content-Length: 19\r\n\r\n",
        MARKER,
    ),
}


@pytest.fixture
def impatient(tmp_path: Path) -> Iterator[RunningServer]:
    """A server that waits one second for a request body."""
    running = RunningServer(tmp_path / "impatient", body_timeout_seconds=1).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.mark.parametrize("case", sorted(BODY_CASES))
def test_bodies_that_break_after_the_head_get_the_envelope(
    case: str, impatient: RunningServer
) -> None:
    error = _assert_envelope(_raw_exchange(impatient, *BODY_CASES[case]), 400)
    assert error["code"] == "invalid_argument"


# -- deeply nested JSON -------------------------------------------------------------


def _nested(depth: int, kind: str) -> str:
    return "[" * depth + "]" * depth if kind == "array" else '{"a":' * depth + "1" + "}" * depth


def _assert_too_deep(response_status: int, body: bytes) -> None:
    assert response_status == 400, body
    error = json.loads(body)["error"]
    assert error["code"] == "invalid_argument"
    assert f"limit of {DEPTH_LIMIT} levels" in error["message"]


@pytest.fixture
def client_factory(server: RunningServer, tmp_path: Path) -> Iterator[dict[str, Client]]:
    clients = {
        "admin": Client(server.port, server.bundle_pem(), server.admin, tmp_path / "admin"),
        "anon": Client(server.port, server.bundle_pem()),
    }
    yield clients
    for client in clients.values():
        client.close()


@pytest.mark.parametrize("kind", ["array", "object"])
@pytest.mark.parametrize("depth", [DEPTH_LIMIT, 990, 5000, 100_000])
def test_deep_json_in_issue_certificate_without_a_certificate(
    kind: str, depth: int, client_factory: dict[str, Client]
) -> None:
    raw = ('{"csr_pem": "x", "join_token": ' + _nested(depth, kind) + "}").encode()
    response = client_factory["anon"].request("POST", "/v1/identity:issue", raw=raw)
    _assert_too_deep(response.status, response.body)


@pytest.mark.parametrize("kind", ["array", "object"])
@pytest.mark.parametrize("depth", [DEPTH_LIMIT, 990, 5000])
def test_deep_json_in_a_secret_value(
    kind: str, depth: int, client_factory: dict[str, Client]
) -> None:
    raw = ('{"value": ' + _nested(depth, kind) + "}").encode()
    response = client_factory["admin"].request("PUT", "/v1/secrets/app/deep", raw=raw)
    _assert_too_deep(response.status, response.body)


@pytest.mark.parametrize("kind", ["array", "object"])
@pytest.mark.parametrize("depth", [DEPTH_LIMIT, 990, 5000])
def test_deep_json_in_an_authorization_model(
    kind: str, depth: int, client_factory: dict[str, Client]
) -> None:
    raw = ('{"model": {"type_definitions": ' + _nested(depth, kind) + "}}").encode()
    response = client_factory["admin"].request("POST", "/v1/authz/models", raw=raw)
    _assert_too_deep(response.status, response.body)


def test_deep_rewrites_within_the_body_limit_are_a_model_error(
    client_factory: dict[str, Client],
) -> None:
    rewrite: dict[str, object] = {"computedUserset": {"relation": "a"}}
    for _ in range(18):  # 18 rewrite levels fit in 64 JSON levels; the model allows 16
        rewrite = {"union": {"child": [rewrite, {"computedUserset": {"relation": "a"}}]}}
    model = {
        "schema_version": "1.1",
        "type_definitions": [
            {
                "type": "doc",
                "relations": {"a": {"computedUserset": {"relation": "b"}}, "b": rewrite},
            }
        ],
    }
    response = client_factory["admin"].request("POST", "/v1/authz/models", {"model": model})
    assert response.status == 400, response.body
    assert response.code == "invalid_argument"
    assert "limit of 16 levels" in response.json()["error"]["message"]


@pytest.mark.parametrize("parentheses", [17, 990, 5000])
def test_deep_dsl_parentheses_are_a_model_error(
    parentheses: int, client_factory: dict[str, Client]
) -> None:
    dsl = (
        "model\n  schema 1.1\ntype doc\n  relations\n    define a: [workload]\n"
        "    define b: " + "(" * parentheses + "a" + ")" * parentheses + "\n"
    )
    response = client_factory["admin"].request("POST", "/v1/authz/models", {"dsl": dsl})
    assert response.status == 400, response.body
    assert response.code == "invalid_argument"
    assert "limit of 16 levels" in response.json()["error"]["message"]


def test_normal_bodies_still_work(server: RunningServer, client_factory: dict[str, Client]) -> None:
    admin = client_factory["admin"]
    value = base64.b64encode(b"[[[{{{" * 100).decode()
    assert admin.request("PUT", "/v1/secrets/app/fine", {"value": value}).status == 200
    anon = client_factory["anon"]
    response = anon.request(
        "POST",
        "/v1/identity:issue",
        {"csr_pem": csr_pem(new_key()), "join_token": "sjt_" + "0" * 32 + "." + "A" * 43},
    )
    assert response.status == 401, response.body


# -- names, encodings and query values, as an admin ----------------------------------

ADMIN_PATHS = [
    "/v1/secrets/..%2F..%2Fetc%2Fpasswd",
    "/v1/secrets/../../etc/passwd",
    "/v1/secrets/a/../b",
    "/v1/secrets/a%00b",
    "/v1/secrets/%00",
    "/v1/secrets/%ff%fe",
    "/v1/secrets/%C0%AE%C0%AE/x",
    "/v1/secrets/" + "a" * 5000,
    "/v1/secrets/a%0Ab",
    "/v1/secrets/a%20b",
    "/v1/secrets/app/x?version=99999999999999999999",
    "/v1/secrets/app/x?version=-1",
    "/v1/secrets/app/x?version=abc",
    "/v1/secrets/app/x?version=1&version=2",
    "/v1/secrets/app/x?" + "a=1&" * 1000,
    "/v1/secrets?prefix=%00",
    "/v1/secrets?page_size=-5",
    "/v1/authz/models/%00",
]


@pytest.mark.parametrize("path", ADMIN_PATHS)
def test_hostile_names_and_queries_get_a_4xx_envelope(
    path: str, client_factory: dict[str, Client]
) -> None:
    response = client_factory["admin"].request("GET", path)
    assert 400 <= response.status < 500, (response.status, response.body)
    error = response.json()["error"]
    assert error["request_id"] == response.headers["request-id"]


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b'{"value": "\\u0000"}', 400),
        (b'{"value": "not base64 !!"}', 400),
        (b'{"value": "' + b"\xc3\x28" + b'"}', 400),  # not UTF-8
        (b'{"value": 1e999999}', 400),
        (b'{"value": "AA==", "if_version": 1e30}', 400),
        (b'{"value": "AA==", "if_version": -1}', 400),
        (b"\x00\x00\x00", 400),
        (b'{"value": "AA=="}' + b" " * 10 + b"{}", 400),  # two documents
        # Accepted as JSON accepts them: the last duplicate key wins; a UTF-8
        # byte-order mark is skipped (and an empty value is a valid value).
        (b'{"value": "AA==", "value": "AA=="}', 200),
        (b"\xef\xbb\xbf{}", 200),
    ],
)
def test_hostile_bodies_get_a_4xx_envelope(
    raw: bytes, status: int, client_factory: dict[str, Client]
) -> None:
    response = client_factory["admin"].request("PUT", "/v1/secrets/app/hostile", raw=raw)
    assert response.status == status, response.body
    if status >= 400:
        assert response.code == "invalid_argument"
        assert response.json()["error"]["request_id"] == response.headers["request-id"]


# -- the hostile-input table: every class, as the admin, and nothing changes ----------
#
# Each input is one whole HTTP/1.1 request sent as-is over TLS with the admin's
# client certificate (so it gets past authentication to the checks that matter),
# against one server seeded with a secret, a join token and a tuple. Each must be
# answered with a 4xx JSON envelope carrying its Request-Id, with the expected code,
# never echoing the request, and must leave the server's state exactly as it was.

MIB = 1024 * 1024


@dataclass(frozen=True)
class Hostile:
    kind: str
    name: str
    request: bytes
    codes: tuple[str, ...] = ("invalid_argument",)


def _http(
    method: str,
    path: str,
    body: bytes | None = None,
    *,
    headers: tuple[bytes, ...] = (),
    length: bool = True,
) -> bytes:
    head = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Connection: close"]
    if body is not None:
        head.append(b"Content-Type: application/json")
        if length:
            head.append(b"Content-Length: %d" % len(body))
    head.extend(headers)
    return b"\r\n".join(head) + b"\r\n\r\n" + (body or b"")


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


def _gzip(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data, compresslevel=9)


def _chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data)


_TUPLE = {
    "user": "workload:spiffe://secinfra.local/w",
    "relation": "reader",
    "object": "secret:app/x",
}
_SPIFFE = "spiffe://secinfra.local/"
_PUT = "/v1/secrets/app/hostile"

HOSTILE: list[Hostile] = [
    # size
    Hostile(
        "size",
        "body over the 1 MiB limit",
        _http("PUT", _PUT, b'{"value": "' + b"A" * MIB + b'"}'),
        ("payload_too_large",),
    ),
    Hostile(
        "size",
        "chunked body over the limit",
        _http(
            "PUT",
            _PUT,
            b"",
            headers=(b"Transfer-Encoding: chunked",),
            length=False,
        )
        + _chunked(b'{"value": "' + b"A" * MIB + b'"}')[: -0 or None],
        ("payload_too_large",),
    ),
    Hostile(
        "size",
        "gzip bomb: 64 MiB inflated from a small body",
        _http(
            "PUT",
            _PUT,
            _gzip(b'{"value": "' + b"A" * (64 * MIB) + b'"}'),
            headers=(b"Content-Encoding: gzip",),
        ),
        ("payload_too_large",),
    ),
    Hostile(
        "size",
        "secret value over 64 KiB",
        _http("PUT", _PUT, _json({"value": base64.b64encode(b"x" * (64 * 1024 + 1)).decode()})),
    ),
    Hostile("size", "secret name of 257 characters", _http("GET", "/v1/secrets/" + "a" * 257)),
    Hostile(
        "size",
        "SPIFFE ID of 100 KB",
        _http("POST", "/v1/join-tokens", _json({"spiffe_id": _SPIFFE + "a" * 100_000})),
    ),
    Hostile(
        "size",
        "1,001 tuples in one write",
        _http("POST", "/v1/authz/tuples:write", _json({"writes": [_TUPLE] * 1001})),
    ),
    Hostile(
        "size",
        "Idempotency-Key of 256 characters",
        _http("PUT", _PUT, _json({"value": "AA=="}), headers=(b"Idempotency-Key: " + b"k" * 256,)),
    ),
    Hostile(
        "size",
        "page_size far past int32",
        _http("GET", "/v1/secrets?page_size=" + "9" * 40),
    ),
    # nesting
    Hostile(
        "nesting",
        "65 levels in a tuple write",
        _http("POST", "/v1/authz/tuples:write", b'{"writes": ' + b"[" * 65 + b"]" * 65 + b"}"),
    ),
    Hostile(
        "nesting",
        "1,000 levels of objects in a check",
        _http(
            "POST",
            "/v1/authz:check",
            b'{"tuple_key": ' + b'{"a":' * 1000 + b"1" + b"}" * 1000 + b"}",
        ),
    ),
    Hostile(
        "nesting",
        "100,000 unclosed brackets",
        _http("POST", "/v1/join-tokens", b"[" * 100_000),
    ),
    Hostile(
        "nesting",
        "deep JSON behind a gzip encoding",
        _http(
            "PUT",
            _PUT,
            _gzip(b'{"value": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
            headers=(b"Content-Encoding: gzip",),
        ),
    ),
    # encoding
    Hostile("encoding", "body not UTF-8", _http("PUT", _PUT, b'{"value": "\xff\xfe"}')),
    Hostile(
        "encoding",
        "body in UTF-16",
        _http("PUT", _PUT, '{"value": "AA=="}'.encode("utf-16")),
    ),
    Hostile(
        "encoding",
        "body in UTF-32",
        _http("PUT", _PUT, '{"value": "AA=="}'.encode("utf-32")),
    ),
    Hostile(
        "encoding",
        "lone surrogate in a SPIFFE ID",
        _http("POST", "/v1/join-tokens", b'{"spiffe_id": "' + _SPIFFE.encode() + b'a\\ud800"}'),
    ),
    Hostile(
        "encoding",
        "lone surrogate in a tuple's object",
        _http(
            "POST",
            "/v1/authz/tuples:write",
            b'{"writes": [{"user": "workload:spiffe://secinfra.local/w", "relation": "reader",'
            b' "object": "secret:app/\\udfff"}]}',
        ),
    ),
    Hostile(
        "encoding",
        "lone surrogate in a check",
        _http(
            "POST",
            "/v1/authz:check",
            b'{"tuple_key": {"user": "workload:\\ud800", "relation": "reader",'
            b' "object": "secret:app/x"}}',
        ),
    ),
    Hostile(
        "encoding",
        "lone surrogate in a JSON key",
        _http("PUT", _PUT, b'{"val\\ud800ue": "AA=="}'),
    ),
    Hostile(
        "encoding", "overlong UTF-8 dots in a name", _http("GET", "/v1/secrets/%C0%AE%C0%AE/x")
    ),
    Hostile("encoding", "fullwidth letters in a name", _http("GET", "/v1/secrets/%EF%BD%81pp/x")),
    Hostile(
        "encoding", "right-to-left override in a name", _http("GET", "/v1/secrets/app/%E2%80%AEx")
    ),
    Hostile(
        "encoding",
        "uppercase via percent-encoding",
        _http("PUT", "/v1/secrets/%41pp", _json({"value": "AA=="})),
    ),
    Hostile("encoding", "invalid percent-encoding", _http("GET", "/v1/secrets/app/%zz")),
    Hostile("encoding", "value that is not base64", _http("PUT", _PUT, _json({"value": "@@@"}))),
    Hostile(
        "encoding",
        "a surrogate encoded in UTF-8 (CESU) in a name",
        _http("GET", "/v1/secrets/app/%ED%A0%80"),
    ),
    Hostile(
        "encoding",
        "NaN inside an authorization model",
        _http("POST", "/v1/authz/models", b'{"model": {"schema_version": NaN}}'),
    ),
    Hostile(
        "encoding",
        "Infinity in a check's context",
        _http(
            "POST",
            "/v1/authz:check",
            b'{"tuple_key": ' + json.dumps(_TUPLE).encode() + b', "x": -Infinity}',
        ),
    ),
    Hostile(
        "encoding",
        "huge float for an int",
        _http("PUT", _PUT, b'{"value": "AA==", "if_version": 1e400}'),
    ),
    Hostile(
        "encoding", "NaN for an int", _http("PUT", _PUT, b'{"value": "AA==", "if_version": NaN}')
    ),
    # NUL bytes
    Hostile(
        "nul",
        "NUL in a secret name",
        _http("PUT", "/v1/secrets/app/a%00b", _json({"value": "AA=="})),
    ),
    Hostile(
        "nul",
        "NUL in a SPIFFE ID",
        _http("POST", "/v1/join-tokens", _json({"spiffe_id": _SPIFFE + "a\u0000b"})),
    ),
    Hostile(
        "nul",
        "NUL in a tuple's object",
        _http(
            "POST",
            "/v1/authz/tuples:write",
            _json({"writes": [{**_TUPLE, "object": "secret:a\u0000"}]}),
        ),
    ),
    Hostile("nul", "NUL in a JSON key", _http("PUT", _PUT, _json({"value\u0000": "AA=="}))),
    Hostile("nul", "NUL in a query value", _http("GET", "/v1/secrets/app/x?version=1%00")),
    Hostile(
        "nul",
        "NUL in a join token id",
        _http("DELETE", "/v1/join-tokens/%00"),
        ("invalid_argument", "not_found"),
    ),
    Hostile(
        "nul",
        "NUL in the Idempotency-Key",
        _http("PUT", _PUT, _json({"value": "AA=="}), headers=(b"Idempotency-Key: a\x00b",)),
    ),
    Hostile("nul", "NUL as the whole body", _http("PUT", _PUT, b"\x00")),
    # traversal in names
    Hostile(
        "traversal",
        "dot-dot segments, raw",
        _http("GET", "/v1/secrets/app/../../etc/passwd"),
        ("invalid_argument", "not_found"),
    ),
    Hostile(
        "traversal",
        "dot-dot, percent-encoded",
        _http("PUT", "/v1/secrets/app/%2e%2e/x", _json({"value": "AA=="})),
    ),
    Hostile(
        "traversal",
        "encoded slashes",
        _http("PUT", "/v1/secrets/..%2F..%2Fx", _json({"value": "AA=="})),
    ),
    Hostile(
        "traversal",
        "backslashes",
        _http("PUT", "/v1/secrets/app/..%5C..%5Cx", _json({"value": "AA=="})),
    ),
    Hostile(
        "traversal", "a dot segment", _http("PUT", "/v1/secrets/./x", _json({"value": "AA=="}))
    ),
    Hostile(
        "traversal",
        "an empty segment",
        _http("PUT", "/v1/secrets/app//x", _json({"value": "AA=="})),
    ),
    Hostile(
        "traversal",
        "a trailing slash",
        _http("PUT", "/v1/secrets/app/x/", _json({"value": "AA=="})),
    ),
    Hostile(
        "traversal",
        "dot-dot into the reserved SPIFFE paths",
        _http("POST", "/v1/join-tokens", _json({"spiffe_id": _SPIFFE + "w/../secinfra/admin"})),
    ),
    Hostile(
        "traversal",
        "encoded dot-dot in a SPIFFE ID",
        _http("POST", "/v1/join-tokens", _json({"spiffe_id": _SPIFFE + "w/%2e%2e/secinfra/admin"})),
    ),
    Hostile(
        "traversal",
        "another trust domain by userinfo",
        _http(
            "POST",
            "/v1/join-tokens",
            _json({"spiffe_id": "spiffe://secinfra.local@evil.example/w"}),
        ),
    ),
    Hostile(
        "traversal",
        "dot-dot in a join token id",
        _http("DELETE", "/v1/join-tokens/..%2F..%2Fca"),
        ("invalid_argument", "not_found"),
    ),
    Hostile(
        "traversal",
        "dot-dot in a tuple's object",
        _http(
            "POST",
            "/v1/authz/tuples:write",
            _json({"writes": [{**_TUPLE, "object": "secret:../x"}]}),
        ),
    ),
    # huge and malformed headers, as the admin on a write
    Hostile(
        "headers",
        "a 9,000-byte header",
        _http("PUT", _PUT, _json({"value": "AA=="}), headers=(b"X-Big: " + MARKER + b"x" * 9000,)),
    ),
    Hostile(
        "headers",
        "300 headers",
        _http(
            "PUT",
            _PUT,
            _json({"value": "AA=="}),
            headers=tuple(b"X-H%d: %s" % (i, MARKER) for i in range(300)),
        ),
    ),
    Hostile(
        "headers",
        "a header folded onto two lines",
        _http("PUT", _PUT, _json({"value": "AA=="}), headers=(b"X-A: a", b" " + MARKER)),
    ),
    Hostile(
        "headers",
        "negative Content-Length",
        _http("PUT", _PUT, b"", headers=(b"Content-Length: -1",), length=False)
        + _json({"value": "AA=="}),
    ),
    Hostile(
        "headers",
        "Content-Length past any size",
        _http("PUT", _PUT, b"", headers=(b"Content-Length: " + b"9" * 30,), length=False),
        ("invalid_argument", "payload_too_large"),
    ),
    Hostile(
        "headers",
        "an Idempotency-Key that is not ASCII",
        _http("PUT", _PUT, _json({"value": "AA=="}), headers=("Idempotency-Key: clé".encode(),)),
    ),
    Hostile(
        "headers",
        "an unknown Transfer-Encoding",
        _http("PUT", _PUT, b"", headers=(b"Transfer-Encoding: " + MARKER,), length=False),
    ),
    Hostile(
        "headers",
        "a Content-Encoding that is not supported",
        _http("PUT", _PUT, _json({"value": "AA=="}), headers=(b"Content-Encoding: " + MARKER,)),
    ),
]


def _admin_exchange(server: RunningServer, tmp: Path, request: bytes) -> RawResponse:
    context = ssl.create_default_context(cadata=server.bundle_pem())
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "cert.pem").write_bytes(server.admin.cert_pem)
    (tmp / "key.pem").write_bytes(server.admin.key_pem)
    context.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=SOCKET_TIMEOUT_SECONDS) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        # The server may answer and close before the whole body was sent.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, ssl.SSLEOFError):
            tls.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data or not _complete(data):
            try:
                chunk = tls.recv(65536)
            except (ConnectionResetError, ssl.SSLEOFError):
                break
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(int(lines[0].split(" ")[1]), headers, body)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, Client]]:
    """One server with a secret, a join token and a tuple, and its admin client."""
    tmp = tmp_path_factory.mktemp("hostile")
    running = RunningServer(tmp / "data").start()
    admin = Client(running.port, running.bundle_pem(), running.admin, tmp / "admin")
    try:
        assert admin.request("PUT", "/v1/secrets/app/x", {"value": "c2VlZA=="}).status == 200
        assert admin.request("PUT", _PUT, {"value": "c2VlZA=="}).status == 200
        assert admin.request("POST", "/v1/join-tokens", {"spiffe_id": _SPIFFE + "w"}).status == 200
        written = admin.request("POST", "/v1/authz/tuples:write", {"writes": [_TUPLE]})
        assert written.status == 200, written.body
        yield running, admin
    finally:
        admin.close()
        running.stop()


_STATE_PATHS = (
    "/v1/secrets",
    "/v1/secrets/app/x:metadata",
    "/v1/secrets/app/hostile:metadata",
    "/v1/secrets/app/hostile",
    "/v1/join-tokens",
    "/v1/revocations",
    "/v1/authz/tuples",
    "/v1/ca",
)


def _state(admin: Client) -> dict[str, object]:
    state: dict[str, object] = {}
    for path in _STATE_PATHS:
        response = admin.request("GET", path)
        assert response.status == 200, (path, response.body)
        state[path] = response.json()
    return state


def test_the_table_covers_every_class() -> None:
    kinds = Counter(case.kind for case in HOSTILE)
    assert set(kinds) == {"size", "nesting", "encoding", "nul", "traversal", "headers"}
    assert all(count >= 3 for count in kinds.values()), kinds
    assert len({(case.kind, case.name) for case in HOSTILE}) == len(HOSTILE)


@pytest.mark.parametrize("case", HOSTILE, ids=lambda case: f"{case.kind}: {case.name}")
def test_hostile_input_gets_a_typed_4xx_and_changes_nothing(
    case: Hostile, seeded: tuple[RunningServer, Client], tmp_path: Path
) -> None:
    server, admin = seeded
    before = _state(admin)
    response = _admin_exchange(server, tmp_path, case.request)
    error = _assert_envelope(response)
    assert error["code"] in case.codes, (response.status, error)
    assert error["message"].startswith("secinfra: "), error
    assert _state(admin) == before
