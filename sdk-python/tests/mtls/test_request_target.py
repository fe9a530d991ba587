"""The request target on the wire, as an HTTPS server on loopback reads it.

A path value is percent-encoded and nothing more (spec 2.2.5): ``//`` stays,
and so do ``.`` and ``..`` segments, which a URL library following RFC 3986
5.2.4 would remove (``a/../b`` would reach the server as ``b``, and ``../x``
as another resource). The server here records each raw request line.
"""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from secinfra import Client
from secinfra.testing import StaticIdentity

from .loopback import TIMEOUT, plain_server
from .svids import TRUST_DOMAIN, TestCA, bundle_of

SERVER = f"spiffe://{TRUST_DOMAIN}/secinfra/server"
CLIENT = f"spiffe://{TRUST_DOMAIN}/billing"


class _Recorder(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = TIMEOUT
    server: RecordingServer

    def _answer(self) -> None:
        self.server.lines.append(self.requestline)
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_DELETE = _answer  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet


class RecordingServer(http.server.ThreadingHTTPServer):
    """Answers every request with 200 ``{}`` and keeps its request line."""

    daemon_threads = True

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _Recorder)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.lines: list[str] = []
        self.url = f"https://127.0.0.1:{self.server_address[1]}/"
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(TIMEOUT)


@pytest.fixture
def recorded() -> Iterator[tuple[Client, RecordingServer]]:
    ca = TestCA()
    server = RecordingServer(plain_server(ca.issue(SERVER), ca))
    client = Client(server.url, StaticIdentity(bundle_of(ca), ca.identity(CLIENT)))
    yield client, server
    client.close()
    server.close()


# (name, the path after /v1/secrets/ as it must reach the server)
NAMES = [
    ("a/../b", "a/../b"),
    ("a/./b", "a/./b"),
    ("a//b", "a//b"),
    ("../b", "../b"),
    ("./b", "./b"),
    ("a/..", "a/.."),
    ("a/.", "a/."),
    ("..", ".."),
    ("a/b/", "a/b/"),
    ("/a", "/a"),
    ("a/%2e%2e/b", "a/%252e%252e/b"),
    ("db password/../x", "db%20password/../x"),
]

CALLS: dict[str, tuple[str, str, Callable[[Client, str], object]]] = {
    "get": ("GET", "?version=0", lambda c, n: c.secrets.get_secret(name=n)),
    "metadata": ("GET", ":metadata", lambda c, n: c.secrets.get_secret_metadata(name=n)),
    "put": ("PUT", "", lambda c, n: c.secrets.put_secret(name=n, value=b"v")),
    "delete": ("DELETE", "", lambda c, n: c.secrets.delete_secret(name=n)),
}


@pytest.mark.parametrize(("name", "wire"), NAMES, ids=[n for n, _ in NAMES])
@pytest.mark.parametrize("call", CALLS)
def test_a_secret_name_reaches_the_server_segment_for_segment(
    recorded: tuple[Client, RecordingServer], call: str, name: str, wire: str
) -> None:
    client, server = recorded
    http_method, suffix, invoke = CALLS[call]
    invoke(client, name)
    assert server.lines == [f"{http_method} /v1/secrets/{wire}{suffix} HTTP/1.1"]


@pytest.mark.parametrize(("token", "wire"), [("..", ".."), (".", "."), ("a/..", "a%2F..")])
def test_a_single_segment_value_is_not_resolved_either(
    recorded: tuple[Client, RecordingServer], token: str, wire: str
) -> None:
    client, server = recorded
    client.identity.revoke_join_token(id=token)
    assert server.lines == [f"DELETE /v1/join-tokens/{wire} HTTP/1.1"]
