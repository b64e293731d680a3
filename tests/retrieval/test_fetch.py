"""URL sources: private and loopback addresses refused (no packet sent) unless allow-listed."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bounded.retrieval.access import Viewer
from tests.retrieval.conftest import Build

PAGE = (
    b"<html><head><title>Pricing</title></head><body><h1>Pricing</h1>"
    b"<p>The ocelot plan costs nine dollars a month.</p></body></html>"
)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    requests: list[str]
    redirect_to: str

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the slow handler writes to a client that already gave up: expected


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        if self.path == "/slow":
            time.sleep(1.5)
        if self.path == "/hop":
            self.send_response(302)
            self.send_header("Location", self.server.redirect_to)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def _server() -> Iterator[_Server]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.requests = []
    server.redirect_to = ""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _url(server: _Server, path: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def test_loopback_and_private_addresses_are_refused_without_a_request(build: Build) -> None:
    with _server() as server:
        urls = [
            _url(server, "/page.html"),
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/admin",
            "http://[::1]:9/x",
            "http://2130706433/",
            "file:///etc/passwd",
        ]
        service = build(
            {
                "web": {
                    "sources": [{"kind": "url", "urls": urls, "timeout_s": 2, "allow_hosts": ["*"]}]
                }
            }
        )
        report = service.sync("web")
        assert server.requests == []  # refused before connecting, not after
    messages = {e.uri: e.message for e in report.errors}
    assert len(messages) == len(urls)
    for url in urls[:5]:
        assert "non-public address" in messages[url], messages[url]
    assert "only http and https" in messages["file:///etc/passwd"]
    assert service.status("web")["documents"] == 0


def test_an_allow_listed_local_server_is_fetched_and_indexed(build: Build) -> None:
    with _server() as server:
        source = {
            "kind": "url",
            "urls": [_url(server, "/pricing.html")],
            "allow_private": ["127.0.0.1"],
        }
        service = build({"web": {"sources": [source]}})
        report = service.sync("web")
        assert not report.errors and server.requests == ["/pricing.html"]
    hits = service.search("web", "ocelot plan price", viewer=Viewer.everything(), top_k=1)
    assert hits[0].chunk.title == "Pricing" and "nine dollars" in hits[0].chunk.text


def test_redirects_are_checked_like_the_first_request(build: Build) -> None:
    with _server() as server:
        port = server.server_address[1]
        source = {
            "kind": "url",
            "urls": [_url(server, "/hop")],
            "allow_private": ["127.0.0.1"],
            "allow_hosts": ["*"],
        }
        service = build({"web": {"sources": [source]}})
        # To another loopback address that is not allow-listed: refused, never contacted.
        server.redirect_to = f"http://127.0.0.2:{port}/inside"
        report = service.sync("web")
        assert "non-public address 127.0.0.2" in report.errors[0].message
        # To a host outside allow_hosts.
        narrow = build({"narrow": {"sources": [{**source, "allow_hosts": ["127.0.0.1"]}]}})
        server.redirect_to = f"http://localhost:{port}/inside"
        report = narrow.sync("narrow")
        assert "not in allow_hosts" in report.errors[0].message
        # Followed when the target is allowed.
        server.redirect_to = "/pricing.html"
        report = service.sync("web")
        assert not report.errors
        assert server.requests == ["/hop", "/hop", "/hop", "/pricing.html"]


def test_a_timeout_is_a_per_document_error_and_the_rest_is_indexed(
    build: Build, tmp_path: Path
) -> None:
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "a.md").write_text("# Armadillo\n\nArmadillos roll into balls.\n")
    with _server() as server:
        source = {
            "kind": "url",
            "urls": [_url(server, "/slow")],
            "timeout_s": 0.3,
            "allow_private": ["127.0.0.1/32"],
        }
        service = build(
            {"mixed": {"sources": [source, {"kind": "folder", "path": str(tmp_path / "local")}]}}
        )
        report = service.sync("mixed")
    assert "timed out" in report.errors[0].message
    assert report.documents_indexed == 1
