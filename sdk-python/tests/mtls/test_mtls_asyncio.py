"""The contexts with asyncio streams, aiohttp and requests, over real TLS on loopback.

aiohttp comes with the ``aiohttp`` extra (and with the reference server,
which ``nox -s tests-python`` installs); without it that test is skipped.
"""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator

import pytest
import requests

from secinfra import mtls

from .svids import TRUST_DOMAIN, SwappableSource, TestCA

SERVER = f"spiffe://{TRUST_DOMAIN}/api"
CLIENT = f"spiffe://{TRUST_DOMAIN}/billing"


@pytest.fixture
def ca() -> TestCA:
    return TestCA()


async def test_asyncio_streams_both_ways(ca: TestCA) -> None:
    server_ctx = mtls.server_context(
        SwappableSource(ca.identity(SERVER), ca), mtls.authorize_id(CLIENT)
    )
    client_ctx = mtls.client_context(
        SwappableSource(ca.identity(CLIENT), ca), mtls.authorize_id(SERVER)
    )

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        caller = mtls.peer_id(writer)  # the verified client, in the handler
        await reader.readline()
        writer.write(f"hello {caller}\n".encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    async with server:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=client_ctx, server_hostname="api"), 5
        )
        assert mtls.peer_id(writer) == mtls.SpiffeId.parse(SERVER)
        writer.write(b"ping\n")
        assert await asyncio.wait_for(reader.readline(), 5) == f"hello {CLIENT}\n".encode()
        writer.close()


async def test_asyncio_refuses_an_unauthorized_client_with_no_answer(ca: TestCA) -> None:
    server_ctx = mtls.server_context(
        SwappableSource(ca.identity(SERVER), ca), mtls.authorize_id(CLIENT)
    )
    intruder = SwappableSource(ca.identity(f"spiffe://{TRUST_DOMAIN}/intruder"), ca)
    client_ctx = mtls.client_context(intruder, mtls.authorize_id(SERVER))
    handled = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handled.set()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    async with server:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=client_ctx), 5
        )
        writer.write(b"ping\n")
        try:
            answer = await asyncio.wait_for(reader.read(), 5)
        except (ConnectionError, OSError):
            answer = b""
        assert answer == b""
        writer.close()
    assert not handled.is_set()


async def test_aiohttp_server_and_client(ca: TestCA) -> None:
    aiohttp = pytest.importorskip("aiohttp", reason="the aiohttp extra is not installed")
    from aiohttp import web

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=f"hello {mtls.peer_id(request.transport)}")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    server_ctx = mtls.server_context(
        SwappableSource(ca.identity(SERVER), ca), mtls.authorize_id(CLIENT)
    )
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    port = runner.addresses[0][1]
    client_ctx = mtls.client_context(
        SwappableSource(ca.identity(CLIENT), ca), mtls.authorize_id(SERVER)
    )
    try:
        timeout = aiohttp.ClientTimeout(total=5)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(f"https://127.0.0.1:{port}/", ssl=client_ctx) as response,
        ):
            assert await response.text() == f"hello {CLIENT}"
    finally:
        await runner.cleanup()


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"hello {mtls.peer_id(self.connection)}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def https_server(ca: TestCA) -> Iterator[int]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    context = mtls.server_context(
        SwappableSource(ca.identity(SERVER), ca), mtls.authorize_id(CLIENT)
    )
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def test_requests_through_the_adapter(ca: TestCA, https_server: int) -> None:
    client_ctx = mtls.client_context(
        SwappableSource(ca.identity(CLIENT), ca), mtls.authorize_id(SERVER)
    )
    with requests.Session() as session:
        session.mount("https://", mtls.MtlsAdapter(client_ctx))
        for _ in range(2):  # the second request reuses the kept-alive connection
            answer = session.get(f"https://127.0.0.1:{https_server}/", timeout=5)
            assert answer.text == f"hello {CLIENT}"


def test_requests_refuses_an_unauthorized_server(ca: TestCA, https_server: int) -> None:
    client_ctx = mtls.client_context(
        SwappableSource(ca.identity(CLIENT), ca), mtls.authorize_id(f"spiffe://{TRUST_DOMAIN}/db")
    )
    with requests.Session() as session:
        session.mount("https://", mtls.MtlsAdapter(client_ctx))
        with pytest.raises(requests.exceptions.SSLError, match="not authorized"):
            session.get(f"https://127.0.0.1:{https_server}/", timeout=5)
