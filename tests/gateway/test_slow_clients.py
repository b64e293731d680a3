"""Oversize heads get 431 and slow requests 408, on real sockets, without hurting good clients.

The gateway runs under uvicorn with bounded's protocol class (as ``bounded serve`` runs it) and
short timeouts; every test waits generously for a state (a reply, a closed socket), never for
an exact duration.
"""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest

from tests.conftest import ADMIN_KEY
from tests.standins.faulty_upstream import FaultyUpstream, ok, routed_config, stream

TIMEOUT_S = 0.5
MIN_RATE = 1000  # bytes per second that keep a body alive past body_timeout_s
SERVER = {
    "header_timeout_s": TIMEOUT_S,
    "body_timeout_s": TIMEOUT_S,
    "body_min_bytes_per_s": MIN_RATE,
}
AUTH = {"authorization": f"Bearer {ADMIN_KEY}"}
PATIENCE_S = 15.0  # how long a test waits for the state it expects (the timeouts are 0.5 s)


@dataclass
class Server:
    url: str
    upstream: FaultyUpstream

    @property
    def address(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        return str(parts.hostname), int(parts.port or 80)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from bounded.gateway.app import Gateway
    from bounded.gateway.protocol import protocol_for
    from bounded.store.db import Database
    from tests.conftest import make_config, serve_in_thread

    store = f"sqlite:///{tmp_path_factory.mktemp('slow') / 'b.db'}"
    with FaultyUpstream().running() as upstream:
        data = routed_config(upstream.base_url, {"targets": ["primary"], "timeout_s": 10})
        config = make_config({**data, "server": SERVER}, store)
        gateway = Gateway(config, db=Database.open(store), admin_key=ADMIN_KEY)
        with serve_in_thread(gateway.app(), http=protocol_for(config.server)) as url:
            yield Server(url, upstream)


@pytest.fixture
def upstream(server: Server) -> FaultyUpstream:
    return server.upstream.forget()


# -- raw HTTP/1.1 on a socket ----------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def error(self) -> dict[str, Any]:
        assert self.headers["content-type"] == "application/json"
        error = orjson.loads(self.body)["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["message"] and error["type"] == "invalid_request_error"
        return dict(error)


def connect(server: Server) -> socket.socket:
    sock = socket.create_connection(server.address, timeout=PATIENCE_S)
    return sock


def parse(raw: bytes) -> Reply:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Reply(int(lines[0].split()[1]), headers, body)


def read_response(sock: socket.socket) -> Reply:
    """One response with a content-length, leaving the connection open."""
    raw = b""
    while b"\r\n\r\n" not in raw:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed mid-response: {raw!r}"
        raw += chunk
    reply = parse(raw)
    while len(reply.body) < int(reply.headers["content-length"]):
        reply.body += sock.recv(65536)
    return reply


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (which it must, in time)."""
    sock.settimeout(PATIENCE_S)
    raw = b""
    try:
        while chunk := sock.recv(65536):
            raw += chunk
    except ConnectionResetError:
        pass
    return raw


def refused(sock: socket.socket) -> Reply:
    raw = read_until_closed(sock)
    assert raw, "the server closed without a reply"
    reply = parse(raw)
    assert reply.headers["connection"] == "close"
    return reply


def head(method: str, path: str, *extra: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "host: gateway", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chat_body(size: int = 0) -> bytes:
    """A valid chat request for the feature ``chat``, padded to ``size`` bytes."""
    body = orjson.dumps({"model": "chat", "messages": [{"role": "user", "content": "hi"}]})
    return body[:-1] + b" " * max(size - len(body), 0) + b"}"


# -- header size ----------------------------------------------------------------------------


def test_a_million_character_header_gets_431(server: Server) -> None:
    resp = httpx.get(f"{server.url}/healthz", headers={"x-bounded-session": "s" * 1_000_000})
    assert resp.status_code == 431
    error = resp.json()["error"]
    assert error["code"] == "headers_too_large"
    assert error["type"] == "invalid_request_error"
    assert error["param"] is None


def test_an_oversize_head_is_refused_before_it_has_all_arrived(server: Server) -> None:
    with connect(server) as sock:
        # A fifth of a 1,000,000-character header, and then nothing: the reply cannot wait
        # for the rest.
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: gateway\r\nx-bounded-session: ")
        sock.sendall(b"s" * 200_000)
        reply = refused(sock)
    assert reply.status == 431
    assert reply.error()["code"] == "headers_too_large"


@pytest.mark.parametrize("size", [20_000, 8 * 1024 * 1024])
def test_an_oversize_authorization_gets_431_not_401(server: Server, size: int) -> None:
    resp = httpx.post(
        f"{server.url}/v1/chat/completions",
        content=chat_body(),
        headers={"authorization": "Bearer " + "k" * size, "content-type": "application/json"},
        timeout=PATIENCE_S,
    )
    assert resp.status_code == 431, resp.text
    assert resp.json()["error"]["code"] == "headers_too_large"
    if size < 64 * 1024:  # under the head limit, over the one for a single value
        assert "authorization" in resp.json()["error"]["message"]


def test_large_headers_within_the_limits_are_served(server: Server) -> None:
    headers = {f"x-extra-{i}": "v" * 8000 for i in range(6)}  # 48 KB in all
    assert httpx.get(f"{server.url}/healthz", headers=headers).status_code == 200


def test_a_large_body_in_the_same_read_as_its_head_is_served(
    server: Server, upstream: FaultyUpstream
) -> None:
    upstream.always("primary", ok("the whole body arrived"))
    body = chat_body(300_000)  # far more than the head limit, in one send with the head
    with connect(server) as sock:
        sock.sendall(head("POST", "/v1/chat/completions", *_auth_lines(len(body))) + body)
        reply = read_response(sock)
    assert reply.status == 200, reply.body
    assert orjson.loads(reply.body)["choices"][0]["message"]["content"] == "the whole body arrived"


# -- slow requests ---------------------------------------------------------------------------


def drip(sock: socket.socket, data: bytes, gap_s: float = 0.1) -> None:
    """Send ``data`` a byte at a time until the server answers (or all of it is sent)."""
    with selectors.DefaultSelector() as sel:
        sel.register(sock, selectors.EVENT_READ)
        for i in range(len(data)):
            sock.sendall(data[i : i + 1])
            if sel.select(timeout=gap_s):
                return


def test_headers_sent_a_byte_at_a_time_get_408(server: Server) -> None:
    request = head("GET", "/healthz", *(f"x-filler-{i}: {'f' * 40}" for i in range(20)))
    with connect(server) as sock:
        drip(sock, request)  # about 100 s at this pace; the header timeout is 0.5 s
        reply = refused(sock)
    assert reply.status == 408
    assert reply.error()["code"] == "request_timeout"


def test_a_stalled_body_gets_408(server: Server) -> None:
    body = chat_body(1000)
    with connect(server) as sock:
        sock.sendall(head("POST", "/v1/chat/completions", *_auth_lines(len(body))) + body[:100])
        reply = refused(sock)
    assert reply.status == 408
    assert reply.error()["code"] == "request_timeout"


def test_a_body_that_keeps_coming_is_not_cut(server: Server, upstream: FaultyUpstream) -> None:
    upstream.always("primary", ok("all of it arrived"))
    body = chat_body(8000)
    with connect(server) as sock:
        sock.sendall(head("POST", "/v1/chat/completions", *_auth_lines(len(body))))
        # 16 pieces 0.1 s apart: longer than body_timeout_s, five times faster than MIN_RATE.
        for start in range(0, len(body), 500):
            time.sleep(0.1)
            sock.sendall(body[start : start + 500])
        reply = read_response(sock)
    assert reply.status == 200, reply.body
    assert orjson.loads(reply.body)["choices"][0]["message"]["content"] == "all of it arrived"


def test_hundreds_of_stalled_sockets_are_closed_and_others_still_served(server: Server) -> None:
    body = chat_body(1000)
    stalls = [
        b"",  # connects and sends nothing
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: gateway\r\n",  # half a head
        head("POST", "/v1/chat/completions", *_auth_lines(len(body))) + body[:10],  # 1% of a body
    ]
    socks = []
    try:
        for i in range(300):
            sock = connect(server)
            socks.append(sock)
            sock.sendall(stalls[i % 3])
        assert httpx.get(f"{server.url}/healthz", timeout=PATIENCE_S).status_code == 200
        replies = [read_until_closed(sock) for sock in socks]
    finally:
        for sock in socks:
            sock.close()
    assert replies[0::3] == [b""] * 100  # nothing asked, nothing answered: just closed
    assert {parse(raw).status for raw in replies[1::3] + replies[2::3]} == {408}


def _auth_lines(length: int) -> list[str]:
    return [
        f"authorization: Bearer {ADMIN_KEY}",
        "content-type: application/json",
        f"content-length: {length}",
    ]


# -- good clients are unaffected -------------------------------------------------------------


def test_a_keep_alive_connection_gets_fresh_timers_per_request(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(head("GET", "/healthz"))
        assert read_response(sock).status == 200
        # Idle for longer than both timeouts (but not uvicorn's 5 s keep-alive) ...
        time.sleep(3 * TIMEOUT_S)
        # ... then a request whose head takes a moment: it gets its own 0.5 s.
        request = head("GET", "/healthz")
        sock.sendall(request[:10])
        time.sleep(TIMEOUT_S / 5)
        sock.sendall(request[10:])
        assert read_response(sock).status == 200


def test_keep_alive_serves_two_requests_on_one_connection(server: Server) -> None:
    ports = []
    with httpx.Client(base_url=server.url) as client:
        for _ in range(2):
            resp = client.get("/healthz")
            assert resp.status_code == 200
            stream = resp.extensions["network_stream"]
            ports.append(stream.get_extra_info("socket").getsockname()[1])
    assert ports[0] == ports[1]


def test_a_stream_longer_than_the_timeouts_is_not_cut(
    server: Server, upstream: FaultyUpstream
) -> None:
    tokens = ["one", " two", " three", " four", " five"]
    upstream.always("primary", stream(tokens, gap_s=0.3))  # about 1.5 s: three times the timeouts
    payload = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    text, done = "", False
    started = time.monotonic()
    with httpx.stream(
        "POST", f"{server.url}/v1/chat/completions", json=payload, headers=AUTH, timeout=10
    ) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line == "data: [DONE]":
                done = True
            elif line.startswith("data: "):
                for choice in orjson.loads(line[6:]).get("choices", []):
                    text += choice["delta"].get("content") or ""
    assert time.monotonic() - started > 2 * TIMEOUT_S
    assert (text, done) == ("one two three four five", True)
