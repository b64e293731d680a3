"""What the supervisor hands each worker: the plan, and the listening socket a worker
opens on the shared port (SO_REUSEPORT). Apart so workers need not import the supervisor."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Plan:
    config_path: Path
    host: str
    port: int
    workers: int
    owner_socket: str | None  # None: Redis and PostgreSQL hold everything
    owner_accountant: bool
    owner_ledger: bool
    dev_key: str | None


def worker_socket(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    sock.listen(2048)
    sock.setblocking(False)
    return sock
