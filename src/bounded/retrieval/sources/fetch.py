"""HTTP(S) fetching that cannot be turned against the network it runs in (SSRF).

For the first request and every redirect: the scheme must be http or https, the host must
be allowed (``allow_hosts``, default the hosts of the configured URLs), and *every* address
the host resolves to must be public unless the host or address is in ``allow_private``.
The connection then goes to the very address that was checked (the hostname is kept for
the Host header and TLS), so a DNS answer that changes between check and connect (DNS
rebinding) cannot slip a private address in. Nothing is sent to a refused address.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from fnmatch import fnmatch
from urllib.parse import urljoin, urlsplit

from bounded.retrieval.config import UrlSource
from bounded.retrieval.documents import DocumentError

USER_AGENT = "bounded-retrieval/0.1 (+https://github.com/bounded)"
_REDIRECTS = {301, 302, 303, 307, 308}
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class FetchResponse:
    url: str
    content_type: str
    body: bytes


def fetch(url: str, source: UrlSource) -> FetchResponse:
    hosts = source.allow_hosts or tuple(h for h in (urlsplit(u).hostname for u in source.urls) if h)
    deadline = time.monotonic() + source.timeout_s
    for _ in range(source.max_redirects + 1):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DocumentError(f"refused {url!r}: only http and https URLs")
        host = parts.hostname.lower()
        if not any(fnmatch(host, pattern.lower()) for pattern in hosts):
            raise DocumentError(f"refused {url!r}: host {host!r} is not in allow_hosts")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = _vetted_address(host, port, source.allow_private)
        status, headers, body = _request(
            parts.scheme, host, address, port, _target(url), deadline, source.max_bytes
        )
        if status in _REDIRECTS and headers.get("location"):
            url = urljoin(url, headers["location"])
            continue
        if status >= 400:
            raise DocumentError(f"HTTP {status} from {url}")
        content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        return FetchResponse(url, content_type, body)
    raise DocumentError(f"more than {source.max_redirects} redirects from {url}")


def is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def _vetted_address(host: str, port: int, allow_private: tuple[str, ...]) -> str:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise DocumentError(f"cannot resolve {host!r}: {exc.strerror}") from None
    # An IPv6 answer may carry a scope ("fe80::1%eth0"); the address is what is checked.
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    for address in addresses:
        if not is_public(address) and not _private_allowed(host, address, allow_private):
            raise DocumentError(
                f"refused {host!r}: it resolves to the non-public address {address} "
                "(add the host to allow_private to permit it)"
            )
    return str(addresses[0])


def _private_allowed(host: str, address: IPAddress, allowed: tuple[str, ...]) -> bool:
    for entry in allowed:
        if entry.lower() == host:
            return True
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue  # a hostname entry for another host
    return False


def _target(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _request(
    scheme: str, host: str, address: str, port: int, target: str, deadline: float, limit: int
) -> tuple[int, dict[str, str], bytes]:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise DocumentError(f"timed out fetching https://{host}{target}")
    conn: http.client.HTTPConnection
    if scheme == "https":
        conn = _PinnedHTTPS(host, address, port, remaining)
    else:
        conn = _PinnedHTTP(host, address, port, remaining)
    try:
        conn.request(
            "GET",
            target,
            headers={"User-Agent": USER_AGENT, "Accept": "*/*", "Accept-Encoding": "identity"},
        )
        response = conn.getresponse()
        headers = {k.lower(): v for k, v in response.getheaders()}
        body = bytearray()
        while len(body) <= limit:
            if time.monotonic() > deadline:
                raise TimeoutError
            piece = response.read(65536)
            if not piece:
                break
            body += piece
        if len(body) > limit:
            raise DocumentError(f"{scheme}://{host}{target} is over the limit of {limit:,} bytes")
        return response.status, headers, bytes(body)
    except TimeoutError:
        raise DocumentError(f"timed out fetching {scheme}://{host}{target}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise DocumentError(f"cannot fetch {scheme}://{host}{target}: {exc}") from None
    finally:
        conn.close()


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, address: str, port: int, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, address: str, port: int, timeout: float):
        self._tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self._tls)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)
