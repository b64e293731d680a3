"""JSON answers in one write (``bounded.gateway.whole_response``), on the wire.

The same small app runs under bounded's HTTP protocol, which offers the one-message
extension, and under plain uvicorn, which does not; a client must not be able to tell them
apart: status, headers, body, keep-alive, ``Connection: close``, HEAD, and a header value
that would split the head refused the same way (a 500, nothing injected).
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest

from bounded.config.schema import ServerConfig
from bounded.gateway.protocol import protocol_for
from bounded.gateway.whole_response import EXTENSION, JsonAnswer
from tests.conftest import serve_in_thread

HEADERS = {
    "ok": {"x-bounded-trace-id": "6b15de20", "x-ratelimit-remaining-requests": "7"},
    "bad-value": {"x-note": "fine\r\nset-cookie: session=stolen"},
    "bad-name": {"x note": "1"},
    "odd-but-valid": {"x-note": "a\tb caf\u00e9", "x-odd_name~1": "ok"},
    "lines": {"x-bounded-trace-id": "6b15de21"},
}
# What the accountant writes as header lines (``Hold.header_lines``), sent as they are.
LINES = (
    "x-ratelimit-limit-requests: 60\r\nx-ratelimit-remaining-requests: 59\r\n"
    "x-ratelimit-reset-requests: 1s\r\n"
)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    name = scope["path"].strip("/")
    seen = "yes" if EXTENSION in (scope.get("extensions") or {}) else "no"
    body = orjson.dumps({"path": name, "answer": "Paris"})
    lines = LINES if name == "lines" else ""
    headers = {**HEADERS[name], "x-seen-extension": seen}
    await JsonAnswer(body, headers, lines=lines)(scope, receive, send)


@pytest.fixture(scope="module", params=["bounded", "uvicorn"])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    http_class = protocol_for(ServerConfig()) if request.param == "bounded" else "httptools"
    with serve_in_thread(app, http=http_class) as url:
        yield request.param, url


def connect(url: str) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    return http.client.HTTPConnection(str(parts.hostname), parts.port, timeout=5)


def test_answers_alike_and_keeps_the_connection(server: tuple[str, str]) -> None:
    kind, url = server
    conn = connect(url)
    for _ in range(2):  # the second request on the same connection
        conn.request("POST", "/ok", body=b"{}")
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200
        assert orjson.loads(body) == {"path": "ok", "answer": "Paris"}
        assert response.getheader("content-type") == "application/json"
        assert response.getheader("content-length") == str(len(body))
        assert response.getheader("x-bounded-trace-id") == "6b15de20"
        assert response.getheader("x-ratelimit-remaining-requests") == "7"
        assert response.getheader("date")  # uvicorn's default headers stay
        # bounded's protocol offers the extension (so the one-write path is what ran).
        assert response.getheader("x-seen-extension") == ("yes" if kind == "bounded" else "no")
        assert not response.will_close
    conn.close()


def test_header_lines_arrive_as_headers_on_either_server(server: tuple[str, str]) -> None:
    _, url = server
    conn = connect(url)
    conn.request("POST", "/lines", body=b"{}")
    response = conn.getresponse()
    body = response.read()
    assert response.status == 200 and orjson.loads(body)["path"] == "lines"
    assert response.getheader("x-bounded-trace-id") == "6b15de21"
    assert response.getheader("x-ratelimit-limit-requests") == "60"
    assert response.getheader("x-ratelimit-remaining-requests") == "59"
    assert response.getheader("x-ratelimit-reset-requests") == "1s"
    assert response.getheader("content-length") == str(len(body))
    assert len([k for k, _ in response.getheaders() if k.startswith("x-ratelimit-")]) == 3
    conn.close()


def test_connection_close_is_honoured(server: tuple[str, str]) -> None:
    _, url = server
    conn = connect(url)
    conn.request("POST", "/ok", body=b"{}", headers={"Connection": "close"})
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("connection") == "close"
    assert orjson.loads(response.read())["answer"] == "Paris"
    assert response.will_close
    conn.close()


def test_head_has_the_length_but_no_body(server: tuple[str, str]) -> None:
    _, url = server
    conn = connect(url)
    conn.request("HEAD", "/ok")
    response = conn.getresponse()
    assert response.status == 200
    expected = len(orjson.dumps({"path": "ok", "answer": "Paris"}))
    assert response.getheader("content-length") == str(expected)
    assert response.read() == b""
    # The connection is still good for a request with a body.
    conn.request("POST", "/ok", body=b"{}")
    assert orjson.loads(conn.getresponse().read())["path"] == "ok"
    conn.close()


def test_tabs_latin_1_and_odd_token_characters_pass(server: tuple[str, str]) -> None:
    _, url = server
    conn = connect(url)
    conn.request("POST", "/odd-but-valid", body=b"{}")
    response = conn.getresponse()
    response.read()
    assert response.status == 200
    assert response.getheader("x-note") == "a\tb caf\u00e9"  # http.client reads latin-1
    assert response.getheader("x-odd_name~1") == "ok"
    conn.close()


@pytest.mark.parametrize("path", ["/bad-value", "/bad-name"])
def test_a_header_that_would_split_the_head_is_refused(server: tuple[str, str], path: str) -> None:
    _, url = server
    conn = connect(url)
    conn.request("POST", path, body=b"{}")
    response = conn.getresponse()
    response.read()
    assert response.status == 500
    assert response.getheader("set-cookie") is None
    assert response.getheader("x-note") is None
    conn.close()


def test_checks_every_byte_as_uvicorn_does() -> None:
    from uvicorn.protocols.http.httptools_impl import HEADER_RE, HEADER_VALUE_RE

    from bounded.gateway.whole_response import _valid

    for byte in range(256):
        char = chr(byte)  # latin-1: one character per byte
        assert _valid({f"x-{char}": "v"}) == (not HEADER_RE.search(b"x-" + bytes([byte])))
        assert _valid({"x-n": f"a{char}b"}) == (not HEADER_VALUE_RE.search(bytes([byte])))
    assert _valid({"x-a": "1", "x-b": "2"}) and not _valid({"x-a": "1", "x-b": "2\r\nx-c: 3"})
