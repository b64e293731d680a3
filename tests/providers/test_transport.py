"""The providers' HTTP client on real sockets: keep-alive reuse, framing, failures, limits, TLS.

The server here is a stand-in written with asyncio's raw streams, so that a test can send
exactly the bytes an upstream might (a chunked body, a gzip body, a close mid-body, nothing).
"""

from __future__ import annotations

import asyncio
import gzip
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from bounded.config.schema import ProviderConfig
from bounded.providers.transport import IDLE_RACE_S, Upstream, UpstreamClosed, UpstreamTimeout

Handler = Callable[[bytes, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """Reads each request (head and Content-Length body) and lets ``handler`` answer it."""

    def __init__(self, handler: Handler):
        self.handler = handler
        self.connections = 0
        self.open_now = 0
        self.most_open = 0
        self.requests: list[bytes] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                await self.handler(request, reader, writer)
                if writer.is_closing():
                    return
        finally:
            self.open_now -= 1
            writer.close()


@asynccontextmanager
async def serving(
    handler: Handler, tls: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[RawServer, int]]:
    raw = RawServer(handler)
    server = await asyncio.start_server(raw.serve, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    try:
        yield raw, port
    finally:
        server.close()


def answer(body: bytes, *, status: str = "200 OK", extra: bytes = b"") -> Handler:
    async def handler(
        request: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(
            b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n"
            % (status.encode(), len(body), extra)
            + body
        )
        await writer.drain()

    return handler


async def test_connections_are_kept_alive_and_reused() -> None:
    async with serving(answer(b'{"ok": true}')) as (server, port):
        upstream = Upstream(f"http://127.0.0.1:{port}/v1", headers={"authorization": "Bearer k"})
        for _ in range(5):
            async with await upstream.post("/chat/completions", b'{"a": 1}', timeout_s=5) as resp:
                assert resp.status == 200
                assert resp.headers["content-type"] == "application/json"
                assert await resp.read() == b'{"ok": true}'
        await upstream.aclose()
    assert server.connections == 1
    first = server.requests[0]
    assert first.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert b"\r\nauthorization: Bearer k\r\n" in first
    assert b"\r\ncontent-length: 8\r\n" in first and first.endswith(b'{"a": 1}')
    assert b"\r\nhost: 127.0.0.1:%d\r\n" % port in first


async def test_a_calls_own_headers_replace_the_pools_and_are_checked() -> None:
    async with serving(answer(b"{}")) as (server, port):
        upstream = Upstream(f"http://127.0.0.1:{port}", headers={"X-Team": "pool"})
        async with await upstream.post("/x", b"{}", headers={"x-team": "call"}, timeout_s=5) as r:
            await r.read()
        with pytest.raises(ValueError, match="CR, LF"):
            await upstream.post("/x", b"{}", headers={"x-team": "a\r\nx-admin: 1"}, timeout_s=5)
        await upstream.aclose()
    [sent] = server.requests
    assert b"x-team: call\r\n" in sent and b"pool" not in sent


async def test_a_closed_client_used_again_reopens_rather_than_failing_for_ever() -> None:
    async with serving(answer(b"{}")) as (server, port):
        upstream = Upstream(f"http://127.0.0.1:{port}")
        for _ in range(2):
            async with await upstream.post("/x", b"{}", timeout_s=5) as resp:
                assert await resp.read() == b"{}"
            await upstream.aclose()
    assert server.connections == 2  # closing dropped the first connection


async def test_chunked_and_gzip_bodies_are_decoded() -> None:
    payload = b'{"choices": [' + b'{"x": "y"},' * 500 + b"{}]}"
    packed = gzip.compress(payload)

    async def chunked_gzip(
        request: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-encoding: gzip\r\n\r\n"
        )
        for i in range(0, len(packed), 100):
            piece = packed[i : i + 100]
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
        writer.write(b"0\r\n\r\n")

    async with serving(chunked_gzip) as (server, port):
        upstream = Upstream(f"http://127.0.0.1:{port}")
        for _ in range(2):
            async with await upstream.post("/x", b"{}", timeout_s=5) as resp:
                assert await resp.read() == payload
        await upstream.aclose()
    assert server.connections == 1  # the chunked body's end was found: the socket was reused


async def test_a_stream_arrives_line_by_line_as_sent() -> None:
    events = [b'data: {"n": %d}\n\n' % i for i in range(3)]
    gate = asyncio.Event()

    async def sse(
        request: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        for i, event in enumerate(events):
            if i == 2:
                await gate.wait()  # the client must have had the first two already
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            await writer.drain()
        writer.write(b"0\r\n\r\n")

    async with serving(sse) as (_, port):
        upstream = Upstream(f"http://127.0.0.1:{port}")
        lines = []
        async with await upstream.post("/s", b"{}", read_timeout_s=5) as resp:
            async for line in resp.lines():
                lines.append(line)
                if len(lines) == 4:
                    gate.set()
        await upstream.aclose()
    assert lines == [
        b'data: {"n": 0}\n',
        b"\n",
        b'data: {"n": 1}\n',
        b"\n",
        b'data: {"n": 2}\n',
        b"\n",
    ]


async def test_a_close_mid_body_is_an_error_and_the_socket_is_not_reused() -> None:
    async def truncated(
        request: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if len(server.requests) == 1:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n" + b"x" * 10)
            await writer.drain()
            writer.close()
        else:
            await answer(b"{}")(request, reader, writer)

    async with serving(truncated) as (server, port):
        upstream = Upstream(f"http://127.0.0.1:{port}")
        resp = await upstream.post("/x", b"{}", timeout_s=5)
        with pytest.raises(UpstreamClosed, match="mid-response"):
            async with resp:
                await resp.read()
        async with await upstream.post("/x", b"{}", timeout_s=5) as resp:
            assert await resp.read() == b"{}"
        await upstream.aclose()
    assert server.connections == 2


async def test_an_idle_connection_the_server_closed_is_not_used_again() -> None:
    async def once_then_close(
        request: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await answer(b"{}")(request, reader, writer)
        writer.close()  # as a server does when its keep-alive timeout passes

    async with serving(once_then_close) as (server, port):
        upstream = Upstream(f"http://127.0.0.1:{port}")
        for _ in range(3):
            async with await upstream.post("/x", b"{}", timeout_s=5) as resp:
                assert await resp.read() == b"{}"
            await asyncio.sleep(0.05)  # the close reaches the client
        await upstream.aclose()
    assert server.connections == 3


async def test_a_kept_alive_connection_closed_under_a_request_is_retried_once_anew() -> None:
    """The race of a server's idle timeout: it closes a kept-alive connection (a reset, the
    request unread) just as a request goes out on it. The request is sent again on a new
    connection, and the caller gets its answer, not a 502 counted against the breaker."""

    async def reset_the_second(
        request: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if len(server.requests) == 2:
            writer.transport.abort()  # RST, as a close with unread bytes sends
            return
        await answer(b"{}")(request, reader, writer)

    async with serving(reset_the_second) as (server, port):
        upstream = Upstream(f"http://127.0.0.1:{port}")
        for _ in range(2):
            async with await upstream.post("/x", b"{}", timeout_s=5) as resp:
                assert await resp.read() == b"{}"
            await asyncio.sleep(IDLE_RACE_S + 0.1)  # idle long enough to meet a server's timeout
        await upstream.aclose()
    assert server.connections == 2 and len(server.requests) == 3
    # Reused straight after its last answer, it cannot have met an idle timeout: the reset
    # is the server's own failure, which the router's retry policy handles. Not sent again.
    async with serving(reset_the_second) as (server, port):
        upstream = Upstream(f"http://127.0.0.1:{port}")
        async with await upstream.post("/x", b"{}", timeout_s=5) as resp:
            assert await resp.read() == b"{}"
        with pytest.raises(UpstreamClosed):
            await upstream.post("/x", b"{}", timeout_s=5)
        await upstream.aclose()
    assert len(server.requests) == 2


async def test_a_new_connection_closed_under_a_request_is_not_sent_again() -> None:
    """A server that resets a connection it has just accepted may have acted on the
    request: that is an error for the router's own retry policy, never a silent resend."""

    async def reset(
        request: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.transport.abort()

    async def half_then_reset(
        request: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if len(server.requests) == 1:
            await answer(b"{}")(request, reader, writer)
            return
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-le")  # half a head
        await writer.drain()
        writer.transport.abort()

    async with serving(reset) as (server, port):
        upstream = Upstream(f"http://127.0.0.1:{port}")
        with pytest.raises(UpstreamClosed):
            async with await upstream.post("/x", b"{}", timeout_s=5) as resp:
                await resp.read()
        await upstream.aclose()
    assert len(server.requests) == 1
    # Reused, but part of an answer had come: the server acted on it. Not sent again.
    async with serving(half_then_reset) as (server, port):
        upstream = Upstream(f"http://127.0.0.1:{port}")
        async with await upstream.post("/x", b"{}", timeout_s=5) as resp:
            assert await resp.read() == b"{}"
        await asyncio.sleep(IDLE_RACE_S + 0.1)
        with pytest.raises(UpstreamClosed):
            await upstream.post("/x", b"{}", timeout_s=5)
        await upstream.aclose()
    assert len(server.requests) == 2


async def test_a_reply_that_never_comes_times_out_and_frees_its_slot() -> None:
    async def silent(
        request: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.read(1)  # until the client gives up and closes

    async with serving(silent) as (_, port):
        upstream = Upstream(f"http://127.0.0.1:{port}", max_connections=1)
        for _ in range(2):  # the second would wait for ever if the first kept the only slot
            with pytest.raises(UpstreamTimeout):
                await upstream.post("/x", b"{}", timeout_s=0.2)
        with pytest.raises(UpstreamTimeout, match="no bytes"):
            await upstream.post("/x", b"{}", read_timeout_s=0.2)
        await upstream.aclose()


async def test_a_stream_that_stalls_times_out_between_reads() -> None:
    async def stalls(
        request: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\nhello\n\r\n")
        await writer.drain()
        await reader.read(1)  # until the client gives up and closes

    async with serving(stalls) as (_, port):
        upstream = Upstream(f"http://127.0.0.1:{port}")
        got = []
        with pytest.raises(UpstreamTimeout):
            async with await upstream.post("/s", b"{}", read_timeout_s=0.3) as resp:
                async for line in resp.lines():
                    got.append(line)
        assert got == [b"hello\n"]
        await upstream.aclose()


async def test_a_cancelled_call_frees_its_connection() -> None:
    async def slow(
        request: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if len(server.requests) == 1:
            await reader.read(1)  # until the client gives up and closes
        else:
            await answer(b"{}")(request, reader, writer)

    async with serving(slow) as (server, port):
        upstream = Upstream(f"http://127.0.0.1:{port}", max_connections=1)
        task = asyncio.ensure_future(upstream.post("/x", b"{}"))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with await upstream.post("/x", b"{}", timeout_s=2) as resp:
            assert await resp.read() == b"{}"
        await upstream.aclose()


async def test_max_connections_holds_and_every_call_is_answered() -> None:
    async def slowish(
        request: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await asyncio.sleep(0.02)
        await answer(b"{}")(request, reader, writer)

    async with serving(slowish) as (server, port):
        upstream = Upstream(f"http://127.0.0.1:{port}", max_connections=3)

        async def call() -> bytes:
            async with await upstream.post("/x", b"{}", timeout_s=10) as resp:
                return await resp.read()

        assert await asyncio.gather(*(call() for _ in range(20))) == [b"{}"] * 20
        await upstream.aclose()
    assert server.most_open <= 3
    assert server.connections == 3


async def test_a_refused_connection_is_a_clear_error() -> None:
    async with serving(answer(b"{}")) as (_, port):
        pass  # closed: nothing listens on the port now
    upstream = Upstream(f"http://127.0.0.1:{port}")
    with pytest.raises(UpstreamClosed, match=f"cannot connect to 127.0.0.1:{port}"):
        await upstream.post("/x", b"{}", timeout_s=2)


async def test_garbage_instead_of_http_is_an_error() -> None:
    async def garbage(
        request: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await writer.drain()

    async with serving(garbage) as (_, port):
        upstream = Upstream(f"http://127.0.0.1:{port}")
        with pytest.raises(UpstreamClosed, match="not valid HTTP"):
            await upstream.post("/x", b"{}", timeout_s=2)
        await upstream.aclose()


def test_header_injection_and_bad_urls_are_refused_up_front() -> None:
    with pytest.raises(ValueError, match="CR, LF"):
        Upstream("http://h/v1", headers={"x-team": "a\r\nx-admin: yes"})
    with pytest.raises(ValueError, match="http:// or https://"):
        Upstream("localhost:8000/v1")
    with pytest.raises(ValueError, match="CR or LF"):
        ProviderConfig(kind="openai", headers={"x-team": "a\nb"})
    with pytest.raises(ValueError, match="http:// or https://"):
        ProviderConfig(kind="openai", base_url="api.example.com/v1")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_https_checks_the_certificate(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    async with serving(answer(b'{"tls": 1}'), tls=server_tls) as (server, port):
        trusting = ssl.create_default_context(cafile=str(cert))
        upstream = Upstream(f"https://localhost:{port}/v1", tls=trusting)
        for _ in range(2):
            async with await upstream.post("/chat/completions", b"{}", timeout_s=5) as resp:
                assert await resp.read() == b'{"tls": 1}'
        await upstream.aclose()
        assert server.connections == 1
        # The system's trust store does not know this certificate: refused, not sent.
        default = Upstream(f"https://localhost:{port}/v1")
        with pytest.raises(UpstreamClosed, match="TLS with localhost"):
            await default.post("/chat/completions", b"{}", timeout_s=5)
    assert len(server.requests) == 2
